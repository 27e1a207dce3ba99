"""The shipped plate detector (edge_anpr/models/plate_hog.npz) on rendered scenes, blank, noise."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_anpr.boxes import iou
from edge_anpr.config import Config
from edge_anpr.vision.hog import PlateDetector, default_model_path, load_detector

pytestmark = pytest.mark.skipif(
    not default_model_path().exists(), reason="edge_anpr/models/plate_hog.npz not trained yet"
)


@pytest.fixture(scope="module")
def detector() -> PlateDetector:
    det = Config().detector
    return PlateDetector(
        load_detector(),
        min_plate_width_px=64,
        max_plate_width_px=det.max_plate_width_px,
        score_threshold=det.score_threshold,
    )


def test_finds_the_plate_in_rendered_car_scenes(detector: PlateDetector) -> None:
    render = pytest.importorskip("edge_anpr.train.demo_frames")
    hits = 0
    seeds = range(5000, 5010)  # not the bundled demo seeds
    layouts = ["eu", "us", "br_mercosur", "de", "us", "nl", "br_old", "us", "eu", "us"]
    for seed, layout in zip(seeds, layouts, strict=True):
        data, _, box = render.make_frame(seed, layout)
        gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        dets = detector.detect(gray, limit=Config().detector.max_candidates)
        if any(iou(d.box_px, box) >= 0.3 for d in dets):
            hits += 1
    assert hits >= 8, f"plate found in only {hits} of 10 rendered scenes"


def test_nothing_in_blank_or_noise_images(detector: PlateDetector) -> None:
    blank = np.full((720, 1280), 128, np.uint8)
    assert detector.detect(blank) == []
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (720, 1280), dtype=np.uint8)
    smooth = cv2.GaussianBlur(rng.integers(0, 256, (720, 1280), dtype=np.uint8), (0, 0), 6)
    assert len(detector.detect(noise)) == 0
    assert len(detector.detect(np.asarray(smooth, np.uint8))) == 0
