"""European plates: one-line (520 x 110 mm-like) and two-line square, motorcycle or trailer
plates, with each country's text format (``formats``), colours, identifier band, side bands
and emblems. Pixel sizes follow the plates' sizes in millimetres.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from edge_anpr.train.render import emblems
from edge_anpr.train.render.common import Box, Colour, jitter, pick, small_text
from edge_anpr.train.render.formats import face, label
from edge_anpr.train.render.glyph_pages import GlyphLibrary
from edge_anpr.train.render.paint import place_line
from edge_anpr.train.render.typefaces import choose

EU_CODES = {
    "de": "D", "at": "A", "nl": "NL", "fr": "F", "be": "B", "it": "I", "es": "E", "pl": "PL",
    "sk": "SK", "cz": "CZ", "pt": "P", "ie": "IRL", "ro": "RO", "hu": "H", "lt": "LT",
    "lv": "LV", "si": "SLO", "hr": "HR", "gr": "GR", "bg": "BG", "lu": "L", "fi": "FIN",
    "se": "S", "dk": "DK",
}
COUNTRIES = (*EU_CODES, "uk", "ch", "no", "rs")

# two-line plate sizes (w, h), mm-like
_TWO_LINE_SIZES = {
    "de": ((180, 200), (220, 200), (255, 130), (340, 200)),
    "nl": ((210, 145), (340, 150), (210, 160)),
    "ch": ((300, 160), (180, 140), (300, 175)),
    "uk": ((229, 178), (279, 203), (229, 165)),
    "fr": ((210, 130), (275, 200), (210, 150)),
    "it": ((180, 200), (280, 200), (180, 160)),
}
_DEALERS = ("Autohaus", "Garage", "Auto Center", "Motors", "Kfz-Service", "www.auto.de",
            "Concessionnaire", "Autobedrijf", "Tel. 0221 4711", "Schilder", "Bil & Traktor")


def _colours(rng: np.random.Generator, country: str, variant: str, face_: str) -> tuple[
    Colour, Colour, bool
]:
    """(background, ink, has identifier band) of one plate."""
    white, black = jitter(rng, (236, 236, 232), 14), jitter(rng, (18, 18, 18), 12)
    yellow = jitter(rng, (245, 195, 20), 14)
    band = rng.random() < 0.9
    if country == "nl":
        if rng.random() < 0.12:  # classic dark blue plate with white characters
            return jitter(rng, (25, 35, 75), 15), jitter(rng, (225, 225, 225), 15), False
        return yellow, black, band
    if country == "uk":
        rear = variant == "rear" or (variant == "" and rng.random() < 0.5)
        if variant == "" and rng.random() < 0.08:  # classic black and silver
            return jitter(rng, (20, 20, 20), 10), jitter(rng, (215, 215, 215), 20), False
        return (yellow if rear else white), black, rng.random() < 0.5
    if country == "lu":
        return yellow, black, band
    if country == "be":
        return white, jitter(rng, (150, 25, 35), 20), band
    if country == "fr" and face_[:1].isdigit() and rng.random() < 0.4:
        return (yellow, black, False) if rng.random() < 0.6 else (
            jitter(rng, (20, 20, 20), 10), jitter(rng, (225, 225, 225), 15), False)
    if country == "no" and rng.random() < 0.15:
        return pick_colour(rng, ((30, 150, 110), (245, 200, 40))), black, band
    if country in ("ch", "generic"):
        return white, black, False
    return white, black, band


def pick_colour(rng: np.random.Generator, options: tuple[Colour, ...]) -> Colour:
    return jitter(rng, options[int(rng.integers(len(options)))], 12)


def _band(rng: np.random.Generator, draw: ImageDraw.ImageDraw, country: str,
          box: tuple[float, float, float, float]) -> None:
    if country == "uk":
        kind = pick(rng, ("uk", "eng", "sco", "wal", "eu"))
        if kind == "eu":
            emblems.eu_band(rng, draw, box, "GB")
        else:
            code = {"uk": pick(rng, ("UK", "GB")), "eng": "ENG", "sco": "SCO", "wal": "CYM"}[kind]
            emblems.identifier_band(rng, draw, box, kind, code)
    elif country == "no":
        emblems.identifier_band(rng, draw, box, "no", "N")
    elif country == "rs":
        emblems.identifier_band(rng, draw, box, "rs", "SRB")
    else:
        emblems.eu_band(rng, draw, box, EU_CODES.get(country, "EU"))


def _frame(rng: np.random.Generator, draw: ImageDraw.ImageDraw, w: int, h: int, country: str,
           ink: Colour) -> None:
    if country == "dk":
        col: Colour | None = jitter(rng, (200, 35, 45), 15)
    elif country == "si":
        col = jitter(rng, (30, 130, 60), 15)
    elif country == "be":
        col = ink
    else:
        col = ink if rng.random() < 0.7 else None
    if col is not None:
        draw.rounded_rectangle((1, 1, w - 2, h - 2), radius=max(2, h // 14), outline=col,
                               width=max(1, round(h / 45)))
    if country == "at":  # red stripes along the top and bottom edges
        t = h * 0.07
        draw.rectangle((0, 0, w, t), fill=jitter(rng, (200, 30, 45), 15))
        draw.rectangle((0, h - t, w, h), fill=jitter(rng, (200, 30, 45), 15))


def render_one_line(
    rng: np.random.Generator, country: str, glyphs: GlyphLibrary, variant: str = "",
) -> tuple[Image.Image, list[Box], str]:
    text_face = face(rng, country)
    text = label(text_face)
    w, h = 520, int(rng.integers(105, 121))
    bg, ink, band = _colours(rng, country, variant, text_face)
    img = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(img)
    _frame(rng, draw, w, h, country, ink)
    x0, x1 = w * 0.03, w * 0.97
    if band:
        bw = w * float(rng.uniform(0.075, 0.09))
        _band(rng, draw, country, (0, 0, bw, h))
        x0 = bw + w * 0.02
    if country in ("fr", "it", "pt") and (country != "fr" or text_face[:1].isalpha()):
        bw = w * float(rng.uniform(0.075, 0.09))
        emblems.right_band(rng, draw, (w - bw, 0, w, h), country)
        x1 = w - bw - w * 0.02
    if country == "ie":
        small_text(rng, draw, pick(rng, ("BAILE ATHA CLIATH", "CORCAIGH", "GAILLIMH", "CILL DARA")),
                   (x0 + x1) / 2, h * 0.1, h * 0.1, ink)
    if rng.random() < 0.2:
        small_text(rng, draw, pick(rng, _DEALERS), w / 2, h * 0.93, h * 0.08, ink)
    if country == "ch" and rng.random() < 0.5:  # rear plate: federal and cantonal shields
        emblems.swiss_shield(draw, w * 0.08, h / 2, h * 0.45)
        emblems.coat_of_arms(rng, draw, w * 0.92, h / 2, h * 0.45)
        x0, x1 = w * 0.15, w * 0.85
    typeface = choose(rng, country, text, glyphs)
    ch = h * float(rng.uniform(0.6, 0.72))
    y = (h - ch) / 2 + float(rng.uniform(-0.03, 0.03)) * h
    boxes = place_line(rng, img, text_face, (x0, y, x1, y + ch), ink, typeface,
                       typeface.squeeze(rng), float(rng.uniform(0.06, 0.16)),
                       float(rng.uniform(0.35, 0.65)))
    return img, boxes, text


def render_two_line(
    rng: np.random.Generator, country: str, glyphs: GlyphLibrary,
) -> tuple[Image.Image, list[Box], str]:
    """A square plate: first line above the second; boxes top line first, each line left to
    right."""
    text_face = face(rng, country, two_line=True)
    top, bottom = text_face.split("/", 1)
    text = label(text_face)
    sizes = _TWO_LINE_SIZES.get(country, ((280, 200), (240, 190), (200, 160)))
    w, h = sizes[int(rng.integers(len(sizes)))]
    bg, ink, band = _colours(rng, country, "", text_face)
    img = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(img)
    _frame(rng, draw, w, h, country, ink)
    x0, x1 = w * 0.05, w * 0.95
    band_top_only = rng.random() < 0.5
    if band:
        bw = w * float(rng.uniform(0.12, 0.16))
        bh = h * 0.48 if band_top_only else h
        _band(rng, draw, country, (0, 0, bw, bh))
        x0 = bw + w * 0.03
    typeface = choose(rng, country, text, glyphs)
    squeeze = typeface.squeeze(rng)
    spacing = float(rng.uniform(0.06, 0.14))
    ch2 = h * float(rng.uniform(0.36, 0.42))
    ch1 = ch2 * float(rng.uniform(0.85, 1.0))
    gap = h * float(rng.uniform(0.04, 0.08))
    y1 = (h - ch1 - ch2 - gap) / 2
    y2 = y1 + ch1 + gap
    tx0, tx1 = x0, x1
    if country == "ch":  # federal shield left and cantonal arms right of the canton code
        emblems.swiss_shield(draw, x0 + ch1 * 0.35, y1 + ch1 / 2, ch1 * 0.8)
        emblems.coat_of_arms(rng, draw, x1 - ch1 * 0.35, y1 + ch1 / 2, ch1 * 0.8)
        tx0, tx1 = x0 + ch1 * 0.8, x1 - ch1 * 0.8
    bx0 = w * 0.05 if band_top_only else x0  # a short band leaves the bottom line room
    b1 = place_line(rng, img, top, (tx0, y1, tx1, y1 + ch1), ink, typeface, squeeze, spacing)
    b2 = place_line(rng, img, bottom, (bx0, y2, x1, y2 + ch2), ink, typeface, squeeze, spacing)
    return img, b1 + b2, text
