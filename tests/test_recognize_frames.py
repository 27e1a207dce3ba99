"""End to end on whole frames: the bundled demo frames and a few real validation scenes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_anpr.config import Config
from edge_anpr.datasplit import shared_data_dir
from edge_anpr.errors import ModelError
from edge_anpr.train.scenes import find_scenes
from edge_anpr.vision.detector import default_model_path
from edge_anpr.vision.eval_scenes import evaluate
from edge_anpr.vision.recognize import FrameRecognizer

DEMO = Path(__file__).resolve().parents[1] / "edge_anpr" / "demo"


def _recognizer(with_reader: bool) -> FrameRecognizer:
    if not default_model_path().exists():
        pytest.skip("models/plate_hog.npz not trained yet")
    try:
        return FrameRecognizer(Config(), with_reader=with_reader)
    except ModelError as exc:
        pytest.skip(f"reader models not available: {exc}")


def test_demo_frames_read_their_expected_plates() -> None:
    expected_file = DEMO / "expected.json"
    if not expected_file.exists():
        pytest.skip("no bundled demo frames yet (python -m edge_anpr.train demo_frames)")
    rec = _recognizer(with_reader=True)
    expected = json.loads(expected_file.read_text())
    assert len(expected) >= 6
    for name, item in expected.items():
        found = rec.recognize_jpeg((DEMO / name).read_bytes())
        assert found is not None, name
        assert [f.text.text for f in found][:1] == item["plates"][:1], name
        assert rec.last_timing.detect_ms > 0


def test_demo_frames_are_small_enough_to_ship() -> None:
    frames = sorted(DEMO.glob("*.jpg"))
    if not frames:
        pytest.skip("no bundled demo frames yet")
    assert sum(p.stat().st_size for p in frames) < 1_500_000


def test_detection_on_real_validation_scenes() -> None:
    data = shared_data_dir()
    if data is None or not (data / "scenes").is_dir():
        pytest.skip("../shared/data/scenes is not there")
    rec = _recognizer(with_reader=False)
    scenes = [s for s in find_scenes(data / "scenes", "val") if s.group == "eu"][:6]
    tallies = evaluate(rec, scenes, progress=False)
    eu = tallies["eu"]
    assert eu.images == 6
    assert eu.detected >= 5, f"only {eu.detected} of {eu.plates} plates detected"
