"""``render_plate``: one synthetic plate face of a named layout with the exact box of every
main character in reading order (top line first, each line left to right)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import ImageFilter

from edge_anpr.train.render.glyph_pages import GlyphLibrary, default_library
from edge_anpr.train.render.layouts import LAYOUT_REGISTRY, sample_layout
from edge_anpr.train.render.us import render_us


@dataclass(frozen=True)
class RenderedPlate:
    image: NDArray[np.uint8]
    """RGB uint8, H x W x 3: the plate face only (no margin)."""
    boxes: NDArray[np.float32]
    """float32 N x 4: x0, y0, x1, y1 of each main character, in reading order."""
    text: str
    layout: str


def render_plate(
    rng: np.random.Generator, layout: str | None = None, glyphs: GlyphLibrary | None = None,
) -> RenderedPlate:
    """One plate of ``layout`` (drawn by ``LAYOUT_WEIGHTS`` when None). ``glyphs`` defaults to
    the real plate fonts of ``../shared/data`` (TrueType only when that is absent); pass
    ``GlyphLibrary()`` for TrueType only. Deterministic for a given rng state and library."""
    name = layout or sample_layout(rng)
    spec = LAYOUT_REGISTRY.get(name)
    if spec is None:
        raise ValueError(f"unknown plate layout {name!r}; known: {', '.join(LAYOUT_REGISTRY)}")
    if spec.draw is None:
        arr, boxes, text = render_us(rng, name)
    else:
        img, boxes, text = spec.draw(rng, default_library() if glyphs is None else glyphs)
        if rng.random() < 0.3:
            img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.0))))
        arr = np.asarray(img, dtype=np.uint8).copy()
    return RenderedPlate(arr, np.asarray(boxes, np.float32).reshape(-1, 4), text, name)
