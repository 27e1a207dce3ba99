"""The plate refiner: a small int8 network that verifies a plate proposal and boxes all of it.

A proposal (a HoG candidate's box) is looked at through a *window*: centred on the proposal,
``WINDOW_SCALE`` times its width and half as tall as wide, resized to ``WINDOW_H`` x
``WINDOW_W`` grey pixels (``cut_window``; parts outside the frame are filled with the nearest
edge). The network (``edge_anpr/models/plate_refiner.tflite``, ``edge_anpr.train.refiner``)
answers, for the window, five numbers in [0, 1]: the probability that a plate lies in it, and
that plate's left, top, right and bottom edges as shares of the window's width and height.

``PlateRefiner.refine`` runs every proposal of a frame in one batch and maps the boxes back to
frame pixels; a second pass, through windows centred on the first pass's boxes, gives the
final box and score (a proposal off by half a plate sees the whole plate the second time;
proposals the first pass scores under ``AGAIN_MIN_SCORE`` keep its answer).
Sans-IO: numpy in, numbers out; one ``PlateRefiner`` per worker thread (it owns interpreters).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from edge_anpr.boxes import BoxPx
from edge_anpr.errors import ModelError
from edge_anpr.vision.tflite import Int8Model

WINDOW_H = 64
WINDOW_W = 128
WINDOW_SCALE = 1.6
"""Window width over the proposal's width (the proposal's height is not used: HoG boxes have
one of three fixed aspects, the plate's own is what the network measures)."""
MODEL_FILE = "plate_refiner.tflite"
AGAIN_MIN_SCORE = 0.1
"""Only proposals whose first look scores at least this are looked at again (most proposals
of a frame are clutter the first look already rejects)."""

Window = tuple[float, float, float, float]
"""x0, y0, width, height of a window in frame pixels (floats; may reach outside the frame)."""


def window_of(box: BoxPx | tuple[float, float, float, float]) -> Window:
    """The window the refiner looks through for a proposal box."""
    x, y, w, h = box
    ww = WINDOW_SCALE * w
    wh = ww * WINDOW_H / WINDOW_W
    return (x + w / 2 - ww / 2, y + h / 2 - wh / 2, ww, wh)


def cut_window(gray: NDArray[np.uint8], win: Window) -> NDArray[np.uint8]:
    """The window's pixels resized to ``WINDOW_H`` x ``WINDOW_W`` (edge pixels repeated
    outside the frame). Shrinking averages (INTER_AREA), enlarging interpolates."""
    x0, y0, ww, wh = win
    ix0, iy0 = int(np.floor(x0)), int(np.floor(y0))
    ix1, iy1 = int(np.ceil(x0 + ww)), int(np.ceil(y0 + wh))
    ih, iw = gray.shape[:2]
    cx0, cy0, cx1, cy1 = max(0, ix0), max(0, iy0), min(iw, ix1), min(ih, iy1)
    if cx1 <= cx0 or cy1 <= cy0:
        return np.zeros((WINDOW_H, WINDOW_W), np.uint8)
    patch: NDArray[np.uint8] = gray[cy0:cy1, cx0:cx1]
    if (cx0, cy0, cx1, cy1) != (ix0, iy0, ix1, iy1):
        patch = np.asarray(cv2.copyMakeBorder(
            patch, cy0 - iy0, iy1 - cy1, cx0 - ix0, ix1 - cx1, cv2.BORDER_REPLICATE
        ), np.uint8)
    shrink = patch.shape[1] > WINDOW_W
    out = cv2.resize(patch, (WINDOW_W, WINDOW_H),
                     interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return np.asarray(out, np.uint8)


def box_in_frame(win: Window, edges: Sequence[float], img_w: int, img_h: int) -> BoxPx:
    """Window-relative edges (left, top, right, bottom in [0, 1]) as a frame box, clipped."""
    x0, y0, ww, wh = win
    left = min(max(x0 + float(edges[0]) * ww, 0.0), img_w - 1.0)
    top = min(max(y0 + float(edges[1]) * wh, 0.0), img_h - 1.0)
    right = min(max(x0 + float(edges[2]) * ww, left + 1.0), float(img_w))
    bottom = min(max(y0 + float(edges[3]) * wh, top + 1.0), float(img_h))
    return (round(left), round(top), max(1, round(right - left)), max(1, round(bottom - top)))


@dataclass(frozen=True, slots=True)
class Refined:
    box_px: BoxPx
    """The plate's box found by the network, frame pixels."""
    score: float
    """Probability that the window holds a plate (second pass)."""


class PlateRefiner:
    """Verifies and re-boxes plate proposals. Not thread-safe: one per worker thread."""

    def __init__(self, path: Path, *, passes: int = 2) -> None:
        self.model = Int8Model(path, batch_step=4)
        if self.model.input_shape[1:] != (WINDOW_H, WINDOW_W, 1):
            raise ModelError(
                f"{path}: refiner input {self.model.input_shape[1:]} is not "
                f"{(WINDOW_H, WINDOW_W, 1)}"
            )
        self.passes = passes
        self._table = self.model.pixel_table(1.0 / 255.0)

    def run_windows(
        self, gray: NDArray[np.uint8], windows: Sequence[Window]
    ) -> NDArray[np.float32]:
        """The network's (n, 5) answers for these windows."""
        batch = np.stack([cut_window(gray, w) for w in windows])
        out = self.model.run_quantised(self._table[batch][..., None])
        return np.asarray(out, np.float32).reshape(len(windows), 5)

    def refine(self, gray: NDArray[np.uint8], boxes: Sequence[BoxPx]) -> list[Refined]:
        """One ``Refined`` per proposal box, in the same order."""
        if not boxes:
            return []
        h, w = gray.shape[:2]
        windows = [window_of(b) for b in boxes]
        out = self.run_windows(gray, windows)
        refined = [box_in_frame(win, o[1:], w, h) for win, o in zip(windows, out, strict=True)]
        scores = [float(v) for v in out[:, 0]]
        for _ in range(self.passes - 1):
            again = [i for i, v in enumerate(scores) if v >= AGAIN_MIN_SCORE]
            if not again:
                break
            windows = [window_of(refined[i]) for i in again]
            out = self.run_windows(gray, windows)
            for i, win, o in zip(again, windows, out, strict=True):
                refined[i] = box_in_frame(win, o[1:], w, h)
                scores[i] = float(o[0])
        return [Refined(b, s) for b, s in zip(refined, scores, strict=True)]


__all__ = [
    "MODEL_FILE",
    "WINDOW_H",
    "WINDOW_SCALE",
    "WINDOW_W",
    "PlateRefiner",
    "Refined",
    "box_in_frame",
    "cut_window",
    "window_of",
]
