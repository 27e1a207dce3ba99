"""Mine real character boxes from the TRAINING split with the current models.

    PYTHONPATH=. .venv/bin/python -m edge_anpr.train mine [--models DIR] [--out FILE]

For each real training crop (the labelled crop folders and scene plate boxes, training split
only) the current segmenter proposes boxes and the current classifier scores them. With exactly
as many boxes as label characters, the boxes are the characters in order. With more, an
order-preserving alignment picks the boxes that spell the label best, kept only when every
picked box agrees with its label character well enough; the boxes left out become real "not a
character" samples (pictograms, stacked small letters, bolts, edge fragments). Runs with the
run-time interpreter, so it works in the project venv.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from edge_anpr.models import bundled_models_dir
from edge_anpr.train.cache import CACHE
from edge_anpr.vision.reader import CLASSES, PlateReader, to_grey

"""The training cache, shared with ``train.reader`` (which reads ``mined.npz`` from it)."""


def align(probs: np.ndarray, label: str) -> tuple[list[int], float] | None:
    """Choose len(label) of the N boxes, in order, maximising the label's log probability."""
    n, m = len(probs), len(label)
    if n < m or m == 0:
        return None
    idx = [CLASSES.index(c) for c in label]
    logp = np.log(np.maximum(probs[:, idx], 1e-6))  # N x M
    best = np.full((n + 1, m + 1), -math.inf)
    best[:, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, min(i, m) + 1):
            best[i, j] = max(best[i - 1, j], best[i - 1, j - 1] + logp[i - 1, j - 1])
    chosen: list[int] = []
    i, j = n, m
    while j > 0:
        if best[i, j] == best[i - 1, j - 1] + logp[i - 1, j - 1] and (
            best[i - 1, j - 1] > -math.inf
        ):
            chosen.append(i - 1)
            j -= 1
        i -= 1
    chosen.reverse()
    return chosen, float(best[n, m])


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_anpr.train mine")
    ap.add_argument("--models", type=Path, default=bundled_models_dir())
    ap.add_argument("--out", type=Path, default=CACHE / "mined.npz")
    ap.add_argument("--min-prob", type=float, default=0.25)
    args = ap.parse_args(argv)
    from edge_anpr.train.reader import real_train_items

    reader = PlateReader(args.models)
    items = real_train_items()
    crops, labels, boxes_out, junk_out, sources = [], [], [], [], []
    kept = 0
    per_source: dict[str, int] = {}
    for grey_in, label, _src in items:
        if not label or any(c not in CLASSES for c in label):
            continue
        grey = to_grey(grey_in)
        boxes = reader.segment(grey)
        if len(boxes) < len(label):
            continue
        probs = reader.classify(grey, boxes)[:, : len(CLASSES)]
        probs = probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-6)
        got = align(probs, label)
        if got is None:
            continue
        chosen, _ = got
        agree = [probs[k, CLASSES.index(c)] for k, c in zip(chosen, label, strict=True)]
        # As many boxes as characters: the order alone aligns them, and the characters the
        # classifier gets wrong today are the ones to learn. Boxes to leave out: only when
        # every chosen box agrees with its character, so a misalignment cannot slip in.
        if len(boxes) > len(label) and min(agree) < args.min_prob:
            continue
        kept += 1
        per_source[_src] = per_source.get(_src, 0) + 1
        crops.append(grey)
        labels.append(label)
        sources.append(_src)
        boxes_out.append(boxes[chosen, :4])
        junk_out.append(np.delete(boxes[:, :4], chosen, axis=0))
    n_junk = sum(len(j) for j in junk_out)
    print(f"mined {kept} of {len(items)} training crops, {n_junk} junk boxes "
          f"({', '.join(f'{k}: {v}' for k, v in sorted(per_source.items()))})", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        args.out,
        crops=np.array(crops, dtype=object), labels=np.array(labels),
        boxes=np.array(boxes_out, dtype=object), junk=np.array(junk_out, dtype=object),
        sources=np.array(sources),
    )
    return 0
