"""``edge-anpr read``: read plate crops, one JSON line each."""

from __future__ import annotations

import json
import logging
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge_anpr.config import Config
from edge_anpr.errors import ImageTooLarge
from edge_anpr.logs import fields
from edge_anpr.publish.topics import region_part
from edge_anpr.vision.reader import make_reader
from edge_anpr.vision.recognize import decode_jpeg

log = logging.getLogger(__name__)


def read_main(cfg: Config, crops: Sequence[Path]) -> int:
    """``edge-anpr read CROP...``: one JSON object per crop on stdout."""
    reader = make_reader(cfg)
    failures = 0
    timings: list[float] = []
    for path in crops:
        try:
            image = decode_jpeg(path.read_bytes(), max_pixels=cfg.ingest.max_frame_pixels)
        except ImageTooLarge as exc:
            print(f"edge-anpr: error: {path}: {exc}", file=sys.stderr)
            failures += 1
            continue
        except OSError:
            image = None
        if image is None:
            print(f"edge-anpr: error: {path}: cannot read image", file=sys.stderr)
            failures += 1
            continue
        t0 = time.perf_counter()
        result = reader.read(np.asarray(image, np.uint8))
        ms = (time.perf_counter() - t0) * 1000
        timings.append(ms)
        obj: dict[str, object] = {"image": str(path), "plate": None, "confidence": 0.0,
                                  "char_confidences": [], "region": None, "candidates": [],
                                  "timing_ms": round(ms, 3)}
        if result is not None:
            obj.update(
                plate=result.text, confidence=round(result.confidence, 4),
                char_confidences=[round(c, 4) for c in result.char_confidences],
                region=region_part(result.region), format_region=result.format_region,
                candidates=[{"plate": c.text, "confidence": round(c.confidence, 4)}
                            for c in result.candidates],
            )
        print(json.dumps(obj), flush=True)
    if timings:
        log.info("%s", fields(event="read_done", crops=len(timings),
                              median_ms=round(statistics.median(timings), 3)))
    return 1 if failures else 0

