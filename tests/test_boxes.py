"""The shared box arithmetic: IoU, non-maximum suppression and margin crops."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_anpr.boxes import crop_bounds, iou, nms
from edge_anpr.vision.hog import Detection

_box = st.tuples(
    st.integers(-50, 300), st.integers(-50, 300), st.integers(0, 120), st.integers(0, 60)
)


def test_iou_known_values() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_nms_keeps_best_of_overlapping_and_separate_boxes() -> None:
    dets = [
        Detection((100, 100, 80, 20), 0.5, "eu"),
        Detection((104, 98, 80, 40), 1.5, "us"),  # same plate, other shape, better score
        Detection((400, 300, 80, 20), 0.2, "eu"),  # elsewhere
        Detection((402, 301, 78, 20), 0.1, "eu"),
    ]
    kept = nms(dets, 0.3)
    assert [d.score for d in kept] == [1.5, 0.2]
    assert nms(dets, 0.3, limit=1) == [dets[1]]


_boxes = st.lists(
    st.tuples(
        st.integers(0, 300), st.integers(0, 300), st.integers(8, 120), st.integers(4, 60),
        st.floats(-3, 3, allow_nan=False),
    ),
    max_size=30,
)


@given(_boxes, st.floats(0.05, 0.9))
def test_nms_properties(raw: list[tuple[int, int, int, int, float]], thr: float) -> None:
    dets = [Detection((x, y, w, h), s, "eu") for x, y, w, h, s in raw]
    kept = nms(dets, thr)
    assert all(k in dets for k in kept)
    for i, a in enumerate(kept):
        for b in kept[i + 1 :]:
            assert iou(a.box_px, b.box_px) <= thr
    if dets:
        assert kept[0].score == max(d.score for d in dets)
    # Every dropped box overlaps a kept box that scores at least as well.
    for d in dets:
        if d not in kept:
            assert any(iou(d.box_px, k.box_px) > thr and k.score >= d.score for k in kept)


@given(_box, _box)
def test_iou_is_symmetric_and_bounded(a: tuple[int, int, int, int],
                                      b: tuple[int, int, int, int]) -> None:
    assert iou(a, b) == iou(b, a)
    assert 0.0 <= iou(a, b) <= 1.0
    if a[2] and a[3]:
        assert iou(a, a) == 1.0
    else:  # a box with no area overlaps nothing, itself included
        assert iou(a, a) == 0.0


def test_iou_of_sub_pixel_boxes() -> None:
    assert iou((0.5, 0.0, 2.0, 1.0), (1.5, 0.0, 2.0, 1.0)) == pytest.approx(1 / 3)


@given(_box, st.floats(0.0, 0.5), st.floats(0.0, 0.5), st.integers(1, 320), st.integers(1, 240))
def test_crop_bounds_grow_the_box_and_stay_in_the_image(
    box: tuple[int, int, int, int], mx: float, my: float, img_w: int, img_h: int
) -> None:
    x0, y0, x1, y1 = crop_bounds(box, mx, my, img_w, img_h)
    assert x0 >= 0 and y0 >= 0 and x1 <= img_w and y1 <= img_h
    x, y, w, h = box
    # Inside the image, the crop holds the whole box (to rounding, half a pixel).
    if x1 > x0 and y1 > y0:
        assert x0 <= max(0, x) + 0.5 and x1 >= min(img_w, x + w) - 0.5
        assert y0 <= max(0, y) + 0.5 and y1 >= min(img_h, y + h) - 0.5


def test_crop_bounds_known_values() -> None:
    assert crop_bounds((100, 50, 80, 20), 0.1, 0.5, 640, 480) == (92, 40, 188, 80)
    assert crop_bounds((0, 0, 80, 20), 0.1, 0.5, 60, 15) == (0, 0, 60, 15)
    assert crop_bounds((700, 500, 80, 20), 0.1, 0.5, 640, 480) == (692, 490, 640, 480)
