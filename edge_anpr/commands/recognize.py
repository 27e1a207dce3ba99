"""``edge-anpr recognize``: find and read plates in image files.

Formats: ``text`` (one line per plate), ``json`` (one object per image, this project's shape)
and ``openalpr`` (one object per image in the shape of OpenALPR's ``alpr -j``, the same as the
HTTP API's ``/v2/recognize``: ``edge_anpr.http.shapes``).
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import cv2

from edge_anpr.config import Config
from edge_anpr.errors import ImageTooLarge
from edge_anpr.http.shapes import openalpr_json
from edge_anpr.logs import fields
from edge_anpr.publish.topics import read_payload
from edge_anpr.values import PlateRead
from edge_anpr.vision.imagesize import image_size
from edge_anpr.vision.recognize import FrameRecognizer

OutputFormat = Literal["text", "json", "openalpr"]

log = logging.getLogger(__name__)


def found_to_json(found: PlateRead) -> dict[str, object]:
    """One read as printed: ``publish.topics.read_payload`` (the MQTT naming)."""
    return read_payload(found)


def recognize_main(cfg: Config, images: Sequence[Path], *, output: OutputFormat) -> int:
    """``edge-anpr recognize [--format text|json|openalpr] IMAGE...``."""
    cv2.setNumThreads(1)
    recognizer = FrameRecognizer(cfg)
    failures = 0
    totals: list[float] = []
    for path in images:
        try:
            data = path.read_bytes()
        except OSError as exc:
            print(f"edge-anpr: error: {path}: cannot read: {exc.strerror}", file=sys.stderr)
            failures += 1
            continue
        try:
            found = recognizer.recognize_jpeg(data)
        except ImageTooLarge as exc:
            print(f"edge-anpr: error: {path}: {exc}", file=sys.stderr)
            failures += 1
            continue
        if found is None:
            print(f"edge-anpr: error: {path}: not a decodable image", file=sys.stderr)
            failures += 1
            continue
        t = recognizer.last_timing
        totals.append(t.total_ms)
        if output == "openalpr":
            width, height = image_size(data) or (0, 0)
            print(json.dumps(openalpr_json(
                found, regions=cfg.regions_of(None), top_n=cfg.reader.top_n,
                processing_ms=t.total_ms, epoch_ms=time.time_ns() // 1_000_000,
                width=width, height=height,
            )), flush=True)
        elif output == "json":
            obj = {
                "image": str(path),
                "plates": [found_to_json(f) for f in found],
                "timing_ms": {
                    "decode": round(t.decode_ms, 2), "detect": round(t.detect_ms, 2),
                    "read": round(t.read_ms, 2), "total": round(t.total_ms, 2),
                },
            }
            print(json.dumps(obj), flush=True)
        else:
            if not found:
                print(f"{path}: no plate ({t.total_ms:.1f} ms)")
            for f in found:
                x, y, w, h = f.box_px
                print(f"{path}: {f.text.text} confidence={f.text.confidence:.2f} "
                      f"region={f.text.region.code or '-'} box={x},{y},{w},{h} "
                      f"({t.total_ms:.1f} ms)")
    if totals:
        log.info("%s", fields(event="recognized", images=len(totals), failures=failures,
                              median_total_ms=round(statistics.median(totals), 2)))
    return 1 if failures else 0

