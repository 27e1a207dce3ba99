"""Train the plate refiner (``vision/refine.py``): is there a plate in this window, and where?

Run: ``python -m edge_anpr.train refiner`` in the training venv (TensorFlow). Writes
``edge_anpr/models/plate_refiner.tflite`` (int8) and prints a sanity check. Prepared windows are
cached in ``$EDGE_ANPR_TRAIN_CACHE`` (``refiner_windows_v1.npz``); the Keras model is
checkpointed there after every epoch and a run resumes from it (``--resume``).

Data (all from ``../shared/data``, TRAINING side of the fixed split only):

* scenes (``split_of`` by file name, minus the detector's 20% ``holdout`` kept for choosing
  thresholds) and the ``train`` part of ``scenes-ro`` (time blocks, ``datasplit.frame_part``):
  windows around every labelled plate through jittered proposals (width 0.7-1.45x,
  centre shifted up to 20% of the width and 60% of the height), a third of them from the scene
  shrunk so the plate is 36-72 px wide (small, low-resolution plates), and the HoG detector's
  and the plate finder's real proposals (HoG: threshold -1, widths 40-640 px; finder: heat
  0.05 and up, when ``--finder`` names a model): a proposal whose window holds a labelled plate
  whole is a positive with the plate's box, one whose window misses every plate a negative
  unless its read looks like a plate number (an unboxed plate: ``scenes-ro`` boxes some plates
  of a busy frame, the scenes one car of several), anything between is left out;
* ``negatives/`` (``split_of`` by file name: the validation quarter is never opened here): the
  HoG detector's proposals and random windows, all negatives;
* plate crops (``plate-crops-br`` and ``plate-crops`` by plate text, ``plate-crops-eu-unlabelled``
  by file name): pasted whole into a background window of a negative image, positives for the
  plate/no-plate answer only (their exact plate box is not known); random patches of negative
  images pasted the same way are negatives, so a pasted rectangle alone means nothing.

Every window gets photometric noise (brightness, contrast, blur, JPEG re-compression). The
network: five 3x3 convolution stages (stride 2 in four), a dense layer, five sigmoid outputs
(plate probability; left, top, right, bottom in window shares). Loss: binary cross-entropy on
the probability (windows with weight 0 are ignored) plus 10x the L1 error of the edges on the
windows with a known box.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from edge_anpr.boxes import BoxPx
from edge_anpr.lab.datasplit import frame_part, in_split, plate_in_split, shared_data_dir
from edge_anpr.lab.scenes import (
    IMAGE_SUFFIXES,
    find_boxed_frames,
    find_scenes,
    normalise,
    scale_box,
)
from edge_anpr.models import bundled_models_dir
from edge_anpr.train.cache import CACHE
from edge_anpr.train.detector import holdout
from edge_anpr.train.reader import _tf, conv_block, export_int8
from edge_anpr.vision.hog import PlateDetector, load_detector
from edge_anpr.vision.refine import WINDOW_H, WINDOW_W, Window, cut_window, window_of

WINDOWS_FILE = "refiner_windows_v2.npz"
HARD_FILE = "refiner_hard_v4.npz"
RENDERED_FILE = "refiner_rendered_v1.npz"


def say(msg: str) -> None:
    print(f"[refiner {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Windows:
    """Window pixels and targets: ``y`` is (obj, left, top, right, bottom, w_obj, w_box)."""

    x: list[np.ndarray]
    y: list[np.ndarray]

    def add(self, pixels: np.ndarray, obj: float, edges: tuple[float, float, float, float],
            w_obj: float, w_box: float) -> None:
        self.x.append(pixels)
        self.y.append(np.array([obj, *edges, w_obj, w_box], np.float32))


def photometric(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    out = img.astype(np.float32)
    out = out * rng.uniform(0.6, 1.4) + rng.uniform(-40, 40)
    if rng.random() < 0.3:
        k = int(rng.choice([3, 5]))
        out = cv2.GaussianBlur(out, (k, k), 0)
    out = out + rng.normal(0, rng.uniform(0, 6), out.shape)
    out8 = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        ok, enc = cv2.imencode(".jpg", out8, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 90))])
        if ok:
            out8 = cv2.imdecode(enc, cv2.IMREAD_GRAYSCALE)
    return out8


def label_window(win: Window, plates: list[BoxPx]) -> tuple[str, tuple[float, float, float, float]]:
    """'pos' with the plate's edges in window shares, 'neg', or 'skip' (ambiguous)."""
    x0, y0, ww, wh = win
    best: tuple[float, BoxPx] | None = None
    for p in plates:
        px, py, pw, ph = p
        ix = max(0.0, min(x0 + ww, px + pw) - max(x0, px))
        iy = max(0.0, min(y0 + wh, py + ph) - max(y0, py))
        inside = ix * iy / max(1.0, pw * ph)
        if best is None or inside > best[0]:
            best = (inside, p)
    if best is None or best[0] < 0.15:
        return "neg", (0.0, 0.0, 0.0, 0.0)
    inside, (px, py, pw, ph) = best
    ratio = pw / ww
    if inside < 0.97 or not 0.3 <= ratio <= 0.95:
        return "skip", (0.0, 0.0, 0.0, 0.0)
    edges = ((px - x0) / ww, (py - y0) / wh, (px + pw - x0) / ww, (py + ph - y0) / wh)
    return "pos", tuple(float(min(max(e, 0.0), 1.0)) for e in edges)  # type: ignore[return-value]


class Proposer:
    """The proposals a refiner sees at run time: the HoG scanner's and, with a finder model, the
    finder's; and a reader to tell an unboxed plate from clutter."""

    def __init__(self, detector: PlateDetector, finder: Path | None) -> None:
        from edge_anpr.config import Config
        from edge_anpr.vision.finder import PlateFinder
        from edge_anpr.vision.reader import make_reader

        self.detector = detector
        self.finder = PlateFinder(finder) if finder is not None else None
        self.reader = make_reader(Config())

    def boxes(self, gray: np.ndarray) -> list[tuple[float, float, float, float]]:
        props: list[tuple[float, float, float, float]] = [
            d.box_px for d in self.detector.detect(gray, min_plate_width_px=40,
                                                   max_plate_width_px=640, threshold=-1.0,
                                                   limit=40)]
        if self.finder is not None:
            props += [p.box_px for p in self.finder.propose(gray, min_score=0.05, limit=20)]
        return props

    def look_like_plates(
        self, gray: np.ndarray, boxes: list[tuple[float, float, float, float]]
    ) -> list[bool]:
        """Whether each box reads like a plate number (``reads_like_plate_number``), read in
        one batch."""
        from edge_anpr.vision.recognize import plate_crop

        crops = [plate_crop(gray, tuple(round(v) for v in b)) for b in boxes]  # type: ignore[arg-type]
        return [read is not None and reads_like_plate_number(read.text)
                for read in self.reader.read_many(crops)]


def reads_like_plate_number(text: str) -> bool:
    """5 or more characters, 2 or more of them digits: in a training frame, a read like this
    outside every labelled box is more likely a plate nobody boxed than clutter (stickers and
    badges read as names: SALVADOR, DFBRASILA)."""
    return len(text) >= 5 and sum(c.isdigit() for c in text) >= 2


def scene_windows(rng: np.random.Generator, data: Path, out: Windows, proposer: Proposer,
                  jitters: int, ro_jitters: int | None = None) -> None:
    """Windows of the training scenes and of the ``train`` part of ``scenes-ro``: ``jitters``
    jittered proposals per labelled plate (``ro_jitters`` per ``scenes-ro`` plate, when given),
    then the proposer's real proposals."""
    scenes = [s for s in find_scenes(data / "scenes", "train") if not holdout(s.image_path.name)]
    scenes += [s for s in find_boxed_frames(data / "scenes-ro", "all")
               if frame_part(s.image_path.name) == "train"]
    for sc in tqdm(scenes, desc="scenes", unit="img"):
        per_plate = jitters
        if ro_jitters is not None and sc.image_path.parent.name == "scenes-ro":
            per_plate = ro_jitters
        img = cv2.imread(str(sc.image_path), cv2.IMREAD_GRAYSCALE)
        if img is None:
            continue
        gray, factor = normalise(img)
        plates = [scale_box(p.box_px, factor) for p in sc.plates]
        for p in plates:
            for j in range(per_plate):
                g, f = gray, 1.0
                if j % 3 == 0 and p[2] > 80:
                    f = rng.uniform(36, 72) / p[2]
                    g = cv2.resize(gray, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
                    ok, enc = cv2.imencode(".jpg", g, [cv2.IMWRITE_JPEG_QUALITY,
                                                       int(rng.integers(30, 85))])
                    g = cv2.imdecode(enc, cv2.IMREAD_GRAYSCALE) if ok else g
                pb = tuple(v * f for v in p)
                pw = pb[2] * float(np.exp(rng.uniform(np.log(0.7), np.log(1.45))))
                cx = pb[0] + pb[2] / 2 + rng.uniform(-0.2, 0.2) * pb[2]
                cy = pb[1] + pb[3] / 2 + rng.uniform(-0.6, 0.6) * pb[3]
                win = window_of((cx - pw / 2, cy - pb[3] / 2, pw, pb[3]))
                kind, edges = label_window(win, [tuple(v * f for v in q) for q in plates])  # type: ignore[misc]
                if kind == "pos":
                    out.add(photometric(rng, cut_window(g, win)), 1.0, edges, 1.0, 1.0)
        labelled = [(box, *label_window(window_of(box), plates)) for box in proposer.boxes(gray)]
        negatives = [box for box, kind, _ in labelled if kind == "neg"]
        unboxed = dict(zip(negatives, proposer.look_like_plates(gray, negatives), strict=True))
        for box, kind, edges in labelled:
            win = window_of(box)
            if kind == "pos":
                out.add(photometric(rng, cut_window(gray, win)), 1.0, edges, 1.0, 1.0)
            elif kind == "neg" and not unboxed[box]:
                out.add(photometric(rng, cut_window(gray, win)), 0.0, edges, 1.0, 0.0)


def negative_images(data: Path) -> list[Path]:
    folder = data / "negatives"
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and in_split(p.name, "train"))


def negative_windows(rng: np.random.Generator, data: Path, out: Windows,
                     proposer: Proposer) -> None:
    for path in tqdm(negative_images(data), desc="negatives", unit="img"):
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if img is None:
            continue
        gray, _ = normalise(img)
        boxes = proposer.boxes(gray)
        h, w = gray.shape
        for _ in range(8):
            bw = float(np.exp(rng.uniform(np.log(40), np.log(500))))
            boxes.append((rng.uniform(0, w - bw / 2), rng.uniform(0, h - 10), bw, bw / 3))
        for b in boxes:
            out.add(photometric(rng, cut_window(gray, window_of(b))), 0.0, (0, 0, 0, 0), 1.0, 0.0)


def crop_files(data: Path) -> list[Path]:
    files: list[Path] = []
    br = data / "plate-crops-br"
    with open(br / "labels.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if plate_in_split(row["plate"], "train"):
                files.append(br / row["file"])
    us = data / "plate-crops"
    with open(us / "labels.csv", newline="") as fh:
        for row in csv.reader(fh):
            if len(row) >= 3 and plate_in_split(row[2], "train"):
                files.append(us / row[0])
    eu = data / "plate-crops-eu-unlabelled"
    files += [p for p in sorted(eu.iterdir())
              if p.suffix.lower() in IMAGE_SUFFIXES and in_split(p.name, "train")]
    return files


def _backgrounds(data: Path) -> list[np.ndarray]:
    """The first 120 training negatives, normalised: what plates are pasted into."""
    backgrounds = []
    for path in negative_images(data)[:120]:
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if img is not None:
            backgrounds.append(normalise(img)[0])
    return backgrounds


def _paste(rng: np.random.Generator, backgrounds: list[np.ndarray], plate: np.ndarray,
           out: Windows) -> None:
    """``plate`` pasted whole into a window of a background (a positive), then a background
    patch of the same size pasted the same way (a negative): plate/no-plate targets only."""
    for positive in (True, False):
        bg = backgrounds[int(rng.integers(len(backgrounds)))]
        h, w = bg.shape
        win_w = float(rng.uniform(150, min(600, w - 1)))
        win_h = win_w * WINDOW_H / WINDOW_W
        x0 = rng.uniform(0, w - win_w)
        y0 = rng.uniform(0, max(1.0, h - win_h))
        canvas = cut_window(bg, (x0, y0, win_w, win_h)).copy()
        if positive:
            patch = plate
        else:
            other = backgrounds[int(rng.integers(len(backgrounds)))]
            ph, pw = plate.shape
            oy = int(rng.integers(0, max(1, other.shape[0] - ph)))
            ox = int(rng.integers(0, max(1, other.shape[1] - pw)))
            patch = other[oy : oy + ph, ox : ox + pw]
            if patch.shape[0] < 4 or patch.shape[1] < 4:
                continue
        share = rng.uniform(0.45, 0.85)
        tw = int(share * WINDOW_W)
        th = max(4, min(WINDOW_H - 2, round(tw * patch.shape[0] / patch.shape[1])))
        small = cv2.resize(patch, (tw, th), interpolation=cv2.INTER_AREA)
        px = int(rng.integers(0, WINDOW_W - tw + 1))
        py = int(rng.integers(0, WINDOW_H - th + 1))
        canvas[py : py + th, px : px + tw] = small
        out.add(photometric(rng, canvas), 1.0 if positive else 0.0, (0, 0, 0, 0), 1.0, 0.0)


def pasted_windows(rng: np.random.Generator, data: Path, out: Windows) -> None:
    """Real plate crops pasted into negative backgrounds (plate/no-plate target only), and as
    many pasted background patches (negatives)."""
    backgrounds = _backgrounds(data)
    for path in tqdm(crop_files(data), desc="crops", unit="crop"):
        crop = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if crop is None or crop.shape[0] < 8 or crop.shape[1] < 16:
            continue
        _paste(rng, backgrounds, crop, out)


def rendered_windows(data: Path, count: int, seed: int) -> dict[str, np.ndarray]:
    """``count`` plates drawn by the project's renderer (every layout, by its weights) with a
    margin of a flat grey body, pasted like the real crops (``_paste``), each with a pasted
    background patch as its negative: plate styles the real crops lack (separators, bands,
    stacked lines) stay plates after the hard-negative round."""
    from edge_anpr.train.render import render_plate

    rng = np.random.default_rng(seed + 1)
    backgrounds = _backgrounds(data)
    out = Windows([], [])
    for _ in tqdm(range(count), desc="rendered", unit="plate"):
        plate = render_plate(rng)
        grey = np.asarray(cv2.cvtColor(plate.image, cv2.COLOR_RGB2GRAY), np.uint8)
        ph, pw = grey.shape
        my, mx = int(rng.uniform(0.05, 0.3) * ph), int(rng.uniform(0.02, 0.12) * pw)
        body = int(rng.integers(20, 236))
        grey = np.asarray(cv2.copyMakeBorder(grey, my, my, mx, mx, cv2.BORDER_CONSTANT,
                                             value=body), np.uint8)
        _paste(rng, backgrounds, grey, out)
    say(f"rendered windows: {len(out.x)}")
    return {"x": np.stack(out.x), "y": np.stack(out.y)}


def build_windows(data: Path, jitters: int, seed: int,
                  finder: Path | None, ro_jitters: int | None = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    proposer = Proposer(PlateDetector(load_detector(), verify=False), finder)
    out = Windows([], [])
    scene_windows(rng, data, out, proposer, jitters, ro_jitters)
    n_scene = len(out.x)
    negative_windows(rng, data, out, proposer)
    n_neg = len(out.x) - n_scene
    pasted_windows(rng, data, out)
    y = np.stack(out.y)
    say(f"windows: {len(out.x)} (scenes {n_scene}, negatives {n_neg}, pasted "
        f"{len(out.x) - n_scene - n_neg}); positives {int((y[:, 0] * y[:, 5]).sum())}, "
        f"with boxes {int(y[:, 6].sum())}")
    return {"x": np.stack(out.x), "y": y}


def mine_hard_negatives(data: Path, model_path: Path, seed: int,
                        finder: Path | None = None) -> dict[str, np.ndarray]:
    """Windows the cascade with the model at ``model_path`` (and the finder at ``finder``, when
    given) takes for plates and that are not: every refined proposal of a training scene
    (holdout excluded) or a training negative image with a plate probability >= 0.3 and no
    labelled plate in its window, four jittered windows each. Scenes label one or two plates,
    not every car's: a window in a scene whose read looks like a plate number (5 or more
    characters, at least 2 of them digits) is left out, since it is more likely an unlabelled
    plate than a sticker (stickers and badges read as names: SALVADOR, DFBRASILA)."""
    from edge_anpr.config import load_config
    from edge_anpr.vision.refine import PlateRefiner

    rng = np.random.default_rng(seed)
    from edge_anpr.vision.reader import make_reader
    from edge_anpr.vision.recognize import plate_crop

    cfg = load_config(Path(__file__).resolve().parents[2] / "data" / "eval-scenes.toml")
    reader = make_reader(cfg)
    detector = PlateDetector(load_detector(), verify=False)
    refiner = PlateRefiner(model_path)
    from edge_anpr.vision.finder import PlateFinder

    plate_finder = PlateFinder(finder) if finder is not None else None
    det = cfg.detector
    out = Windows([], [])
    items: list[tuple[Path, list[BoxPx]]] = []
    for sc in find_scenes(data / "scenes", "train"):
        if not holdout(sc.image_path.name):
            items.append((sc.image_path, [p.box_px for p in sc.plates]))
    items += [(p, []) for p in negative_images(data)]
    for path, raw_plates in tqdm(items, desc="mining", unit="img"):
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if img is None:
            continue
        gray, factor = normalise(img)
        plates = [scale_box(b, factor) for b in raw_plates]
        props = [p.box_px for p in detector.detect(
            gray, min_plate_width_px=40, max_plate_width_px=640,
            threshold=det.proposal_threshold, limit=det.max_proposals)]
        if plate_finder is not None:
            props += [p.box_px for p in plate_finder.propose(
                gray, min_score=det.min_finder_score, limit=det.max_proposals)]
        for r in refiner.refine(gray, props):
            if r.score < 0.3:
                continue
            if raw_plates:
                (read,) = reader.read_many([plate_crop(gray, r.box_px)])
                if read is not None and reads_like_plate_number(read.text):
                    continue
            for k in range(4):
                x, y, w, h = r.box_px
                s = float(np.exp(rng.uniform(-0.15, 0.15))) if k else 1.0
                dx = rng.uniform(-0.1, 0.1) * w if k else 0.0
                box = (x + dx + w / 2 - s * w / 2, y + h / 2 - s * h / 2, s * w, s * h)
                win = window_of(box)
                kind, _ = label_window(win, plates)
                if kind == "neg":
                    out.add(photometric(rng, cut_window(gray, win)), 0.0, (0, 0, 0, 0), 1.0, 0.0)
    say(f"hard negatives: {len(out.x)}")
    if not out.x:
        return {"x": np.zeros((0, WINDOW_H, WINDOW_W), np.uint8), "y": np.zeros((0, 7), np.float32)}
    return {"x": np.stack(out.x), "y": np.stack(out.y)}


# ---------------------------------------------------------------- model

def build_model():  # type: ignore[no-untyped-def]
    tf = _tf()
    L = tf.keras.layers


    inp = tf.keras.Input((WINDOW_H, WINDOW_W, 1))
    x = conv_block(inp, 16, 2)  # 32x64
    x = conv_block(x, 24, 2)  # 16x32
    x = conv_block(x, 24)
    x = conv_block(x, 32, 2)  # 8x16
    x = conv_block(x, 32)
    x = conv_block(x, 48, 2)  # 4x8
    x = conv_block(x, 48)
    x = L.Flatten()(x)
    x = L.Dense(96)(x)
    x = L.ReLU(6.0)(x)
    out = L.Dense(5, activation="sigmoid")(x)
    return tf.keras.Model(inp, out)


def refiner_loss(y_true, y_pred):  # type: ignore[no-untyped-def]
    tf = _tf()
    obj_t, w_obj, w_box = y_true[:, 0], y_true[:, 5], y_true[:, 6]
    p = tf.clip_by_value(y_pred[:, 0], 1e-5, 1 - 1e-5)
    bce = -(obj_t * tf.math.log(p) + (1 - obj_t) * tf.math.log(1 - p)) * w_obj
    l1 = tf.reduce_sum(tf.abs(y_true[:, 1:5] - y_pred[:, 1:5]), axis=1) * w_box
    return tf.reduce_mean(bce) + 10.0 * tf.reduce_mean(l1)


def augment_batch(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """Per-epoch light noise on top of the cached windows' own."""
    gain = rng.uniform(0.8, 1.2, (len(x), 1, 1, 1)).astype(np.float32)
    bias = rng.uniform(-0.08, 0.08, (len(x), 1, 1, 1)).astype(np.float32)
    return np.clip(x * gain + bias, 0.0, 1.0)


def _appended(d: dict[str, np.ndarray], path: Path, what: str) -> dict[str, np.ndarray]:
    """``d``'s windows with those cached at ``path`` after them."""
    more = dict(np.load(path))
    say(f"{what} from {path}: {len(more['x'])}")
    return {k: np.concatenate([d[k], more[k]]) for k in ("x", "y")}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_anpr.train refiner")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--jitters", type=int, default=24, help="jittered windows per scene plate")
    ap.add_argument("--ro-jitters", type=int, default=None,
                    help="jittered windows per scenes-ro plate (default: --jitters)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--resume", action="store_true", help="continue from the cached checkpoint")
    ap.add_argument("--resume-lr", type=float, default=5e-4,
                    help="--resume: the constant learning rate of the continued run")
    ap.add_argument("--out", type=Path, default=bundled_models_dir() / "plate_refiner.tflite")
    ap.add_argument("--export-only", action="store_true",
                    help="only convert the cached checkpoint to the int8 model file")
    ap.add_argument("--finder", type=Path, default=None, metavar="MODEL",
                    help="also take this plate finder model's proposals as windows")
    ap.add_argument("--rendered", type=int, default=0, metavar="N",
                    help="add N rendered plates pasted into backgrounds (cached)")
    ap.add_argument("--mine", type=Path, default=None, metavar="MODEL",
                    help="first mine hard negatives with this refiner model (cached; adds them)")
    args = ap.parse_args(argv)
    data = shared_data_dir()
    if data is None:
        print("refiner: ../shared/data not found", file=sys.stderr)
        return 1
    CACHE.mkdir(parents=True, exist_ok=True)
    stem = WINDOWS_FILE.replace(".npz", "")
    if args.finder is not None:
        stem += f"_{args.finder.stem}"
    if args.ro_jitters is not None:
        stem += f"_ro{args.ro_jitters}"
    cached = CACHE / f"{stem}.npz"
    if cached.exists():
        d = dict(np.load(cached))
        say(f"windows from {cached}: {len(d['x'])}")
    else:
        d = build_windows(data, args.jitters, args.seed, args.finder, args.ro_jitters)
        np.savez_compressed(cached, **d)
    hard = CACHE / HARD_FILE
    if args.mine is not None and not hard.exists():
        np.savez_compressed(hard, **mine_hard_negatives(data, args.mine, args.seed, args.finder))
    if hard.exists():
        d = _appended(d, hard, "hard negatives")
    if args.rendered:
        rendered = CACHE / RENDERED_FILE.replace(".npz", f"_{args.rendered}.npz")
        if not rendered.exists():
            np.savez_compressed(rendered, **rendered_windows(data, args.rendered, args.seed))
        d = _appended(d, rendered, "rendered windows")
    tf = _tf()
    x = d["x"].astype(np.float32)[..., None] / 255.0
    y = d["y"]
    ckpt = CACHE / "refiner.keras"
    if args.export_only:
        model = tf.keras.models.load_model(ckpt, custom_objects={"refiner_loss": refiner_loss})
        rep = x[np.random.default_rng(args.seed).permutation(len(x))[:400]]
        export_int8(model, rep, args.out, samples=400)
        return 0
    if args.resume and ckpt.exists():
        model = tf.keras.models.load_model(ckpt, custom_objects={"refiner_loss": refiner_loss})
        say(f"resumed from {ckpt}")
    else:
        model = build_model()
        model.compile(tf.keras.optimizers.Adam(2e-3), loss=refiner_loss)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(x))
    n_val = len(x) // 20
    val, train = order[:n_val], order[n_val:]
    sched = tf.keras.optimizers.schedules.CosineDecay(2e-3, args.epochs * (len(train) // 128))
    if args.resume:
        # a fresh optimizer at a low constant rate: the checkpoint's optimizer carries the
        # finished cosine schedule, which cannot be replaced
        model.compile(tf.keras.optimizers.Adam(args.resume_lr), loss=refiner_loss)
    else:
        model.optimizer.learning_rate = sched

    class Augmented(tf.keras.utils.Sequence):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.idx = train.copy()

        def __len__(self) -> int:
            return len(self.idx) // 128

        def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
            b = self.idx[i * 128 : (i + 1) * 128]
            return augment_batch(rng, x[b]), y[b]

        def on_epoch_end(self) -> None:
            rng.shuffle(self.idx)

    model.fit(Augmented(), epochs=args.epochs, validation_data=(x[val], y[val]), verbose=2,
              callbacks=[tf.keras.callbacks.ModelCheckpoint(str(ckpt))])
    pred = model.predict(x[val], verbose=0)
    yv = y[val]
    pos = (yv[:, 0] > 0.5) & (yv[:, 5] > 0)
    neg = (yv[:, 0] < 0.5) & (yv[:, 5] > 0)
    boxed = yv[:, 6] > 0
    say("5% of the training windows (a sanity check, not a validation figure): plates kept "
        f"{np.mean(pred[pos, 0] > 0.5):.3f}, non-plates passed "
        f"{np.mean(pred[neg, 0] > 0.5):.4f}, mean edge error "
        f"{np.mean(np.abs(pred[boxed, 1:5] - yv[boxed, 1:5])):.4f} of the window")
    # The converter fails in the process that trained the model (Keras' call context is gone
    # after fit: "'NoneType' object is not callable"); a fresh process converts the checkpoint.
    return subprocess.call([sys.executable, "-m", "edge_anpr.train.refiner", "--export-only",
                            "--out", str(args.out), "--seed", str(args.seed),
                            *(["--finder", str(args.finder)] if args.finder else []),
                            *(["--ro-jitters", str(args.ro_jitters)]
                              if args.ro_jitters is not None else []),
                            "--rendered", str(args.rendered)])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
