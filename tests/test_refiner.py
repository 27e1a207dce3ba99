"""The plate refiner: window geometry (pure) and the shipped network on rendered frames."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_anpr.assets import DEMO_DIR
from edge_anpr.boxes import iou
from edge_anpr.config import Config, DetectorConfig
from edge_anpr.vision.reader import make_reader
from edge_anpr.vision.recognize import FrameRecognizer, decode_jpeg, plate_crop, refiner_path
from edge_anpr.vision.refine import (
    WINDOW_H,
    WINDOW_SCALE,
    WINDOW_W,
    PlateRefiner,
    box_in_frame,
    cut_window,
    window_of,
)


def test_window_is_centred_on_the_proposal_and_scaled_from_its_width() -> None:
    x0, y0, ww, wh = window_of((100, 50, 80, 20))
    assert ww == pytest.approx(WINDOW_SCALE * 80)
    assert wh == pytest.approx(ww * WINDOW_H / WINDOW_W)
    assert x0 + ww / 2 == pytest.approx(140)
    assert y0 + wh / 2 == pytest.approx(60)


def test_cut_window_repeats_edges_outside_the_frame() -> None:
    gray = np.full((40, 60), 7, np.uint8)
    gray[:, :30] = 200
    out = cut_window(gray, (-30.0, -10.0, 120.0, 60.0))
    assert out.shape == (WINDOW_H, WINDOW_W)
    assert out.dtype == np.uint8
    assert out[:, 0].min() == 200  # left of the frame: the left edge repeated
    assert out[:, -1].max() == 7
    # a window entirely outside the frame is blank, not an error
    assert cut_window(gray, (500.0, 500.0, 10.0, 5.0)).max() == 0


def test_box_in_frame_maps_shares_back_and_clips() -> None:
    win = (100.0, 40.0, 200.0, 100.0)
    assert box_in_frame(win, (0.25, 0.4, 0.75, 0.6), 1000, 1000) == (150, 80, 100, 20)
    # edges past the frame are clipped; a box never gets zero size
    x, y, w, h = box_in_frame(win, (0.0, 0.0, 1.0, 1.0), 250, 120)
    assert (x, y, x + w, y + h) == (100, 40, 250, 120)
    assert box_in_frame(win, (0.5, 0.5, 0.5, 0.5), 1000, 1000)[2:] == (1, 1)


def _demo() -> dict[str, dict[str, object]]:
    expected = DEMO_DIR / "expected.json"
    if not expected.exists():
        pytest.skip("no bundled demo frames")
    return dict(json.loads(expected.read_text()))


def test_refiner_boxes_the_whole_plate_from_a_shifted_proposal() -> None:
    """A proposal cut short on the left by a quarter of the plate (the HoG scanner's typical
    error) comes back holding the whole plate: the reader reads every character from the
    refined box, which overlaps the drawn plate (median IoU >= 0.6: the renderer's box holds
    the plate's rim and a US plate's state name and slogan, the scene labels the network
    learnt from hold less)."""
    cfg = Config()
    refiner = PlateRefiner(refiner_path(cfg))
    reader = make_reader(cfg)
    ious, scores, reads, texts = [], [], [], []
    for name, item in _demo().items():
        gray = decode_jpeg((DEMO_DIR / name).read_bytes(), grey=True)
        assert gray is not None
        for box, text in zip(item["boxes"], item["plates"], strict=True):  # type: ignore[call-overload]
            x, y, w, h = box
            proposal = (x + w // 4, y, w - w // 4, h)
            (r,) = refiner.refine(gray, [proposal])
            ious.append(iou(r.box_px, tuple(box)))
            scores.append(r.score)
            (read,) = reader.read_many([plate_crop(gray, r.box_px)])
            reads.append(read.text if read is not None else "")
            texts.append(text)
    assert len(ious) >= 6
    assert min(scores) >= DetectorConfig().min_refined_score, scores
    assert reads == texts
    assert float(np.median(ious)) >= 0.6, ious


def test_refiner_rejects_windows_without_a_plate() -> None:
    """Blank, noise and the sky-and-road parts of the demo frames are not plates."""
    refiner = PlateRefiner(refiner_path(Config()))
    rng = np.random.default_rng(0)
    name, item = next(iter(_demo().items()))
    gray = decode_jpeg((DEMO_DIR / name).read_bytes(), grey=True)
    assert gray is not None
    x, y, w, h = item["boxes"][0]  # type: ignore[index]
    far = [(bx, by, 200, 50) for bx in (0, 400, 900) for by in (0, 300)
           if iou((bx, by, 200, 50), (x, y, w, h)) == 0 and by + 50 < y]
    noise = rng.integers(0, 256, gray.shape, dtype=np.uint8)
    flat = np.full_like(gray, 128)
    scores = [r.score for r in refiner.refine(gray, far)]
    scores += [r.score for r in refiner.refine(noise, [(100, 100, 200, 50), (600, 300, 120, 30)])]
    scores += [r.score for r in refiner.refine(flat, [(100, 100, 200, 50)])]
    assert max(scores) < DetectorConfig().min_refined_score, scores


def test_every_detector_kind_reads_the_demo_frames() -> None:
    for kind in ("hog", "cascade", "dnn"):
        cfg = Config(detector=DetectorConfig(kind=kind))  # type: ignore[arg-type]
        rec = FrameRecognizer(cfg)
        assert (rec.refiner is None) == (kind == "hog")
        for name, item in _demo().items():
            found = rec.recognize_jpeg((DEMO_DIR / name).read_bytes())
            assert found is not None
            assert [f.text.text for f in found][:1] == item["plates"][:1], (kind, name)  # type: ignore[index]


def test_every_specific_region_format_has_a_digit() -> None:
    """The recognizer refuses, for a camera with specific regions, a read with no digit that
    fits none of their formats; that holds only while every format has a digit slot."""
    from edge_anpr.plates.formats import REGIONS

    for region, patterns in REGIONS.items():
        for pattern in patterns:
            assert "#" in pattern, (region, pattern)
