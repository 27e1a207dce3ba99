"""Graphics on plates that are NOT characters: the blue EU band with its stars and country
letters, identifier bands with flags (UK, Norway, Serbia), coats of arms and Swiss shields,
German registration seals, tax stickers, and the right-hand bands of French, Italian and
Portuguese plates. Nothing drawn here is ever labelled.
"""

from __future__ import annotations

import numpy as np
from PIL import ImageDraw

from edge_anpr.train.render.common import Colour, jitter, pick, small_text

RED: Colour = (200, 30, 45)
WHITE: Colour = (240, 240, 240)
BLUE: Colour = (0, 51, 153)
YELLOW: Colour = (250, 205, 0)
GREEN: Colour = (20, 130, 60)
_HERALDIC: tuple[Colour, ...] = (RED, WHITE, YELLOW, (30, 70, 160), GREEN, (25, 25, 25))


def _star_ring(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, colour: Colour) -> None:
    dot = max(0.7, r * 0.16)
    for k in range(12):
        a = 2 * np.pi * k / 12
        x, y = cx + r * float(np.cos(a)), cy + r * float(np.sin(a))
        draw.ellipse((x - dot, y - dot, x + dot, y + dot), fill=colour)


def eu_band(
    rng: np.random.Generator, draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float],
    code: str, stars: bool = True,
) -> None:
    """Blue band (x0, y0, x1, y1): twelve yellow stars above the country letters."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    draw.rectangle(box, fill=jitter(rng, BLUE, 25))
    cx = (x0 + x1) / 2
    if stars:
        r = min(w * 0.3, h * 0.2)
        _star_ring(draw, cx, y0 + h * 0.3, r, jitter(rng, YELLOW, 20))
    small_text(rng, draw, code, cx, y0 + h * (0.74 if stars else 0.5),
               min(h * 0.24, w * 1.2 / max(1, len(code))), jitter(rng, WHITE, 10))


def flag(rng: np.random.Generator, draw: ImageDraw.ImageDraw, box: tuple[float, float, float,
         float], kind: str) -> None:
    """A national or regional flag: eng, sco, wal, uk, no, rs."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    t = max(1.0, h * 0.18)
    if kind == "eng":
        draw.rectangle(box, fill=WHITE)
        draw.rectangle((x0, y0 + h / 2 - t / 2, x1, y0 + h / 2 + t / 2), fill=RED)
        draw.rectangle((x0 + w / 2 - t / 2, y0, x0 + w / 2 + t / 2, y1), fill=RED)
    elif kind in ("sco", "uk"):
        draw.rectangle(box, fill=BLUE)
        draw.line((x0, y0, x1, y1), fill=WHITE, width=max(1, int(t)))
        draw.line((x0, y1, x1, y0), fill=WHITE, width=max(1, int(t)))
        if kind == "uk":
            draw.rectangle((x0, y0 + h / 2 - t * 0.8, x1, y0 + h / 2 + t * 0.8), fill=WHITE)
            draw.rectangle((x0 + w / 2 - t * 0.8, y0, x0 + w / 2 + t * 0.8, y1), fill=WHITE)
            draw.rectangle((x0, y0 + h / 2 - t / 2, x1, y0 + h / 2 + t / 2), fill=RED)
            draw.rectangle((x0 + w / 2 - t / 2, y0, x0 + w / 2 + t / 2, y1), fill=RED)
    elif kind == "wal":
        draw.rectangle((x0, y0, x1, y0 + h / 2), fill=WHITE)
        draw.rectangle((x0, y0 + h / 2, x1, y1), fill=GREEN)
        draw.ellipse((x0 + w * 0.25, y0 + h * 0.25, x0 + w * 0.75, y0 + h * 0.8), fill=RED)
    elif kind == "no":
        draw.rectangle(box, fill=RED)
        draw.rectangle((x0, y0 + h / 2 - t * 0.8, x1, y0 + h / 2 + t * 0.8), fill=WHITE)
        draw.rectangle((x0 + w * 0.35 - t * 0.8, y0, x0 + w * 0.35 + t * 0.8, y1), fill=WHITE)
        draw.rectangle((x0, y0 + h / 2 - t / 2, x1, y0 + h / 2 + t / 2), fill=BLUE)
        draw.rectangle((x0 + w * 0.35 - t / 2, y0, x0 + w * 0.35 + t / 2, y1), fill=BLUE)
    else:  # rs: red, blue, white stripes
        for k, col in enumerate((RED, BLUE, WHITE)):
            draw.rectangle((x0, y0 + h * k / 3, x1, y0 + h * (k + 1) / 3), fill=col)


def identifier_band(
    rng: np.random.Generator, draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float],
    flag_kind: str, code: str,
) -> None:
    """A national identifier band: the flag above the letters (UK since 2021, Norway, Serbia)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    bg = pick(rng, ("blue", "green", "white")) if flag_kind in ("eng", "sco", "wal", "uk") \
        else "blue"
    fill = {"blue": jitter(rng, BLUE, 20), "green": jitter(rng, GREEN, 20),
            "white": jitter(rng, WHITE, 10)}[bg]
    draw.rectangle(box, fill=fill)
    fw = w * 0.7
    fh = min(fw * 0.6, h * 0.3)
    fx, fy = x0 + (w - fw) / 2, y0 + h * 0.12
    flag(rng, draw, (fx, fy, fx + fw, fy + fh), flag_kind)
    letters = (25, 25, 25) if bg == "white" else WHITE
    small_text(rng, draw, code, x0 + w / 2, y0 + h * 0.72,
               min(h * 0.24, w * 1.5 / max(1, len(code))), letters)


def shield(
    draw: ImageDraw.ImageDraw, cx: float, cy: float, size: float, colours: tuple[Colour, Colour],
    division: int, outline: Colour | None = (30, 30, 30),
) -> None:
    """A heraldic shield about ``size`` tall: two colours split plain, per pale, per fess or
    per bend."""
    w, h = size * 0.8, size
    top, bottom = cy - h / 2, cy + h / 2
    pts = [(cx - w / 2, top), (cx + w / 2, top), (cx + w / 2, cy + h * 0.1), (cx, bottom),
           (cx - w / 2, cy + h * 0.1)]
    draw.polygon(pts, fill=colours[0], outline=outline)
    if division == 1:  # per pale
        draw.polygon([(cx, top), (cx + w / 2, top), (cx + w / 2, cy + h * 0.1), (cx, bottom)],
                     fill=colours[1])
    elif division == 2:  # per fess
        draw.polygon([(cx - w / 2, cy), (cx + w / 2, cy), (cx + w / 2, cy + h * 0.1),
                      (cx, bottom), (cx - w / 2, cy + h * 0.1)], fill=colours[1])
    elif division == 3:  # per bend
        draw.polygon([(cx - w / 2, top), (cx + w / 2, cy + h * 0.1), (cx, bottom),
                      (cx - w / 2, cy + h * 0.1)], fill=colours[1])


def coat_of_arms(rng: np.random.Generator, draw: ImageDraw.ImageDraw, cx: float, cy: float,
                 size: float) -> None:
    """A regional coat of arms: a divided shield, sometimes with a simple charge."""
    i, j = rng.choice(len(_HERALDIC), 2, replace=False)
    shield(draw, cx, cy, size, (_HERALDIC[int(i)], _HERALDIC[int(j)]), int(rng.integers(4)))
    if rng.random() < 0.5:
        r = size * 0.14
        col = _HERALDIC[int(rng.integers(len(_HERALDIC)))]
        if rng.random() < 0.5:
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=col)
        else:
            draw.rectangle((cx - r * 1.5, cy - r * 0.35, cx + r * 1.5, cy + r * 0.35), fill=col)
            draw.rectangle((cx - r * 0.35, cy - r * 1.5, cx + r * 0.35, cy + r * 1.5), fill=col)


def swiss_shield(draw: ImageDraw.ImageDraw, cx: float, cy: float, size: float) -> None:
    """The federal shield: red with a white cross."""
    shield(draw, cx, cy, size, (RED, RED), 0, outline=None)
    a, b = size * 0.28, size * 0.09
    cy -= size * 0.05
    draw.rectangle((cx - a, cy - b, cx + a, cy + b), fill=WHITE)
    draw.rectangle((cx - b, cy - a, cx + b, cy + a), fill=WHITE)


def german_seals(rng: np.random.Generator, draw: ImageDraw.ImageDraw, cx: float, cy: float,
                 ch: float) -> None:
    """The round stickers between district and letters: the periodic-inspection sticker above
    (rear plates) and the state registration seal below."""
    r = ch * float(rng.uniform(0.19, 0.23))
    two = rng.random() < 0.6
    centres = (cy - r * 1.1, cy + r * 1.1) if two else (cy,)
    for k, y in enumerate(centres):
        if two and k == 0:  # inspection sticker: a coloured disc with a dark sector mark
            col = pick(rng, ("orange", "blue", "yellow", "brown", "pink", "green"))
            fill = {"orange": (240, 130, 30), "blue": (60, 130, 220), "yellow": (240, 220, 40),
                    "brown": (150, 100, 60), "pink": (240, 150, 190), "green": (60, 170, 80)}[col]
            draw.ellipse((cx - r, y - r, cx + r, y + r), fill=fill, outline=(40, 40, 40))
            draw.pieslice((cx - r, y - r, cx + r, y + r), -100, -80, fill=(30, 30, 30))
        else:  # state seal: pale disc, a ring of tiny print and the state's arms
            draw.ellipse((cx - r, y - r, cx + r, y + r), fill=jitter(rng, (215, 215, 205), 20),
                         outline=(90, 90, 90))
            draw.ellipse((cx - r * 0.72, y - r * 0.72, cx + r * 0.72, y + r * 0.72),
                         outline=(120, 120, 120))
            coat_of_arms(rng, draw, cx, y, r * 0.9)


def tax_sticker(rng: np.random.Generator, draw: ImageDraw.ImageDraw, cx: float, cy: float,
                size: float) -> None:
    col = tuple(int(v) for v in rng.integers(60, 256, 3))
    draw.rectangle((cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2), fill=col)
    small_text(rng, draw, str(int(rng.integers(1, 10))), cx, cy, size * 0.6, (20, 20, 20))


def right_band(
    rng: np.random.Generator, draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float],
    country: str,
) -> None:
    """French department band, Italian year/province band, Portuguese year/month band."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    cx = (x0 + x1) / 2
    if country == "pt":
        draw.rectangle(box, fill=jitter(rng, YELLOW, 15))
        small_text(rng, draw, f"{int(rng.integers(0, 100)):02d}", cx, y0 + h * 0.3, h * 0.22,
                   (20, 20, 20))
        small_text(rng, draw, f"{int(rng.integers(1, 13)):02d}", cx, y0 + h * 0.72, h * 0.22,
                   (20, 20, 20))
        return
    draw.rectangle(box, fill=jitter(rng, BLUE, 25))
    if country == "fr":  # regional logo above the department number
        lx = w * 0.3
        draw.rectangle((cx - lx, y0 + h * 0.1, cx + lx, y0 + h * 0.42),
                       fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        small_text(rng, draw, f"{int(rng.integers(1, 96)):02d}", cx, y0 + h * 0.72,
                   min(h * 0.3, w * 0.8), WHITE)
    else:  # it: registration year in a circle, the province code below
        r = min(w * 0.3, h * 0.16)
        draw.ellipse((cx - r, y0 + h * 0.28 - r, cx + r, y0 + h * 0.28 + r),
                     outline=jitter(rng, YELLOW, 20), width=max(1, int(r / 5)))
        code = "".join(chr(65 + int(v)) for v in rng.integers(0, 26, 2))
        small_text(rng, draw, code, cx, y0 + h * 0.74, min(h * 0.22, w * 0.6), WHITE)
