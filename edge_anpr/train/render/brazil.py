"""Brazilian plates: the grey LLL-NNNN plate with its city band (red for commercial vehicles,
white characters), the Mercosur plate LLLNLNN with the blue "BRASIL" band, and the two-line
motorcycle versions of both (LLL above NNNN, LLL above NLNN).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from edge_anpr.train.render import emblems
from edge_anpr.train.render.common import Box, Colour, jitter, pick, small_text
from edge_anpr.train.render.formats import BR_FORMATS, expand, label
from edge_anpr.train.render.glyph_pages import GlyphLibrary
from edge_anpr.train.render.paint import place_line
from edge_anpr.train.render.typefaces import Typeface, choose

CITIES = (
    "SP - SAO PAULO", "RJ - RIO DE JANEIRO", "MG - BELO HORIZONTE", "PR - CURITIBA",
    "RS - PORTO ALEGRE", "SC - FLORIANOPOLIS", "BA - SALVADOR", "PE - RECIFE", "GO - GOIANIA",
    "PR - SERTANOPOLIS", "PR - PARANAGUA", "SP - CAMPINAS", "DF - BRASILIA", "CE - FORTALEZA",
)


def _old_colours(rng: np.random.Generator, red: bool) -> tuple[Colour, Colour]:
    if red:  # commercial: red plate, white characters
        return jitter(rng, (150, 25, 32), 20), jitter(rng, (238, 238, 238), 12)
    grey = int(rng.integers(150, 225))
    return jitter(rng, (grey, grey, grey), 8), jitter(rng, (22, 22, 22), 12)


def render_old(
    rng: np.random.Generator, glyphs: GlyphLibrary, red: bool = False, moto: bool = False,
) -> tuple[Image.Image, list[Box], str]:
    text_face = expand(rng, BR_FORMATS["old_moto" if moto else "old"])
    if not moto and rng.random() < 0.7:
        text_face = text_face.replace("-", ".")  # most plates show a dot-like separator
    text = label(text_face)
    w, h = ((200, 170) if moto else (400, 130))
    bg, ink = _old_colours(rng, red)
    img = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((2, 2, w - 3, h - 3), radius=6, outline=ink, width=max(2, h // 45))
    band_h = h * (0.16 if moto else 0.2)
    small_text(rng, draw, pick(rng, CITIES), w / 2, band_h * 0.6, band_h * 0.55, ink)
    if rng.random() < 0.5:  # the seal wire and the small state emblem at the top left
        emblems.coat_of_arms(rng, draw, w * 0.06, band_h * 0.6, band_h * 0.7)
    boxes = _characters(rng, img, text_face, band_h, ink, choose(rng, "br", text, glyphs),
                        spacing=(0.06, 0.14),
                        two_lines=(0.3, 0.04, 0.36, 0.06) if moto else None,
                        one_line=((0.58, 0.66), 0.45, 0.04))
    return img, boxes, text


def render_mercosur(
    rng: np.random.Generator, glyphs: GlyphLibrary, moto: bool = False,
) -> tuple[Image.Image, list[Box], str]:
    text_face = expand(rng, BR_FORMATS["mercosur_moto" if moto else "mercosur"])
    text = label(text_face)
    w, h = ((200, 170) if moto else (400, 130))
    img = Image.new("RGB", (w, h), jitter(rng, (240, 240, 240), 10))
    draw = ImageDraw.Draw(img)
    # characters: black (private), red (commercial), green, blue, gold or silver (special)
    ink = pick_ink(rng)
    draw.rounded_rectangle((1, 1, w - 2, h - 2), radius=8, outline=(30, 30, 30), width=2)
    band_h = h * (0.18 if moto else 0.22)
    draw.rectangle((3, 3, w - 4, band_h), fill=jitter(rng, (20, 60, 160), 20))
    small_text(rng, draw, "BRASIL", w / 2, band_h * 0.55, band_h * 0.6, (245, 245, 245))
    fw = band_h * 0.9
    draw.rectangle((w - fw * 1.5, band_h * 0.2, w - fw * 0.3, band_h * 0.85),
                   fill=(20, 140, 60))
    mx, my = w - fw * 0.9, band_h * 0.52
    draw.polygon([(mx, my - band_h * 0.28), (mx + fw * 0.45, my), (mx, my + band_h * 0.28),
                  (mx - fw * 0.45, my)], fill=(250, 210, 0))
    draw.ellipse((w * 0.04, band_h * 0.25, w * 0.04 + band_h * 0.5, band_h * 0.75),
                 outline=(245, 245, 245), width=1)
    boxes = _characters(rng, img, text_face, band_h, ink,
                        choose(rng, "br_mercosur", text, glyphs), spacing=(0.05, 0.12),
                        two_lines=(0.32, 0.05, 0.34, 0.05) if moto else None,
                        one_line=((0.56, 0.64), 0.5, 0.05))
    return img, boxes, text


def _characters(
    rng: np.random.Generator, img: Image.Image, text_face: str, band_h: float, ink: Colour,
    typeface: Typeface, *, spacing: tuple[float, float],
    two_lines: tuple[float, float, float, float] | None,
    one_line: tuple[tuple[float, float], float, float],
) -> list[Box]:
    """The characters below the band in ``typeface`` (its squeeze and a letter spacing drawn
    from the ``spacing`` range), boxes in reading order. ``two_lines`` (motorcycle
    plates, ``TOP/BOTTOM`` faces): top line height, its offset below the band, bottom line
    height and the gap between, as shares of the plate height. ``one_line``: the height
    range (shares of the plate height), where it sits in the space below the band, and the
    side margin (share of the width)."""
    w, h = img.size
    squeeze = typeface.squeeze(rng)
    letter_spacing = float(rng.uniform(*spacing))
    if two_lines is not None:
        top, bottom = text_face.split("/")
        top_h, offset, bottom_h, gap = two_lines
        ch1, y1 = h * top_h, band_h + h * offset
        ch2 = h * bottom_h
        y2 = y1 + ch1 + h * gap
        b1 = place_line(rng, img, top, (w * 0.15, y1, w * 0.85, y1 + ch1), ink, typeface,
                        squeeze, letter_spacing)
        b2 = place_line(rng, img, bottom, (w * 0.06, y2, w * 0.94, y2 + ch2), ink, typeface,
                        squeeze, letter_spacing)
        return b1 + b2
    (lo, hi), place, margin = one_line
    ch = h * float(rng.uniform(lo, hi))
    y = band_h + (h - band_h - ch) * place
    return place_line(rng, img, text_face, (w * margin, y, w * (1 - margin), y + ch), ink,
                      typeface, squeeze, letter_spacing)


def pick_ink(rng: np.random.Generator) -> Colour:
    r = rng.random()
    if r < 0.75:
        return jitter(rng, (15, 15, 15), 10)
    if r < 0.9:
        return jitter(rng, (170, 20, 30), 15)
    return jitter(rng, ((20, 110, 50), (20, 50, 150), (160, 130, 40))[int(rng.integers(3))], 15)
