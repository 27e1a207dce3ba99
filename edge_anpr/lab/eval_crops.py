"""``edge-anpr eval-crops``: reader accuracy on labelled plate crops.

Two sources, scored the same way:

* a folder of crops with a ``labels.csv`` (``lab.labels``: its layouts, and the project's
  review of wrong labels, applied unless ``raw_labels``);
* ``--scenes``: a scenes-layout folder (``lab.scenes``): each labelled box is cut out of the
  image, normalised to the width the appliance works at, with ``margin`` of the box's size added
  on every side, as a detector's box would hand it to the reader.

Only items of the requested split (``lab.datasplit``: crops by plate text, scenes by file
name) are read; the default is the validation part, the only one whose figures mean anything.
Each group is read with the plate-format regions of the camera of the same name when the
config has one (a scenes sub-folder ``br`` is read as camera ``br``), else with
``reader.regions``; ``camera`` names one for a crops folder.

Printed: exact whole-plate accuracy, top-N, per-character accuracy, exact accuracy per plate
width (the crop's width, or the labelled box's in a scene; the bins of ``edge-anpr eval``), the
confusions that cost most (character edits aligned by edit distance, ``label>read``), and last
one JSON line.

``shrink_to`` reads every crop wider than that many pixels as a distant camera would see it:
resized to that width (aspect kept) and JPEG-compressed at ``SHRUNK_JPEG_QUALITY``, so one
folder of large crops shows what the plate's size alone costs the reader.
"""

from __future__ import annotations

import csv
import json
import logging
import statistics
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from edge_anpr.boxes import BoxPx, crop_bounds
from edge_anpr.config import Config
from edge_anpr.errors import ConfigError
from edge_anpr.lab.datasplit import plate_in_split, shared_data_dir
from edge_anpr.lab.eval_scenes import WIDTH_BINS, width_bin
from edge_anpr.lab.labels import labelled_rows, read_label_column
from edge_anpr.lab.progress import show_progress
from edge_anpr.lab.scenes import find_scenes, normalise, scale_box
from edge_anpr.plates.known import edit_distance
from edge_anpr.values import PlateText
from edge_anpr.vision.reader import make_reader
from edge_anpr.vision.region import country_of

log = logging.getLogger(__name__)

Split = Literal["val", "train", "all"]
TOP_CONFUSIONS = 12
SHRUNK_JPEG_QUALITY = 75
"""``--shrink-to``: the JPEG quality a shrunk crop is re-encoded at (a camera's usual)."""


def edit_ops(label: str, read: str) -> list[tuple[str, str]]:
    """The character edits that turn ``label`` into ``read`` along one shortest alignment:
    ``(a, b)`` substitutes ``a`` by ``b``, ``(a, "")`` drops ``a``, ``("", b)`` adds ``b``.

    Invariant: ``len(edit_ops(a, b)) == edit_distance(a, b)``.
    """
    n, m = len(label), len(read)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        cost[i][0] = i
    for j in range(m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i][j] = min(
                cost[i - 1][j] + 1,
                cost[i][j - 1] + 1,
                cost[i - 1][j - 1] + (label[i - 1] != read[j - 1]),
            )
    ops: list[tuple[str, str]] = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i][j] == cost[i - 1][j - 1] + (label[i - 1] != read[j - 1]):
            if label[i - 1] != read[j - 1]:
                ops.append((label[i - 1], read[j - 1]))
            i, j = i - 1, j - 1
        elif i > 0 and cost[i][j] == cost[i - 1][j] + 1:
            ops.append((label[i - 1], ""))
            i -= 1
        else:
            ops.append(("", read[j - 1]))
            j -= 1
    return ops[::-1]


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
    confusions: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_width: dict[str, list[int]] = field(default_factory=dict)
    """Width bin (``eval_scenes.WIDTH_BINS``) -> [crops, exact reads]."""
    regions: int = 0
    """Crops whose region is known (``LabelledCrop.region``)."""
    country_right: int = 0
    states: int = 0
    """Crops whose US state is known."""
    state_right: int = 0
    state_confusions: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(labelled state, read region code) of the US crops whose state was misread."""

    def add_region(self, expected: str, result: PlateText | None) -> None:
        """Score the region read from one crop against ``expected`` (``us-ca``, ``br``...;
        a crop the reader found nothing in counts as wrong)."""
        if not expected:
            return
        code = result.region.code if result is not None else ""
        self.regions += 1
        self.country_right += country_of(code) == country_of(expected)
        if "-" in expected:
            self.states += 1
            if code == expected:
                self.state_right += 1
            else:
                self.state_confusions[(expected, code or "-")] += 1

    def add(
        self, name: str, label: str, result: PlateText | None, ms: float,
        plate_width: float | None = None,
    ) -> None:
        self.images += 1
        self.timings_ms.append(ms)
        self.label_chars += len(label)
        text = result.text if result is not None else ""
        if result is None:
            self.no_read += 1
        if text == label:
            self.exact += 1
        if plate_width is not None:
            counts = self.by_width.setdefault(width_bin(round(plate_width)), [0, 0])
            counts[0] += 1
            counts[1] += text == label
        if result is not None and any(c.text == label for c in result.candidates):
            self.top_n += 1
        self.edits += edit_distance(text, label)
        self.confusions.update(edit_ops(label, text))
        if result is not None and len(text) == len(label):
            self.same_length += 1
            self.aligned_chars += len(label)
            self.aligned_correct += sum(a == b for a, b in zip(text, label, strict=True))
        if text != label:
            self.failures.append((name, label, text))

    def merge(self, other: CropScore) -> None:
        for name in ("images", "exact", "top_n", "no_read", "aligned_chars", "same_length",
                     "aligned_correct", "label_chars", "edits"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.timings_ms += other.timings_ms
        self.failures += other.failures
        self.confusions.update(other.confusions)
        for name, (n, exact) in other.by_width.items():
            counts = self.by_width.setdefault(name, [0, 0])
            counts[0] += n
            counts[1] += exact
        for name in ("regions", "country_right", "states", "state_right"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.state_confusions.update(other.state_confusions)

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
            **({"country_accuracy": round(self.country_right / self.regions, 4)}
               if self.regions else {}),
            **({"state_accuracy": round(self.state_right / self.states, 4)}
               if self.states else {}),
        }

    def top_confusions(self, k: int = TOP_CONFUSIONS) -> list[tuple[str, int]]:
        """``label>read`` edits by how often they occur (``-`` stands for no character)."""
        return [(f"{a or '-'}>{b or '-'}", n) for (a, b), n in self.confusions.most_common(k)]


@dataclass(frozen=True, slots=True)
class LabelledCrop:
    name: str
    label: str
    group: str
    """What the figures are reported under."""
    camera: str
    """Whose regions the crop is read with (``Config.regions_of``)."""
    plate_width: float | None = None
    """The labelled box's width in a scene (pixels of the frame the appliance works at); None
    for a crop folder, whose crops are the plates (the crop's width is used)."""
    region: str = ""
    """Where the plate is from (``us-ca``, ``us``, ``br``, ``eu``; ``FOLDER_REGIONS``), or ''
    when unknown (not scored)."""


FOLDER_REGIONS = {"plate-crops": "us", "plate-crops-br": "br", "plate-crops-eu-unlabelled": "eu",
                  "us": "us", "br": "br", "eu": "eu"}
"""The region of each folder of ``../shared/data`` (a scenes sub-folder by its name); the US
crops' ``labels.csv`` names each plate's state as well (``state_column``)."""


def state_column(labels: Path) -> dict[str, str]:
    """file -> US state of a headerless ``file,state,PLATE`` labels file (else empty)."""
    rows = []
    if labels.is_file():
        with labels.open(newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if r]
    if not rows or "file" in [c.strip().lower() for c in rows[0]]:
        return {}
    return {r[0]: r[1].strip().lower() for r in rows if len(r) >= 3 and len(r[1].strip()) == 2}


def crops_of_folder(
    directory: Path, rows: list[tuple[str, str]], split: Split, camera: str,
    lines: dict[str, str], states: dict[str, str] | None = None,
) -> Iterator[tuple[LabelledCrop, NDArray[np.uint8] | None]]:
    """The folder's crops of ``split``; with a ``lines`` column in the labels, one-line and
    two-line plates are reported apart (``CAMERA 2-line``)."""
    country = FOLDER_REGIONS.get(directory.name, "")
    for name, plate in rows:
        if plate_in_split(plate, split):
            image = cv2.imread(str(directory / name), cv2.IMREAD_COLOR)
            group = f"{camera} {lines[name]}-line" if name in lines else camera
            state = (states or {}).get(name)
            region = f"us-{state}" if country == "us" and state else country
            yield LabelledCrop(name, plate, group, camera, region=region), (
                None if image is None else np.asarray(image, np.uint8)
            )


def crops_of_scenes(
    root: Path, split: Split, margin: float
) -> Iterator[tuple[LabelledCrop, NDArray[np.uint8] | None]]:
    for scene in find_scenes(root, split):
        raw = cv2.imread(str(scene.image_path), cv2.IMREAD_COLOR)
        image, factor = (None, 1.0) if raw is None else normalise(np.asarray(raw, np.uint8))
        for k, plate in enumerate(scene.plates):
            box = scale_box(plate.box_px, factor)
            crop = LabelledCrop(
                f"{scene.image_path.name}#{k}", plate.text, scene.group, scene.group, box[2],
                FOLDER_REGIONS.get(scene.group, ""),
            )
            if image is None:
                yield crop, None
                continue
            yield crop, cut_with_margin(image, box, margin)


def cut_with_margin(
    image: NDArray[np.uint8], box: BoxPx, margin: float
) -> NDArray[np.uint8] | None:
    """The box grown by ``margin`` of its width and height on every side, clipped to the
    image; None when less than 2 x 2 pixels of it are inside."""
    ih, iw = image.shape[:2]
    x0, y0, x1, y1 = crop_bounds(box, margin, margin, iw, ih)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return image[y0:y1, x0:x1]


def eval_crops_main(
    cfg: Config, directory: Path | None, split: Split = "val",
    failures_sheet: Path | None = None, *, scenes: bool = False, margin: float = 0.15,
    camera: str | None = None, raw_labels: bool = False, labels: Path | None = None,
    shrink_to: int | None = None,
) -> int:
    if directory is None:
        data = shared_data_dir()
        if data is None:
            raise ConfigError("no ../shared/data beside the repository: pass the crops folder")
        directory = data / ("scenes" if scenes else "plate-crops")
    if not directory.is_dir():
        raise ConfigError(f"{directory}: not a folder")
    if shrink_to is not None and shrink_to < 16:
        raise ConfigError(f"--shrink-to {shrink_to}: the reader needs plates at least 16 px wide")
    if scenes:
        items = list(crops_of_scenes(directory, split, margin))
    else:
        rows, review = labelled_rows(directory, raw=raw_labels, labels=labels)
        if review.corrected or review.excluded:
            print(f"labels: {len(review.corrected)} corrected, {len(review.excluded)} left out "
                  f"as unreadable by the review of {directory.name} (--raw-labels: as shipped)")
        lines = read_label_column(labels or directory / "labels.csv", "lines")
        states = state_column(labels or directory / "labels.csv")
        items = list(crops_of_folder(directory, rows, split, camera or directory.name, lines,
                                     states))
    reader = make_reader(cfg)
    groups: dict[str, CropScore] = {}
    group_regions: dict[str, tuple[str, ...]] = {}
    images: dict[str, NDArray[np.uint8]] = {}
    for i, (crop, image) in enumerate(items, 1):
        show_progress(i, len(items), "crops", final=i == len(items))
        if image is None:
            log.warning("cannot read %s", crop.name)
            continue
        width = crop.plate_width if crop.plate_width is not None else image.shape[1]
        if shrink_to is not None and width > shrink_to:
            image = shrunk(image, shrink_to / width)
            width = shrink_to
        t0 = time.perf_counter()
        regions = cfg.regions_of(crop.camera)
        group_regions[crop.group] = regions
        result = reader.read(image, regions)
        score = groups.setdefault(crop.group, CropScore())
        score.add(crop.name, crop.label, result, (time.perf_counter() - t0) * 1000, width)
        score.add_region(crop.region, result)
        if failures_sheet is not None and (result is None or result.text != crop.label):
            images[crop.name] = image
    overall = CropScore()
    for score in groups.values():
        overall.merge(score)
    _report(directory, split, cfg, groups, group_regions, overall, shrink_to)
    if failures_sheet is not None:
        _sheet(images, overall.failures, failures_sheet)
    return 0


def shrunk(image: NDArray[np.uint8], factor: float) -> NDArray[np.uint8]:
    """``image`` resized by ``factor`` (< 1, aspect kept) and through a JPEG round trip at
    ``SHRUNK_JPEG_QUALITY``: a plate as a more distant camera sees it."""
    h, w = image.shape[:2]
    size = (max(2, round(w * factor)), max(2, round(h * factor)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    _, encoded = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, SHRUNK_JPEG_QUALITY])
    return np.asarray(cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED), np.uint8)


def _report(
    directory: Path, split: Split, cfg: Config, groups: dict[str, CropScore],
    group_regions: dict[str, tuple[str, ...]], overall: CropScore, shrink_to: int | None,
) -> None:
    shrink = f" shrink_to={shrink_to}px" if shrink_to is not None else ""
    print(f"eval-crops {directory} split={split} top_n={cfg.reader.top_n}{shrink}")
    rows = [*((name, score) for name, score in sorted(groups.items())), ("overall", overall)]
    width = max(len(name) for name, _ in rows)
    print(f"{'set':<{width}} {'regions':<14} {'crops':>6} {'exact':>7} {'top-N':>7} "
          f"{'char':>7} {'char/ed':>7} {'no read':>7} {'ms':>6}")
    for name, score in rows:
        s = score.summary()
        regions = ",".join(group_regions.get(name, ()))
        print(f"{name:<{width}} {regions:<14} {s['images']:>6} {s['exact_accuracy']:>7.4f} "
              f"{s['top_n_accuracy']:>7.4f} {s['char_accuracy_aligned']:>7.4f} "
              f"{s['char_accuracy_edit']:>7.4f} {s['no_read']:>7} {s['median_ms']:>6.2f}")
    by_width = {name: overall.by_width.get(name, [0, 0]) for name, _, _ in WIDTH_BINS}
    print("exact by plate width (px): " + ", ".join(
        f"{name} {k}/{n}" + (f" {k / n:.3f}" if n else "") for name, (n, k) in by_width.items()
    ))
    costly = overall.top_confusions()
    print("confusions that cost most (label>read): "
          + (", ".join(f"{pair} x{n}" for pair, n in costly) or "none"))
    _report_regions(rows)
    print(json.dumps({
        "eval_crops": str(directory), "split": split,
        "groups": {name: {**score.summary(), "regions": list(group_regions[name])}
                   for name, score in sorted(groups.items())},
        **overall.summary(),
        "exact_by_width": {name: {"crops": n, "exact": k} for name, (n, k) in by_width.items()},
        "confusions": dict(costly),
        **({"shrink_to": shrink_to} if shrink_to is not None else {}),
    }))


def _report_regions(rows: Sequence[tuple[str, CropScore]]) -> None:
    """The region read from the plates: country (and US state) right, per group, and the
    US states misread most."""
    scored = [(name, score) for name, score in rows if score.regions]
    if not scored:
        return
    print("region from the plate: " + "; ".join(
        f"{name} country {score.country_right}/{score.regions} "
        f"{score.country_right / score.regions:.3f}"
        + (f", state {score.state_right}/{score.states} {score.state_right / score.states:.3f}"
           if score.states else "")
        for name, score in scored
    ))
    overall = scored[-1][1]
    if overall.states:
        print("states misread (label>read): " + (", ".join(
            f"{a}>{b} x{n}" for (a, b), n in overall.state_confusions.most_common(12)
        ) or "none"))


def _sheet(
    images: dict[str, NDArray[np.uint8]], failures: Sequence[tuple[str, str, str]], out: Path
) -> None:
    tiles = []
    for name, label, text in failures[:48]:
        source = images.get(name)
        if source is None:
            continue
        img = cv2.resize(source, (240, 120))
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
