"""Train the plate finder (``vision/finder.py``): where in the whole frame are plates?

Run: ``python -m edge_anpr.train finder`` in the training venv (TensorFlow). Writes
``edge_anpr/models/plate_finder.tflite`` (int8). Prepared frames are cached in
``$EDGE_ANPR_TRAIN_CACHE`` (``finder_frames_v1.pkl``); the Keras model is checkpointed there
after every epoch and ``--resume`` continues from it (a run killed mid-way loses one epoch).

Frames, each stored at the size the network sees it at run time (``letterbox_scale``), with
its plate boxes and its *ignore* boxes (real plates nobody boxed: no loss is taken there):

* ``scenes`` TRAINING photographs minus the holdout fifth (``datasplit.in_holdout``), 1280
  wide as ``eval`` sees them; ignore boxes: the plates the review found unlabelled, and every
  plate the current cascade reports that matches no label and reads like a plate number (5 or
  more characters, 2 or more digits: the collection boxes one car of several);
* ``scenes-ro`` frames of the ``train`` part only (``datasplit.frame_part``: validation blocks,
  holdout blocks and the guard frames between are never opened here), with the same ignore
  rule: not every plate of a busy frame is boxed;
* ``negatives`` of the training side: no plate anywhere;
* *composites*: real plate crops (``plate-crops``, ``plate-crops-br`` by plate text,
  ``plate-crops-eu-unlabelled`` by file name, training side only) warped into negatives and
  training frames at 14-220 px wide (28-440 px in a 1280 frame), tilted, sheared, blurred, lit
  and compressed like the frames around them;
* *plate swaps*: a training frame whose boxed plates are replaced by other real crops warped to
  their boxes, so the network sees many plates in the real places plates are.

Training takes 256x256 patches (centred on a plate two times in three), flipped and re-lit at
random. Targets per ``STRIDE`` cell: a heat peak of 1 at each plate's centre cell with a
Gaussian fall-off sized by the plate, the centre's offset in the cell and the coded width
(``encode_width``). Loss: the penalty-reduced focal loss of CenterNet on the heat map (zero
weight inside ignore boxes), plus the L1 error of offset and width at the centre cells.
"""

from __future__ import annotations

import argparse
import csv
import pickle
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from edge_anpr.boxes import iou
from edge_anpr.lab.datasplit import (
    frame_part,
    in_holdout,
    in_split,
    plate_in_split,
    shared_data_dir,
)
from edge_anpr.lab.scenes import IMAGE_SUFFIXES, find_boxed_frames, find_scenes, normalise
from edge_anpr.models import bundled_models_dir
from edge_anpr.train.cache import CACHE
from edge_anpr.train.reader import _tf, export_int8
from edge_anpr.train.refiner import reads_like_plate_number
from edge_anpr.vision.finder import (
    INPUT_H,
    INPUT_W,
    MODEL_FILE,
    STRIDE,
    encode_width,
    fit_to_input,
    letterbox,
)

FRAMES_FILE = "finder_frames_v1.pkl"
PATCH = 256
Box = tuple[float, float, float, float]


def say(msg: str) -> None:
    print(f"[finder {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Frame:
    """A training frame at run-time scale, its plate boxes and ignore boxes (its pixels)."""

    image: np.ndarray
    plates: list[Box]
    ignore: list[Box] = field(default_factory=list)
    source: str = ""


def _scaled(box: tuple[float, ...], f: float) -> Box:
    return (box[0] * f, box[1] * f, box[2] * f, box[3] * f)


class IgnoreFinder:
    """Plates the current cascade reports (in 1280-wide frame pixels), to ignore where unboxed."""

    def __init__(self) -> None:
        from edge_anpr.config import Config, DetectorConfig
        from edge_anpr.vision.recognize import FrameRecognizer

        # The HoG scanner and the refiner: the finder being trained is not there yet.
        self.recognizer = FrameRecognizer(
            Config(detector=DetectorConfig(kind="cascade", min_finder_score=1.0))
        ) if (bundled_models_dir() / MODEL_FILE).exists() else FrameRecognizer(
            Config(detector=DetectorConfig(kind="hog")))

    def unboxed(self, gray1280: np.ndarray, labelled: list[Box]) -> list[Box]:
        reads = self.recognizer.recognize(gray1280)
        out = []
        for r in reads:
            unboxed = all(iou(r.box_px, b) < 0.3 for b in labelled)
            if unboxed and reads_like_plate_number(r.text.text):
                out.append(tuple(float(v) for v in r.box_px))
        return out  # type: ignore[return-value]


def real_frames(data: Path) -> list[Frame]:
    ignore = IgnoreFinder()
    frames: list[Frame] = []
    scenes = [s for s in find_scenes(data / "scenes", "train") if not in_holdout(s.image_path.name)]
    ro = [s for s in find_boxed_frames(data / "scenes-ro", "all")
          if frame_part(s.image_path.name) == "train"]
    for sc in tqdm(scenes + ro, desc="frames", unit="img"):
        img = cv2.imread(str(sc.image_path), cv2.IMREAD_GRAYSCALE)
        if img is None:
            continue
        gray, factor = normalise(img)
        plates = [_scaled(p.box_px, factor) for p in sc.plates]
        skip = [_scaled(p.box_px, factor) for p in sc.unlabelled]
        skip += ignore.unboxed(gray, plates)
        small, s = fit_to_input(gray)
        frames.append(Frame(small, [_scaled(b, s) for b in plates],
                            [_scaled(b, s) for b in skip], sc.group))
    negs = sorted(p for p in (data / "negatives").iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and in_split(p.name, "train"))
    for path in tqdm(negs, desc="negatives", unit="img"):
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if img is None:
            continue
        small, _ = fit_to_input(normalise(img)[0])
        frames.append(Frame(small, [], [], "negatives"))
    return frames


def crop_files(data: Path) -> list[Path]:
    """Training-side real plate crops of every collection."""
    files: list[Path] = []
    br = data / "plate-crops-br"
    with open(br / "labels.csv", newline="") as fh:
        files += [br / r["file"] for r in csv.DictReader(fh) if plate_in_split(r["plate"], "train")]
    us = data / "plate-crops"
    with open(us / "labels.csv", newline="") as fh:
        files += [us / r[0] for r in csv.reader(fh)
                  if len(r) >= 3 and plate_in_split(r[2], "train")]
    eu = data / "plate-crops-eu-unlabelled"
    files += [p for p in sorted(eu.iterdir())
              if p.suffix.lower() in IMAGE_SUFFIXES and in_split(p.name, "train")]
    return files


def warp_into(rng: np.random.Generator, canvas: np.ndarray, crop: np.ndarray,
              quad: np.ndarray) -> None:
    """Paste ``crop`` into ``canvas`` (in place) onto the four corners ``quad`` (TL, TR, BR, BL),
    matched to the light around it, blurred and noised as a camera would see it that small."""
    h, w = crop.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    m = cv2.getPerspectiveTransform(src, quad.astype(np.float32))
    ch, cw = canvas.shape[:2]
    warped = cv2.warpPerspective(crop, m, (cw, ch), flags=cv2.INTER_AREA,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), m, (cw, ch), flags=cv2.INTER_LINEAR)
    x0, y0 = np.floor(quad.min(0)).astype(int)
    x1, y1 = np.ceil(quad.max(0)).astype(int)
    x0, y0, x1, y1 = max(0, x0 - 2), max(0, y0 - 2), min(cw, x1 + 2), min(ch, y1 + 2)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    region = canvas[y0:y1, x0:x1].astype(np.float32)
    plate = warped[y0:y1, x0:x1].astype(np.float32)
    alpha = mask[y0:y1, x0:x1].astype(np.float32) / 255.0
    around = float(region.mean())
    inside = float((plate * alpha).sum() / max(alpha.sum(), 1.0))
    gain = rng.uniform(0.5, 1.2) * (0.35 + 0.65 * around / 128.0) if rng.random() < 0.7 else 1.0
    plate = (plate - inside) * rng.uniform(0.6, 1.1) + inside * gain
    sigma = rng.uniform(0.0, 1.4)
    if sigma > 0.3:
        plate = cv2.GaussianBlur(plate, (0, 0), sigma)
    mixed = alpha * plate + (1 - alpha) * region
    mixed += rng.normal(0, rng.uniform(0, 5), mixed.shape)
    canvas[y0:y1, x0:x1] = np.clip(mixed, 0, 255).astype(np.uint8)


def random_quad(rng: np.random.Generator, cx: float, cy: float, width: float,
                aspect: float) -> np.ndarray:
    """Corners of a plate ``width`` wide seen at an angle: rotation, yaw and shear at random."""
    h = width / aspect
    pts = np.array([[-width / 2, -h / 2], [width / 2, -h / 2], [width / 2, h / 2],
                    [-width / 2, h / 2]], np.float64)
    yaw = rng.uniform(-0.25, 0.25)
    pts[:, 1] *= 1 + np.sign(pts[:, 0]) * yaw * 0.5
    pts[:, 1] += pts[:, 0] * rng.uniform(-0.12, 0.12)
    a = np.deg2rad(rng.uniform(-8, 8))
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return pts @ rot.T + np.array([cx, cy])


def _quad_box(quad: np.ndarray) -> Box:
    x0, y0 = quad.min(0)
    x1, y1 = quad.max(0)
    return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))


def composites(rng: np.random.Generator, frames: list[Frame], crops: list[np.ndarray],
               count: int) -> list[Frame]:
    """Crops warped into backgrounds at random places and sizes (``count`` frames)."""
    out = []
    for _ in tqdm(range(count), desc="composites", unit="img"):
        base = frames[int(rng.integers(len(frames)))]
        canvas = base.image.copy()
        plates, ignore = list(base.plates), list(base.ignore)
        ch, cw = canvas.shape[:2]
        for _ in range(int(rng.integers(1, 4))):
            crop = crops[int(rng.integers(len(crops)))]
            aspect = crop.shape[1] / crop.shape[0]
            width = float(np.exp(rng.uniform(np.log(14), np.log(220))))
            if width > cw * 0.6:
                continue
            cx = rng.uniform(width / 2, cw - width / 2)
            cy = rng.uniform(ch * 0.15, ch - width / aspect)
            box = (cx - width / 2, cy - width / aspect / 2, width, width / aspect)
            if any(iou(box, b) > 0.0 for b in plates + ignore):
                continue
            quad = random_quad(rng, cx, cy, width, aspect)
            warp_into(rng, canvas, crop, quad)
            plates.append(_quad_box(quad))
        out.append(Frame(_recompress(rng, canvas), plates, ignore, "composite"))
    return out


def plate_swaps(rng: np.random.Generator, frames: list[Frame], crops: list[np.ndarray],
                count: int) -> list[Frame]:
    """Frames whose boxed plates are replaced by other real crops warped to their boxes."""
    boxed = [f for f in frames if f.plates]
    out = []
    for _ in tqdm(range(count), desc="plate swaps", unit="img"):
        base = boxed[int(rng.integers(len(boxed)))]
        canvas = base.image.copy()
        for x, y, w, h in base.plates:
            crop = crops[int(rng.integers(len(crops)))]
            quad = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)
            quad += rng.normal(0, 0.03 * h, quad.shape)
            warp_into(rng, canvas, crop, quad)
        out.append(Frame(_recompress(rng, canvas), list(base.plates), list(base.ignore), "swap"))
    return out


def _recompress(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 92))])
    return cv2.imdecode(enc, cv2.IMREAD_GRAYSCALE) if ok else img


def build_frames(data: Path, seed: int, n_composites: int, n_swaps: int) -> list[Frame]:
    rng = np.random.default_rng(seed)
    frames = real_frames(data)
    crops = []
    for path in tqdm(crop_files(data), desc="crops", unit="crop"):
        c = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if c is not None and c.shape[0] >= 12 and c.shape[1] >= 24:
            crops.append(c)
    made = composites(rng, frames, crops, n_composites) + plate_swaps(rng, frames, crops, n_swaps)
    say(f"frames: {len(frames)} real ({sum(len(f.plates) for f in frames)} plates, "
        f"{sum(len(f.ignore) for f in frames)} ignore boxes), {len(made)} made "
        f"({sum(len(f.plates) for f in made)} plates) from {len(crops)} crops")
    return frames + made


# ---------------------------------------------------------------- targets and patches

def targets(plates: list[Box], ignore: list[Box], size: int) -> np.ndarray:
    """(cells, cells, 6): heat, dx, dy, width code, regression weight, heat weight."""
    n = size // STRIDE
    t = np.zeros((n, n, 6), np.float32)
    t[..., 5] = 1.0
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    for x, y, w, h in ignore:
        x0, y0 = int(np.floor(x / STRIDE)), int(np.floor(y / STRIDE))
        x1, y1 = int(np.ceil((x + w) / STRIDE)), int(np.ceil((y + h) / STRIDE))
        t[max(0, y0 - 1):max(0, y1 + 1), max(0, x0 - 1):max(0, x1 + 1), 5] = 0.0
    for x, y, w, h in plates:
        cx, cy = (x + w / 2) / STRIDE, (y + h / 2) / STRIDE
        ix, iy = int(cx), int(cy)
        if not (0 <= ix < n and 0 <= iy < n) or w < 6:
            continue
        sx = max(0.6, w / STRIDE / 6.0)
        sy = max(0.6, h / STRIDE / 3.0)
        g = np.exp(-((xx - ix) ** 2) / (2 * sx * sx) - ((yy - iy) ** 2) / (2 * sy * sy))
        t[..., 0] = np.maximum(t[..., 0], g)
        t[iy, ix, 0] = 1.0
        t[iy, ix, 1:4] = (cx - ix, cy - iy, encode_width(w))
        t[iy, ix, 4] = 1.0
        t[iy, ix, 5] = 1.0
    return t


def patch(rng: np.random.Generator, fr: Frame) -> tuple[np.ndarray, np.ndarray]:
    """A ``PATCH`` square of the frame, rescaled a little and re-lit, and its targets."""
    s = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
    img = fr.image
    if rng.random() < 0.66 and fr.plates:
        x, y, w, h = fr.plates[int(rng.integers(len(fr.plates)))]
        cx = (x + w / 2) * s + rng.uniform(-0.4, 0.4) * PATCH
        cy = (y + h / 2) * s + rng.uniform(-0.4, 0.4) * PATCH
    else:
        cx = rng.uniform(0, img.shape[1] * s)
        cy = rng.uniform(0, img.shape[0] * s)
    ox, oy = cx - PATCH / 2, cy - PATCH / 2
    m = np.float32([[s, 0, -ox], [0, s, -oy]])
    out = cv2.warpAffine(img, m, (PATCH, PATCH),
                         flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def move(b: Box) -> Box:
        return (b[0] * s - ox, b[1] * s - oy, b[2] * s, b[3] * s)

    plates, ignore = [move(b) for b in fr.plates], [move(b) for b in fr.ignore]
    if rng.random() < 0.5:
        out = out[:, ::-1]
        plates = [(PATCH - x - w, y, w, h) for x, y, w, h in plates]
        ignore = [(PATCH - x - w, y, w, h) for x, y, w, h in ignore]
    f = out.astype(np.float32)
    if rng.random() < 0.8:
        f = f * rng.uniform(0.6, 1.4) + rng.uniform(-35, 35)
    if rng.random() < 0.3:
        gamma = rng.uniform(0.6, 1.6)
        f = 255.0 * (np.clip(f, 0, 255) / 255.0) ** gamma
    if rng.random() < 0.3:
        f += rng.normal(0, rng.uniform(1, 8), f.shape)
    return np.clip(f, 0, 255).astype(np.float32) / 255.0, targets(plates, ignore, PATCH)


# ---------------------------------------------------------------- model

def build_model(height: int | None = None, width: int | None = None):  # type: ignore[no-untyped-def]
    tf = _tf()
    L = tf.keras.layers

    def bn_relu(x):  # type: ignore[no-untyped-def]
        return L.ReLU(6.0)(L.BatchNormalization()(x))

    def block(x, c, s=1):  # type: ignore[no-untyped-def]
        x = bn_relu(L.DepthwiseConv2D(3, strides=s, padding="same", use_bias=False)(x))
        return bn_relu(L.Conv2D(c, 1, use_bias=False)(x))

    inp = tf.keras.Input((height, width, 1))
    x = bn_relu(L.Conv2D(12, 3, strides=2, padding="same", use_bias=False)(inp))  # /2
    x = block(x, 24, 2)  # /4
    x = block(x, 24)
    x = block(x, 40, 2)  # /8
    s8 = block(x, 40)
    x = block(s8, 64, 2)  # /16
    s16 = block(x, 64)
    x = block(s16, 96, 2)  # /32
    x = block(x, 96)
    x = bn_relu(L.Conv2D(64, 1, use_bias=False)(x))
    x = L.Add()([L.UpSampling2D(2)(x), s16])
    x = block(x, 48)
    x = L.Add()([L.UpSampling2D(2)(x), bn_relu(L.Conv2D(48, 1, use_bias=False)(s8))])
    x = block(x, 48)
    x = bn_relu(L.Conv2D(32, 1, use_bias=False)(x))
    out = L.Conv2D(4, 1, activation="sigmoid",
                   bias_initializer=tf.keras.initializers.Constant([-4.0, 0.0, 0.0, 0.0]))(x)
    return tf.keras.Model(inp, out)


def finder_loss(y_true, y_pred):  # type: ignore[no-untyped-def]
    tf = _tf()
    heat, w_reg, w_heat = y_true[..., 0], y_true[..., 4], y_true[..., 5]
    p = tf.clip_by_value(y_pred[..., 0], 1e-4, 1 - 1e-4)
    pos = tf.cast(heat >= 0.999, tf.float32)
    pos_loss = -tf.math.pow(1 - p, 2) * tf.math.log(p) * pos
    neg_loss = -tf.math.pow(1 - heat, 4) * tf.math.pow(p, 2) * tf.math.log(1 - p) * (1 - pos)
    n_pos = tf.maximum(tf.reduce_sum(pos), 1.0)
    focal = tf.reduce_sum((pos_loss + neg_loss) * w_heat) / n_pos
    reg = tf.reduce_sum(tf.abs(y_true[..., 1:4] - y_pred[..., 1:4]) * w_reg[..., None])
    return focal + 2.0 * reg / n_pos


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_anpr.train finder")
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--steps", type=int, default=120, help="batches of 32 patches per epoch")
    ap.add_argument("--composites", type=int, default=1600)
    ap.add_argument("--swaps", type=int, default=500)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--resume", action="store_true", help="continue from the cached checkpoint")
    ap.add_argument("--out", type=Path, default=bundled_models_dir() / MODEL_FILE)
    ap.add_argument("--export-only", action="store_true",
                    help="only convert the cached checkpoint to the int8 model file")
    args = ap.parse_args(argv)
    data = shared_data_dir()
    if data is None:
        print("finder: ../shared/data not found", file=sys.stderr)
        return 1
    CACHE.mkdir(parents=True, exist_ok=True)
    cached = CACHE / FRAMES_FILE
    if cached.exists():
        frames: list[Frame] = pickle.loads(cached.read_bytes())
        say(f"frames from {cached}: {len(frames)}")
    else:
        frames = build_frames(data, args.seed, args.composites, args.swaps)
        cached.write_bytes(pickle.dumps(frames, protocol=pickle.HIGHEST_PROTOCOL))
    tf = _tf()
    ckpt = CACHE / "finder.keras"
    state = CACHE / "finder_epoch.txt"
    if args.export_only:
        trained = tf.keras.models.load_model(ckpt, custom_objects={"finder_loss": finder_loss})
        fixed = build_model(INPUT_H, INPUT_W)
        fixed.set_weights(trained.get_weights())
        rng = np.random.default_rng(args.seed)
        # frames are stored at run-time scale: letterbox only pads them
        rep = [letterbox(frames[int(k)].image)[0].astype(np.float32)[..., None] / 255.0
               for k in rng.permutation(len(frames))[:120]]
        export_int8(fixed, np.stack(rep), args.out, samples=120)
        return 0
    start = 0
    if args.resume and ckpt.exists():
        model = tf.keras.models.load_model(ckpt, custom_objects={"finder_loss": finder_loss})
        start = int(state.read_text()) if state.exists() else 0
        say(f"resumed from {ckpt} after epoch {start}")
    else:
        model = build_model()
        model.compile(tf.keras.optimizers.Adam(2e-3), loss=finder_loss)
    rng = np.random.default_rng(args.seed + start)
    weights = np.array([3.0 if f.source in ("us", "eu", "br", "scenes-ro") else 1.0
                        for f in frames])
    weights /= weights.sum()
    lr = tf.keras.optimizers.schedules.CosineDecay(2e-3, args.epochs * args.steps)

    class Patches(tf.keras.utils.Sequence):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()

        def __len__(self) -> int:
            return args.steps

        def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
            xs, ys = [], []
            for k in rng.choice(len(frames), 32, p=weights):
                x, y = patch(rng, frames[int(k)])
                xs.append(x[..., None])
                ys.append(y)
            return np.stack(xs), np.stack(ys)

    class Keep(tf.keras.callbacks.Callback):  # type: ignore[misc,name-defined]
        def on_epoch_end(self, epoch: int, logs=None) -> None:  # type: ignore[no-untyped-def]
            model.optimizer.learning_rate = float(lr(min(epoch + 1, args.epochs) * args.steps))
            model.save(ckpt)
            state.write_text(str(epoch + 1))

    model.optimizer.learning_rate = float(lr(start * args.steps))
    model.fit(Patches(), epochs=args.epochs, initial_epoch=start, verbose=2, callbacks=[Keep()])
    # Convert in a fresh process (the converter fails in the one that trained: see refiner.py).
    return subprocess.call([sys.executable, "-m", "edge_anpr.train.finder", "--export-only",
                            "--out", str(args.out), "--seed", str(args.seed)])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
