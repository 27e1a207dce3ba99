"""``edge-anpr eval-crops``: reader accuracy on a labelled folder of plate crops.

The folder holds images and ``labels.csv`` (``file,state,PLATE``, as in
``../shared/data/plate-crops``). Only files of the requested split (``edge_anpr.lab.datasplit``) are
read; the default is the validation part, the only one whose figures mean anything.
"""

from __future__ import annotations

import csv
import json
import logging
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from edge_anpr.config import Config
from edge_anpr.errors import ConfigError
from edge_anpr.lab.datasplit import in_split, shared_data_dir
from edge_anpr.lab.progress import show_progress
from edge_anpr.plates.known import edit_distance
from edge_anpr.values import PlateText
from edge_anpr.vision.reader import make_reader

log = logging.getLogger(__name__)


@dataclass
class CropScore:
    images: int = 0
    exact: int = 0
    top_n: int = 0
    no_read: int = 0
    aligned_chars: int = 0
    same_length: int = 0
    aligned_correct: int = 0
    label_chars: int = 0
    edits: int = 0
    timings_ms: list[float] = field(default_factory=list)
    failures: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, name: str, label: str, result: PlateText | None, ms: float) -> None:
        self.images += 1
        self.timings_ms.append(ms)
        text = result.text if result else ""
        if result is None:
            self.no_read += 1
        self.exact += text == label
        self.top_n += result is not None and any(c.text == label for c in result.candidates)
        self.label_chars += len(label)
        self.edits += edit_distance(text, label)
        if len(text) == len(label):
            self.same_length += 1
            self.aligned_chars += len(label)
            self.aligned_correct += sum(a == b for a, b in zip(text, label, strict=True))
        if text != label:
            self.failures.append((name, label, text))

    def summary(self) -> dict[str, float | int]:
        n = max(1, self.images)
        return {
            "images": self.images,
            "exact_accuracy": round(self.exact / n, 4),
            "top_n_accuracy": round(self.top_n / n, 4),
            "char_accuracy_aligned": round(self.aligned_correct / max(1, self.aligned_chars), 4),
            "same_length_reads": self.same_length,
            "char_accuracy_edit": round(1 - self.edits / max(1, self.label_chars), 4),
            "no_read": self.no_read,
            "median_ms": round(statistics.median(self.timings_ms), 3) if self.timings_ms else 0,
        }


def eval_crops_main(
    cfg: Config, directory: Path | None, split: Literal["val", "train", "all"] = "val",
    failures_sheet: Path | None = None,
) -> int:
    if directory is None:
        data = shared_data_dir()
        if data is None:
            raise ConfigError("no ../shared/data beside the repository: pass the crops folder")
        directory = data / "plate-crops"
    labels = directory / "labels.csv"
    if not labels.is_file():
        raise ConfigError(f"{labels}: not found (expected file,state,PLATE rows)")
    with labels.open(newline="") as f:
        rows = [r for r in csv.reader(f) if len(r) >= 3 and in_split(r[0], split)]
    reader = make_reader(cfg)
    score = CropScore()
    for i, row in enumerate(rows, 1):
        image = cv2.imread(str(directory / row[0]), cv2.IMREAD_COLOR)
        if image is None:
            log.warning("cannot read %s", directory / row[0])
            continue
        t0 = time.perf_counter()
        result = reader.read(np.asarray(image, np.uint8))
        score.add(row[0], row[2].strip().upper(), result, (time.perf_counter() - t0) * 1000)
        show_progress(i, len(rows), "crops", final=i == len(rows))
    s = score.summary()
    print(f"split: {split} ({directory})")
    print(f"images: {s['images']}")
    print(f"exact whole-plate accuracy: {s['exact_accuracy']:.2%}")
    print(f"top-{cfg.reader.top_n} accuracy: {s['top_n_accuracy']:.2%}")
    print(f"per-character accuracy (same-length reads): {s['char_accuracy_aligned']:.2%}")
    print(f"per-character accuracy (1 - edits/chars): {s['char_accuracy_edit']:.2%}")
    print(f"same-length reads: {s['same_length_reads']}, no read: {s['no_read']}")
    print(f"median read time: {s['median_ms']} ms")
    print(json.dumps({"split": split, **s}))
    if failures_sheet is not None:
        _sheet(directory, score.failures, failures_sheet)
    return 0


def _sheet(directory: Path, failures: list[tuple[str, str, str]], out: Path) -> None:
    tiles = []
    for name, label, text in failures[:48]:
        img = cv2.imread(str(directory / name), cv2.IMREAD_COLOR)
        if img is None:
            continue
        img = cv2.resize(img, (240, 120))
        cv2.rectangle(img, (0, 0), (240, 18), (0, 0, 0), -1)
        cv2.putText(img, f"{label} -> {text or '-'}", (2, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (0, 255, 255), 1)
        tiles.append(img)
    if not tiles:
        return
    while len(tiles) % 6:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i : i + 6]) for i in range(0, len(tiles), 6)]
    cv2.imwrite(str(out), np.vstack(rows))
    print(f"failures sheet: {out}")
