"""Small helpers every drawing module uses: colour jitter, random choice, small print."""

from __future__ import annotations

import numpy as np
from PIL import ImageDraw

from edge_anpr.train.render import truetype

Colour = tuple[int, int, int]
Box = tuple[float, float, float, float]


def pick(rng: np.random.Generator, seq: tuple[str, ...] | str) -> str:
    return seq[int(rng.integers(len(seq)))]


def jitter(rng: np.random.Generator, base: Colour, amount: int = 20) -> Colour:
    r, g, b = (int(np.clip(v + rng.integers(-amount, amount + 1), 0, 255)) for v in base)
    return (r, g, b)


def small_text(
    rng: np.random.Generator, draw: ImageDraw.ImageDraw, text: str, cx: float, cy: float,
    height: float, fill: Colour, fonts: tuple[str, ...] | None = None,
) -> None:
    """Unlabelled print (state names, slogans, band letters, dealer names) centred on cx, cy."""
    fonts = fonts or truetype.font_files()[1]
    f = truetype.font(pick(rng, fonts), max(6, int(height)))
    x0, y0, x1, y1 = f.getbbox(text)
    draw.text((cx - (x1 + x0) / 2, cy - (y1 + y0) / 2), text, font=f, fill=fill)
