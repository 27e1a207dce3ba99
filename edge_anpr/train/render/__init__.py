"""Synthetic licence plates with exact per-character boxes (training only, never at run time).

``render_plate(rng, layout)`` draws one plate face (US state-like styles; Brazilian grey, red
commercial and Mercosur plates; one-line and two-line plates of about 30 European countries
with their real text formats) and returns the RGB image with the box and label of every *main*
character in reading order. Everything else (state names, slogans, EU bands, flags, coats of
arms, German seals, stickers, screws, dealer names) is drawn but not labelled, so a segmenter
trained on these learns to ignore it.

One concern a module: ``formats`` (text per country), ``glyph_pages`` (real plate fonts from
the Tesseract pages), ``truetype`` (installed fonts), ``typefaces`` (which one a plate uses),
``paint`` (a line of characters), ``emblems`` (unlabelled graphics), ``us``, ``europe``,
``brazil`` (the plate kinds), ``layouts`` (the weighted registry), ``plate`` (the entry point),
``sheet`` (contact sheets: ``python -m edge_anpr.train.render --sheet out.png``).

Deterministic: the same ``numpy.random.Generator`` seed gives the same plate.
"""

from edge_anpr.train.render.formats import FORMATS, label_regex
from edge_anpr.train.render.glyph_pages import GlyphLibrary, default_library, load_library
from edge_anpr.train.render.layouts import LAYOUT_WEIGHTS, LAYOUTS, sample_layout
from edge_anpr.train.render.plate import RenderedPlate, render_plate
from edge_anpr.train.render.us import ALPHABET

__all__ = [
    "ALPHABET", "FORMATS", "LAYOUTS", "LAYOUT_WEIGHTS", "GlyphLibrary", "RenderedPlate",
    "default_library", "label_regex", "load_library", "render_plate", "sample_layout",
]
