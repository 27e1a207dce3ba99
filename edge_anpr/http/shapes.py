"""Reads as the JSON the cloud plate readers answer with (pure: values in, dicts out).

``plate_reader_json``: Plate Recognizer's Snapshot API. ``plate`` in lower case; ``score`` the
plate confidence (0-1); ``candidates`` best score first; ``dscore`` the probability that the box
holds a real plate, from the detector's box score by the map fitted on the scenes' training
holdout (``DSCORE_A``, ``DSCORE_B``; ``edge-anpr calibrate-dscore``); ``region`` the plate's
region from ``regions.plate_region`` (``""`` and 0 while none is known); ``vehicle`` the empty
vehicle and ``model_make``, ``color``, ``orientation`` empty lists: the appliance detects plates,
not vehicles; ``usage`` this appliance's count of answered recognitions (``calls``) and
``max_calls`` (``MAX_CALLS``: no limit). ``plate_reader_vehicle_json`` is the same answer in the
vehicle-first shape ``config={"detection_mode": "vehicle"}`` asks for.

``openalpr_json``: ``alpr -j``. ``plate`` in upper case; ``confidence`` 0-100;
``coordinates`` the box's four corners clockwise from the top left; ``matches_template`` 1 when
the text fits a format table of the regions read with; ``region`` and ``region_confidence``
(0-100) from the same ``plate_region``.

docs/http.md shows each with an example; ``tests/test_http_core.py`` holds them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from edge_anpr.boxes import BoxPx
from edge_anpr.http.regions import plate_region
from edge_anpr.plates.formats import fits_any
from edge_anpr.values import Candidate, PlateRead

DSCORE_A = 1.7232
DSCORE_B = 0.8945
"""``dscore = 1 / (1 + exp(-(DSCORE_A * box score + DSCORE_B)))``: Platt scaling of the refiner's
box score to the share of reported boxes that are plates, fitted on the scenes' training holdout
(``edge-anpr calibrate-dscore ../shared/data/scenes --split holdout --negatives
../shared/data/negatives --config data/eval-scenes.toml``; checked on validation with
``--split val``; figures in docs/performance.md)."""
MAX_CALLS = 2_147_483_647
"""``usage.max_calls``: the appliance has no call limit; the largest 32-bit integer, so a client
computing ``max_calls - calls`` (calls remaining) gets a large positive number."""


def empty_box() -> dict[str, int]:
    return {"xmin": 0, "ymin": 0, "xmax": 0, "ymax": 0}


def empty_vehicle() -> dict[str, Any]:
    """The documented vehicle of a plate with no vehicle detected: score 0, no type, zero box."""
    return {"score": 0.0, "type": "", "box": empty_box()}


def detector_score(box_score: float) -> float:
    """The detector's box score as ``dscore``: the calibrated probability that the reported box
    holds a plate (``DSCORE_A``, ``DSCORE_B``); increasing in the score, within 0-1."""
    z = DSCORE_A * box_score + DSCORE_B
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def by_score(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Best score first; the reader's order among equal scores."""
    return sorted(candidates, key=lambda c: -c.confidence)


def _corners(box: BoxPx) -> dict[str, int]:
    x, y, w, h = box
    return {"xmin": x, "ymin": y, "xmax": x + w, "ymax": y + h}


def plate_reader_result(read: PlateRead, requested: Sequence[str] = ()) -> dict[str, Any]:
    """One entry of Plate Recognizer's ``results``."""
    text = read.text
    code, region_score = plate_region(read, requested)
    return {
        "box": _corners(read.box_px),
        "plate": text.text.lower(),
        "region": {"code": code, "score": round(region_score, 3)},
        "score": round(text.confidence, 3),
        "candidates": [
            {"score": round(c.confidence, 3), "plate": c.text.lower()}
            for c in by_score(text.candidates)
        ],
        "dscore": round(detector_score(read.detector_score), 3),
        "vehicle": empty_vehicle(),
        "model_make": [],
        "color": [],
        "orientation": [],
    }


def plate_reader_vehicle_result(read: PlateRead, requested: Sequence[str] = ()
                                ) -> dict[str, Any]:
    """One entry of the vehicle-first ``results`` (``detection_mode: vehicle``): the plate
    with its readings and region as ``props`` lists of ``{value, score}``, and the empty
    vehicle with empty ``props``."""
    text = read.text
    code, region_score = plate_region(read, requested)
    return {
        "plate": {
            "type": "Plate",
            "score": round(detector_score(read.detector_score), 3),
            "box": _corners(read.box_px),
            "props": {
                "plate": [{"value": c.text.lower(), "score": round(c.confidence, 3)}
                          for c in by_score(text.candidates)],
                "region": [{"value": code, "score": round(region_score, 3)}] if code else [],
            },
        },
        "vehicle": {
            **empty_vehicle(),
            "props": {"make_model": [], "orientation": [], "color": []},
        },
    }


def plate_reader_json(
    reads: Sequence[PlateRead],
    *,
    processing_ms: float,
    timestamp: str,
    filename: str = "",
    camera_id: str | None = None,
    requested_regions: Sequence[str] = (),
    calls: int = 0,
    vehicle_mode: bool = False,
) -> dict[str, Any]:
    """The whole Snapshot API answer for one image; ``calls``: recognitions this appliance
    has answered, this one included; ``vehicle_mode``: the vehicle-first result shape."""
    result = plate_reader_vehicle_result if vehicle_mode else plate_reader_result
    return {
        "processing_time": round(processing_ms, 3),
        "results": [result(r, requested_regions) for r in reads],
        "filename": filename,
        "version": 1,
        "camera_id": camera_id,
        "timestamp": timestamp,
        "usage": {"calls": calls, "max_calls": MAX_CALLS},
    }


def openalpr_result(
    read: PlateRead, index: int, regions: Sequence[str], *, top_n: int,
    processing_ms: float, requested: Sequence[str] = (),
) -> dict[str, Any]:
    """One entry of ``alpr -j``'s ``results``; ``regions`` are those the image was read with."""
    text = read.text
    x, y, w, h = read.box_px
    code, region_score = plate_region(read, requested)
    return {
        "plate": text.text.upper(),
        "confidence": round(text.confidence * 100, 3),
        "matches_template": int(fits_any(text.text, regions)),
        "plate_index": index,
        "region": code,
        "region_confidence": round(region_score * 100, 1),
        "processing_time_ms": round(processing_ms, 3),
        "requested_topn": top_n,
        "coordinates": [
            {"x": x, "y": y}, {"x": x + w, "y": y}, {"x": x + w, "y": y + h}, {"x": x, "y": y + h},
        ],
        "candidates": [
            {
                "plate": c.text.upper(),
                "confidence": round(c.confidence * 100, 3),
                "matches_template": int(fits_any(c.text, regions)),
            }
            for c in by_score(text.candidates)
        ],
    }


def openalpr_json(
    reads: Sequence[PlateRead],
    *,
    regions: Sequence[str],
    top_n: int,
    processing_ms: float,
    epoch_ms: int,
    width: int,
    height: int,
    requested_regions: Sequence[str] = (),
) -> dict[str, Any]:
    """The whole ``alpr -j`` answer for one image. Each plate's ``processing_time_ms`` is the
    image's time shared out evenly (the reader reads a frame's plates together)."""
    per_plate = processing_ms / len(reads) if reads else 0.0
    return {
        "version": 2,
        "data_type": "alpr_results",
        "epoch_time": epoch_ms,
        "img_width": width,
        "img_height": height,
        "processing_time_ms": round(processing_ms, 3),
        "regions_of_interest": [],
        "results": [
            openalpr_result(
                r, i, regions, top_n=top_n, processing_ms=per_plate, requested=requested_regions
            )
            for i, r in enumerate(reads)
        ],
    }
