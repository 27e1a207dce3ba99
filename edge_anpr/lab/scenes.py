"""The labelled whole-scene photographs of ``../shared/data/scenes`` (or any folder like it).

Layout: either sub-folders (``eu``, ``us``, ``br``...) each holding ``NAME.jpg`` + ``NAME.txt``,
or one folder of such pairs. A label line is ``NAME.jpg X Y W H PLATE`` (tabs or spaces); an
image may have several lines. A *boxes-only* folder (``scenes-ro``) holds its images and one
``labels.csv`` of ``file,x,y,w,h`` rows instead: plates without text (``LabelledPlate.text``
is ""), split by time blocks when the names are video frames (``datasplit.frame_part``).
Images are *normalised* to ``WORK_WIDTH`` pixels wide before any
detection, in training and in evaluation alike, so that the plate widths the detector is
configured for (in 1280-wide frame pixels) cover the photographs, whatever their size.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from edge_anpr.boxes import BoxPx
from edge_anpr.lab.datasplit import frame_in_split, in_split
from edge_anpr.lab.labels import REVIEW_DIR, read_review

log = logging.getLogger(__name__)

WORK_WIDTH = 1280
"""Scene images are resized to this width (aspect kept) before detection."""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True, slots=True)
class LabelledPlate:
    box_px: BoxPx
    text: str
    """Upper case, no spaces; "" in a boxes-only folder (the text is not known)."""


BOXES_FILE = "labels.csv"
BOXES_HEADER = ["file", "x", "y", "w", "h"]


def is_boxes_only(root: Path) -> bool:
    """Whether ``root`` is a boxes-only folder: a ``labels.csv`` whose header is
    ``file,x,y,w,h``."""
    path = root / BOXES_FILE
    if not path.is_file():
        return False
    with path.open(newline="", encoding="utf-8") as f:
        header = next(csv.reader(f), [])
    return [h.strip().lower() for h in header] == BOXES_HEADER


def find_boxed_frames(
    root: Path, split: Literal["train", "val", "all", "holdout"] = "all"
) -> list[Scene]:
    """Every image of a boxes-only folder listed in its ``labels.csv`` (an image with no row
    is a frame without plates only if listed with an empty box, so unlisted images are left
    out), in the wanted part (``datasplit.frame_in_split``), sorted by name; the group is the
    folder's name."""
    boxes: dict[str, list[LabelledPlate]] = {}
    with (root / BOXES_FILE).open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            name = row["file"].strip()
            plates = boxes.setdefault(name, [])
            try:
                box = (int(row["x"]), int(row["y"]), int(row["w"]), int(row["h"]))
            except (TypeError, ValueError):
                continue  # a frame listed without a box: no plate in it
            if box[2] > 0 and box[3] > 0:
                plates.append(LabelledPlate(box, ""))
    return [
        Scene(root / name, root.name, tuple(plates))
        for name, plates in sorted(boxes.items())
        if (root / name).is_file() and frame_in_split(name, split)
    ]


@dataclass(frozen=True, slots=True)
class Scene:
    image_path: Path
    group: str
    """Sub-folder name (eu, us, br...) or ``all`` for a flat folder."""
    plates: tuple[LabelledPlate, ...]
    unlabelled: tuple[LabelledPlate, ...] = ()
    """Plates the photograph shows that its label file lacks (found by the project's review,
    ``read_unlabelled``): a reported plate there is neither scored nor a false plate."""


def read_labels(txt: Path) -> tuple[LabelledPlate, ...]:
    plates = []
    for line in txt.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) < 6:
            continue
        try:
            x, y, w, h = (int(float(v)) for v in parts[1:5])
        except ValueError:
            continue
        plates.append(LabelledPlate((x, y, w, h), parts[5].upper()))
    return tuple(plates)


def read_unlabelled(
    folder_name: str, review_dir: Path = REVIEW_DIR
) -> dict[str, tuple[LabelledPlate, ...]]:
    """``GROUP/IMAGE`` -> the plates the review found in the photograph but not in its labels
    (``REVIEW_DIR/<folder>-unlabelled.csv``: ``file,x,y,w,h,plate,reason``, the box in the
    photograph's own pixels as in the label files). Empty when there is no such file."""
    path = review_dir / f"{folder_name}-unlabelled.csv"
    found: dict[str, list[LabelledPlate]] = {}
    if path.is_file():
        with path.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                box = (int(row["x"]), int(row["y"]), int(row["w"]), int(row["h"]))
                plate = LabelledPlate(box, (row.get("plate") or "").strip().upper())
                found.setdefault(row["file"], []).append(plate)
    return {k: tuple(v) for k, v in found.items()}


def find_scenes(
    root: Path, split: Literal["train", "val", "all"] = "all", *, raw: bool = False,
    review_dir: Path = REVIEW_DIR,
) -> list[Scene]:
    """Every labelled image under ``root`` in the wanted split, sorted by group then name,
    with the project's review of wrong plate texts applied (``lab.labels``; a review row's
    ``file`` is ``GROUP/IMAGE``) and the plates it found unlabelled attached
    (``read_unlabelled``), unless ``raw``. A boxes-only folder: ``find_boxed_frames``."""
    if is_boxes_only(root):
        return find_boxed_frames(root, split)
    groups = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    dirs = [(g.name, g) for g in groups] or [("all", root)]
    review = read_review(root.name, review_dir) if not raw else None
    unlabelled = read_unlabelled(root.name, review_dir) if not raw else {}
    scenes = []
    for name, folder in dirs:
        for img in sorted(folder.iterdir()):
            if img.suffix.lower() not in IMAGE_SUFFIXES or not in_split(img.name, split):
                continue
            txt = img.with_suffix(".txt")
            if not txt.exists():
                continue
            plates = read_labels(txt)
            key = f"{name}/{img.name}"
            if review is not None and key in review.corrected:
                wrong, fixed = review.labels[key], review.corrected[key]
                plates = tuple(
                    dataclasses.replace(p, text=fixed) if p.text == wrong else p for p in plates
                )
            scenes.append(Scene(img, name, plates, unlabelled.get(key, ())))
    return scenes



def normalise(image: NDArray[np.uint8], width: int = WORK_WIDTH) -> tuple[NDArray[np.uint8], float]:
    """The image resized to ``width`` pixels wide and the factor applied."""
    h, w = image.shape[:2]
    factor = width / w
    if abs(factor - 1.0) < 1e-6:
        return image, 1.0
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    size = (width, max(1, round(h * factor)))
    return np.asarray(cv2.resize(image, size, interpolation=interp), np.uint8), factor


def scale_box(box: BoxPx, factor: float) -> BoxPx:
    """``box`` with every coordinate scaled by ``factor`` and rounded (half to even)."""
    x, y, w, h = box
    return round(x * factor), round(y * factor), round(w * factor), round(h * factor)
