"""``edge-anpr calibrate-dscore``: fit the map from the detector's box score to the HTTP
answer's ``dscore``, the probability that a reported plate box holds a real plate.

The population is what ``dscore`` is attached to: every plate the appliance *reports* (found by
the detector and refiner, then accepted by the reader), recognised exactly as ``edge-anpr eval``
recognises a scene (1280 wide, the folder's camera settings). A reported box is a plate when it
overlaps a labelled plate, or one the project's review found unlabelled, with IoU >= 0.3
(``eval_scenes.MATCH_IOU``); any other reported box is a false plate. Photographs without plates
(``--negatives DIR``) add false plates only.

The fit is Platt scaling, ``p = 1 / (1 + exp(-(a * score + b)))``, by Newton's method on the
log-likelihood with a small ridge on ``a`` and ``b`` (``RIDGE``: the reported boxes are nearly
all plates, so an unregularised fit can run off to infinity on a separable sample). It is fitted
on the scenes' *training holdout* (``--split holdout``: the fifth of the training photographs
the refiner never trained on); validation is for judging it, never for fitting it.

Prints the pairs' count, the fitted ``a`` and ``b`` (``--split holdout``) or the shipped ones
(``http.shapes.DSCORE_A``/``DSCORE_B``, ``--split val``: a check, nothing is fitted), the mean
log-loss, and a reliability table (per score band: boxes, the mean predicted probability, the
share that were plates), then one JSON line.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from edge_anpr.boxes import iou
from edge_anpr.config import Config
from edge_anpr.errors import ConfigError
from edge_anpr.http.shapes import DSCORE_A, DSCORE_B
from edge_anpr.lab.datasplit import in_holdout
from edge_anpr.lab.eval_scenes import MATCH_IOU, unlabelled_scenes
from edge_anpr.lab.progress import show_progress
from edge_anpr.lab.scenes import Scene, find_scenes, normalise, scale_box
from edge_anpr.vision.recognize import FrameRecognizer, decode_jpeg

RIDGE = 0.001
"""L2 penalty on (a, b), in units of the log-likelihood of one box: a weak prior that only keeps
the fit finite."""
BANDS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 1.01)
"""Score bands of the reliability table (the refiner's score lies in 0-1)."""


def fit_platt(scores: Sequence[float], labels: Sequence[bool], *, ridge: float = RIDGE,
              iterations: int = 100) -> tuple[float, float]:
    """(a, b) maximising sum log p(label | score) - ridge * (a^2 + b^2) / 2 * n, where
    p(plate | s) = sigmoid(a s + b). Pure; raises ``ValueError`` on an empty sample."""
    if not scores:
        raise ValueError("no scored boxes to fit")
    x = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    n = len(x)
    design = np.stack([x, np.ones(n)], axis=1)
    w = np.zeros(2)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(design @ w)))
        grad = design.T @ (y - p) - ridge * n * w
        hess = -(design.T * (p * (1 - p))) @ design - ridge * n * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w = w - step
        if float(np.max(np.abs(step))) < 1e-10:
            break
    return float(w[0]), float(w[1])


def probability(score: float, a: float, b: float) -> float:
    z = max(-50.0, min(50.0, a * score + b))
    return 1.0 / (1.0 + math.exp(-z))


def scored_boxes(recognizer: FrameRecognizer, scenes: Sequence[Scene]
                 ) -> list[tuple[float, bool]]:
    """(detector score, is a plate) of every plate reported on ``scenes``."""
    pairs: list[tuple[float, bool]] = []
    for k, scene in enumerate(scenes):
        show_progress(k, len(scenes), "images")
        image = decode_jpeg(scene.image_path.read_bytes(), grey=True)
        if image is None:
            continue
        image, factor = normalise(image)
        plates = [scale_box(p.box_px, factor) for p in (*scene.plates, *scene.unlabelled)]
        for read in recognizer.recognize(image, camera=scene.group):
            real = any(iou(read.box_px, box) >= MATCH_IOU for box in plates)
            pairs.append((read.detector_score, real))
    show_progress(len(scenes), len(scenes), "images", final=True)
    return pairs


def calibrate_dscore_main(
    cfg: Config, directory: Path, *, split: Literal["holdout", "val"] = "holdout",
    negatives: Path | None = None,
) -> int:
    cv2.setNumThreads(1)
    if not directory.is_dir():
        raise ConfigError(f"{directory}: not a folder")
    side: Literal["train", "val"] = "train" if split == "holdout" else "val"
    scenes = find_scenes(directory, side)
    if negatives is not None:
        scenes += unlabelled_scenes(negatives, side)
    if split == "holdout":
        scenes = [sc for sc in scenes if in_holdout(sc.image_path.name)]
    if not scenes:
        raise ConfigError(f"{directory}: no images in split {split}")
    pairs = scored_boxes(FrameRecognizer(cfg), scenes)
    if not pairs:
        print("edge-anpr: no plate reported: nothing to calibrate", file=sys.stderr)
        return 1
    if split == "holdout":
        a, b = fit_platt([s for s, _ in pairs], [r for _, r in pairs])
    else:
        a, b = DSCORE_A, DSCORE_B
    plates = sum(r for _, r in pairs)
    loss = -sum(math.log(max(1e-12, probability(s, a, b) if r else 1 - probability(s, a, b)))
                for s, r in pairs) / len(pairs)
    print(f"calibrate-dscore {directory} split={split} images={len(scenes)} "
          f"reported={len(pairs)} plates={plates} false={len(pairs) - plates}")
    print(f"a={a:.4f} b={b:.4f} ({'fitted here' if split == 'holdout' else 'shipped'}; "
          f"dscore = 1 / (1 + exp(-(a * score + b)))) log-loss={loss:.4f}")
    print(f"{'score band':>12} {'boxes':>6} {'predicted':>9} {'plates':>7}")
    table = []
    for lo, hi in itertools.pairwise(BANDS):
        band = [(s, r) for s, r in pairs if lo <= s < hi]
        if not band:
            continue
        predicted = sum(probability(s, a, b) for s, _ in band) / len(band)
        observed = sum(r for _, r in band) / len(band)
        table.append({"band": [lo, min(hi, 1.0)], "boxes": len(band),
                      "predicted": round(predicted, 3), "observed": round(observed, 3)})
        print(f"{lo:>5.2f}-{min(hi, 1.0):<6.2f} {len(band):>6} {predicted:>9.3f} {observed:>7.3f}")
    print(json.dumps({"split": split, "images": len(scenes), "reported": len(pairs),
                      "plates": plates, "a": round(a, 4), "b": round(b, 4),
                      "log_loss": round(loss, 4), "bands": table}))
    return 0
