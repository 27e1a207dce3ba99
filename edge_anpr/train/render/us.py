"""US plates (``us``, ``us_dark``, ``us_two_line``): state-like styles dark-on-light and
light-on-dark with state names, slogans, stickers, pictograms and screws, all unlabelled, and
the main characters in installed TrueType fonts (the glyph pages hold no US plate font).

Deterministic: the same ``numpy.random.Generator`` state gives the same plate.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from edge_anpr.train.render.common import Box
from edge_anpr.train.render.truetype import font as tt_font
from edge_anpr.train.render.truetype import font_files, glyph_mask

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"

US_STATES = (
    "ALASKA", "California", "WASHINGTON", "HAWAII", "IDAHO", "Kentucky", "Maryland", "Minnesota",
    "NORTH CAROLINA", "NEVADA", "Oregon", "VIRGINIA", "TEXAS", "FLORIDA", "New York", "OHIO",
    "Illinois", "GEORGIA", "Arizona", "COLORADO", "UTAH", "Michigan", "Pennsylvania", "MAINE",
    "Vermont", "IOWA", "KANSAS", "Montana", "Wyoming", "Tennessee", "New Jersey", "INDIANA",
    "Louisiana", "ALABAMA", "Delaware", "Connecticut", "Nebraska", "Oklahoma", "New Mexico",
)
SLOGANS = (
    "FAMOUS POTATOES", "THE SILVER STATE", "10,000 lakes", "Treasure the Chesapeake",
    "LIVE FREE OR DIE", "ALOHA STATE", "Sunshine State", "Great Faces. Great Places.",
    "First in Flight", "Land of Lincoln", "THE LONE STAR STATE", "Empire State", "Garden State",
    "Grand Canyon State", "Crossroads of America", "Pure Michigan", "Vacationland",
    "Wild Wonderful", "Sportsman's Paradise", "The First State", "Constitution State",
    "www.dmv.gov", "COUNTY", "Heart of Dixie", "Green Mountains", "Beautiful",
)
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def _pick(rng: np.random.Generator, seq: tuple[str, ...] | str) -> str:
    return seq[int(rng.integers(len(seq)))]


def _pattern_text(rng: np.random.Generator, pattern: str) -> str:
    return "".join(
        _pick(rng, LETTERS) if c == "@" else _pick(rng, DIGITS) if c == "#"
        else _pick(rng, ALPHABET) if c == "*" else c
        for c in pattern
    )


US_PATTERNS = (
    "@@@###", "###@@@", "@@@####", "#@@@###", "###@###", "##@@###", "@@####", "@##@@@",
    "#@@####", "@@@@###", "####@@", "@@#####", "#####", "######", "@@@@@@", "***",
    "****", "*****", "******", "*******", "@@@###", "###@@@", "@@@####", "#@@@###",
)


def _text_for(rng: np.random.Generator) -> tuple[str, list[int]]:
    """Plate text and the indices where a gap/separator goes before that character."""
    pat = _pick(rng, US_PATTERNS)
    text = _pattern_text(rng, pat)
    gaps: list[int] = []
    if len(text) >= 5 and rng.random() < 0.7:
        # split where letters and digits change, else in the middle
        change = [i for i in range(1, len(text)) if text[i].isdigit() != text[i - 1].isdigit()]
        gaps = [change[0]] if change and rng.random() < 0.7 else [len(text) // 2]
    return text, gaps


def _colour(rng: np.random.Generator, base: tuple[int, int, int], jitter: int = 20) -> tuple[
    int, int, int
]:
    r, g, b = (int(np.clip(v + rng.integers(-jitter, jitter + 1), 0, 255)) for v in base)
    return (r, g, b)


def _draw_small_text(
    rng: np.random.Generator, draw: ImageDraw.ImageDraw, text: str, cx: float, cy: float,
    height: float, fill: tuple[int, int, int], fonts: tuple[str, ...],
) -> None:
    font = tt_font(_pick(rng, fonts), max(6, int(height)))
    x0, y0, x1, y1 = font.getbbox(text)
    draw.text((cx - (x1 + x0) / 2, cy - (y1 + y0) / 2), text, font=font, fill=fill)


def _lum(c: tuple[int, int, int]) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _away_from(rng: np.random.Generator, ink: tuple[int, int, int]) -> tuple[int, int, int]:
    """A random colour whose brightness differs clearly from the ink (characters stay legible
    over scenery and pictograms, as on real plates)."""
    col = (255, 255, 255) if _lum(ink) < 128 else (0, 0, 0)
    for _ in range(20):
        cand = tuple(int(v) for v in rng.integers(0, 256, 3))
        if abs(_lum(cand) - _lum(ink)) > 90:  # type: ignore[arg-type]
            col = cand  # type: ignore[assignment]
            break
    return col


def _background(
    rng: np.random.Generator, w: int, h: int, base: tuple[int, int, int],
    ink: tuple[int, int, int] = (0, 0, 0),
) -> Image.Image:
    img = Image.new("RGB", (w, h), _colour(rng, base, 15))
    draw = ImageDraw.Draw(img)
    style = rng.random()
    if style < 0.35:  # vertical gradient / sky band
        top = _colour(rng, (int(rng.integers(120, 256)),) * 3, 60)
        arr = np.asarray(img).astype(np.float32)
        t = np.linspace(0, 1, h)[:, None, None] ** float(rng.uniform(0.5, 3))
        if rng.random() < 0.5:
            t = t[::-1]
        arr = arr * (1 - t * 0.6) + np.array(top, np.float32) * t * 0.6
        img = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
    if style > 0.3:  # scenery: hills, mountains, a logo blob
        for _ in range(int(rng.integers(1, 4))):
            col = _away_from(rng, ink)
            y = float(rng.uniform(0.5, 0.95)) * h
            pts = [(0.0, float(h))]
            for x in np.linspace(0, w, int(rng.integers(3, 9))):
                pts.append((float(x), y + float(rng.uniform(-0.2, 0.2)) * h))
            pts.append((float(w), float(h)))
            draw.polygon(pts, fill=col)
        if rng.random() < 0.4:
            col = _away_from(rng, ink)
            cx, cy = float(rng.uniform(0.2, 0.8)) * w, float(rng.uniform(0.3, 0.7)) * h
            r = float(rng.uniform(0.08, 0.25)) * h
            draw.ellipse((cx - r, cy - r * 1.5, cx + r, cy + r * 1.5), fill=col)
    return img


def _place_chars(
    rng: np.random.Generator, img: Image.Image, text: str, gaps: list[int],
    region: tuple[float, float, float, float], ink: tuple[int, int, int], font: str,
    squeeze: float, sep: str, pastes: list[tuple[Image.Image, tuple[int, int], Image.Image]]
    | None = None,
) -> list[tuple[float, float, float, float]]:
    """Paste glyphs into region (x0, y0, x1, y1), centred; return their boxes."""
    x0r, y0r, x1r, y1r = region
    ch = y1r - y0r
    glyphs = [glyph_mask(font, c) for c in text]
    widths = [max(2.0, g.shape[1] / g.shape[0] * ch * squeeze) for g in glyphs]
    # narrow glyphs (1, I) keep their own width; spacing between characters
    space = ch * float(rng.uniform(0.08, 0.3))
    gap = ch * float(rng.uniform(0.3, 0.8))
    total = sum(widths) + space * (len(text) - 1) + gap * len(gaps)
    avail = x1r - x0r
    if total > avail:  # too long: shrink the whole line, keep it vertically centred
        k = avail / total
        widths = [w * k for w in widths]
        space *= k
        gap *= k
        total = avail
        y0r += ch * (1 - k) / 2
        ch *= k
    x = x0r + (avail - total) / 2 + float(rng.uniform(-0.5, 0.5)) * (avail - total) * 0.3
    draw = ImageDraw.Draw(img)
    boxes: list[tuple[float, float, float, float]] = []
    for i, (g, w) in enumerate(zip(glyphs, widths, strict=True)):
        if i in gaps:
            if sep == "-":
                draw.rectangle(
                    (x + gap * 0.25, y0r + ch * 0.45, x + gap * 0.7, y0r + ch * 0.55), fill=ink
                )
            elif sep == ".":
                r = ch * 0.06
                cx, cy = x + gap / 2 - space / 2, y0r + ch / 2
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=ink)
            elif sep == "logo":
                cx, cy = x + gap / 2 - space / 2, y0r + ch / 2
                r = gap * 0.3
                draw.polygon(
                    [(cx, cy - r * 1.6), (cx + r, cy), (cx, cy + r * 1.6), (cx - r, cy)],
                    fill=_colour(rng, ink, 60),
                )
            x += gap
        wi, hi = max(1, round(w)), max(1, round(ch))
        mask = Image.fromarray(g).resize((wi, hi), Image.BILINEAR)
        solid = Image.new("RGB", (wi, hi), ink)
        img.paste(solid, (round(x), round(y0r)), mask)
        if pastes is not None:
            pastes.append((solid, (round(x), round(y0r)), mask))
        boxes.append((round(x), round(y0r), round(x) + wi, round(y0r) + hi))
        x += w + space
    return boxes


def _stickers(
    rng: np.random.Generator, img: Image.Image, fonts: tuple[str, ...], w: int, h: int
) -> None:
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(0, 3))):
        sw, sh = float(rng.uniform(0.08, 0.16)) * w, float(rng.uniform(0.12, 0.22)) * h
        corner = int(rng.integers(4))
        x = float(rng.uniform(0.01, 0.05)) * w if corner % 2 == 0 else w - sw - 0.03 * w
        y = float(rng.uniform(0.02, 0.08)) * h if corner < 2 else h - sh - 0.05 * h
        col = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.rectangle((x, y, x + sw, y + sh), fill=col)
        ink = (0, 0, 0) if sum(col) > 380 else (255, 255, 255)
        label = _pick(rng, MONTHS) if rng.random() < 0.5 else str(int(rng.integers(0, 100)))
        _draw_small_text(rng, draw, label, x + sw / 2, y + sh / 2, sh * 0.6, ink, fonts)


def _screws(rng: np.random.Generator, img: Image.Image, w: int, h: int) -> None:
    if rng.random() < 0.6:
        draw = ImageDraw.Draw(img)
        r = h * 0.025
        y = h * float(rng.uniform(0.08, 0.2))
        for x in (w * 0.22, w * 0.78):
            col = _colour(rng, (150, 150, 150), 80)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=col)
            if rng.random() < 0.5:
                draw.ellipse((x - r, h - y - r, x + r, h - y + r), fill=col)


def _pictogram(
    rng: np.random.Generator, img: Image.Image, cx: float, cy: float, size: float,
    colour: tuple[int, int, int],
) -> None:
    """An unlabelled graphic about as tall as a character (state seal, tree, bird, flag...)."""
    draw = ImageDraw.Draw(img)
    kind = int(rng.integers(6))
    r = size / 2
    if kind == 0:  # seal: rings
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=colour, width=max(1, int(r / 6)))
        draw.ellipse((cx - r / 2, cy - r / 2, cx + r / 2, cy + r / 2), fill=colour)
    elif kind == 1:  # tree
        for k in range(3):
            y = cy - r + k * r * 0.5
            draw.polygon([(cx, y), (cx - r * 0.3 * (k + 1), y + r * 0.6),
                          (cx + r * 0.3 * (k + 1), y + r * 0.6)], fill=colour)
        draw.rectangle((cx - r * 0.08, cy + r * 0.5, cx + r * 0.08, cy + r), fill=colour)
    elif kind == 2:  # bird / heron: curved strokes
        pts = [(cx + float(rng.uniform(-r, r) * 0.6), cy - r + k * size / 5) for k in range(6)]
        draw.line(pts, fill=colour, width=max(1, int(r / 5)))
        draw.line([(cx - r * 0.6, cy - r * 0.3), (cx, cy), (cx + r * 0.6, cy - r * 0.4)],
                  fill=colour, width=max(1, int(r / 6)))
    elif kind == 3:  # star or flag
        pts = []
        for k in range(10):
            a = np.pi / 2 + k * np.pi / 5
            rad = r * 0.6 if k % 2 == 0 else r * 0.25
            pts.append((cx + rad * float(np.cos(a)), cy - rad * float(np.sin(a))))
        draw.polygon(pts, fill=colour)
    elif kind == 4:  # state outline: jagged polygon
        n = int(rng.integers(5, 10))
        pts = [
            (cx + float(rng.uniform(0.4, 0.8)) * r * float(np.cos(2 * np.pi * k / n)),
             cy + float(rng.uniform(0.4, 1.0)) * r * float(np.sin(2 * np.pi * k / n)))
            for k in range(n)
        ]
        draw.polygon(pts, fill=colour)
    else:  # fruit / flower: a few blobs
        for _ in range(int(rng.integers(2, 5))):
            ox, oy = float(rng.uniform(-0.4, 0.4)) * r, float(rng.uniform(-0.6, 0.6)) * r
            rr = float(rng.uniform(0.2, 0.45)) * r
            col = _colour(rng, colour, 60)
            draw.ellipse((cx + ox - rr, cy + oy - rr, cx + ox + rr, cy + oy + rr), fill=col)


def render_us(rng: np.random.Generator, layout: str) -> tuple[np.ndarray, list[Box], str]:
    """One US plate of layout ``us``, ``us_dark`` or ``us_two_line`` (RGB array, character
    boxes, text). The order of random draws is part of the contract: the shipped reader models
    and their tests were made with exactly these plates per seed."""
    main_fonts, all_fonts = font_files()
    font = _pick(rng, main_fonts)
    text, gaps = _text_for(rng)
    squeeze = float(rng.uniform(0.55, 0.95))
    sep = _pick(rng, (" ", " ", "-", "."))
    w, h = 320, int(rng.integers(150, 170))
    pastes: list[tuple[Image.Image, tuple[int, int], Image.Image]] = []
    dark = layout == "us_dark"
    base = (int(rng.integers(10, 90)),) * 3 if dark else (int(rng.integers(200, 256)),) * 3
    base = _colour(rng, base, 30)
    ink = (
        _colour(rng, (235, 235, 235), 20) if dark
        else _colour(
            rng, [(20, 30, 110), (15, 15, 15), (20, 90, 40), (140, 20, 20)][
                int(rng.integers(4))], 30)
    )
    img = _background(rng, w, h, base, ink)
    draw = ImageDraw.Draw(img)
    small = _colour(rng, ink, 60) if rng.random() < 0.5 else tuple(
        int(v) for v in rng.integers(0, 200, 3)
    )
    top_h = h * float(rng.uniform(0.1, 0.2))
    _draw_small_text(
        rng, draw, _pick(rng, US_STATES), w / 2 + float(rng.uniform(-20, 20)),
        h * float(rng.uniform(0.08, 0.16)), top_h, small, all_fonts,  # type: ignore[arg-type]
    )
    if rng.random() < 0.85:
        _draw_small_text(
            rng, draw, _pick(rng, SLOGANS), w / 2, h * float(rng.uniform(0.84, 0.93)),
            h * float(rng.uniform(0.07, 0.12)), small, all_fonts,  # type: ignore[arg-type]
        )
    _stickers(rng, img, all_fonts, w, h)
    sep = _pick(rng, (" ", " ", " ", "-", ".", "logo"))
    if layout == "us_two_line":
        # small first part stacked at the left (like some vanity/commercial styles)
        cut = max(1, min(len(text) - 2, int(rng.integers(1, 3))))
        left, right = text[:cut], text[cut:]
        ch = h * float(rng.uniform(0.22, 0.28))
        b1 = _place_chars(rng, img, left, [], (w * 0.05, h * 0.25, w * 0.22, h * 0.25 + ch),
                          ink, font, squeeze, sep)
        ch2 = h * float(rng.uniform(0.42, 0.55))
        y = h * 0.5 - ch2 / 2 + float(rng.uniform(-0.04, 0.04)) * h
        b3 = _place_chars(rng, img, right, [], (w * 0.25, y, w * 0.96, y + ch2), ink, font,
                          squeeze, sep)
        boxes = b1 + b3
    else:
        ch = h * float(rng.uniform(0.38, 0.56))
        y = h * 0.52 - ch / 2 + float(rng.uniform(-0.05, 0.05)) * h
        margin = w * float(rng.uniform(0.03, 0.12))
        boxes = _place_chars(rng, img, text, gaps, (margin, y, w - margin, y + ch), ink,
                             font, squeeze, sep, pastes)
    if len(boxes) >= 2 and rng.random() < 0.5:
        # graphics in the gap between groups or beside the text, never labelled
        ch_h = float(np.median([b[3] - b[1] for b in boxes]))
        cy = float(np.median([(b[1] + b[3]) / 2 for b in boxes]))
        col = _away_from(rng, ink)
        where = rng.random()
        if gaps and sep == " " and where < 0.6:
            left, right = boxes[gaps[0] - 1], boxes[gaps[0]]
            cx = (left[2] + right[0]) / 2
            size = min(ch_h * float(rng.uniform(0.5, 1.0)), (right[0] - left[2]) * 1.1)
        elif where < 0.8:
            cx = boxes[0][0] - ch_h * 0.5
            size = ch_h * float(rng.uniform(0.5, 0.9))
        else:
            cx = boxes[-1][2] + ch_h * 0.5
            size = ch_h * float(rng.uniform(0.5, 0.9))
        _pictogram(rng, img, cx, cy, size, col)  # type: ignore[arg-type]
        for solid, pos, mask in pastes:  # graphics stay behind the characters
            img.paste(solid, pos, mask)
    _screws(rng, img, w, h)
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.0))))
    return np.asarray(img, dtype=np.uint8).copy(), boxes, text
