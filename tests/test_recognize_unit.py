"""Frame recognition pieces that need no reader model: decoding, crops, motion, scoring."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge_anpr.lab.eval_scenes import score_image
from edge_anpr.values import Candidate, PlateRead, PlateText
from edge_anpr.vision.recognize import (
    NO_DIGIT_MIN_CONFIDENCE,
    MotionGate,
    decode_jpeg,
    plate_crop,
    read_is_plate,
)


def test_decode_jpeg_round_trip_and_garbage() -> None:
    img = np.zeros((72, 128, 3), np.uint8)
    img[:, 64:] = (0, 0, 255)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    out = decode_jpeg(buf.tobytes())
    assert out is not None and out.shape == (72, 128, 3)
    assert decode_jpeg(b"") is None
    assert decode_jpeg(b"\xff\xd8\xff not really a jpeg") is None
    assert decode_jpeg(buf.tobytes()[:20]) is None


def test_plate_crop_adds_margin_and_clips_to_the_frame() -> None:
    img = np.zeros((100, 200, 3), np.uint8)
    crop = plate_crop(img, (50, 40, 100, 20))
    assert crop.shape[1] == 112 and crop.shape[0] > 20
    edge = plate_crop(img, (150, 90, 100, 20))
    assert edge.shape[:2] == (12, 56)  # from (144, 88) to the frame edge


def test_motion_gate_sees_motion_and_ignores_noise() -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (360, 640), dtype=np.uint8)
    base = np.asarray(cv2.GaussianBlur(base, (0, 0), 5), np.uint8)
    gate = MotionGate()
    assert gate.moved(base)  # first frame: nothing to compare with
    noisy = np.clip(base + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8)
    assert not gate.moved(noisy)
    moved = noisy.copy()
    moved[100:220, 200:400] = 255  # a car-sized bright block arrives
    assert gate.moved(moved)


def _found(box: tuple[int, int, int, int], text: str, alts: tuple[str, ...] = ()) -> PlateRead:
    cands = (Candidate(text, 0.9), *(Candidate(a, 0.1) for a in alts))
    return PlateRead(PlateText(text, 0.9, (0.9,) * len(text), cands, "generic"), box, 1.0)


def test_score_image_counts_hits_misreads_and_false_plates() -> None:
    labels = [((100, 100, 80, 20), "AB123"), ((400, 300, 80, 40), "XY999")]
    candidates = [(102, 101, 80, 20), (700, 50, 60, 20)]
    found = [
        _found((101, 99, 80, 20), "AB123"),
        _found((398, 302, 82, 40), "XY998", ("XY999",)),
        _found((700, 50, 60, 20), "JUNK1"),
    ]
    t = score_image(labels, candidates, found)
    assert (t.plates, t.detected, t.found, t.top1, t.topn, t.false_plates) == (2, 1, 2, 1, 2, 1)
    assert t.misreads == [("XY999", "XY998")]


def test_a_plate_the_labels_lack_is_neither_scored_nor_a_false_plate() -> None:
    labels = [((100, 100, 80, 20), "AB123")]
    found = [_found((101, 99, 80, 20), "AB123"), _found((700, 50, 60, 20), "CD456")]
    as_shipped = score_image(labels, [], found)
    assert (as_shipped.false_plates, as_shipped.unlabelled_found) == (1, 0)
    reviewed = score_image(labels, [], found, unlabelled=[(702, 48, 58, 22)])
    assert (reviewed.false_plates, reviewed.unlabelled_found, reviewed.top1) == (0, 1, 1)
    # only where the review saw a plate
    elsewhere = score_image(labels, [], found, unlabelled=[(300, 300, 60, 20)])
    assert (elsewhere.false_plates, elsewhere.unlabelled_found) == (1, 0)


def test_the_review_attaches_unlabelled_plates_to_their_scene(tmp_path: Path) -> None:
    from edge_anpr.lab.scenes import find_scenes

    scenes = tmp_path / "scenes"
    (scenes / "us").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg"):
        (scenes / "us" / name).write_bytes(b"")
        (scenes / "us" / name).with_suffix(".txt").write_text(f"{name} 10 10 80 20 AB123\n")
    review = tmp_path / "review"
    review.mkdir()
    (review / "scenes-unlabelled.csv").write_text(
        "file,x,y,w,h,plate,reason\nus/b.jpg,300,40,70,30,xy999,a second car\n")
    by_name = {s.image_path.name: s for s in find_scenes(scenes, review_dir=review)}
    assert by_name["a.jpg"].unlabelled == ()
    assert [(p.box_px, p.text) for p in by_name["b.jpg"].unlabelled] == [
        ((300, 40, 70, 30), "XY999")]
    raw = find_scenes(scenes, review_dir=review, raw=True)
    assert all(s.unlabelled == () for s in raw)


def test_detector_file_is_taken_from_the_models_dir_when_there(tmp_path: Path) -> None:
    from edge_anpr.config import READER_MODEL_FILES, config_from_dict
    from edge_anpr.vision.hog import default_model_path
    from edge_anpr.vision.recognize import detector_path

    assert detector_path(config_from_dict({})) == default_model_path()
    for name in READER_MODEL_FILES:  # the loader checks that the folder holds the reader's
        (tmp_path / name).write_bytes(b"x")
    only_reader = config_from_dict({"models": {"dir": str(tmp_path)}})
    assert detector_path(only_reader) == default_model_path()
    (tmp_path / "plate_hog.npz").write_bytes(b"x")
    assert detector_path(only_reader) == tmp_path / "plate_hog.npz"


def _plate(text: str, conf: float, *, sure: bool = False, specific: bool = False,
           fitting: bool = False) -> bool:
    return read_is_plate(text, conf, min_conf=0.85, fit_conf=0.7, sure_conf=0.5,
                         specific=specific, fitting=fitting, sure=sure)


def test_a_read_without_a_digit_needs_the_higher_confidence_whatever_the_candidate() -> None:
    """Signs and dealer frames read as words (RFERRA, COLLJ in the training scenes); plates
    nearly always hold a digit, so a word is a plate only at ``NO_DIGIT_MIN_CONFIDENCE``."""
    assert not _plate("RFERRA", 0.915)
    assert not _plate("RFERRA", 0.96, sure=True)
    assert _plate("FZRULZ", NO_DIGIT_MIN_CONFIDENCE)
    # with a digit the ordinary threshold holds, and the sure rule lowers it
    assert _plate("RF3RRA", 0.86)
    assert not _plate("RF3RRA", 0.6)
    assert _plate("RF3RRA", 0.6, sure=True)
    assert not _plate("123456", 0.6, sure=True)  # the sure rule wants letters and digits
    # configured regions: a fitting read at the lower threshold; a word that fits none, never
    assert _plate("ABC1234", 0.75, specific=True, fitting=True)
    assert not _plate("ABC1234", 0.75, specific=True)
    assert not _plate("ABCDEF", 0.99, specific=True)
    # length bounds
    assert not _plate("A12", 1.0, sure=True)
    assert not _plate("A123456789", 1.0, sure=True)
