"""Find labels to look at: ``python -m edge_anpr.lab.suspects DIR [--config F] [--camera C]``.

Every crop of a labelled folder (both splits, the review in ``data/label-review/`` applied) is
read with the current models and the camera's regions. A label is a suspect when

* it fits none of the camera's plate formats (with a specific region, e.g. ``br``), or
* the reader disagrees with it at a confidence of at least ``--min-confidence`` and the label
  is not among its candidates.

A reader trained on a crop can still disagree with its label there (the label then fought the
rest of the data); on the validation side the reader never saw the crop. Either way a suspect
is only a place to look: the tool writes a numbered contact sheet and a CSV
(``file,label,read,confidence,split,why``) for a person to decide, and the decisions go into
the review file by hand. It changes no label itself.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import cv2
import numpy as np

from edge_anpr.config import load_config
from edge_anpr.lab.datasplit import split_of_plate
from edge_anpr.lab.labels import labelled_rows
from edge_anpr.lab.progress import show_progress
from edge_anpr.plates.formats import fits_any
from edge_anpr.vision.reader import make_reader

TILE_W, TILE_H, COLUMNS = 240, 110, 6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_anpr.lab.suspects")
    ap.add_argument("directory", type=Path)
    ap.add_argument("--config", type=Path, default=None)
    ap.add_argument("--camera", default=None)
    ap.add_argument("--min-confidence", type=float, default=0.8)
    ap.add_argument("--out", type=Path, default=Path("/tmp/suspects"),
                    help="writes OUT.csv and OUT-N.png contact sheets")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    regions = cfg.regions_of(args.camera or args.directory.name)
    specific = [r for r in regions if r != "generic"]
    reader = make_reader(cfg)
    rows, _ = labelled_rows(args.directory)
    found: list[tuple[str, str, str, float, str, str]] = []
    for i, (name, label) in enumerate(rows, 1):
        show_progress(i, len(rows), "crops", final=i == len(rows))
        image = cv2.imread(str(args.directory / name), cv2.IMREAD_COLOR)
        if image is None:
            continue
        result = reader.read(np.asarray(image, np.uint8), regions)
        text, conf = (result.text, result.confidence) if result is not None else ("", 0.0)
        why = ""
        if specific and not fits_any(label, specific):
            why = "format"
        elif (text != label and conf >= args.min_confidence and result is not None
              and all(c.text != label for c in result.candidates)):
            why = "reader"
        if why:
            found.append((name, label, text, conf, split_of_plate(label), why))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.with_suffix(".csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["n", "file", "label", "read", "confidence", "split", "why"])
        for n, row in enumerate(found):
            w.writerow([n, *row[:3], f"{row[3]:.2f}", *row[4:]])
    for page in range(0, len(found), 48):
        _sheet(args.directory, found[page : page + 48], page,
               args.out.parent / f"{args.out.name}-{page // 48}.png")
    print(f"{len(found)} suspects of {len(rows)} labels: {args.out.with_suffix('.csv')}",
          file=sys.stderr)
    return 0


def _sheet(
    directory: Path, rows: list[tuple[str, str, str, float, str, str]], first: int, out: Path
) -> None:
    tiles = []
    for k, (name, label, text, _conf, _split, why) in enumerate(rows):
        img = cv2.imread(str(directory / name), cv2.IMREAD_COLOR)
        if img is None:
            continue
        tile = cv2.resize(img, (TILE_W, TILE_H))
        cv2.rectangle(tile, (0, 0), (TILE_W, 18), (0, 0, 0), -1)
        cv2.putText(tile, f"{first + k} {label}>{text or '-'} {why[0]}", (2, 14),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.48, (0, 255, 255), 1)
        tiles.append(tile)
    if not tiles:
        return
    while len(tiles) % COLUMNS:
        tiles.append(np.zeros_like(tiles[0]))
    cv2.imwrite(str(out), np.vstack([np.hstack(tiles[i : i + COLUMNS])
                                     for i in range(0, len(tiles), COLUMNS)]))


if __name__ == "__main__":
    raise SystemExit(main())
