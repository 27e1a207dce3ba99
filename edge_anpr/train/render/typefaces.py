"""Which typeface draws a plate's main characters: a real plate font from the glyph pages
(``glyph_pages``) or an installed TrueType font (``truetype``).

A layout names its country's page font (``PAGE_FONT``); that font is used most of the time when
it has every character of the text, another page font sometimes, TrueType otherwise. With an
empty glyph library every plate uses TrueType.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from edge_anpr.train.render import truetype
from edge_anpr.train.render.glyph_pages import GlyphLibrary

# country (or plate family) -> glyph page font; Mercosur plates use the FE-Schrift typeface
# of German plates.
PAGE_FONT = {
    "de": "germany", "br_mercosur": "germany", "nl": "netherlands", "uk": "uk", "br": "brazil",
    "be": "belgium", "fr": "france", "rs": "serbia",
}


@dataclass(frozen=True)
class Typeface:
    name: str
    """A TrueType file path, or ``page:NAME`` for a glyph page font."""
    page: dict[str, tuple[NDArray[np.uint8], ...]] | None = None

    @property
    def is_page(self) -> bool:
        return self.page is not None

    def mask(self, rng: np.random.Generator, char: str) -> NDArray[np.uint8]:
        """A tight uint8 ink mask of ``char`` (one of the page's instances, picked by rng)."""
        if self.page is not None and char in self.page:
            instances = self.page[char]
            return instances[int(rng.integers(len(instances)))]
        path = self.name if self.page is None else truetype.font_files()[0][0]
        return truetype.glyph_mask(path, char)

    def squeeze(self, rng: np.random.Generator) -> float:
        """Width factor: page fonts keep their real proportions, TrueType ones are narrowed
        towards plate-like condensed shapes."""
        return float(rng.uniform(0.88, 1.05)) if self.is_page else float(rng.uniform(0.55, 0.95))


def choose(
    rng: np.random.Generator, family: str, text: str, glyphs: GlyphLibrary,
    p_own: float = 0.8, p_other: float = 0.35,
) -> Typeface:
    """The typeface of one plate of ``family`` showing ``text``."""
    own = PAGE_FONT.get(family)
    r = float(rng.random())
    if own and glyphs.covers(own, text) and r < p_own:
        return Typeface(f"page:{own}", glyphs.fonts[own])
    others = [n for n in glyphs.names() if n != own and glyphs.covers(n, text)]
    if others and float(rng.random()) < (p_other if own else 0.5):
        name = others[int(rng.integers(len(others)))]
        return Typeface(f"page:{name}", glyphs.fonts[name])
    main_fonts, _ = truetype.font_files()
    return Typeface(main_fonts[int(rng.integers(len(main_fonts)))])
