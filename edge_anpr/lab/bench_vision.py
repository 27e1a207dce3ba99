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
from edge_anpr.lab.datasplit import shared_data_dir
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
    region: list[float] = []
    total: list[float] = []
    for i in range(frames):
        crop = crops[i % len(crops)]
        t0 = time.perf_counter()
        reader.read(crop)
        total.append((time.perf_counter() - t0) * 1000)
        seg.append(reader.last_timing.segment_ms)
        cls.append(reader.last_timing.classify_ms)
        region.append(reader.last_timing.region_ms)
    result = {
        "bench": "read", "reads": frames, "source": source, "threads": 1,
        "segment_median_ms": round(statistics.median(seg), 3),
        "classify_median_ms": round(statistics.median(cls), 3),
        "region_median_ms": round(statistics.median(region), 3),
        "total_median_ms": round(statistics.median(total), 3),
        "total_p95_ms": round(_p95(total), 3),
        "segmenter_bytes": _size(reader, "segmenter.tflite"),
        "classifier_bytes": _size(reader, "classifier.tflite"),
        "region_bytes": _size(reader, "region.tflite"),
    }
    print(f"reads: {frames} on 1 thread ({source})")
    print(f"segment  median {result['segment_median_ms']} ms")
    print(f"classify median {result['classify_median_ms']} ms")
    print(f"region   median {result['region_median_ms']} ms")
    print(f"total    median {result['total_median_ms']} ms, p95 {result['total_p95_ms']} ms")
    print(json.dumps(result))
    return 0


def _size(reader: object, name: str) -> int:
    folder = getattr(reader, "models_dir", None)
    if isinstance(folder, Path) and (folder / name).is_file():
        return (folder / name).stat().st_size
    return 0


def _bench_frames(limit: int = 32) -> tuple[list[bytes], str]:
    """1280x720 JPEG frames: real scenes resized to 1280x720 (busier than the demo, so the
    honest case) when ../shared/data is there, else the bundled demo frames."""
    frames: list[bytes] = []
    data = shared_data_dir()
    if data is not None and (data / "scenes").is_dir():
        paths = sorted((data / "scenes").glob("*/*.jpg"))
        for path in paths[:: max(1, len(paths) // limit)][:limit]:
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                continue
            ok, buf = cv2.imencode(".jpg", cv2.resize(img, (1280, 720)),
                                   [cv2.IMWRITE_JPEG_QUALITY, 90])
            if ok:
                frames.append(buf.tobytes())
        if frames:
            return frames, f"{len(frames)} real scenes resized to 1280x720"
    from edge_anpr.assets import DEMO_DIR, demo_jpegs

    frames = demo_jpegs()[:limit]
    if frames:
        return frames, f"{len(frames)} bundled demo frames from {DEMO_DIR}"
    raise FileNotFoundError("no ../shared/data/scenes and no demo frames in edge_anpr/assets/demo")


def bench_recognize(cfg: Config, frames: int = 100) -> int:
    """``edge-anpr bench recognize``: decode + detect + read of 1280x720 frames, one thread.

    Wall-clock and CPU (``time.thread_time``) medians are both printed: on a shared machine
    the wall clock includes time waiting for a core, the CPU time is what one core spends.
    """
    from edge_anpr.vision.recognize import FrameRecognizer

    cv2.setNumThreads(1)
    recognizer = FrameRecognizer(cfg)
    jpegs, source = _bench_frames()
    for data in jpegs[:4]:  # warm-up (tables, allocations, interpreter caches)
        recognizer.recognize_jpeg(data)
    stages: dict[str, list[float]] = {"decode": [], "detect": [], "read": [], "total": []}
    cpu: list[float] = []
    plates = reads = 0
    for i in range(frames):
        c0 = time.thread_time()
        found = recognizer.recognize_jpeg(jpegs[i % len(jpegs)])
        cpu.append((time.thread_time() - c0) * 1000)
        t = recognizer.last_timing
        plates += len(found or [])
        reads += recognizer.last_reads
        stages["decode"].append(t.decode_ms)
        stages["detect"].append(t.detect_ms)
        stages["read"].append(t.read_ms)
        stages["total"].append(t.total_ms)
    result: dict[str, object] = {
        "bench": "recognize", "frames": frames, "source": source, "threads": 1,
        "plate_widths_px": [cfg.detector.min_plate_width_px, cfg.detector.max_plate_width_px],
        "plates_per_frame": round(plates / frames, 3),
        "reads_per_frame": round(reads / frames, 3),
    }
    print(f"frames: {frames} on 1 thread ({source}), plate widths "
          f"{cfg.detector.min_plate_width_px}..{cfg.detector.max_plate_width_px} px")
    for name, values in stages.items():
        med, p95 = round(statistics.median(values), 2), round(_p95(values), 2)
        result[f"{name}_median_ms"] = med
        result[f"{name}_p95_ms"] = p95
        print(f"{name:7} median {med} ms, p95 {p95} ms")
    result["cpu_total_median_ms"] = round(statistics.median(cpu), 2)
    result["cpu_total_p95_ms"] = round(_p95(cpu), 2)
    print(f"cpu     median {result['cpu_total_median_ms']} ms, p95 {result['cpu_total_p95_ms']} ms")
    print(json.dumps(result))
    return 0
