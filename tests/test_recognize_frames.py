"""End to end on whole frames: the bundled demo frames and a few real validation scenes."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_anpr.assets import DEMO_DIR
from edge_anpr.boxes import iou
from edge_anpr.config import Config
from edge_anpr.errors import ModelError
from edge_anpr.lab.datasplit import shared_data_dir
from edge_anpr.lab.eval_scenes import evaluate
from edge_anpr.lab.scenes import find_scenes
from edge_anpr.values import PlateRead
from edge_anpr.vision.hog import default_model_path
from edge_anpr.vision.hog.scratch import scratch_buffers
from edge_anpr.vision.recognize import FrameRecognizer

DEMO = DEMO_DIR


def _recognizer(with_reader: bool) -> FrameRecognizer:
    if not default_model_path().exists():
        pytest.skip("edge_anpr/models/plate_hog.npz not trained yet")
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


def test_recognize_cli_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    expected_file = DEMO / "expected.json"
    if not expected_file.exists():
        pytest.skip("no bundled demo frames yet")
    _recognizer(with_reader=True)  # skips when models are missing
    from edge_anpr.cli import main

    name = sorted(json.loads(expected_file.read_text()))[0]
    assert main(["recognize", "--json", str(DEMO / name)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    assert len(lines) == 1
    obj = lines[0]
    assert obj["image"].endswith(name)
    assert set(obj["timing_ms"]) == {"decode", "detect", "read", "total"}
    plate = obj["plates"][0]
    assert plate["plate"] == json.loads(expected_file.read_text())[name]["plates"][0]
    assert len(plate["box_px"]) == 4 and plate["candidates"][0]["plate"] == plate["plate"]
    # one naming of a read: the keys the MQTT event payload uses for the same things
    assert {"plate", "confidence", "box_px", "region", "format_region", "candidates"} <= set(plate)
    assert "text" not in plate and "box" not in plate
    # where the plate is from, read from the plate, with its score
    assert set(plate["region"]) == {"code", "score"} and plate["region"]["code"]
    assert 0 < plate["region"]["score"] <= 1


def test_recognize_cli_fails_on_a_file_that_is_not_an_image(tmp_path: Path) -> None:
    _recognizer(with_reader=True)
    from edge_anpr.cli import main

    bad = tmp_path / "not.jpg"
    bad.write_bytes(b"definitely not a jpeg")
    assert main(["recognize", str(bad)]) == 1


def test_camera_roi_and_width_overrides_apply() -> None:
    from edge_anpr.config import config_from_dict

    if not default_model_path().exists():
        pytest.skip("edge_anpr/models/plate_hog.npz not trained yet")
    expected = json.loads((DEMO / "expected.json").read_text()) if DEMO.exists() else {}
    if not expected:
        pytest.skip("no bundled demo frames yet")
    name, item = sorted(expected.items())[0]
    x, y, w, h = item["boxes"][0]
    import cv2
    import numpy as np

    gray = cv2.imdecode(np.frombuffer((DEMO / name).read_bytes(), np.uint8), cv2.IMREAD_GRAYSCALE)
    cfg = config_from_dict({"cameras": {
        "gate": {"roi": [x - w, y - h, 3 * w, 3 * h]},
        "far": {"roi": [0, 0, 200, 200]},
        "tiny": {"min_plate_width_px": 20, "max_plate_width_px": 40},
    }})
    rec = FrameRecognizer(cfg, with_reader=False)
    inside = rec.candidates(gray, "gate")
    assert inside and all(
        c.box_px[0] >= x - w and c.box_px[1] >= y - h
        and c.box_px[0] + c.box_px[2] <= x + 2 * w and c.box_px[1] + c.box_px[3] <= y + 2 * h
        for c in inside
    )
    assert not any(c.box_px[0] + c.box_px[2] > 200 for c in rec.candidates(gray, "far"))
    assert all(c.box_px[2] < 60 for c in rec.candidates(gray, "tiny"))


def test_one_recognizer_per_thread_gives_the_single_thread_results() -> None:
    import concurrent.futures

    if not (DEMO / "expected.json").exists():
        pytest.skip("no bundled demo frames yet")
    _recognizer(with_reader=True)
    frames = [p.read_bytes() for p in sorted(DEMO.glob("*.jpg"))]

    def run(data_list: list[bytes]) -> list[list[str]]:
        rec = FrameRecognizer(Config())  # built in its own thread, like a worker
        return [[f.text.text for f in rec.recognize_jpeg(d) or []] for d in data_list]

    alone = run(frames)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        a, b = pool.submit(run, frames), pool.submit(run, frames[::-1])
        assert a.result() == alone
        assert b.result() == alone[::-1]


def test_a_frame_above_the_scan_size_is_scanned_scaled_down_and_read_in_frame_pixels() -> None:
    """A frame of 5.8 million pixels (the demo frame at 2.5 times its size) reads the same
    plate, its box in the frame's pixels, while the worker's scan buffers are those of an image
    of ``detector.max_scan_pixels``: what bounds a worker's memory (docs/configuration.md)."""
    rec = _recognizer(with_reader=True)
    frame = np.asarray(cv2.imread(str(DEMO / "frame_00.jpg")), np.uint8)
    (first, *_) = rec.recognize(frame)
    big = np.asarray(cv2.resize(frame, None, fx=2.5, fy=2.5, interpolation=cv2.INTER_CUBIC),
                     np.uint8)
    assert big.shape[0] * big.shape[1] > 2 * Config().detector.max_scan_pixels
    found: list[PlateRead] = []
    buffers: list[int] = []

    def in_a_fresh_thread() -> None:  # the scan's buffers are per thread
        found.extend(rec.recognize(big))
        buffers.append(sum(b.nbytes for b in scratch_buffers().values()))

    worker = threading.Thread(target=in_a_fresh_thread)
    worker.start()
    worker.join()
    assert found and found[0].text.text == first.text.text
    x, y, w, h = first.box_px
    assert iou(found[0].box_px, (2.5 * x, 2.5 * y, 2.5 * w, 2.5 * h)) > 0.6
    assert buffers[0] <= 40 * 2_100_000, f"{buffers[0] / 2**20:.0f} MB of scan buffers"
