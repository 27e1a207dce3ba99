"""TrueType fonts installed on the machine: the fallback glyph source and all small print.

Invariant: ``glyph_mask`` returns a tight uint8 mask (no empty border rows or columns), so a
character's box is exactly where its ink is pasted.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont


@functools.cache
def font_files() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(plate-like main fonts, any fonts for small print), from fc-list or standard folders."""
    paths: list[str] = []
    try:
        out = subprocess.run(
            ["fc-list", "--format", "%{file}\n"], capture_output=True, text=True, timeout=10,
            check=False,
        ).stdout
        paths = [p for p in out.splitlines() if p.endswith((".ttf", ".otf"))]
    except (OSError, subprocess.SubprocessError):
        paths = []
    if not paths:
        for root in (Path("/usr/share/fonts"), Path("/usr/local/share/fonts")):
            if root.is_dir():
                paths += [str(p) for p in root.rglob("*.ttf")]
    paths = sorted(set(paths))
    if not paths:
        raise RuntimeError("no TrueType fonts found (install fonts-dejavu)")
    main = [
        p for p in paths
        if any(k in Path(p).name for k in ("Sans", "Mono"))
        and not any(k in Path(p).name for k in ("Oblique", "Italic", "ExtraLight"))
    ]
    return tuple(main or paths), tuple(paths)


@functools.lru_cache(maxsize=512)
def font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


@functools.lru_cache(maxsize=8192)
def glyph_mask(path: str, char: str) -> NDArray[np.uint8]:
    """Tight anti-aliased mask of one character drawn at a large size."""
    f = font(path, 96)
    x0, y0, x1, y1 = f.getbbox(char)
    img = Image.new("L", (x1 - x0 + 4, y1 - y0 + 4), 0)
    ImageDraw.Draw(img).text((2 - x0, 2 - y0), char, font=f, fill=255)
    arr = np.asarray(img)
    ys, xs = np.nonzero(arr > 40)
    return arr[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].copy()
