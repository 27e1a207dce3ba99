"""``python -m edge_anpr.train.render --sheet out.png [--n 48] [--seed 0] [--layout NAME]
[--boxes] [--no-glyphs]``: write a contact sheet of rendered plates."""

from __future__ import annotations

import argparse
import sys

import numpy as np
from PIL import Image

from edge_anpr.train.render.glyph_pages import GlyphLibrary
from edge_anpr.train.render.layouts import LAYOUTS
from edge_anpr.train.render.plate import render_plate
from edge_anpr.train.render.sheet import contact_sheet


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_anpr.train.render")
    ap.add_argument("--sheet", required=True, help="PNG file to write")
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0, help="first seed (one seed per plate)")
    ap.add_argument("--layout", action="append", choices=LAYOUTS,
                    help="only these layouts (repeatable; default: sampled by weight)")
    ap.add_argument("--boxes", action="store_true", help="draw the character boxes")
    ap.add_argument("--no-glyphs", action="store_true", help="TrueType fonts only")
    ap.add_argument("--cols", type=int, default=6)
    args = ap.parse_args(argv)
    glyphs = GlyphLibrary() if args.no_glyphs else None
    plates = []
    for i in range(args.n):
        layout = args.layout[i % len(args.layout)] if args.layout else None
        plates.append(render_plate(np.random.default_rng(args.seed + i), layout, glyphs))
    Image.fromarray(contact_sheet(plates, args.cols, boxes=args.boxes)).save(args.sheet)
    print(f"wrote {args.sheet}: {len(plates)} plates", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
