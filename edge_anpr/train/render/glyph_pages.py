"""Real plate fonts: glyph bitmaps cut from the Tesseract training pages of
``../shared/data/chars/glyph-pages`` (``l??.NAME.exp0.tif`` with its ``.box`` file).

A ``.box`` line is ``CHAR x0 y0 x1 y1 page`` with y measured from the BOTTOM of the page. For
each font and each of 0-9 and A-Z we keep a few clean instances: those whose height and aspect
are closest to the character's median (outliers are cut-off or merged boxes), as tight
anti-aliased ink masks of ``GLYPH_HEIGHT`` rows. They are cached as one ``.npz`` per font under
``$EDGE_ANPR_TRAIN_CACHE`` (default ``~/.cache/edge-anpr-train``), never in the repository.

The source is optional: without the data folder ``GlyphLibrary`` is empty and the renderer
draws with TrueType fonts only.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)

CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
GLYPH_HEIGHT = 64
INSTANCES = 6
CACHE_VERSION = 2


@dataclass(frozen=True)
class GlyphLibrary:
    """Masks per font name, then per character (each a tuple of instances)."""

    fonts: dict[str, dict[str, tuple[NDArray[np.uint8], ...]]] = field(default_factory=dict)

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self.fonts))

    def covers(self, name: str, text: str) -> bool:
        chars = self.fonts.get(name, {})
        return bool(chars) and all(c in chars for c in text)


def _default_cache() -> Path:
    from edge_anpr.train.cache import CACHE

    return CACHE


def _clean_mask(crop: NDArray[np.uint8]) -> NDArray[np.uint8] | None:
    """Ink (dark pixels) of one box, specks dropped, cropped tight."""
    ink = (crop < 128).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    if n <= 1:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= 0.05 * areas.sum()) + 1
    ink = np.isin(labels, keep).astype(np.uint8)
    ys, xs = np.nonzero(ink)
    if len(ys) == 0:
        return None
    return ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] * 255


def extract_page(tif: Path, box: Path) -> dict[str, tuple[NDArray[np.uint8], ...]]:
    """The clean instances of every character of 0-9 A-Z on one glyph page."""
    page = cv2.imread(str(tif), cv2.IMREAD_GRAYSCALE)
    if page is None:
        raise OSError(f"cannot read glyph page {tif}")
    height = page.shape[0]
    found: dict[str, list[NDArray[np.uint8]]] = {}
    for line in box.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) < 5 or parts[0] not in CHARS:
            continue
        x0, y0, x1, y1 = (int(v) for v in parts[1:5])
        top, bottom = height - y1, height - y0
        if x1 - x0 < 2 or bottom - top < 4:
            continue
        mask = _clean_mask(page[max(0, top) : bottom, max(0, x0) : x1])
        if mask is not None and mask.shape[0] >= 8:
            found.setdefault(parts[0], []).append(mask)
    out: dict[str, tuple[NDArray[np.uint8], ...]] = {}
    for char, masks in found.items():
        hs = np.array([m.shape[0] for m in masks], np.float64)
        aspects = np.array([m.shape[1] / m.shape[0] for m in masks], np.float64)
        # distance from the median shape: cut-off, merged or broken boxes are far from it
        cost = np.abs(hs / np.median(hs) - 1) + np.abs(aspects / np.median(aspects) - 1)
        chosen = [masks[i] for i in np.argsort(cost, kind="stable")[:INSTANCES]]
        out[char] = tuple(_normalise(m) for m in chosen)
    return out


def _normalise(mask: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """``GLYPH_HEIGHT`` rows, edges softened: the pages are binarised scans whose jagged
    outlines would otherwise teach the reader staircase edges that printed plates lack."""
    size = (max(1, round(mask.shape[1] * GLYPH_HEIGHT / mask.shape[0])), GLYPH_HEIGHT)
    out = cv2.resize(mask, size, interpolation=cv2.INTER_AREA)
    soft = cv2.GaussianBlur(out.astype(np.float32), (0, 0), 1.0)
    return np.clip((soft - 128.0) * 2.0 + 128.0, 0, 255).astype(np.uint8)


def _font_name(tif: Path) -> str:
    """``leu.germany.exp0.tif`` -> ``germany``."""
    parts = tif.name.split(".")
    return parts[1] if len(parts) >= 3 else tif.stem


def load_font(tif: Path, cache_dir: Path) -> dict[str, tuple[NDArray[np.uint8], ...]]:
    """One font's glyphs, from the cache when it is there (keyed by the page's size)."""
    name = _font_name(tif)
    cached = cache_dir / f"glyphs_v{CACHE_VERSION}_{name}_{tif.stat().st_size}.npz"
    if cached.is_file():
        with np.load(cached) as d:
            chars: dict[str, list[NDArray[np.uint8]]] = {}
            for key in sorted(d.files, key=lambda k: (k[0], int(k[2:]))):
                chars.setdefault(key[0], []).append(d[key])
        return {c: tuple(ms) for c, ms in chars.items()}
    glyphs = extract_page(tif, tif.with_suffix(".box"))
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp, **{f"{c}_{k}": m for c, ms in glyphs.items() for k, m in enumerate(ms)}
    )
    tmp.replace(cached)
    return glyphs


def load_library(pages_dir: Path | None, cache_dir: Path | None = None) -> GlyphLibrary:
    """Every font of ``pages_dir`` (an empty library when the folder is absent)."""
    if pages_dir is None or not pages_dir.is_dir():
        return GlyphLibrary()
    cache = cache_dir or _default_cache()
    fonts = {}
    for tif in sorted(pages_dir.glob("*.tif")):
        if not tif.with_suffix(".box").is_file():
            continue
        try:
            fonts[_font_name(tif)] = load_font(tif, cache)
        except (OSError, ValueError) as exc:
            log.warning("glyph page skipped page=%s error=%s", tif, exc)
    return GlyphLibrary(fonts)


@functools.cache
def default_library() -> GlyphLibrary:
    """The glyph pages of ``../shared/data`` when present, else an empty library."""
    from edge_anpr.lab.datasplit import shared_data_dir

    data = shared_data_dir()
    return load_library(data / "chars" / "glyph-pages" if data else None)
