"""``edge-anpr eval DIR``: detection and whole-plate accuracy on labelled scene photographs.

Each image is decoded, resized to 1280 pixels wide (``WORK_WIDTH``, aspect kept; the photographs
range from 300 to 1280 pixels wide and the configured plate widths are meant for 1280-wide
frames), then recognised exactly as the appliance does with the configuration given. Boxes are
compared in those 1280-wide coordinates.

Per sub-folder and overall:

* detection recall: labelled plates with a detector candidate (among the at most
  ``detector.max_candidates`` read per frame) of IoU >= 0.3;
* found recall: labelled plates with a *reported* (read and verified) plate of IoU >= 0.3;
* top-1 / top-N: labelled plates whose matching reported plate reads exactly the label
  (first candidate / any of the reader's candidates), over all labelled plates;
* tight boxes: the share of found plates whose reported box has IoU >= 0.6 with the label
  (a box that cuts characters off is found but not tight);
* found recall per plate width (labelled width in the 1280-wide image: < 64, 64-100, 100-160,
  > 160 px), printed on a line of its own;
* false plates per image: reported plates matching no labelled box (nor a plate the project's
  review found unlabelled in the photograph, ``data/label-review/<folder>-unlabelled.csv``:
  those are counted apart and never scored; ``--raw-labels`` counts them as false plates);
* medians of decode (+ resize), detect, read and total milliseconds.

A boxes-only folder (``lab.scenes.is_boxes_only``: ``labels.csv`` of ``file,x,y,w,h``, such as
``scenes-ro``) has no plate texts: only detection recall, found, tight boxes and the width and
day/night lines are printed (a plate reported outside every box may be one nobody boxed, so
false plates are not scored either); ``--split`` then follows the time blocks of its videos.
Found is also printed per light (``light_of``) and for plates 64 px and wider.

Each sub-folder is recognised as the camera of the same name: when the configuration has a
``[cameras.<folder>]`` table, its settings (plate-format regions, plate widths, ROI) apply, the
way a deployment configures each camera for the plates it sees.

The last line is the same as one JSON object.
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from edge_anpr.boxes import BoxPx, iou
from edge_anpr.config import Config
from edge_anpr.errors import ConfigError, ModelError
from edge_anpr.lab.datasplit import in_holdout, in_split
from edge_anpr.lab.progress import show_progress
from edge_anpr.lab.scenes import (
    IMAGE_SUFFIXES,
    Scene,
    find_boxed_frames,
    find_scenes,
    is_boxes_only,
    normalise,
    scale_box,
)
from edge_anpr.values import PlateRead
from edge_anpr.vision.recognize import FrameRecognizer, decode_jpeg

log = logging.getLogger(__name__)

MATCH_IOU = 0.3
TIGHT_IOU = 0.6
WIDTH_BINS: tuple[tuple[str, int, int], ...] = (
    ("<64", 0, 64), ("64-100", 64, 100), ("100-160", 100, 160), (">160", 160, 1 << 30),
)


def width_bin(width: int) -> str:
    return next(name for name, lo, hi in WIDTH_BINS if lo <= width < hi)


@dataclass
class Tally:
    images: int = 0
    plates: int = 0
    detected: int = 0
    found: int = 0
    tight: int = 0
    top1: int = 0
    topn: int = 0
    false_plates: int = 0
    unlabelled_found: int = 0
    """Reported plates on a plate the labels lack (``score_image``)."""
    decode_ms: list[float] = field(default_factory=list)
    detect_ms: list[float] = field(default_factory=list)
    read_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    misreads: list[tuple[str, str]] = field(default_factory=list)
    """(label, read) pairs of found plates read wrongly."""
    by_width: dict[str, list[int]] = field(default_factory=dict)
    """Width bin -> [labelled plates, found plates]."""
    by_light: dict[str, list[int]] = field(default_factory=dict)
    """"day" / "night" (``light_of``) -> [labelled plates, found plates]."""

    def add(self, other: Tally) -> None:
        for name in ("images", "plates", "detected", "found", "tight", "top1", "topn",
                     "false_plates", "unlabelled_found"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for table, theirs in ((self.by_width, other.by_width), (self.by_light, other.by_light)):
            for key, (n, f) in theirs.items():
                mine = table.setdefault(key, [0, 0])
                mine[0] += n
                mine[1] += f
        for name in ("decode_ms", "detect_ms", "read_ms", "total_ms", "misreads"):
            getattr(self, name).extend(getattr(other, name))

    def summary(self) -> dict[str, float | int]:
        n = max(self.plates, 1)

        def med(v: list[float]) -> float:
            return round(statistics.median(v), 2) if v else 0.0

        return {
            "images": self.images,
            "plates": self.plates,
            "detection_recall": round(self.detected / n, 4),
            "found_recall": round(self.found / n, 4),
            "tight_share": round(self.tight / max(self.found, 1), 4),
            "top1": round(self.top1 / n, 4),
            "topn": round(self.topn / n, 4),
            "false_plates_per_image": round(self.false_plates / max(self.images, 1), 4),
            "unlabelled_plates_reported": self.unlabelled_found,
            "decode_ms": med(self.decode_ms),
            "detect_ms": med(self.detect_ms),
            "read_ms": med(self.read_ms),
            "total_ms": med(self.total_ms),
        }


NIGHT_MEAN_GREY = 70
"""A frame whose name says neither day nor night is night when its mean grey is under this."""


def light_of(name: str, gray: NDArray[np.uint8]) -> str:
    """"night" or "day": from the file name when it says so (``nightride_...``), else from
    the frame's mean brightness."""
    lowered = name.lower()
    if "night" in lowered:
        return "night"
    if "day" in lowered:
        return "day"
    return "night" if float(gray.mean()) < NIGHT_MEAN_GREY else "day"


def score_image(
    labels: Sequence[tuple[BoxPx, str]],
    candidates: Sequence[BoxPx],
    found: Sequence[PlateRead],
    unlabelled: Sequence[BoxPx] = (),
) -> Tally:
    """Compare one image's detector candidates and reported plates with its labels.

    A reported plate that matches no label but a plate of ``unlabelled`` (real plates the
    label file lacks) is counted in ``unlabelled_found``, not as a false plate."""
    t = Tally(images=1, plates=len(labels))
    for box, _ in labels:
        if any(iou(box, c) >= MATCH_IOU for c in candidates):
            t.detected += 1
    used: set[int] = set()
    for box, text in labels:
        counts = t.by_width.setdefault(width_bin(box[2]), [0, 0])
        counts[0] += 1
        best, best_iou = -1, MATCH_IOU
        for i, f in enumerate(found):
            v = iou(box, f.box_px)
            if i not in used and v >= best_iou:
                best, best_iou = i, v
        if best < 0:
            continue
        used.add(best)
        t.found += 1
        counts[1] += 1
        if best_iou >= TIGHT_IOU:
            t.tight += 1
        read = found[best].text
        if read.text == text:
            t.top1 += 1
        else:
            t.misreads.append((text, read.text))
        if any(c.text == text for c in read.candidates):
            t.topn += 1
    for i, f in enumerate(found):
        if i not in used and all(iou(f.box_px, box) < MATCH_IOU for box, _ in labels):
            if any(iou(f.box_px, box) >= MATCH_IOU for box in unlabelled):
                t.unlabelled_found += 1
            else:
                t.false_plates += 1
    return t


def evaluate(
    recognizer: FrameRecognizer, scenes: Sequence[Scene], progress: bool = True
) -> dict[str, Tally]:
    per_group: dict[str, Tally] = defaultdict(Tally)
    for k, scene in enumerate(scenes):
        if progress:
            show_progress(k, len(scenes), "images")
        t0 = time.perf_counter()
        image = decode_jpeg(scene.image_path.read_bytes(), grey=True)
        if image is None:
            log.warning("unreadable image=%s", scene.image_path)
            continue
        image, factor = normalise(image)
        decode_ms = (time.perf_counter() - t0) * 1000
        found = recognizer.recognize(image, camera=scene.group, decode_ms=decode_ms)
        cands = recognizer.last_candidates
        timing = recognizer.last_timing
        labels = [(scale_box(p.box_px, factor), p.text) for p in scene.plates]
        tally = score_image(labels, [c.box_px for c in cands], found,
                            [scale_box(p.box_px, factor) for p in scene.unlabelled])
        tally.by_light[light_of(scene.image_path.name, image)] = [tally.plates, tally.found]
        tally.decode_ms.append(timing.decode_ms)
        tally.detect_ms.append(timing.detect_ms)
        tally.read_ms.append(timing.read_ms)
        tally.total_ms.append(timing.total_ms)
        per_group[scene.group].add(tally)
    if progress:
        show_progress(len(scenes), len(scenes), "images", final=True)
    return dict(per_group)


def unlabelled_scenes(directory: Path, split: Literal["train", "val", "all"]) -> list[Scene]:
    """Every image of a folder of photographs without plates (``--negatives``), as scenes with
    no labelled plate, in the wanted split (by file name)."""
    return [
        Scene(p, directory.name, ())
        for p in sorted(directory.iterdir())
        if p.suffix.lower() in IMAGE_SUFFIXES and in_split(p.name, split)
    ]


def eval_scenes_main(
    cfg: Config,
    directory: Path,
    *,
    split: Literal["train", "val", "all", "holdout"] = "val",
    negatives: bool = False,
    raw_labels: bool = False,
) -> int:
    """``split="holdout"``: the fifth of the training photographs that the plate refiner is
    not trained on (``datasplit.in_holdout``), for choosing settings. ``negatives``: the
    folder holds photographs without plates (every reported plate is a false one).
    ``raw_labels``: the label files as shipped, without the project's review."""
    cv2.setNumThreads(1)
    if not directory.is_dir():
        raise ConfigError(f"{directory}: not a folder")
    side: Literal["train", "val", "all"] = "train" if split == "holdout" else split
    boxes_only = not negatives and is_boxes_only(directory)
    if boxes_only:
        scenes = find_boxed_frames(directory, split)
    else:
        scenes = (unlabelled_scenes(directory, side) if negatives
                  else find_scenes(directory, side, raw=raw_labels))
        if split == "holdout":
            scenes = [sc for sc in scenes if in_holdout(sc.image_path.name)]
    if not scenes:
        raise ConfigError(f"{directory}: no labelled images (NAME.jpg + NAME.txt) in split {split}")
    try:
        recognizer = FrameRecognizer(cfg)
        reading = True
    except ModelError as exc:
        print(f"edge-anpr: warning: reader unavailable ({exc}); detection only", file=sys.stderr)
        recognizer = FrameRecognizer(cfg, with_reader=False)
        reading = False
    groups = evaluate(recognizer, scenes)
    overall = Tally()
    for tally in groups.values():
        overall.add(tally)
    header = (f"{'set':8} {'images':>6} {'plates':>6} {'det.rec':>7} {'found':>6} {'tight':>6} "
              f"{'top1':>6} {'topN':>6} {'FP/img':>6} {'decode':>7} {'detect':>7} {'read':>7} "
              f"{'total':>7}")
    regions = ",".join(cfg.reader.regions) + "".join(
        f" {g}={','.join(recognizer.regions(g))}" for g in sorted(groups)
        if g in cfg.cameras and cfg.cameras[g].regions
    )
    print(f"eval {directory} split={split} width={1280} detector={cfg.detector.kind} plate widths "
          f"{cfg.detector.min_plate_width_px}..{cfg.detector.max_plate_width_px} px "
          f"regions={regions}"
          f"{'' if reading else ' (detection only: no reader models)'}")
    print(header)
    rows = {**{g: groups[g] for g in sorted(groups)}, "overall": overall}
    for name, tally in rows.items():
        s = tally.summary()
        scored = ("     -      -      -" if boxes_only else
                  f"{s['top1']:>6.3f} {s['topn']:>6.3f} {s['false_plates_per_image']:>6.3f}")
        print(f"{name:8} {s['images']:>6} {s['plates']:>6} {s['detection_recall']:>7.3f} "
              f"{s['found_recall']:>6.3f} {s['tight_share']:>6.3f} {scored} "
              f"{s['decode_ms']:>7.1f} "
              f"{s['detect_ms']:>7.1f} {s['read_ms']:>7.1f} {s['total_ms']:>7.1f}")
    by_width = {name: overall.by_width.get(name, [0, 0]) for name, _, _ in WIDTH_BINS}
    print("found recall by plate width (px): " + ", ".join(
        f"{name} {f}/{n}" + (f" {f / n:.3f}" if n else "") for name, (n, f) in by_width.items()
    ))
    wide = [sum(v) for v in zip(*(by_width[n] for n, lo, _ in WIDTH_BINS if lo >= 64), strict=True)]
    by_light = {k: overall.by_light[k] for k in sorted(overall.by_light)}
    print(f"found recall, plates 64 px and wider: {wide[1]}/{wide[0]}"
          + (f" {wide[1] / wide[0]:.3f}" if wide[0] else "") + "; by light: " + ", ".join(
              f"{k} {f}/{n}" + (f" {f / n:.3f}" if n else "") for k, (n, f) in by_light.items()))
    if boxes_only:
        print("boxes-only folder: plate texts unknown, so reads and false plates are not scored "
              "(a plate reported outside every box may be an unboxed real plate)")
    if overall.unlabelled_found:
        print(f"plates the labels lack (data/label-review/{directory.name}-unlabelled.csv) "
              f"reported: {overall.unlabelled_found}, neither scored nor false plates "
              f"(--raw-labels: false plates)")
    if overall.misreads and not boxes_only:
        shown = ", ".join(f"{a}->{b}" for a, b in overall.misreads[:20])
        print(f"misreads (label->read): {shown}")
    result = {
        "eval": str(directory), "split": split, "reader": reading, "regions": regions,
        "detector": cfg.detector.kind,
        "groups": {name: tally.summary() for name, tally in rows.items()},
        "found_by_width": {name: {"plates": n, "found": f} for name, (n, f) in by_width.items()},
        "found_by_light": {k: {"plates": n, "found": f} for k, (n, f) in by_light.items()},
        "boxes_only": boxes_only,
    }
    print(json.dumps(result))
    return 0
