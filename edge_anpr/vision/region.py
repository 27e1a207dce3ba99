"""Where a plate is from, read from the plate crop: country, and for US plates the state.

``region.tflite`` (int8) takes the grey crop, stretched to ``REGION_H`` x ``REGION_W``
(aspect not kept: the plate's proportions are a cue), and gives a softmax over
``REGION_CLASSES``: one class per US state (``us-ca``, Plate Recognizer's codes), ``br`` and
``eu``. The European class is the continent, not a country: the project's European crops carry
no country label, so the model cannot tell a German plate from a Polish one (a camera's
configured regions choose within Europe, ``plates.origin``).

``PlateRegion`` summarises the softmax: the country's score is the sum of its classes; a US
plate names its state only when the state alone scores ``STATE_MIN_SCORE``, else it is ``us``.
The preprocessing here is what training uses, so the two cannot disagree.

Grey, not colour: the appliance decodes frames grey (detection and reading need nothing else,
and grey decoding is the faster), so colour is not there to read a region from; a model that
saw colour in training would be judged on what it never gets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from edge_anpr.errors import ModelError
from edge_anpr.values import PlateRegion
from edge_anpr.vision.tflite import Int8Model

REGION_H, REGION_W = 40, 80
REGION_FILE = "region.tflite"
US_STATES = (
    "ak", "al", "ar", "az", "ca", "co", "ct", "dc", "de", "fl", "ga", "hi", "ia", "id", "il",
    "in", "ks", "ky", "la", "ma", "md", "me", "mi", "mn", "mo", "ms", "mt", "nc", "nd", "ne",
    "nh", "nj", "nm", "nv", "ny", "oh", "ok", "or", "pa", "ri", "sc", "sd", "tn", "tx", "ut",
    "va", "vt", "wa", "wi", "wv", "wy",
)
REGION_CLASSES: tuple[str, ...] = (*(f"us-{s}" for s in US_STATES), "br", "eu")
"""The model's output classes, in order: the 50 US states and DC, Brazil, Europe."""
COUNTRIES = ("us", "br", "eu")
STATE_MIN_SCORE = 0.5
"""A US plate's state is named only when that state alone has at least this probability (more
likely than all the others together); below it the region is ``us`` with the country's
score. Not tuned on data: the rule that the named state be likelier than the rest together."""


@dataclass(frozen=True, slots=True)
class _Summary:
    region: PlateRegion
    country: str
    country_score: float
    state: str
    state_score: float


def region_input(crop: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The crop (grey, or BGR made grey) stretched to the model's input (H x W x 1)."""
    grey = crop
    if crop.ndim == 3 and crop.shape[2] == 3:
        grey = np.asarray(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), np.uint8)
    elif crop.ndim == 3:
        grey = crop[..., 0]
    resized = cv2.resize(grey, (REGION_W, REGION_H), interpolation=cv2.INTER_AREA)
    return np.asarray(resized, np.uint8)[..., None]


def country_of(code: str) -> str:
    """``us`` of ``us-ca``; a code without a state is its own country."""
    return code.split("-", 1)[0]


def summarise(probs: Sequence[float]) -> _Summary:
    """The region of one softmax row over ``REGION_CLASSES``."""
    n_states = len(US_STATES)
    us = float(sum(probs[:n_states]))
    scores = {"us": us, "br": float(probs[n_states]), "eu": float(probs[n_states + 1])}
    country = max(COUNTRIES, key=scores.__getitem__)
    best_state = max(range(n_states), key=lambda i: probs[i])
    state, state_score = US_STATES[best_state], float(probs[best_state])
    if country == "us" and state_score >= STATE_MIN_SCORE:
        region = PlateRegion(f"us-{state}", state_score)
    else:
        region = PlateRegion(country, scores[country])
    return _Summary(region, country, scores[country], state, state_score)


class RegionReader:
    """Runs ``region.tflite`` on plate crops. Not thread-safe: one per worker thread."""

    def __init__(self, path: Path, *, num_threads: int = 1) -> None:
        self._model = Int8Model(path, num_threads=num_threads, batch_step=1)
        expected = (REGION_H, REGION_W, 1)
        if self._model.input_shape[1:] != expected:
            raise ModelError(f"{path}: input {self._model.input_shape} is not (N, "
                             f"{REGION_H}, {REGION_W}, 1)")
        self._table = self._model.pixel_table(1.0 / 255.0)
        self._model.run_quantised(np.take(self._table, np.zeros((1, *expected), np.uint8)))

    def probabilities(self, crops: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        """Softmax rows over ``REGION_CLASSES``, one per crop (BGR or grey)."""
        if not crops:
            return np.zeros((0, len(REGION_CLASSES)), np.float32)
        pixels = np.stack([region_input(c) for c in crops])
        out = self._model.run_quantised(np.take(self._table, pixels))
        if out.shape[1] != len(REGION_CLASSES):
            raise ModelError(f"{self._model.path}: {out.shape[1]} outputs, expected "
                             f"{len(REGION_CLASSES)}")
        return out

    def regions(self, crops: Sequence[NDArray[np.uint8]]) -> list[PlateRegion]:
        """The region of each crop."""
        return [summarise(row).region for row in self.probabilities(crops).tolist()]
