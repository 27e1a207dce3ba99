"""The recognition sections: ``[detector]``, ``[reader]``, ``[models]`` and ``[workers]``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from edge_anpr.config.files import check_readable_file, rooted
from edge_anpr.config.schema import key_field
from edge_anpr.errors import ConfigError

if TYPE_CHECKING:
    from edge_anpr.config.root import Config

READER_MODEL_FILES = ("segmenter.tflite", "classifier.tflite")
"""The files a models folder must hold (``vision.reader`` loads them; a test keeps the names
equal). The detector's file is optional there: without it the bundled one is used."""


@dataclass(frozen=True)
class DetectorConfig:
    kind: Literal["hog", "cascade", "dnn"] = key_field(
        "cascade", "hog: the HoG scanner alone, its boxes read with variants; cascade: the HoG "
        "scanner's and the plate finder network's proposals, verified and re-boxed by the plate "
        "refiner network; dnn: the finder's proposals alone, through the refiner "
        "(plate_finder.tflite, plate_refiner.tflite in the models folder).",
    )
    min_plate_width_px: int = key_field(
        40, "Narrowest plate searched for, in frame pixels (finder proposals narrower than this "
        "are dropped; the HoG scanner starts at scan_min_plate_width_px if that is wider).",
        lo=16, hi=4096,
    )
    scan_min_plate_width_px: int = key_field(
        0, "Narrowest plate the HoG scanner searches for, its main cost (halve it, 4x work); "
        "0 = 64 px with kind hog, 80 px with cascade (the finder proposes narrower plates).",
        lo=0, hi=4096,
    )
    max_plate_width_px: int = key_field(640, "Widest plate searched for, in frame pixels.", lo=16,
                                   hi=4096)
    score_threshold: float = key_field(-0.25, "SVM margin above which a window is a candidate.")
    motion_gating: bool = key_field(False, "Skip detection on frames with no motion.")
    max_candidates: int = key_field(8, "Candidates read per frame after NMS.", lo=1, hi=64)
    max_rejected_reads: int = key_field(
        2, "Stop reading a frame's candidates (best first) after this many are rejected "
        "(0 = read all).", lo=0, hi=64,
    )
    proposal_threshold: float = key_field(
        -0.6, "cascade: SVM margin above which a window is a proposal for the refiner (below "
        "score_threshold: the refiner rejects what the scanner lets through).",
    )
    max_proposals: int = key_field(
        8, "cascade, dnn: proposals refined per frame from each source (the HoG scanner after "
        "NMS, the finder).", lo=1, hi=64,
    )
    min_refined_score: float = key_field(
        0.5, "cascade, dnn: the refiner's plate probability a proposal needs to be read.",
        lo=0, hi=1,
    )
    min_finder_score: float = key_field(
        0.2, "cascade, dnn: the finder's plate-centre probability a proposal needs.", lo=0, hi=1,
    )
    sure_plate_score: float = key_field(
        0.8, "cascade, dnn: a candidate with at least this refiner probability and "
        "sure_finder_score is a plate the detector is sure of (reader.min_sure_plate_confidence "
        "applies; 1 = none).", lo=0, hi=1,
    )
    sure_finder_score: float = key_field(
        0.1, "cascade, dnn: the finder's heat a sure candidate needs as well.", lo=0, hi=1,
    )
    max_scan_pixels: int = key_field(
        2_100_000, "Largest image the detector scans, in pixels: a larger frame is scanned "
        "scaled down to this size (and read at full size), so its plates narrower than "
        "min_plate_width_px over the scale are missed. Bounds each worker's memory "
        "(docs/configuration.md, \"Memory\").", lo=65536, hi=1 << 28,
    )


@dataclass(frozen=True)
class ReaderConfig:
    regions: list[str] = key_field(["generic"], "Plate-format regions, in order of preference.")
    min_confidence: float = key_field(
        0.3, "Reads below this plate confidence are ignored.", lo=0, hi=1
    )
    min_plate_confidence: float = key_field(
        0.85, "A detector candidate is a plate only when its read is at least this confident.",
        lo=0, hi=1,
    )
    min_fitting_plate_confidence: float = key_field(
        0.75, "The same for a read that fits a pattern of the camera's plate regions (only "
        "with specific regions configured; never above min_plate_confidence).", lo=0, hi=1,
    )
    top_n: int = key_field(5, "Candidates kept per read.", lo=1, hi=20)
    min_sure_plate_confidence: float = key_field(
        0.5, "A candidate the detector is sure of (detector.sure_plate_score) is reported with "
        "a read this confident or more, when the read has a letter and a digit.", lo=0, hi=1,
    )


@dataclass(frozen=True)
class ModelsConfig:
    dir: str = key_field(
        "", "Folder of the model files: the reader's, and the detector's when it holds one "
        "('' = the bundled models).",
    )


@dataclass(frozen=True)
class WorkersConfig:
    count: int = key_field(
        0, "Recognition worker threads per process (0 = the cores over the processes).",
        lo=0, hi=64,
    )
    processes: int = key_field(
        0, "Appliance processes sharing the UDP port, one camera in one process (0 = one "
        "per two cores; docs/performance.md).", lo=0, hi=64,
    )
    gil_switch_interval_ms: float = key_field(
        0.1, "How long a Python thread may keep the GIL from a waiting one (Python's 5 ms "
        "default costs frames).", lo=0.01, hi=100,
    )


def check_detector(cfg: Config, source: str) -> None:
    det = cfg.detector
    if det.min_plate_width_px > det.max_plate_width_px:
        raise ConfigError(
            f"{source}: detector.min_plate_width_px ({det.min_plate_width_px}) is above "
            f"detector.max_plate_width_px ({det.max_plate_width_px})"
        )
    check_regions(cfg.reader.regions, "reader.regions", source)


def check_models(cfg: Config, source: str, root: str) -> None:
    folder = rooted(root, cfg.models.dir)
    if not folder:
        return
    if not os.path.isdir(folder):
        raise ConfigError(f"{source}: models.dir: no such folder {folder!r}")
    for name in READER_MODEL_FILES:
        check_readable_file(os.path.join(folder, name), "models.dir", source)


def check_regions(regions: list[str], key: str, source: str) -> None:
    from edge_anpr.plates.formats import check_regions as check_format_regions

    try:
        check_format_regions(regions)
    except ValueError as exc:
        raise ConfigError(f"{source}: {key}: {exc}") from None
