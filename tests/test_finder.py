"""The plate finder: its geometry (pure), the shipped network on rendered frames, and the
time-block split and boxes-only evaluation it is measured with."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_anpr.assets import DEMO_DIR
from edge_anpr.boxes import iou
from edge_anpr.config import Config, DetectorConfig
from edge_anpr.lab.datasplit import BLOCK_S, GUARD_S, frame_in_split, frame_part
from edge_anpr.lab.eval_scenes import eval_scenes_main
from edge_anpr.lab.scenes import find_boxed_frames, find_scenes, is_boxes_only
from edge_anpr.vision.finder import (
    INPUT_H,
    INPUT_W,
    STRIDE,
    PlateFinder,
    decode,
    decode_width,
    encode_width,
    letterbox,
)
from edge_anpr.vision.recognize import FINDER_FILE, FrameRecognizer, decode_jpeg, model_path


def test_width_code_round_trips_and_clips() -> None:
    for w in (4.0, 20.0, 64.0, 300.0, 512.0):
        assert decode_width(encode_width(w)) == pytest.approx(w, rel=1e-6)
    assert encode_width(1.0) == 0.0
    assert encode_width(5000.0) == 1.0


def test_letterbox_fits_the_input_without_enlarging() -> None:
    frame = np.full((720, 1280), 9, np.uint8)
    image, scale = letterbox(frame)
    assert image.shape == (INPUT_H, INPUT_W)
    assert scale == 0.5
    assert image[:360].min() == 9 and image[360:].max() == 0  # padded below
    small = np.full((100, 200), 3, np.uint8)
    image, scale = letterbox(small)
    assert scale == 1.0 and image[:100, :200].min() == 3 and image[100:].max() == 0
    tall = np.zeros((1600, 1200), np.uint8)
    _, scale = letterbox(tall)
    assert 1600 * scale <= INPUT_H and 1200 * scale <= INPUT_W


def test_decode_maps_a_peak_back_to_frame_pixels() -> None:
    cells = np.zeros((INPUT_H // STRIDE, INPUT_W // STRIDE, 4), np.float32)
    # a plate centred at input (96 + 4, 200 + 2) (cell 12, 25), 60 input px wide, in a
    # half-size frame
    cells[25, 12] = (0.9, 0.5, 0.25, encode_width(60.0))
    cells[25, 13, 0] = 0.5  # a weaker neighbour is not a peak
    cells[10, 70, 0] = 0.1  # under min_score
    out = decode(cells, 0.5, 1280, 720, min_score=0.2, limit=8)
    assert len(out) == 1
    x, y, w, h = out[0].box_px
    assert out[0].score == pytest.approx(0.9)
    assert x + w / 2 == pytest.approx(2 * (96 + 4), abs=1)
    assert y + h / 2 == pytest.approx(2 * (200 + 2), abs=1)
    assert w == pytest.approx(120, abs=1)
    # limit keeps the best; a peak whose box falls outside the frame is clipped, not dropped
    cells[0, 0] = (0.95, 0.0, 0.0, encode_width(60.0))
    best = decode(cells, 0.5, 1280, 720, min_score=0.2, limit=1)
    assert len(best) == 1 and best[0].score == pytest.approx(0.95)
    assert best[0].box_px[0] == 0 and best[0].box_px[1] == 0


@pytest.fixture(scope="module")
def demo() -> dict[str, dict[str, list]]:
    return json.loads((DEMO_DIR / "expected.json").read_text())  # type: ignore[no-any-return]


def test_the_shipped_finder_proposes_every_demo_plate(demo: dict[str, dict[str, list]]) -> None:
    finder = PlateFinder(model_path(Config(), FINDER_FILE))
    cfg = DetectorConfig()
    for name, truth in demo.items():
        gray = decode_jpeg((DEMO_DIR / name).read_bytes(), grey=True)
        assert gray is not None
        props = finder.propose(gray, min_score=cfg.min_finder_score, limit=cfg.max_proposals)
        for box in truth["boxes"]:
            cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
            near = [p for p in props
                    if abs(p.box_px[0] + p.box_px[2] / 2 - cx) < 0.3 * box[2]
                    and abs(p.box_px[1] + p.box_px[3] / 2 - cy) < 0.3 * box[2]
                    and 0.6 < p.box_px[2] / box[2] < 1.6]
            assert near, f"{name}: no finder proposal near {box}: {props}"


def test_dnn_kind_reads_every_demo_plate_from_finder_proposals_alone(
    demo: dict[str, dict[str, list]],
) -> None:
    cfg = Config(detector=DetectorConfig(kind="dnn"))
    rec = FrameRecognizer(cfg)
    for name, truth in demo.items():
        gray = decode_jpeg((DEMO_DIR / name).read_bytes(), grey=True)
        assert gray is not None
        reads = rec.recognize(gray)
        assert all(c.shape == "finder" for c in rec.last_candidates)
        for box, plate in zip(truth["boxes"], truth["plates"], strict=True):
            hits = [r for r in reads if iou(r.box_px, tuple(box)) >= 0.5]  # type: ignore[arg-type]
            assert hits and hits[0].text.text == plate, f"{name}: {plate} not read: {reads}"


def test_video_frames_split_by_time_block_never_by_frame() -> None:
    names = [f"ride_a_t{t:05d}.jpg" for t in range(0, 3000)]
    parts = {n: frame_part(n) for n in names}
    assert {"val", "train", "holdout", "guard"} <= set(parts.values())
    for t in range(3000):
        n = names[t]
        same_block = {parts[names[u]] for u in range(t - t % BLOCK_S, t - t % BLOCK_S + BLOCK_S)
                      if u < 3000} - {"guard"}
        assert len(same_block) == 1, "one block is one part"
        if parts[n] in ("train", "holdout"):
            # no frame within GUARD_S seconds belongs to another part
            near = {parts[names[u]] for u in range(max(0, t - GUARD_S), min(3000, t + GUARD_S + 1))}
            assert near <= {parts[n], "guard"}
    assert all(frame_in_split(n, "train") == (parts[n] in ("train", "holdout")) for n in names)
    assert all(frame_in_split(n, "val") == (parts[n] == "val") for n in names)


def test_eval_reads_a_boxes_only_folder(
    tmp_path: Path, demo: dict[str, dict[str, list]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "boxes"
    folder.mkdir()
    rows = ["file,x,y,w,h"]
    for name, truth in demo.items():
        (folder / name).write_bytes((DEMO_DIR / name).read_bytes())
        rows += [f"{name},{b[0]},{b[1]},{b[2]},{b[3]}" for b in truth["boxes"]]
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    assert is_boxes_only(folder)
    frames = find_boxed_frames(folder, "all")
    assert len(frames) == len(demo) and all(p.text == "" for f in frames for p in f.plates)
    assert find_scenes(folder, "all") == frames
    assert eval_scenes_main(Config(), folder, split="all") == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    overall = result["groups"]["overall"]
    assert result["boxes_only"] is True
    assert overall["plates"] == sum(len(t["boxes"]) for t in demo.values())
    assert overall["found_recall"] == 1.0
    assert "boxes-only folder" in out and "by light" in out
