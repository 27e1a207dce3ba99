"""Draw the bundled demo frames: rendered plates on synthetic, car-like 1280x720 scenes.

    PYTHONPATH=. .venv/bin/python -m edge_anpr.train demo_frames

Each frame is a road scene drawn with OpenCV (sky, buildings, road, a car body with windscreen,
lights, grille and bumper) with one plate from ``edge_anpr.train.render`` warped onto the
bumper. Nothing of the real photographs is used, so the frames can be committed. Writes
``edge_anpr/assets/demo/frame_NN.jpg`` and ``edge_anpr/assets/demo/expected.json``
(file -> {"plates": [text], "boxes": [[x, y, w, h]], ...}).

The demo must show reads, so a drawn frame is kept only when the shipped detector and reader
read its plate exactly (``--no-check`` skips that); the seeds tried and kept are logged. This is
a demo, not a measurement: accuracy figures come from ``edge-anpr eval`` on real photographs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import cv2
import numpy as np

from edge_anpr.train.render import render_plate

log = logging.getLogger("edge_anpr.train.demo_frames")

W, H = 1280, 720
DEMO_DIR = Path(__file__).resolve().parents[1] / "assets" / "demo"
LAYOUTS = ("eu", "us", "br_mercosur", "de", "us", "nl", "br_old", "uk_rear", "us", "eu")


def _vertical_gradient(h: int, w: int, top: tuple[int, int, int],
                       bottom: tuple[int, int, int]) -> np.ndarray:
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    a = np.array(top, np.float32)[None, None, :]
    b = np.array(bottom, np.float32)[None, None, :]
    return np.broadcast_to(a * (1 - t) + b * t, (h, w, 3)).astype(np.uint8)


def draw_scene(rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A BGR street scene with a car; returns it and the bumper rectangle for the plate."""
    img = np.zeros((H, W, 3), np.uint8)
    horizon = int(rng.integers(250, 330))
    img[:horizon] = _vertical_gradient(horizon, W, (235, 200, 160), (250, 235, 215))
    # Buildings along the horizon.
    x = 0
    while x < W:
        bw = int(rng.integers(80, 220))
        bh = int(rng.integers(60, 200))
        col = tuple(int(c) for c in rng.integers(90, 200, 3))
        cv2.rectangle(img, (x, horizon - bh), (x + bw, horizon), col, -1)
        for wy in range(horizon - bh + 12, horizon - 15, 28):
            for wx in range(x + 10, x + bw - 20, 30):
                cv2.rectangle(img, (wx, wy), (wx + 14, wy + 16), (60, 60, 70), -1)
        x += bw + int(rng.integers(0, 30))
    img[horizon:] = _vertical_gradient(H - horizon, W, (110, 110, 112), (80, 80, 84))
    for k in range(6):  # lane markings in perspective
        y0 = horizon + 20 + k * 70
        cv2.line(img, (W // 2 - 4 - k * 6, y0), (W // 2 - 8 - k * 10, y0 + 35), (230, 230, 230),
                 3 + k)
    # The car: body, windscreen, bumper, lights, wheels.
    cw = int(rng.integers(560, 760))
    cx = int(rng.integers(cw // 2 + 40, W - cw // 2 - 40))
    top = int(rng.integers(150, 230))
    bottom = int(rng.integers(600, 690))
    body = tuple(int(c) for c in rng.integers(20, 230, 3))
    x0, x1 = cx - cw // 2, cx + cw // 2
    for wx in (x0 + 40, x1 - 130):
        cv2.rectangle(img, (wx, bottom - 30), (wx + 90, bottom + 25), (25, 25, 25), -1)
    roof = (cx - cw // 3, top)
    cv2.rectangle(img, (x0, top + 150), (x1, bottom), body, -1, cv2.LINE_AA)
    pts = np.array([[x0 + 40, top + 150], [roof[0], top], [cx + cw // 3, top],
                    [x1 - 40, top + 150]], np.int32)
    cv2.fillPoly(img, [pts], body, cv2.LINE_AA)
    glass = np.array([[x0 + 80, top + 140], [roof[0] + 25, top + 18], [cx + cw // 3 - 25, top + 18],
                      [x1 - 80, top + 140]], np.int32)
    cv2.fillPoly(img, [glass], (70, 60, 50), cv2.LINE_AA)
    ly = top + 200
    for lx in (x0 + 30, x1 - 150):
        cv2.rectangle(img, (lx, ly), (lx + 120, ly + 45), (220, 235, 245), -1, cv2.LINE_AA)
        cv2.rectangle(img, (lx, ly), (lx + 120, ly + 45), (40, 40, 40), 2, cv2.LINE_AA)
    grille = (cx - 130, ly + 5, 260, 50)
    cv2.rectangle(img, grille[:2], (grille[0] + grille[2], grille[1] + grille[3]), (35, 35, 35), -1)
    for gy in range(grille[1] + 8, grille[1] + grille[3], 10):
        cv2.line(img, (grille[0] + 5, gy), (grille[0] + grille[2] - 5, gy), (90, 90, 90), 2)
    bumper_y = ly + 80
    dark = tuple(max(0, c - 40) for c in body)
    cv2.rectangle(img, (x0 - 10, bumper_y), (x1 + 10, bottom - 35), dark, -1, cv2.LINE_AA)
    return img, (cx, bumper_y, x0, x1)


def place_plate(scene: np.ndarray, plate_rgb: np.ndarray, cx: int, cy: int, width: int,
                rng: np.random.Generator) -> tuple[int, int, int, int]:
    """Warp the plate face onto the scene centred at (cx, cy); returns its bounding box."""
    ph, pw = plate_rgb.shape[:2]
    height = width * ph / pw
    tilt = float(rng.uniform(-0.03, 0.03)) * width
    skew = float(rng.uniform(-0.02, 0.02)) * width
    dst = np.array([
        [cx - width / 2 + skew, cy - height / 2 + tilt],
        [cx + width / 2 + skew, cy - height / 2 - tilt],
        [cx + width / 2, cy + height / 2 - tilt],
        [cx - width / 2, cy + height / 2 + tilt],
    ], np.float32)
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    bgr = cv2.cvtColor(plate_rgb, cv2.COLOR_RGB2BGR)
    warped = cv2.warpPerspective(bgr, m, (W, H), flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.full((ph, pw), 255, np.uint8), m, (W, H), flags=cv2.INTER_AREA)
    alpha = (mask.astype(np.float32) / 255.0)[:, :, None]
    scene[:] = (scene * (1 - alpha) + warped * alpha).astype(np.uint8)
    xs, ys = dst[:, 0], dst[:, 1]
    x0, y0 = int(np.floor(xs.min())), int(np.floor(ys.min()))
    return x0, y0, int(np.ceil(xs.max())) - x0, int(np.ceil(ys.max())) - y0


def make_frame(seed: int, layout: str) -> tuple[bytes, str, tuple[int, int, int, int]]:
    rng = np.random.default_rng(seed)
    scene, (cx, bumper_y, _, _) = draw_scene(rng)
    plate = render_plate(rng, layout)
    width = int(rng.integers(170, 250)) if plate.image.shape[1] / plate.image.shape[0] > 3 else \
        int(rng.integers(140, 200))
    box = place_plate(scene, plate.image, cx, bumper_y + 60, width, rng)
    noise = rng.normal(0, 3, scene.shape)
    scene = np.clip(scene + noise, 0, 255).astype(np.uint8)
    scene = cv2.GaussianBlur(scene, (3, 3), 0)
    ok, buf = cv2.imencode(".jpg", scene, [cv2.IMWRITE_JPEG_QUALITY, 82])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes(), plate.text, box


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_anpr.train demo_frames")
    ap.add_argument("--count", type=int, default=8)
    ap.add_argument("--out", type=Path, default=DEMO_DIR)
    ap.add_argument("--no-check", action="store_true",
                    help="keep frames even when the shipped models do not read them")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cv2.setNumThreads(1)
    recognizer = None
    if not args.no_check:
        from edge_anpr.config import Config
        from edge_anpr.vision.recognize import FrameRecognizer

        recognizer = FrameRecognizer(Config())
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("frame_*.jpg"):
        old.unlink()
    expected: dict[str, dict[str, object]] = {}
    seed = 0
    while len(expected) < args.count and seed < 400:
        layout = LAYOUTS[len(expected) % len(LAYOUTS)]
        data, text, box = make_frame(seed, layout)
        seed += 1
        if recognizer is not None:
            found = recognizer.recognize_jpeg(data) or []
            texts = [f.text.text for f in found]
            if texts[:1] != [text]:
                log.info("skip seed=%d layout=%s text=%s read=%s", seed - 1, layout, text, texts)
                continue
        name = f"frame_{len(expected):02d}.jpg"
        (args.out / name).write_bytes(data)
        expected[name] = {"plates": [text], "boxes": [list(box)], "layout": layout,
                          "seed": seed - 1}
        log.info("kept seed=%d layout=%s text=%s file=%s bytes=%d", seed - 1, layout, text, name,
                 len(data))
    (args.out / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    total = sum((args.out / n).stat().st_size for n in expected)
    log.info("frames=%d tried=%d total_bytes=%d", len(expected), seed, total)
    if len(expected) < args.count:
        print(f"only {len(expected)} of {args.count} frames were read correctly", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
