"""One line of main characters with its separators, the core of every plate layout.

Invariant of ``place_line``: one box per character of ``label(line)``, left to right, each the
exact rectangle where the character's ink mask was pasted; separators, seals, arms and stickers
are drawn between them and never boxed.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from edge_anpr.train.render import emblems
from edge_anpr.train.render.common import Box, Colour
from edge_anpr.train.render.formats import MARKS
from edge_anpr.train.render.typefaces import Typeface

# width of each separator, in character heights
_MARK_WIDTH = {" ": 0.42, "-": 0.5, ".": 0.32, "*": 0.78, "^": 0.72, "~": 0.72}


def place_line(
    rng: np.random.Generator, img: Image.Image, line: str,
    region: tuple[float, float, float, float], ink: Colour, typeface: Typeface,
    squeeze: float, spacing: float = 0.12, align: float = 0.5,
) -> list[Box]:
    """Draw ``line`` (characters and marks of ``formats``) inside region x0, y0, x1, y1 at the
    region's full height, shrunk as a whole when it is too wide; ``align`` places a line
    narrower than the region (0 left, 0.5 centre, 1 right). Returns the character boxes."""
    x0r, y0r, x1r, y1r = region
    ch = y1r - y0r
    items: list[tuple[str, object]] = []
    widths: list[float] = []
    for c in line:
        if c in MARKS:
            items.append((c, None))
            widths.append(_MARK_WIDTH.get(c, 0.4) * ch * float(rng.uniform(0.8, 1.2)))
        else:
            mask = typeface.mask(rng, c)
            items.append((c, mask))
            widths.append(max(2.0, mask.shape[1] / mask.shape[0] * ch * squeeze))
    n_chars = sum(1 for c, _ in items if c not in MARKS)
    space = ch * spacing
    total = sum(widths) + space * max(0, n_chars - 1)
    avail = x1r - x0r
    if total > avail:  # too long: shrink the whole line, keep it vertically centred
        k = avail / total
        widths = [w * k for w in widths]
        space *= k
        total = avail
        y0r += ch * (1 - k) / 2
        ch *= k
    x = x0r + (avail - total) * align
    draw = ImageDraw.Draw(img)
    boxes: list[Box] = []
    prev_char = False
    for (c, mask), w in zip(items, widths, strict=True):
        if c in MARKS:
            _draw_mark(rng, img, draw, c, x, w, y0r, ch, ink)
            x += w
            prev_char = False
            continue
        if prev_char:
            x += space
        wi, hi = max(1, round(w)), max(1, round(ch))
        m = Image.fromarray(mask).resize((wi, hi), Image.BILINEAR)  # type: ignore[arg-type]
        img.paste(Image.new("RGB", (wi, hi), ink), (round(x), round(y0r)), m)
        boxes.append((round(x), round(y0r), round(x) + wi, round(y0r) + hi))
        x += w
        prev_char = True
    return boxes


def _draw_mark(
    rng: np.random.Generator, img: Image.Image, draw: ImageDraw.ImageDraw, mark: str, x: float,
    w: float, y: float, ch: float, ink: Colour,
) -> None:
    cx, cy = x + w / 2, y + ch / 2
    if mark == "-":
        draw.rectangle((cx - w * 0.28, cy - ch * 0.05, cx + w * 0.28, cy + ch * 0.05), fill=ink)
    elif mark == ".":
        r = ch * 0.065
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=ink)
    elif mark == "*":
        emblems.german_seals(rng, draw, cx, cy, ch)
    elif mark == "^":
        emblems.coat_of_arms(rng, draw, cx, cy, min(w * 0.9, ch * 0.6))
    elif mark == "~":
        emblems.tax_sticker(rng, draw, cx, cy, ch * 0.5)
