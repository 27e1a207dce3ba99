"""Speed benchmarks of the vision stages, one thread, per-stage medians and p95.

* ``bench_read``: the plate reader alone (segment + classify) on plate crops.
* ``bench_recognize``: detection + reading on whole frames (added by the detector module).
"""

from __future__ import annotations

import csv
import json
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from edge_anpr.config import Config
from edge_anpr.datasplit import shared_data_dir
from edge_anpr.vision.reader import make_reader


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def _bench_crops(limit: int = 64) -> tuple[list[NDArray[np.uint8]], str]:
    """Real plate crops when ../shared/data is there, else plates drawn with OpenCV."""
    data = shared_data_dir()
    crops: list[NDArray[np.uint8]] = []
    if data is not None and (data / "plate-crops" / "labels.csv").is_file():
        folder = data / "plate-crops"
        with (folder / "labels.csv").open(newline="") as f:
            names = [r[0] for r in csv.reader(f) if r]
        for name in names[:: max(1, len(names) // limit)][:limit]:
            img = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)
            if img is not None:
                crops.append(np.asarray(img, np.uint8))
        if crops:
            return crops, f"{len(crops)} real crops from {folder}"
    rng = np.random.default_rng(0)
    for _ in range(limit):
        img = np.full((160, 320, 3), int(rng.integers(180, 250)), np.uint8)
        text = "".join(rng.choice(list("ABCDEFGHJKLMNPRSTUVWXYZ0123456789"), 7))
        cv2.putText(img, text, (12, 110), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (30, 30, 30), 6)
        crops.append(np.asarray(img, np.uint8))
    return crops, f"{len(crops)} crops drawn with OpenCV"


def bench_read(cfg: Config, frames: int = 300) -> int:
    """``edge-anpr bench read``: per-stage medians of PlateReader.read on one thread."""
    cv2.setNumThreads(1)
    reader = make_reader(cfg)  # interpreters are created with num_threads=1
    crops, source = _bench_crops()
    for crop in crops[:8]:  # warm-up (allocations, caches)
        reader.read(crop)
    seg: list[float] = []
    cls: list[float] = []
    total: list[float] = []
    for i in range(frames):
        crop = crops[i % len(crops)]
        t0 = time.perf_counter()
        reader.read(crop)
        total.append((time.perf_counter() - t0) * 1000)
        seg.append(reader.last_timing.segment_ms)
        cls.append(reader.last_timing.classify_ms)
    result = {
        "bench": "read", "reads": frames, "source": source, "threads": 1,
        "segment_median_ms": round(statistics.median(seg), 3),
        "classify_median_ms": round(statistics.median(cls), 3),
        "total_median_ms": round(statistics.median(total), 3),
        "total_p95_ms": round(_p95(total), 3),
        "segmenter_bytes": _size(reader, "segmenter.tflite"),
        "classifier_bytes": _size(reader, "classifier.tflite"),
    }
    print(f"reads: {frames} on 1 thread ({source})")
    print(f"segment  median {result['segment_median_ms']} ms")
    print(f"classify median {result['classify_median_ms']} ms")
    print(f"total    median {result['total_median_ms']} ms, p95 {result['total_p95_ms']} ms")
    print(json.dumps(result))
    return 0


def _size(reader: object, name: str) -> int:
    folder = getattr(reader, "models_dir", None)
    if isinstance(folder, Path) and (folder / name).is_file():
        return (folder / name).stat().st_size
    return 0
