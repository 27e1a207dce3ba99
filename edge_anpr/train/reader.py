"""Train the plate reader: character segmenter + character classifier, exported as int8 TFLite.

    PYTHONPATH=. nice -n 10 /work/trainenv/bin/python -m edge_anpr.train reader

Steps (each logged with its time):
1. render + degrade synthetic plates (seeds 0..N-1; tests use seeds >= 1_000_000),
2. train the segmenter on them,
3. pseudo-label the TRAINING part of the labelled crops of ../shared/data (``CROP_SETS``,
   split by plate text) and the plate boxes of the TRAINING scenes (with margin): a crop is
   kept when the number of segmented boxes equals its label length; validation items are
   never opened,
4. train the classifier on synthetic + pseudo-labelled real characters (+ junk boxes),
5. fine-tune the segmenter on synthetic + real,
6. export both as full-integer int8 TFLite (int8 input and output) into edge_anpr/models/.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from edge_anpr.lab.datasplit import shared_data_dir, split_of, split_of_plate
from edge_anpr.lab.labels import labelled_rows
from edge_anpr.lab.scenes import find_scenes, read_labels
from edge_anpr.models import bundled_models_dir
from edge_anpr.train.augment import degrade_plate
from edge_anpr.train.cache import CACHE
from edge_anpr.train.render import render_plate
from edge_anpr.vision.reader import (
    CHAR_H,
    CHAR_W,
    CLASSES,
    NOT_A_CHAR,
    SEG_CHANNELS,
    SEG_H,
    SEG_STRIDE,
    SEG_W,
    Letterbox,
    char_crop,
    decode_segmentation,
    letterbox,
    normalise_chars,
)

GH, GW = SEG_H // SEG_STRIDE, SEG_W // SEG_STRIDE
DEFAULT_REAL_REPS = 4
REPO = Path(__file__).resolve().parents[2]
RENDER_VERSION = 4
"""Bump when the renderer or augmentation changes, so cached synthetic sets are rebuilt."""


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- targets and samples

def seg_target(boxes_lb: np.ndarray) -> np.ndarray:
    """GH x GW x (5 + 1): heat, dx, dy, w/64, h/64, regression mask; boxes in input pixels."""
    t = np.zeros((GH, GW, SEG_CHANNELS + 1), np.float32)
    yy, xx = np.mgrid[0:GH, 0:GW].astype(np.float32)
    for x0, y0, x1, y1 in boxes_lb:
        bw, bh = x1 - x0, y1 - y0
        if bw < 1 or bh < 3:
            continue
        cx, cy = (x0 + x1) / 2 / SEG_STRIDE, (y0 + y1) / 2 / SEG_STRIDE
        if not (0 <= cx < GW and 0 <= cy < GH):
            continue
        sx = max(0.5, bw / SEG_STRIDE / 3)
        sy = max(0.5, bh / SEG_STRIDE / 5)
        g = np.exp(-(((xx - cx + 0.5) / sx) ** 2 + ((yy - cy + 0.5) / sy) ** 2) / 2)
        t[..., 0] = np.maximum(t[..., 0], g)
        ix, iy = int(cx), int(cy)
        t[iy, ix, 0] = 1.0
        t[iy, ix, 1:5] = (cx - ix, cy - iy, min(1.0, bw / SEG_H), min(1.0, bh / SEG_H))
        t[iy, ix, 5] = 1.0
    return t


def boxes_to_lb(boxes: np.ndarray, lb: Letterbox) -> np.ndarray:
    out = boxes.astype(np.float32).copy()
    out[:, [0, 2]] = out[:, [0, 2]] * lb.scale + lb.dx
    out[:, [1, 3]] = out[:, [1, 3]] * lb.scale + lb.dy
    return out


def junk_boxes(rng: np.random.Generator, grey: np.ndarray, boxes: np.ndarray, n: int) -> list[
    np.ndarray
]:
    """Boxes that are not one whole character: between two, above/below, random background."""
    out: list[np.ndarray] = []
    H, W = grey.shape
    if len(boxes) == 0:
        return out
    h = float(np.median(boxes[:, 3] - boxes[:, 1]))
    w = float(np.median(boxes[:, 2] - boxes[:, 0]))
    for _ in range(n):
        kind = rng.random()
        if kind < 0.3 and len(boxes) >= 2:  # straddling two neighbours
            i = int(rng.integers(len(boxes) - 1))
            cx = (boxes[i, 2] + boxes[i + 1, 0]) / 2
            cy = (boxes[i, 1] + boxes[i, 3]) / 2
        elif kind < 0.65:  # small print above or below the characters
            i = int(rng.integers(len(boxes)))
            cx = (boxes[i, 0] + boxes[i, 2]) / 2 + float(rng.uniform(-w, w))
            cy = (boxes[i, 1] + boxes[i, 3]) / 2 + (1 if rng.random() < 0.5 else -1) * h * float(
                rng.uniform(0.8, 1.2)
            )
        else:  # anywhere away from the characters
            cx, cy = float(rng.uniform(0, W)), float(rng.uniform(0, H))
        s = float(rng.uniform(0.4, 1.3))
        b = np.float32([cx - w * s / 2, cy - h * s / 2, cx + w * s / 2, cy + h * s / 2])
        ix = np.maximum(0, np.minimum(b[2], boxes[:, 2]) - np.maximum(b[0], boxes[:, 0]))
        iy = np.maximum(0, np.minimum(b[3], boxes[:, 3]) - np.maximum(b[1], boxes[:, 1]))
        cover = ix * iy / ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        if cover.max() < 0.55:
            out.append(b)
    return out


def jitter_box(rng: np.random.Generator, b: np.ndarray) -> np.ndarray:
    w, h = b[2] - b[0], b[3] - b[1]
    dx, dy = rng.normal(0, 0.06) * h, rng.normal(0, 0.05) * h
    sw, sh = np.exp(rng.normal(0, 0.1)), np.exp(rng.normal(0, 0.08))
    cx, cy = (b[0] + b[2]) / 2 + dx, (b[1] + b[3]) / 2 + dy
    return np.float32([cx - w * sw / 2, cy - h * sh / 2, cx + w * sw / 2, cy + h * sh / 2])


def synth(n: int, seed0: int) -> dict[str, np.ndarray]:
    path = CACHE / f"synth_v{RENDER_VERSION}_{seed0}_{n}.npz"
    if path.exists():
        d = np.load(path)
        return {k: d[k] for k in d.files}
    xs, ts, cx, cy = [], [], [], []
    t0 = time.time()
    for i in range(n):
        rng = np.random.default_rng(seed0 + i)
        plate = render_plate(rng)
        grey, boxes = degrade_plate(rng, plate)
        lb_img, lb = letterbox(grey)
        xs.append(lb_img)
        ts.append(seg_target(boxes_to_lb(boxes, lb)))
        for b, ch in zip(boxes, plate.text, strict=True):
            if rng.random() < 0.6:
                cx.append(char_crop(grey, jitter_box(rng, b)))
                cy.append(CLASSES.index(ch))
        for b in junk_boxes(rng, grey, boxes, 1):
            cx.append(char_crop(grey, b))
            cy.append(NOT_A_CHAR)
        if i % 2000 == 0:
            say(f"synth {i}/{n} {time.time() - t0:.0f}s")
    out = {"x": np.stack(xs), "t": np.stack(ts), "cx": np.stack(cx), "cy": np.asarray(cy)}
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


# ---------------------------------------------------------------- real data (training split)

CROP_SETS = (("plate-crops", "crops"), ("plate-crops-br", "crops-br"))
"""Labelled crop folders of ../shared/data read for training: (folder, source tag)."""


def real_train_items() -> list[tuple[np.ndarray, str, str]]:
    """(grey crop, label, source) for the TRAINING split only.

    Crop folders are split by plate text (``split_of_plate``), scenes by file name; a scene
    plate whose text is also in a validation scene is left out, so no plate is on both sides.
    """
    data = shared_data_dir(REPO)
    items: list[tuple[np.ndarray, str, str]] = []
    if data is None:
        say("no ../shared/data: training on synthetic plates only")
        return items
    for folder, source in CROP_SETS:
        crops = data / folder
        if not (crops / "labels.csv").is_file():
            continue
        rows, _ = labelled_rows(crops)  # with the project's review of wrong labels
        for name, label in rows:
            if split_of_plate(label) != "train":
                continue
            img = cv2.imread(str(crops / name), cv2.IMREAD_GRAYSCALE)
            if img is not None:
                items.append((img, label, source))
    scenes = data / "scenes"
    held_out = val_scene_plates(scenes)
    rng = np.random.default_rng(7)
    for txt in sorted(scenes.glob("*/*.txt")):
        jpg = txt.with_suffix(".jpg")
        if split_of(jpg.name) != "train" or not jpg.exists():
            continue
        img = cv2.imread(str(jpg), cv2.IMREAD_GRAYSCALE)
        if img is None:
            continue
        for plate in read_labels(txt):
            if plate.text in held_out:
                continue
            x, y, w, h = plate.box_px
            for _ in range(2):
                mx, my = rng.uniform(0.0, 0.12) * w, rng.uniform(0.0, 0.2) * h
                x0, y0 = max(0, int(x - mx)), max(0, int(y - my))
                x1, y1 = min(img.shape[1], int(x + w + mx)), min(img.shape[0], int(y + h + my))
                if x1 - x0 > 16 and y1 - y0 > 8:
                    items.append((img[y0:y1, x0:x1].copy(), plate.text, "scenes"))
    say(f"real training items: {len(items)} ({', '.join(f'{s}: {n}' for s, n in _count(items))})")
    return items


def val_scene_plates(scenes: Path) -> set[str]:
    """Plate texts of the validation scenes (kept out of every training set)."""
    return {p.text for s in find_scenes(scenes, "val") for p in s.plates}


def _count(items: list[tuple[np.ndarray, str, str]]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for _, _, source in items:
        counts[source] = counts.get(source, 0) + 1
    return sorted(counts.items())


Mined = tuple[np.ndarray, str, np.ndarray, np.ndarray, str]
"""A real training crop: grey image, label, character boxes, junk boxes, source tag."""


def shrunk_copies(
    rng: np.random.Generator, kept: list[Mined], copies: int = 1, blur: float = 0.0
) -> list[Mined]:
    """Each wide real crop ``copies`` times more as a distant camera sees it: 48..100 px wide,
    blurred (Gaussian, sigma drawn from 0..``blur`` pixels of the small crop; none when 0),
    re-encoded.

    Most real training crops are 150+ px wide, but whole-frame misreads concentrate on plates
    about 80 px wide, where a character is 8-10 px and the reader drops or doubles strokes.
    Boxes scale with the crop; the crop is read at that size at run time too.
    """
    out = []
    for (grey, label, boxes, junk, source), _ in itertools.product(kept, range(copies)):
        h, w = grey.shape[:2]
        if w < 110:
            continue
        f = float(rng.uniform(48, 100)) / w
        small = cv2.resize(grey, (max(16, round(w * f)), max(8, round(h * f))),
                           interpolation=cv2.INTER_AREA)
        if blur > 0:
            sigma = float(rng.uniform(0.0, blur))
            if sigma >= 0.3:
                small = cv2.GaussianBlur(small, (0, 0), sigma)
        ok, enc = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 91))])
        if ok:
            small = cv2.imdecode(enc, cv2.IMREAD_GRAYSCALE)
        fx, fy = small.shape[1] / w, small.shape[0] / h
        scale = np.float32([fx, fy, fx, fy])
        out.append((small, label, np.asarray(boxes, np.float32) * scale,
                    np.asarray(junk, np.float32).reshape(-1, 4) * scale, source))
    say(f"shrunk copies of real crops: {len(out)}")
    return out


# ---------------------------------------------------------------- models

def _tf():  # type: ignore[no-untyped-def]
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    return tf


def conv_block(x, channels: int, stride: int = 1, dilation: int = 1):  # type: ignore[no-untyped-def]
    """A 3x3 convolution (no bias), batch normalisation and ReLU6: the stage every network of
    the reader, the refiner and the region model is built of."""
    layers = _tf().keras.layers
    x = layers.Conv2D(channels, 3, strides=stride, dilation_rate=dilation, padding="same",
                      use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU(6.0)(x)


def build_segmenter():  # type: ignore[no-untyped-def]
    tf = _tf()
    L = tf.keras.layers

    inp = tf.keras.Input((SEG_H, SEG_W, 1))
    x = conv_block(inp, 12, 2)
    x = conv_block(x, 24)
    x = conv_block(x, 40, 2)
    skip = conv_block(x, 40)
    x = conv_block(skip, 40, dilation=2)
    x = conv_block(x, 40, dilation=4)
    x = conv_block(x, 40, dilation=8)
    x = L.Concatenate()([x, skip])
    x = L.Conv2D(32, 1, activation="relu")(x)
    out = L.Conv2D(SEG_CHANNELS, 1, activation="sigmoid")(x)
    return tf.keras.Model(inp, out)


def seg_loss(y_true, y_pred):  # type: ignore[no-untyped-def]
    tf = _tf()
    heat_t, heat_p = y_true[..., 0], tf.clip_by_value(y_pred[..., 0], 1e-4, 1 - 1e-4)
    pos = tf.cast(heat_t >= 0.999, tf.float32)
    neg = 1.0 - pos
    focal = -(pos * (1 - heat_p) ** 2 * tf.math.log(heat_p)
              + neg * (1 - heat_t) ** 4 * heat_p ** 2 * tf.math.log(1 - heat_p))
    npos = tf.maximum(1.0, tf.reduce_sum(pos))
    mask = y_true[..., 5:6]
    reg = tf.reduce_sum(tf.abs(y_true[..., 1:5] - y_pred[..., 1:5]) * mask)
    return tf.reduce_sum(focal) / npos + 5.0 * reg / npos


def build_classifier():  # type: ignore[no-untyped-def]
    tf = _tf()
    L = tf.keras.layers


    inp = tf.keras.Input((CHAR_H, CHAR_W, 1))
    x = conv_block(inp, 16)
    x = conv_block(x, 32, 2)
    x = conv_block(x, 32)
    x = conv_block(x, 64, 2)
    x = conv_block(x, 64)
    x = conv_block(x, 64, 2)
    x = L.Flatten()(x)
    x = L.Dropout(0.3)(x)
    x = L.Dense(128, activation="relu")(x)
    out = L.Dense(NOT_A_CHAR + 1, activation="softmax")(x)
    return tf.keras.Model(inp, out)


def augment_chars(rng: np.random.Generator, crops: np.ndarray) -> np.ndarray:
    x = normalise_chars(crops)
    # small random contrast inversion is NOT applied: ink polarity is learnt from data
    noise = rng.normal(0, 0.03, x.shape).astype(np.float32)
    return np.clip(x + noise, 0, 1)


def export_int8(  # type: ignore[no-untyped-def]
    model, rep: np.ndarray, path: Path, samples: int = 300
) -> int:
    """Full int8 TFLite of ``model`` at ``path``, calibrated on the first ``samples`` rows of
    ``rep``; its size in bytes."""
    tf = _tf()

    def gen():  # type: ignore[no-untyped-def]
        for i in range(min(len(rep), samples)):
            yield [rep[i : i + 1].astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = gen
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    data = conv.convert()
    path.write_bytes(data)
    say(f"wrote {path} ({len(data)} bytes)")
    return len(data)


# ---------------------------------------------------------------- pseudo labels

def pseudo_label(seg_model, items):  # type: ignore[no-untyped-def]
    """Keep real crops whose segmented box count equals the label length."""
    kept = []
    batch = 64
    for s in range(0, len(items), batch):
        chunk = items[s : s + batch]
        lbs = [letterbox(g) for g, _, _ in chunk]
        x = np.stack([lb[0] for lb in lbs]).astype(np.float32)[..., None] / 255.0
        maps = seg_model.predict(x, verbose=0)
        for (grey, label, src), (_, lb), m in zip(chunk, lbs, maps, strict=True):
            boxes = decode_segmentation(m.astype(np.float32), lb)
            if len(boxes) == len(label) and all(c in CLASSES for c in label):
                kept.append((grey, label, boxes[:, :4], src))
    return kept


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_anpr.train reader")
    ap.add_argument("--synthetic", type=int, default=24000)
    ap.add_argument("--seg-epochs", type=int, default=8)
    ap.add_argument("--cls-epochs", type=int, default=6)
    ap.add_argument("--finetune-epochs", type=int, default=4)
    ap.add_argument("--out", type=Path, default=bundled_models_dir())
    ap.add_argument("--no-real", action="store_true", help="synthetic plates only")
    ap.add_argument("--mined", type=Path, default=CACHE / "mined.npz",
                    help="output of `python -m edge_anpr.train mine` (used when present)")
    ap.add_argument("--init-segmenter", type=Path, default=None,
                    help="start from this Keras segmenter (then --seg-epochs more epochs)")
    ap.add_argument("--shrunk-copies", type=int, default=1,
                    help="copies of each wide real crop shrunk to 48-100 px and re-encoded")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of the classifier's initial weights, shuffles and jitter (the "
                         "renders keep theirs); another seed measures run-to-run spread")
    ap.add_argument("--shrunk-blur", type=float, default=0.0,
                    help="largest Gaussian blur sigma (pixels) of a shrunk copy: real small "
                         "plates in scene photos are soft as well as small")
    ap.add_argument("--real-reps", default="crops=4,scenes=4,crops-br=2",
                    help="jittered copies of each real crop's characters per source: the "
                         "Brazilian crops outnumber the others three to one, and a classifier "
                         "fed them four times each learned their font at the others' cost")
    args = ap.parse_args(argv)
    real_reps = {k: int(v) for k, v in (part.split("=") for part in args.real_reps.split(","))}
    tf = _tf()
    tf.keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    say("rendering synthetic plates")
    syn = synth(args.synthetic, 0)
    sx = syn["x"].astype(np.float32)[..., None] / 255.0
    st = syn["t"]
    say(f"segmenter: {len(sx)} samples")
    seg = build_segmenter()
    seg.compile(tf.keras.optimizers.Adam(2e-3), loss=seg_loss)
    seg_ckpt = CACHE / "seg_synth.keras"
    lr0 = 2e-3
    if args.init_segmenter is not None:
        seg = tf.keras.models.load_model(args.init_segmenter, compile=False)
        seg.compile(tf.keras.optimizers.Adam(lr0), loss=seg_loss)
        lr0 = 5e-4
    if args.seg_epochs > 0:
        sched = tf.keras.callbacks.LearningRateScheduler(
            lambda e: lr0 * (0.5 ** max(0, e - args.seg_epochs // 2))
        )
        seg.fit(sx, st, batch_size=64, epochs=args.seg_epochs, validation_split=0.05,
                callbacks=[sched], verbose=2)
        seg.save(seg_ckpt)
    kept: list[Mined] = []
    if args.no_real:
        pass
    elif args.mined.is_file():
        m = np.load(args.mined, allow_pickle=True)
        sources = m["sources"] if "sources" in m.files else ["crops"] * len(m["labels"])
        kept = list(zip(m["crops"], m["labels"], m["boxes"], m["junk"], sources, strict=True))
        say(f"mined real crops (training split): {len(kept)} from {args.mined}")
    else:
        real = real_train_items()
        kept = [(g, lab, b, np.zeros((0, 4), np.float32), src)
                for g, lab, b, src in pseudo_label(seg, real)]
        say(f"pseudo-labelled real crops kept: {len(kept)} of {len(real)}")
    kept += shrunk_copies(rng, kept, args.shrunk_copies, args.shrunk_blur)
    # classifier data
    cx, cy = [syn["cx"]], [syn["cy"]]
    rx, ry = [], []
    for grey, label, boxes, junk, source in kept:
        for _ in range(real_reps.get(source, DEFAULT_REAL_REPS)):
            for b, ch in zip(boxes, label, strict=True):
                rx.append(char_crop(grey, jitter_box(rng, b)))
                ry.append(CLASSES.index(ch))
            for b in junk:
                rx.append(char_crop(grey, jitter_box(rng, b)))
                ry.append(NOT_A_CHAR)
            for b in junk_boxes(rng, grey, boxes, 2):
                rx.append(char_crop(grey, b))
                ry.append(NOT_A_CHAR)
    if rx:
        cx.append(np.stack(rx))
        cy.append(np.asarray(ry))
    cxa, cya = np.concatenate(cx), np.concatenate(cy)
    say(f"classifier: {len(cxa)} crops ({len(rx)} real)")
    cls = build_classifier()
    cls.compile(tf.keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                metrics=["accuracy"])
    xin = augment_chars(rng, cxa)
    sched = tf.keras.callbacks.LearningRateScheduler(
        lambda e: 1e-3 * (0.5 ** max(0, e - args.cls_epochs // 2))
    )
    cls.fit(xin, cya, batch_size=256, epochs=args.cls_epochs, validation_split=0.05,
            shuffle=True, callbacks=[sched], verbose=2)
    export_int8(cls, xin[rng.permutation(len(xin))[:300]], args.out / "classifier.tflite")
    # segmenter fine-tune on synthetic + real pseudo-labels
    if kept and args.finetune_epochs > 0:
        rxs, rts = [], []
        for grey, _, boxes, _, _ in kept:
            lb_img, lb = letterbox(grey)
            rxs.append(lb_img)
            rts.append(seg_target(boxes_to_lb(boxes, lb)))
        rxa = np.stack(rxs).astype(np.float32)[..., None] / 255.0
        rta = np.stack(rts)
        reps = max(1, len(sx) // (4 * len(rxa)))
        fx = np.concatenate([sx, np.repeat(rxa, reps, axis=0)])
        ft = np.concatenate([st, np.repeat(rta, reps, axis=0)])
        seg.compile(tf.keras.optimizers.Adam(5e-4), loss=seg_loss)
        seg.fit(fx, ft, batch_size=64, epochs=args.finetune_epochs, shuffle=True, verbose=2)
        seg.save(CACHE / "seg_final.keras")
    export_int8(seg, sx[rng.permutation(len(sx))[:300]], args.out / "segmenter.tflite")
    return 0
