"""The second stage: a finer HoG look at each scanner candidate, scored by a linear SVM."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from edge_anpr.boxes import crop_bounds
from edge_anpr.vision.hog.features import NBINS, FloatArray

VERIFY_SIZE = (64, 32)
"""Candidate crops are resized to this (width, height) for the verifier's HoG."""
VERIFY_CELL = 4
"""Verifier HoG cell size in pixels (4 rejected more false candidates than 8 on the holdout)."""
VERIFY_MARGIN = (0.08, 0.15)
"""Margin added around a candidate box before the verifier looks at it (fraction of w, h)."""


def verify_features(gray: NDArray[np.uint8], box: tuple[float, float, float, float]) -> FloatArray:
    """HoG (``cv2.HOGDescriptor``, 4x4 cells, 3780 values) of a candidate crop at 64x32.

    At 4x the scanner's resolution across a plate, it sees character strokes the scanner's
    cells average away, so it rejects many scanner false alarms for about 0.1 ms each,
    before the (much more expensive) reader is asked.
    """
    features: FloatArray = verify_features_many(gray, [box])[0]
    return features


def verify_features_many(
    gray: NDArray[np.uint8], boxes: Sequence[tuple[float, float, float, float]]
) -> FloatArray:
    """``verify_features`` of each box, (len(boxes), 3780), with one HoG call for them all.

    Every OpenCV call lets the GIL go, and a worker coming back from a short one often finds
    the other worker holding it and sleeps (a frame has ~10 candidates; one HoG call each was
    the call most often followed by such a sleep, 4 times in 10, in a profile of two
    workers). So the 64x32 crops are stacked in one image, each between two rows that mirror
    its edge (BORDER_REFLECT_101, what HoG does at an image's border), and one ``compute`` at
    their places gives, bit for bit, each crop's own descriptor (checked by a test against
    HoG of the crop alone).
    """
    hog = verify_hog()
    if not boxes:
        return np.empty((0, hog.getDescriptorSize()), np.float32)
    width, height = VERIFY_SIZE
    slot = height + 2
    stack = np.empty((len(boxes), slot, width), np.uint8)
    img_h, img_w = gray.shape[:2]
    empty = []
    for k, box in enumerate(boxes):
        x0, y0, x1, y1 = crop_bounds(box, *VERIFY_MARGIN, img_w, img_h)
        if x1 - x0 < 4 or y1 - y0 < 4:
            empty.append(k)
            stack[k] = 0
            continue
        cv2.resize(gray[y0:y1, x0:x1], VERIFY_SIZE, dst=stack[k, 1 : height + 1],
                   interpolation=cv2.INTER_AREA)
    stack[:, 0] = stack[:, 2]
    stack[:, height + 1] = stack[:, height - 1]
    found = hog.compute(
        stack.reshape(-1, width), (VERIFY_CELL, VERIFY_CELL), (0, 0),
        [(0, k * slot + 1) for k in range(len(boxes))],
    )
    features = np.asarray(found, np.float32).reshape(len(boxes), -1)
    features[empty] = 0.0  # too small a crop to look at: no evidence either way
    return features


_PER_THREAD = threading.local()


def verify_hog() -> cv2.HOGDescriptor:
    """This thread's descriptor (OpenCV objects are not shared between worker threads)."""
    hog: cv2.HOGDescriptor | None = getattr(_PER_THREAD, "hog", None)
    if hog is None:
        c = VERIFY_CELL
        hog = cv2.HOGDescriptor(VERIFY_SIZE, (2 * c, 2 * c), (c, c), (c, c), NBINS)
        _PER_THREAD.hog = hog
    return hog


@dataclass(frozen=True)
class Verifier:
    """A linear SVM over ``verify_features``: a candidate passes when its score is at least
    ``threshold``."""

    weights: FloatArray
    """(descriptor size,), as ``verify_hog().getDescriptorSize()``."""
    bias: float
    threshold: float

    def score(self, gray: NDArray[np.uint8], box: tuple[float, float, float, float]) -> float:
        return self.scores(gray, [box])[0]

    def scores(
        self, gray: NDArray[np.uint8], boxes: Sequence[tuple[float, float, float, float]]
    ) -> list[float]:
        """``score`` of each box, the features in one batch. Each score is still its own
        dot product, so it is the same float as ``score`` gives, not a matrix product's."""
        return [
            float(features @ self.weights + self.bias)
            for features in verify_features_many(gray, boxes)
        ]

