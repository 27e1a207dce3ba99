"""Reads as the JSON the cloud plate readers answer with (pure: values in, dicts out).

``plate_reader_json``: Plate Recognizer's Snapshot API. ``plate`` in lower case; ``score`` the
plate confidence (0-1); ``dscore`` the detector's SVM margin squashed into 0-1 by the logistic
function (ordered like the margin; not a probability); ``region.code`` the Plate Recognizer
code of where the plate was read to be from (``regions.answer_region``: ``us-ca``, ``us``,
``br``, a European country whose table the text fits, else ``eu``) with the region model's
``score``, or ``""`` and 0.0 when none was read; ``vehicle`` is always the empty vehicle
(``score`` 0, ``type`` "", a zero box): the appliance detects plates, not vehicles.

``openalpr_json``: ``alpr -j``. ``plate`` in upper case; ``confidence`` 0-100;
``coordinates`` the box's four corners clockwise from the top left; ``matches_template`` 1 when
the text fits a format table of the regions read with; ``region`` and ``region_confidence``
(0-100) as Plate Recognizer's region code and score.

docs/http.md shows both with an example; ``tests/test_http_shapes.py`` holds them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from edge_anpr.boxes import BoxPx
from edge_anpr.http.regions import answer_region
from edge_anpr.plates.formats import fits_any
from edge_anpr.values import PlateRead

EMPTY_VEHICLE: dict[str, Any] = {
    "score": 0.0, "type": "", "box": {"xmin": 0, "ymin": 0, "xmax": 0, "ymax": 0},
}


def detector_score(margin: float) -> float:
    """The detector's SVM margin as a 0-1 ``dscore`` (logistic; 0.5 at a zero margin)."""
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, margin))))


def _corners(box: BoxPx) -> dict[str, int]:
    x, y, w, h = box
    return {"xmin": x, "ymin": y, "xmax": x + w, "ymax": y + h}


def plate_reader_result(read: PlateRead, requested: Sequence[str] = ()) -> dict[str, Any]:
    """One entry of Plate Recognizer's ``results``."""
    text = read.text
    code, region_score = answer_region(text.region, text.format_region, requested)
    return {
        "box": _corners(read.box_px),
        "plate": text.text.lower(),
        "region": {"code": code, "score": round(region_score, 3)},
        "score": round(text.confidence, 3),
        "candidates": [
            {"score": round(c.confidence, 3), "plate": c.text.lower()} for c in text.candidates
        ],
        "dscore": round(detector_score(read.detector_score), 3),
        "vehicle": {**EMPTY_VEHICLE, "box": dict(EMPTY_VEHICLE["box"])},
    }


def plate_reader_json(
    reads: Sequence[PlateRead],
    *,
    processing_ms: float,
    timestamp: str,
    filename: str = "",
    camera_id: str | None = None,
    requested_regions: Sequence[str] = (),
) -> dict[str, Any]:
    """The whole Snapshot API answer for one image."""
    return {
        "processing_time": round(processing_ms, 3),
        "results": [plate_reader_result(r, requested_regions) for r in reads],
        "filename": filename,
        "version": 1,
        "camera_id": camera_id,
        "timestamp": timestamp,
    }


def openalpr_result(
    read: PlateRead, index: int, regions: Sequence[str], *, top_n: int,
    processing_ms: float, requested: Sequence[str] = (),
) -> dict[str, Any]:
    """One entry of ``alpr -j``'s ``results``; ``regions`` are those the image was read with."""
    text = read.text
    x, y, w, h = read.box_px
    code, region_score = answer_region(text.region, text.format_region, requested)
    return {
        "plate": text.text.upper(),
        "confidence": round(text.confidence * 100, 3),
        "matches_template": int(fits_any(text.text, regions)),
        "plate_index": index,
        "region": code,
        "region_confidence": round(region_score * 100, 3),
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
            for c in text.candidates
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
