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

The reading is evidence too (``ShapeTable``): ``ABC1234`` is how nearly every Brazilian plate
reads and one US plate in eleven, ``AB1C2D`` a Missouri plate's shape and rare elsewhere. Before
it is summarised, the softmax is weighed by how often a plate of each country reads with the
read's shape of letters and digits (Bayes' rule, the read taken as independent of the image
model's view; ``given_read``), counted on the reader's reads of the training split
(``region_shapes.json``, made by ``python -m edge_anpr.train region --shapes``).

Grey, not colour: the appliance decodes frames grey (detection and reading need nothing else,
and grey decoding is the faster), so colour is not there to read a region from; a model that
saw colour in training would be judged on what it never gets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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
SHAPES_FILE = "region_shapes.json"
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


def text_shape(text: str) -> str:
    """The read's shape: ``L`` for each letter, ``N`` for each digit (``ABC1234`` ->
    ``LLLNNNN``)."""
    return "".join("N" if c.isdigit() else "L" for c in text)


class ShapeTable:
    """How often the reader reads a plate of each country (``COUNTRIES``) with each shape
    (``text_shape``), as counts, and the likelihoods made of them.

    A country's likelihood of a shape is its count plus ``prior_weight`` reads spread as all
    countries' reads together are (add-one smoothed), over its reads plus ``prior_weight``: a
    shape a country was never read with is unlikely in proportion to how rare it is overall,
    never impossible, so one misread character cannot overrule a sure image model.
    Immutable after construction.
    """

    def __init__(self, counts: Mapping[str, Mapping[str, int]], prior_weight: float) -> None:
        if set(counts) != set(COUNTRIES) or not prior_weight > 0:
            raise ValueError(f"a shape table needs counts of {COUNTRIES} and a prior weight "
                             "above 0")
        if any(n < 0 for shapes in counts.values() for n in shapes.values()):
            raise ValueError("a shape table's counts are 0 or more")
        self.prior_weight = prior_weight
        self.counts = {c: dict(counts[c]) for c in COUNTRIES}
        overall: dict[str, int] = {}
        for shapes in self.counts.values():
            for shape, n in shapes.items():
                overall[shape] = overall.get(shape, 0) + n
        total, kinds = sum(overall.values()), len(overall) + 1
        reads = [sum(self.counts[c].values()) for c in COUNTRIES]

        def likelihoods(shape: str) -> tuple[float, float, float]:
            p0 = (overall.get(shape, 0) + 1) / (total + kinds)
            us, br, eu = (
                (self.counts[c].get(shape, 0) + prior_weight * p0) / (n + prior_weight)
                for c, n in zip(COUNTRIES, reads, strict=True)
            )
            return us, br, eu

        self._known = {shape: likelihoods(shape) for shape in overall}
        self._unseen = likelihoods("-")  # no shape is "-": shapes are L and N only

    def likelihoods(self, text: str) -> tuple[float, float, float]:
        """P(a read of this shape | country) for ``COUNTRIES`` in order."""
        return self._known.get(text_shape(text), self._unseen)

    @classmethod
    def load(cls, path: Path) -> ShapeTable:
        """The table of a ``region_shapes.json`` (``{"prior_weight": w, "counts": {country:
        {shape: n}}}``); ``ModelError`` when it is not one."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            counts = {str(c): {str(k): int(n) for k, n in shapes.items()}
                      for c, shapes in raw["counts"].items()}
            return cls(counts, float(raw["prior_weight"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelError(f"{path}: not a region shape table ({exc})") from None


def given_read(probs: Sequence[float], likelihoods: Sequence[float]) -> list[float]:
    """The softmax row weighed by the read's likelihood under each country (``COUNTRIES``
    order; a country's classes alike) and renormalised: the posterior when the read and the
    image model are independent evidence."""
    n_states = len(US_STATES)
    us, br, eu = likelihoods
    row = [p * us for p in probs[:n_states]] + [probs[n_states] * br, probs[n_states + 1] * eu]
    total = sum(row)
    return [p / total for p in row] if total > 0 else list(probs)


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
    """Runs ``region.tflite`` on plate crops. Not thread-safe: one per worker thread.

    ``shapes``: the read-shape table (``ShapeTable``) that ``region_given`` weighs with; when
    None, the ``region_shapes.json`` beside the model, and without one the read weighs
    nothing (the region is the image model's alone)."""

    def __init__(self, path: Path, *, num_threads: int = 1,
                 shapes: ShapeTable | None = None) -> None:
        table = path.parent / SHAPES_FILE
        self.shapes = shapes or (ShapeTable.load(table) if table.is_file() else None)
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
        """The region of each crop, from the image alone."""
        return [summarise(row).region for row in self.probabilities(crops).tolist()]

    def region_given(self, probs: Sequence[float], text: str) -> PlateRegion:
        """The region of a crop whose softmax row is ``probs`` and which reads ``text``."""
        if self.shapes is None:
            return summarise(probs).region
        return summarise(given_read(probs, self.shapes.likelihoods(text))).region
