"""Pure parts of the plate detector: scale selection, features, layout, scan, model files."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_anpr.errors import ModelError
from edge_anpr.vision.hog import DetectorModel, PlateDetector, WindowModel
from edge_anpr.vision.hog.features import (
    CELLS_PER_PLATE,
    NBINS,
    micro_channels,
    orientation_channels,
)
from edge_anpr.vision.hog.layout import PackedLayout, pack_grids
from edge_anpr.vision.hog.pyramid import SCALE_STEP, FeaturePyramid, plate_widths
from edge_anpr.vision.hog.scoring import score_maps
from edge_anpr.vision.hog.verifier import (
    VERIFY_MARGIN,
    VERIFY_SIZE,
    verify_features,
    verify_features_many,
)


@given(st.floats(16, 400), st.floats(1.0, 20.0))
def test_plate_widths_cover_the_range_geometrically(lo: float, ratio: float) -> None:
    hi = lo * ratio
    widths = plate_widths(lo, hi)
    assert widths[0] == lo
    # Every plate width in [lo, hi] is within a factor sqrt(step) of a searched width.
    for w in np.geomspace(lo, hi, 25):
        nearest = min(abs(math.log(w / s)) for s in widths)
        assert nearest <= math.log(SCALE_STEP) / 2 + 1e-9
    # ...and no scale is wasted beyond the range.
    assert widths[-1] < hi * SCALE_STEP
    assert all(b / a == pytest.approx(SCALE_STEP) for a, b in itertools.pairwise(widths))


def test_plate_widths_reject_inverted_range() -> None:
    with pytest.raises(ValueError):
        plate_widths(200, 100)


def test_orientation_channels_put_vertical_edges_in_the_horizontal_gradient_bin() -> None:
    img = np.zeros((32, 32), np.uint8)
    img[:, 16:] = 200  # a vertical edge: gradient along x, angle 0
    ch = orientation_channels(img)
    assert ch.shape == (32, 32, NBINS)
    energy = ch[4:28, 14:18].sum(axis=(0, 1))
    # Bins are centred at 10, 30, ... 170 degrees: angle 0 splits between the first and last.
    assert energy[0] + energy[-1] > 0.99 * energy.sum()
    assert energy.sum() > 0


def test_grid_cell_size_follows_plate_width() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (720, 1280), dtype=np.uint8)
    pyr = FeaturePyramid(img, 60 / CELLS_PER_PLATE)
    for width in plate_widths(60, 600):
        grid = pyr.grid(width)
        assert grid is not None
        assert grid.cell_px == pytest.approx(width / CELLS_PER_PLATE, rel=0.03)
        dim, _, cols = grid.blocks.shape
        assert dim == 4 * NBINS
        assert cols == pytest.approx(1280 / grid.cell_px - 1, abs=1.5)
        norms = np.linalg.norm(grid.blocks, axis=0)
        assert np.all(norms <= 1.0 + 1e-4)


def _toy_model(bias: float = 0.0) -> DetectorModel:
    rng = np.random.default_rng(3)
    w = rng.normal(size=(3, 9, 4 * NBINS)).astype(np.float32)
    return DetectorModel((WindowModel("eu", (10, 4), (1.0, 1.1, 8.0, 1.8), w, bias),), 0.0, "toy")


def test_score_maps_equal_explicit_window_dot_products() -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (200, 300), dtype=np.uint8)
    model = _toy_model(0.25)
    grid = FeaturePyramid(img, 8.0).grid(64.0)
    assert grid is not None
    (smap,) = score_maps(grid, list(model.models))
    assert smap is not None
    wm = model.models[0]
    for row, col in [(0, 0), (3, 5), (smap.shape[0] - 1, smap.shape[1] - 1)]:
        window = grid.blocks[:, row : row + 3, col : col + 9].transpose(1, 2, 0)
        expected = float((window * wm.weights).sum() + wm.bias)
        assert smap[row, col] == pytest.approx(expected, rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("shape", [(37, 53), (40, 64), (2, 9), (1, 7), (7, 1), (3, 3)])
def test_micro_channels_are_the_2x2_means_of_the_orientation_channels(
    shape: tuple[int, int],
) -> None:
    img = np.random.default_rng(5).integers(0, 255, shape, dtype=np.uint8)
    chans = orientation_channels(img)
    h, w = shape[0] // 2 * 2, shape[1] // 2 * 2
    if h and w:
        expected = chans[0:h:2, 0:w:2] + chans[1:h:2, 0:w:2]
        expected += chans[0:h:2, 1:w:2]
        expected += chans[1:h:2, 1:w:2]
        expected *= 0.25
    else:
        expected = chans
    got = micro_channels(img)
    assert got.shape == (NBINS // 3, *expected.shape[:2], 3)
    # Bit for bit: the fast layout must not change the features the model was trained on.
    np.testing.assert_array_equal(got.transpose(1, 2, 0, 3).reshape(expected.shape), expected)


def _hog_of_crop_alone(gray: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The verifier's descriptor as the model was trained on it: HoG of the one crop."""
    x, y, w, h = box
    mx, my = VERIFY_MARGIN[0] * w, VERIFY_MARGIN[1] * h
    x0, y0 = max(0, round(x - mx)), max(0, round(y - my))
    x1, y1 = min(gray.shape[1], round(x + w + mx)), min(gray.shape[0], round(y + h + my))
    hog = cv2.HOGDescriptor(VERIFY_SIZE, (8, 8), (4, 4), (4, 4), NBINS)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return np.zeros(hog.getDescriptorSize(), np.float32)
    crop = cv2.resize(gray[y0:y1, x0:x1], VERIFY_SIZE, interpolation=cv2.INTER_AREA)
    return np.asarray(hog.compute(crop), np.float32).reshape(-1)


def test_batched_verifier_features_are_each_crops_own_bit_for_bit() -> None:
    rng = np.random.default_rng(11)
    # Edges and texture, so that a crop's border rows would change its gradients if they
    # saw its neighbour in the stack instead of its own mirrored edge.
    gray = cv2.GaussianBlur(rng.integers(0, 255, (240, 320), dtype=np.uint8), (3, 3), 0)
    boxes = [
        (float(x), float(y), float(w), float(h))
        for x, y, w, h in zip(
            rng.uniform(-30, 310, 40), rng.uniform(-20, 235, 40), rng.uniform(1, 200, 40),
            rng.uniform(1, 60, 40), strict=True,
        )
    ]
    boxes += [(0.0, 0.0, 2.0, 2.0), (319.0, 100.0, 30.0, 10.0)]  # too small once clipped
    expected = np.stack([_hog_of_crop_alone(gray, b) for b in boxes])
    assert not expected[-1].any() and not expected[-2].any()
    np.testing.assert_array_equal(verify_features_many(gray, boxes), expected)
    np.testing.assert_array_equal(verify_features(gray, boxes[3]), expected[3])
    assert verify_features_many(gray, []).shape == (0, expected.shape[1])


def test_pack_grids_places_rectangles_without_overlap() -> None:
    sizes = [(90, 160), (71, 126), (56, 100), (45, 80), (35, 63), (28, 50), (22, 40), (8, 15)]
    origins, (height, width) = pack_grids(sizes)
    used = np.zeros((height, width), np.int32)
    for (y, x), (r, c) in zip(origins, sizes, strict=True):
        used[y : y + r, x : x + c] += 1
    assert used.max() == 1
    assert used.sum() == sum(r * c for r, c in sizes)
    assert used.size < 1.15 * used.sum()


@pytest.mark.parametrize("shape", [(720, 1280), (301, 517), (64, 90)])
def test_scan_finds_what_scanning_each_grid_finds(shape: tuple[int, int]) -> None:
    """The run-time scan (all widths packed in one canvas) against the training path (one
    ``FeaturePyramid.grid`` and ``score_maps`` per width): same windows, same order."""
    rng = np.random.default_rng(7)
    img = rng.integers(0, 255, shape, dtype=np.uint8)
    img = np.asarray(cv2.GaussianBlur(img, (0, 0), 2.0), np.uint8)
    w = rng.normal(size=(3, 9, 4 * NBINS)).astype(np.float32)
    w5 = rng.normal(size=(5, 9, 4 * NBINS)).astype(np.float32)
    model = DetectorModel(
        (
            WindowModel("eu", (10, 4), (1.0, 1.1, 8.0, 1.8), w, 0.1),
            WindowModel("us", (10, 6), (1.0, 1.0, 8.0, 4.0), w5, -0.2),
        ),
        0.0,
        "toy",
    )
    det = PlateDetector(model)
    for lo, hi in [(64, 640), (40, 200)]:
        got = det.scan(img, lo, hi, 1.0)
        expected = []
        widths = plate_widths(lo, hi)
        pyr = FeaturePyramid(img, widths[0] / CELLS_PER_PLATE)
        for pw in widths:
            grid = pyr.grid(pw)
            if grid is None:
                break
            for wm, smap in zip(model.models, score_maps(grid, list(model.models)), strict=True):
                if smap is None:
                    continue
                px, py, pwc, phc = wm.plate_cells
                c = grid.cell_px
                for row, col in zip(*np.nonzero(smap > 1.0), strict=True):
                    x0, y0 = max(0, round((col + px) * c)), max(0, round((row + py) * c))
                    x1 = min(shape[1], round((col + px) * c + pwc * c))
                    y1 = min(shape[0], round((row + py) * c + phc * c))
                    if x1 - x0 >= 4 and y1 - y0 >= 2:
                        box = (x0, y0, x1 - x0, y1 - y0)
                        expected.append((box, float(smap[row, col]), wm.name))
        assert expected, "the toy model should fire somewhere"
        assert [(d.box_px, d.shape) for d in got] == [(b, n) for b, _, n in expected]
        np.testing.assert_allclose([d.score for d in got], [s for _, s, _ in expected],
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(239, 426), (61, 97), (301, 517)])
def test_layout_windows_and_boxes_are_those_of_every_window(shape: tuple[int, int]) -> None:
    """The layout works boxes out per row and column and only for hits: every window's box
    (and the dropping of boxes under 4 x 2 pixels, here made common by plate boxes sticking
    out of their windows) must be what each window's own arithmetic gives, in scan order."""
    w = np.zeros((3, 9, 4 * NBINS), np.float32)
    w5 = np.zeros((5, 9, 4 * NBINS), np.float32)
    models = (
        WindowModel("eu", (10, 4), (-1.3, -0.6, 8.0, 1.8), w, 0.1),
        WindowModel("us", (10, 6), (1.0, 1.0, 8.0, 4.0), w5, -0.2),
        WindowModel("br", (10, 4), (2.5, 1.5, 8.5, 0.26), w, 0.3),
    )
    widths = plate_widths(24, 400)
    pyr = FeaturePyramid(np.zeros(shape, np.uint8), widths[0] / CELLS_PER_PLATE)
    grids = [g for g in (pyr.geometry(pw) for pw in widths) if g is not None]
    layout = PackedLayout.build(grids, models, shape[1], shape[0])
    rows, cols = layout.canvas[0] - 1, layout.canvas[1] - 1
    starts = np.cumsum([0] + [(rows - m.blocks[1] + 1) * (cols - m.blocks[0] + 1)
                              for m in models])
    expected = []
    dropped = 0
    for geo, (y, x) in zip(grids, layout.origins, strict=True):
        for index, model in enumerate(models):
            bw, bh = model.blocks
            map_w = cols - bw + 1
            px, py, pwc, phc = model.plate_cells
            c = geo.cell_px
            for row, col in itertools.product(range(geo.rows - bh), range(geo.cols - bw)):
                x0, y0 = max(0, round((col + px) * c)), max(0, round((row + py) * c))
                x1 = min(shape[1], round((col + px) * c + pwc * c))
                y1 = min(shape[0], round((row + py) * c + phc * c))
                if x1 - x0 < 4 or y1 - y0 < 2:
                    dropped += 1
                    continue
                flat = int(starts[index]) + (y + row) * map_w + x + col
                expected.append((flat, (x0, y0, x1 - x0, y1 - y0), index))
    assert expected and dropped
    boxes, shapes = layout.boxes_of(np.arange(layout.valid.size))
    got = list(zip(layout.valid.tolist(), map(tuple, boxes.T.tolist()), shapes.tolist(),
                   strict=True))
    assert got == expected


def test_scan_is_unchanged_after_other_sizes_grew_the_buffers() -> None:
    """A thread's scratch buffers grow with the largest image seen and are shared by all
    sizes (its score plans for earlier sizes are rebuilt on the new buffer): results must
    not depend on what was scanned before."""
    rng = np.random.default_rng(5)
    small, large = (rng.integers(0, 255, s, dtype=np.uint8) for s in ((240, 320), (600, 900)))
    det = PlateDetector(_toy_model(-1.0))
    first = det.scan(small, 40, 200, 0.0)
    assert first
    det.scan(large, 40, 200, 0.0)
    assert det.scan(small, 40, 200, 0.0) == first


def test_model_file_round_trip(tmp_path: Path) -> None:
    model = _toy_model(0.5)
    path = tmp_path / "m.npz"
    model.save(path)
    back = DetectorModel.load(path)
    assert back.threshold == model.threshold
    assert back.models[0].name == "eu"
    assert back.models[0].bias == pytest.approx(0.5)
    np.testing.assert_array_equal(back.models[0].weights, model.models[0].weights)


def test_broken_model_file_is_a_model_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    path.write_bytes(b"not a model")
    with pytest.raises(ModelError):
        DetectorModel.load(path)


def test_roi_limits_where_boxes_can_be() -> None:
    rng = np.random.default_rng(2)
    img = rng.integers(0, 255, (300, 400), dtype=np.uint8)
    det = PlateDetector(_toy_model(), min_plate_width_px=60, max_plate_width_px=120,
                        score_threshold=-1e9)
    boxes = det.detect(img, roi=(100, 50, 200, 150), limit=50)
    assert boxes
    for d in boxes:
        x, y, w, h = d.box_px
        assert x >= 100 and y >= 50 and x + w <= 300 and y + h <= 200
