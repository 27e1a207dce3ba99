"""The snapshot of a plate event: the plate with its vehicle around it, as a small JPEG.

``make_snapshot(frame_jpeg, box_px)`` decodes the frame in colour, cuts the area a vehicle
around the plate takes (``VEHICLE_*``: a plate is about a fifth of a car's width and sits low
on it), scales it to at most ``max_width_px`` wide and encodes it, lowering the quality and
then the size until it fits ``max_bytes``. It is called by the event stage only for a read that
starts or improves an event, so a car held in front of a camera costs one snapshot per better
read, not one per frame.

Bounds: the frame is decoded only when its header says at most ``max_pixels`` (the frames
reaching here passed the same check in the worker); the result is at most ``max_width_px``
wide, at most ``max_width_px * VEHICLE_HEIGHT / VEHICLE_WIDTH`` high and at most
``max_bytes`` long.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from edge_anpr.boxes import BoxPx
from edge_anpr.errors import ImageTooLarge
from edge_anpr.vision.recognize import decode_jpeg

VEHICLE_WIDTH = 4.0
"""Width of the cut, in plate widths, centred on the plate."""
VEHICLE_HEIGHT = 3.0
"""Height of the cut, in plate widths ..."""
VEHICLE_ABOVE = 0.75
"""... of which this share is above the plate's centre (the car's body and windscreen)."""
DEFAULT_MAX_BYTES = 96 * 1024
QUALITIES = (80, 65, 50, 35)
MIN_WIDTH_PX = 64


def vehicle_area(box: BoxPx, img_w: int, img_h: int) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the part of the frame around the plate ``box`` that shows its
    vehicle, clipped to the frame (never empty for a box inside it)."""
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    half_w = VEHICLE_WIDTH * w / 2
    above, below = VEHICLE_HEIGHT * w * VEHICLE_ABOVE, VEHICLE_HEIGHT * w * (1 - VEHICLE_ABOVE)
    x0, x1 = max(0, round(cx - half_w)), min(img_w, round(cx + half_w))
    y0, y1 = max(0, round(cy - above)), min(img_h, round(cy + below))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def make_snapshot(
    frame_jpeg: bytes, box: BoxPx, *, max_width_px: int = 640,
    max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = 10_000_000,
) -> bytes | None:
    """The JPEG snapshot of the vehicle around ``box`` in ``frame_jpeg``; None when the frame
    does not decode or is above ``max_pixels``."""
    try:
        image = decode_jpeg(frame_jpeg, max_pixels=max_pixels)
    except ImageTooLarge:
        return None
    if image is None:
        return None
    img_h, img_w = image.shape[:2]
    x0, y0, x1, y1 = vehicle_area(box, img_w, img_h)
    cut = image[y0:y1, x0:x1]
    width = min(max_width_px, cut.shape[1])
    while True:
        scaled = _scaled(cut, width)
        for quality in QUALITIES:
            ok, buf = cv2.imencode(".jpg", scaled, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok and buf.size <= max_bytes:
                return bytes(buf.tobytes())
        if width <= MIN_WIDTH_PX:
            return None
        width = max(MIN_WIDTH_PX, width * 3 // 4)


def _scaled(image: NDArray[np.uint8], width: int) -> NDArray[np.uint8]:
    h, w = image.shape[:2]
    if w <= width:
        return image
    height = max(1, round(h * width / w))
    return np.asarray(
        cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), np.uint8
    )
