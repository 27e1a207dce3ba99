"""The plate finder: a small int8 network that looks at the whole frame once and proposes plates.

The frame (grey) is shrunk, aspect kept, to fit ``INPUT_W`` x ``INPUT_H`` (a 1280x720 frame
to 640x360, half size) and padded with black below and on the right (``letterbox``). The
network (``edge_anpr/models/plate_finder.tflite``, trained by ``edge_anpr.train.finder``)
answers a map of ``INPUT_H / STRIDE`` x ``INPUT_W / STRIDE`` cells, four numbers in [0, 1] per
cell:

0. the probability that a plate's centre lies in the cell (a peaked heat map: the cell of the
   centre is 1, its neighbours fall off with the plate's size);
1. 2. the centre's x and y inside the cell, as shares of the cell;
3. the plate's width in the network's input, coded ``(log2(width) - LOG2_MIN_W) / LOG2_SPAN``.

``decode`` takes the cells that are the highest of their 3x3 neighbourhood and at least
``min_score``, best first, and turns each into a box in frame pixels (the height is the width
over ``PROPOSAL_ASPECT``: what follows, the plate refiner, looks at a window set by the width
alone and finds the plate's own edges). ``PlateFinder`` runs the interpreter; everything else
here is numpy in, numbers out.

Invariant: the training code builds its inputs with ``fit_to_input`` and ``letterbox`` and its
targets with ``encode_width`` and the same ``STRIDE``, so what the network learnt and what
``decode`` reads are one geometry (``tests/test_finder.py`` holds a box's round trip).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from edge_anpr.boxes import BoxPx
from edge_anpr.errors import ModelError
from edge_anpr.vision.tflite import Int8Model

INPUT_W = 640
INPUT_H = 384
STRIDE = 8
"""Input pixels per cell of the answer map."""
LOG2_MIN_W = 2.0
LOG2_SPAN = 7.0
"""Plate widths the map can code, in input pixels: 2**2 = 4 to 2**9 = 512 (8 to 1024 frame
pixels at half size)."""
PROPOSAL_ASPECT = 3.0
"""Width over height of a proposal box (plates run from 2:1, US, to 4.7:1, EU)."""
MODEL_FILE = "plate_finder.tflite"


def letterbox_scale(width: int, height: int) -> float:
    """The factor that fits a ``width`` x ``height`` frame into the input, never enlarging."""
    return min(INPUT_W / width, INPUT_H / height, 1.0)


def fit_to_input(gray: NDArray[np.uint8]) -> tuple[NDArray[np.uint8], float]:
    """The frame shrunk by averaging to fit the input (``letterbox_scale``; itself when it
    fits already) and the factor applied: the frame as the network sees it, before padding."""
    h, w = gray.shape[:2]
    s = letterbox_scale(w, h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    if (nw, nh) == (w, h):
        return gray, s
    return np.asarray(cv2.resize(gray, (nw, nh), interpolation=cv2.INTER_AREA), np.uint8), s


def letterbox(gray: NDArray[np.uint8]) -> tuple[NDArray[np.uint8], float]:
    """The network's input image (``INPUT_H`` x ``INPUT_W``, ``fit_to_input`` padded with 0
    below and on the right) and the factor applied."""
    small, s = fit_to_input(gray)
    nh, nw = small.shape[:2]
    out = np.zeros((INPUT_H, INPUT_W), np.uint8)
    out[: min(nh, INPUT_H), : min(nw, INPUT_W)] = small[:INPUT_H, :INPUT_W]
    return out, s


def encode_width(width_input_px: float) -> float:
    """The width channel's target for a plate this wide in input pixels, clipped to [0, 1]."""
    code = (math.log2(max(width_input_px, 1e-3)) - LOG2_MIN_W) / LOG2_SPAN
    return min(max(code, 0.0), 1.0)


def decode_width(code: float) -> float:
    """Input pixels of a width channel's value (``encode_width``'s inverse on [0, 1])."""
    return float(2.0 ** (LOG2_MIN_W + LOG2_SPAN * code))


@dataclass(frozen=True, slots=True)
class Proposal:
    box_px: BoxPx
    """The proposed plate's box in frame pixels (centre and width; height nominal)."""
    score: float
    """The heat map's value at the plate's centre cell, in [0, 1]."""


def decode(
    answer: NDArray[np.float32], scale: float, frame_w: int, frame_h: int, *,
    min_score: float, limit: int,
) -> list[Proposal]:
    """Proposals of one answer map (cells x 4, ``module docstring``), best first.

    A cell proposes a plate when its heat is at least ``min_score`` and no cell of its 3x3
    neighbourhood is hotter (equal neighbours both propose: NMS downstream merges them). At most
    ``limit`` proposals; boxes are clipped to the frame and at least 1 pixel wide and high.
    """
    heat = np.ascontiguousarray(answer[..., 0], np.float32)
    peaks = cv2.dilate(heat, np.ones((3, 3), np.uint8))
    ys, xs = np.nonzero((heat >= peaks) & (heat >= min_score))
    if len(ys) == 0:
        return []
    order = np.argsort(-heat[ys, xs], kind="stable")[:limit]
    out = []
    for i in order:
        y, x = int(ys[i]), int(xs[i])
        cx = (x + float(answer[y, x, 1])) * STRIDE / scale
        cy = (y + float(answer[y, x, 2])) * STRIDE / scale
        w = decode_width(float(answer[y, x, 3])) / scale
        h = w / PROPOSAL_ASPECT
        x0, y0 = max(0.0, cx - w / 2), max(0.0, cy - h / 2)
        x1, y1 = min(float(frame_w), cx + w / 2), min(float(frame_h), cy + h / 2)
        if x1 - x0 < 1 or y1 - y0 < 1:
            continue
        box = (round(x0), round(y0), max(1, round(x1 - x0)), max(1, round(y1 - y0)))
        out.append(Proposal(box, float(heat[y, x])))
    return out


def heat_at(answer: NDArray[np.float32], scale: float, box: BoxPx) -> float:
    """The highest heat of the cells around ``box``'s centre (frame pixels): the finder's
    opinion of a plate found by other means (3x3 cells: a box centre is off by up to a cell)."""
    cx = (box[0] + box[2] / 2) * scale / STRIDE
    cy = (box[1] + box[3] / 2) * scale / STRIDE
    n_y, n_x = answer.shape[:2]
    ix, iy = min(max(int(cx), 0), n_x - 1), min(max(int(cy), 0), n_y - 1)
    return float(answer[max(0, iy - 1) : iy + 2, max(0, ix - 1) : ix + 2, 0].max())


class PlateFinder:
    """Runs the finder network on frames. Not thread-safe: one per worker thread."""

    def __init__(self, path: Path) -> None:
        self.model = Int8Model(path, batch_step=1)
        if self.model.input_shape[1:] != (INPUT_H, INPUT_W, 1):
            raise ModelError(
                f"{path}: finder input {self.model.input_shape[1:]} is not "
                f"{(INPUT_H, INPUT_W, 1)}"
            )
        self._table = self.model.pixel_table(1.0 / 255.0)
        self.last_answer: tuple[NDArray[np.float32], float] | None = None

    def answer(self, gray: NDArray[np.uint8]) -> tuple[NDArray[np.float32], float]:
        """The network's answer map for a grey frame and the letterbox factor."""
        image, scale = letterbox(gray)
        out = self.model.run_quantised(self._table[image][None, ..., None])
        return np.asarray(out[0], np.float32), scale

    def propose(self, gray: NDArray[np.uint8], *, min_score: float, limit: int) -> list[Proposal]:
        """The frame's plate proposals (``decode``), best first, in frame pixels. The answer map
        stays in ``last_answer`` (with its scale) for ``heat_at``."""
        answer, scale = self.answer(gray)
        self.last_answer = (answer, scale)
        h, w = gray.shape[:2]
        return decode(answer, scale, w, h, min_score=min_score, limit=limit)


__all__ = [
    "INPUT_H",
    "INPUT_W",
    "MODEL_FILE",
    "STRIDE",
    "PlateFinder",
    "Proposal",
    "decode",
    "decode_width",
    "encode_width",
    "fit_to_input",
    "heat_at",
    "letterbox",
    "letterbox_scale",
]
