"""The layout registry: every plate kind the renderer draws, with the weight training samples
it by (``sample_layout``). Names of the first renderer (``us``, ``us_dark``, ``us_two_line``,
``eu``, ``nl``, ``de``, ``uk_front``, ``uk_rear``, ``br_old``, ``br_mercosur``, ``one_line``)
stay valid; a country code (``at``, ``fr``...) is that country's one-line plate and
``CC_2l`` its two-line (square, motorcycle, trailer) plate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from edge_anpr.train.render import brazil, europe
from edge_anpr.train.render.common import Box
from edge_anpr.train.render.glyph_pages import GlyphLibrary

Draw = Callable[[np.random.Generator, GlyphLibrary], tuple[Image.Image, list[Box], str]]


@dataclass(frozen=True)
class Layout:
    name: str
    weight: float
    draw: Draw | None
    """None for the US layouts, drawn by ``us.render_us`` (their order of random draws is
    fixed, see there)."""
    two_line: bool = False


def _one(country: str, variant: str = "") -> Draw:
    return lambda rng, glyphs: europe.render_one_line(rng, country, glyphs, variant)


def _two(country: str) -> Draw:
    return lambda rng, glyphs: europe.render_two_line(rng, country, glyphs)


def _any_eu(rng: np.random.Generator, glyphs: GlyphLibrary) -> tuple[Image.Image, list[Box], str]:
    countries = tuple(europe.EU_CODES)
    return europe.render_one_line(rng, countries[int(rng.integers(len(countries)))], glyphs)


# the countries whose two-line plates are common on the road (and in the real crops)
_MAIN_TWO_LINE = ("de", "nl", "ch", "uk", "no", "fr", "it", "at", "pl", "cz", "dk", "be")

_REGISTRY: list[Layout] = [
    Layout("us", 0.20, None),
    Layout("us_dark", 0.04, None),
    Layout("us_two_line", 0.03, None, two_line=True),
    Layout("br_old", 0.08, lambda rng, g: brazil.render_old(rng, g)),
    Layout("br_red", 0.04, lambda rng, g: brazil.render_old(rng, g, red=True)),
    Layout("br_mercosur", 0.06, lambda rng, g: brazil.render_mercosur(rng, g)),
    Layout("br_moto", 0.012, lambda rng, g: brazil.render_old(rng, g, moto=True), True),
    Layout("br_red_moto", 0.005, lambda rng, g: brazil.render_old(rng, g, red=True, moto=True),
           True),
    Layout("br_mercosur_moto", 0.012, lambda rng, g: brazil.render_mercosur(rng, g, moto=True),
           True),
    Layout("eu", 0.04, _any_eu),
    Layout("one_line", 0.015, _one("generic")),
    Layout("uk_front", 0.025, _one("uk", "front")),
    Layout("uk_rear", 0.025, _one("uk", "rear")),
    *(Layout(c, 0.05 if c in ("de", "nl") else 0.009, _one(c))
      for c in europe.COUNTRIES if c != "uk"),
    *(Layout(f"{c}_2l", 0.012 if c in _MAIN_TWO_LINE else 0.003, _two(c), True)
      for c in europe.COUNTRIES),
]

LAYOUT_REGISTRY: dict[str, Layout] = {layout.name: layout for layout in _REGISTRY}
LAYOUTS: tuple[str, ...] = tuple(LAYOUT_REGISTRY)
LAYOUT_WEIGHTS: dict[str, float] = {
    name: layout.weight / sum(x.weight for x in _REGISTRY)
    for name, layout in LAYOUT_REGISTRY.items()
}


def sample_layout(rng: np.random.Generator, weights: dict[str, float] | None = None) -> str:
    """A layout name drawn by ``weights`` (default ``LAYOUT_WEIGHTS``; need not sum to 1)."""
    table = weights or LAYOUT_WEIGHTS
    names = sorted(table)
    p = np.array([table[n] for n in names], np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]
