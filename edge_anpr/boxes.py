"""Plate boxes: the one box type and the pure arithmetic on boxes that several stages share.

A box is ``x, y, width, height`` in image pixels, x to the right and y down from the top-left
corner. ``BoxPx`` is the integer box every stage hands on (detections, reads, events); the
functions here also take sub-pixel boxes (floats), which training and the verifier use.
Nothing here imports another module of the package, so every layer may use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

BoxPx = tuple[int, int, int, int]
"""x, y, width, height in image pixels."""


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two boxes, in [0, 1]; 0.0 when they do not overlap.

    Boxes with no area overlap nothing. For integer boxes the intersection and union are
    exact integers and the result is their one division.
    """
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = min(ax + aw, bx + bw) - max(ax, bx)
    ih = min(ay + ah, by + bh) - max(ay, by)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    # iw > 0 implies aw > 0 and bw > 0 (likewise heights), so the union is positive.
    return float(inter / (aw * ah + bw * bh - inter))


class Scored(Protocol):
    """Anything ``nms`` can rank: a box and a score (higher is better)."""

    @property
    def box_px(self) -> BoxPx: ...

    @property
    def score(self) -> float: ...


_S = TypeVar("_S", bound=Scored)


def nms(items: Sequence[_S], iou_threshold: float, limit: int | None = None) -> list[_S]:
    """Greedy non-maximum suppression: best score first, drop boxes overlapping a kept one.

    An item is kept when its ``iou`` with every item kept before it is at most
    ``iou_threshold``; at most ``limit`` are kept (all when None). Equal scores keep their
    input order (the sort is stable). Properties held by ``tests/test_boxes.py``
    (``test_nms_properties``).
    """
    kept: list[_S] = []
    for item in sorted(items, key=lambda d: -d.score):
        box = item.box_px
        if all(iou(box, k.box_px) <= iou_threshold for k in kept):
            kept.append(item)
            if limit is not None and len(kept) >= limit:
                break
    return kept


def crop_bounds(
    box: tuple[float, float, float, float], margin_x: float, margin_y: float, img_w: int,
    img_h: int,
) -> tuple[int, int, int, int]:
    """Slice bounds ``x0, y0, x1, y1`` of ``box`` grown by ``margin_x`` of its width on the
    left and right and ``margin_y`` of its height above and below, rounded (half to even)
    and clipped to an ``img_w`` x ``img_h`` image. Empty (x1 <= x0 or y1 <= y0) when the
    box lies outside the image."""
    x, y, w, h = box
    mx, my = margin_x * w, margin_y * h
    x0, y0 = max(0, round(x - mx)), max(0, round(y - my))
    x1, y1 = min(img_w, round(x + w + mx)), min(img_h, round(y + h + my))
    return x0, y0, x1, y1
