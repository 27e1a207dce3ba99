"""Camera-like degradation of rendered plates into crops like the detector (and the real
crop set) produce: the plate plus a margin of background, seen in perspective, blurred, noisy,
badly lit and JPEG-compressed. Boxes are carried through every geometric step.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge_anpr.train.render import RenderedPlate


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    base = rng.integers(0, 256, 3).astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    if rng.random() < 0.6:
        g = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        img = img * (0.5 + g) if rng.random() < 0.5 else img * (1.5 - g)
    if rng.random() < 0.5:
        small = rng.normal(0, 40, (max(2, h // 16), max(2, w // 16), 3)).astype(np.float32)
        img += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return img.clip(0, 255)


def degrade_plate(
    rng: np.random.Generator, plate: RenderedPlate, *, margin: tuple[float, float] = (-0.03, 0.12)
) -> tuple[np.ndarray, np.ndarray]:
    """Return (grey uint8 crop, float32 N x 4 character boxes in crop pixels)."""
    ph, pw = plate.image.shape[:2]
    ml, mr, mt, mb = (float(rng.uniform(*margin)) for _ in range(4))
    if rng.random() < 0.5:  # the real crop set is tight around US plates
        ml, mr, mt, mb = (float(rng.uniform(-0.02, 0.04)) for _ in range(4))
    out_w = float(rng.uniform(90, 340))
    scale = out_w / (pw * (1 + ml + mr))
    W = max(24, round(out_w))
    H = max(12, round(ph * (1 + mt + mb) * scale))
    src = np.float32([[0, 0], [pw, 0], [pw, ph], [0, ph]])
    dst = np.float32(
        [[ml * pw, mt * ph], [(1 + ml) * pw, mt * ph], [(1 + ml) * pw, (1 + mt) * ph],
         [ml * pw, (1 + mt) * ph]]
    ) * scale
    jitter = 0.05 if rng.random() < 0.7 else 0.1
    dst += rng.uniform(-jitter, jitter, (4, 2)).astype(np.float32) * np.float32([W, H])
    angle = np.deg2rad(float(rng.normal(0, 3)))
    c = np.float32([W / 2, H / 2])
    rot = np.float32([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = (dst - c) @ rot.T + c
    M = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    bg = _background(rng, W, H)
    warped = cv2.warpPerspective(plate.image.astype(np.float32), M, (W, H),
                                 flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.ones((ph, pw), np.float32), M, (W, H))[..., None]
    img = warped * mask + bg * (1 - mask)
    # boxes through the homography
    boxes = plate.boxes
    boxes_out = np.zeros_like(boxes)
    if len(boxes):
        corners = np.stack(
            [boxes[:, [0, 1]], boxes[:, [2, 1]], boxes[:, [2, 3]], boxes[:, [0, 3]]], axis=1
        ).reshape(-1, 1, 2)
        t = cv2.perspectiveTransform(corners.astype(np.float32), M).reshape(-1, 4, 2)
        boxes_out = np.concatenate([t.min(axis=1), t.max(axis=1)], axis=1).astype(np.float32)
    # colour -> grey: sometimes one channel only (IR-like or colour-filter look)
    r = rng.random()
    if r < 0.6:
        grey = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
    elif r < 0.85:
        grey = img[..., int(rng.integers(3))]
    else:  # IR: paint reflects, ink absorbs; colours wash out
        grey = img.max(axis=2) * 0.7 + img.min(axis=2) * 0.3
    grey = _photometric(rng, grey)
    q = int(rng.integers(20, 96))
    ok, enc = cv2.imencode(".jpg", grey.clip(0, 255).astype(np.uint8),
                           [cv2.IMWRITE_JPEG_QUALITY, q])
    out = cv2.imdecode(enc, cv2.IMREAD_GRAYSCALE) if ok else grey.astype(np.uint8)
    if rng.random() < 0.3:  # seen small, upscaled by the detector crop
        f = float(rng.uniform(0.35, 0.8))
        small = cv2.resize(out, (max(8, int(W * f)), max(4, int(H * f))),
                           interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)
    return out, boxes_out


def _photometric(rng: np.random.Generator, g: np.ndarray) -> np.ndarray:
    H, W = g.shape
    if rng.random() < 0.3:  # shadow edge
        x0 = float(rng.uniform(0, W))
        slope = float(rng.uniform(-2, 2))
        yy, xx = np.mgrid[0:H, 0:W]
        side = (xx - x0 - slope * (yy - H / 2)) > 0
        g = np.where(side, g * float(rng.uniform(0.35, 0.8)), g)
    if rng.random() < 0.25:  # glare
        cx, cy = float(rng.uniform(0, W)), float(rng.uniform(0, H))
        sx, sy = float(rng.uniform(0.1, 0.5)) * W, float(rng.uniform(0.1, 0.5)) * H
        yy, xx = np.mgrid[0:H, 0:W]
        g = g + float(rng.uniform(60, 200)) * np.exp(
            -(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2)
        )
    if rng.random() < 0.25:  # dirt
        for _ in range(int(rng.integers(1, 8))):
            cx, cy = int(rng.uniform(0, W)), int(rng.uniform(0, H))
            r = max(1, int(rng.uniform(0.01, 0.06) * W))
            blob = np.zeros_like(g)
            cv2.circle(blob, (cx, cy), r, 1.0, -1)
            blob = cv2.GaussianBlur(blob, (0, 0), max(0.5, r / 2))
            g = g * (1 - blob * float(rng.uniform(0.2, 0.6)))
    # contrast / brightness / gamma / low light
    lo, hi = float(rng.uniform(0, 80)), float(rng.uniform(150, 255))
    g = lo + (g / 255.0) ** float(rng.uniform(0.6, 1.6)) * (hi - lo)
    if rng.random() < 0.15:
        g = g * float(rng.uniform(0.15, 0.45))
    if rng.random() < 0.1:
        g = 255 - g  # some IR cameras / negative-looking plates
    k = rng.random()
    if k < 0.3:
        g = cv2.GaussianBlur(g, (0, 0), float(rng.uniform(0.4, 1.6)))
    elif k < 0.45:
        n = int(rng.integers(3, 9))
        kernel = np.zeros((n, n), np.float32)
        kernel[n // 2, :] = 1.0 / n
        m = cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), float(rng.uniform(0, 180)), 1)
        kernel = cv2.warpAffine(kernel, m, (n, n))
        kernel /= max(1e-6, float(kernel.sum()))
        g = cv2.filter2D(g, -1, kernel)
    g = g + rng.normal(0, float(rng.uniform(0, 12)), g.shape)
    return np.asarray(g.clip(0, 255), np.float32)


def plain_crop(plate: RenderedPlate, margin: float = 0.05, width: int = 320) -> tuple[
    np.ndarray, np.ndarray
]:
    """A clean grey crop (plate plus a flat margin, no degradation) and its character boxes."""
    ph, pw = plate.image.shape[:2]
    mx, my = round(pw * margin), round(ph * margin)
    canvas = np.full((ph + 2 * my, pw + 2 * mx, 3), 90, np.uint8)
    canvas[my : my + ph, mx : mx + pw] = plate.image
    scale = width / canvas.shape[1]
    grey = cv2.cvtColor(canvas, cv2.COLOR_RGB2GRAY)
    grey = cv2.resize(grey, (width, max(8, round(canvas.shape[0] * scale))),
                      interpolation=cv2.INTER_AREA)
    boxes = (plate.boxes + np.float32([mx, my, mx, my])) * scale
    return grey, boxes.astype(np.float32)
