"""Train the plate-region model (country, and the state of a US plate) -> region.tflite (int8).

    nice -n 10 .venv-train/bin/python -m edge_anpr.train region --scene-weight 6 --pad 0.2 \
        [--epochs N] [--scene-fold I/K] [--resume]
    nice -n 10 .venv-train/bin/python -m edge_anpr.train region --shapes

The first trains the shipped model (the settings of ``edge_anpr/models/region.md``); the second
counts the reader's read shapes per country into ``region_shapes.json`` (``vision.region``
``ShapeTable``), outside the holdout.

Data, TRAINING split only (``lab.datasplit``; validation items are never opened):

* ``plate-crops``: US crops with their state (``labels.csv``'s second column), by plate text;
* ``plate-crops-br``: Brazil, by plate text;
* ``plate-crops-eu-unlabelled``: Europe, every crop except the project's labelled ones
  (``lab.labels.EU_LABELLED``, the European validation set);
* ``scenes/{us,br,eu}``: the labelled plates of the training photographs, cut with a margin,
  their country from the folder (a US scene plate has no state: its loss is the US classes'
  summed probability, so it teaches the country only); a plate whose text is in a validation
  scene is left out;
* ``scenes-ro``: Romanian dashcam plate boxes (Europe), split by video.

A fixed sixth of the training items (``in_region_holdout``, by plate text or file name) is held
out of training to choose settings; the script prints its scores every 5 epochs. Its 40 scene
plates are too few to tell settings apart, so ``--scene-fold I/K`` holds out fold I of K of the
scene plates as well (train each fold, score the held-out folds together). Prepared crops are
cached in ``$EDGE_ANPR_TRAIN_CACHE`` (default ``~/.cache/edge-anpr-train``), and the model is
checkpointed there after each epoch so an interrupted run resumes with ``--resume``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from edge_anpr.lab.datasplit import shared_data_dir, split_of, split_of_plate
from edge_anpr.lab.eval_crops import cut_with_margin
from edge_anpr.lab.labels import EU_LABELLED, labelled_rows, read_label_rows
from edge_anpr.lab.scenes import find_scenes, normalise, scale_box
from edge_anpr.models import bundled_models_dir
from edge_anpr.train.cache import CACHE
from edge_anpr.train.reader import _tf, conv_block, export_int8
from edge_anpr.vision.reader import PlateReader
from edge_anpr.vision.region import (
    COUNTRIES,
    REGION_CLASSES,
    REGION_FILE,
    REGION_H,
    REGION_W,
    SHAPES_FILE,
    US_STATES,
    ShapeTable,
    country_of,
    region_input,
    summarise,
    text_shape,
)

REPO = Path(__file__).resolve().parents[2]
DATA_VERSION = 2
"""Bump when what ``prepare`` keeps changes, so the cached set is rebuilt."""
STORE_H, STORE_W = 2 * REGION_H, 2 * REGION_W
"""Crops are cached at twice the model's input, so augmentation can cut inside them."""
SCENE_MARGIN = 0.15
HOLDOUT_SHARE = 1 / 6
N_STATES = len(US_STATES)


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def in_region_holdout(key: str) -> bool:
    """A fixed share of the training items kept out of training to choose settings."""
    digest = hashlib.sha256(("region-holdout:" + key).encode()).digest()
    return int.from_bytes(digest[:4], "big") < HOLDOUT_SHARE * 2**32


def scene_fold(key: str, folds: int) -> int:
    """The fold (0 .. ``folds`` - 1) of a scene plate's key, for ``--scene-fold``: the scene
    plates are few, so settings are compared with a fold of them held out as well."""
    digest = hashlib.sha256(("region-scene-fold:" + key).encode()).digest()
    return int.from_bytes(digest[:4], "big") % folds


def target_mask(label: str) -> np.ndarray:
    """The classes a label allows: one state, every US state (``us``), ``br`` or ``eu``."""
    mask = np.zeros(len(REGION_CLASSES), np.float32)
    if label == "us":
        mask[:N_STATES] = 1.0
    else:
        mask[REGION_CLASSES.index(label)] = 1.0
    return mask


def _store(img: np.ndarray) -> np.ndarray:
    return np.asarray(cv2.resize(img, (STORE_W, STORE_H), interpolation=cv2.INTER_AREA),
                      np.uint8)


def _cut(img: np.ndarray, box: tuple[int, int, int, int], margin: float) -> np.ndarray | None:
    """The plate as ``eval-crops --scenes`` cuts it: the image normalised to the width the
    appliance works at, the box grown by ``margin``; None when under 16 x 8 pixels."""
    image, factor = normalise(img)
    crop = cut_with_margin(image, scale_box(box, factor), margin)
    if crop is None or crop.shape[1] < 16 or crop.shape[0] < 8:
        return None
    return crop


Plate = tuple[np.ndarray, str, str, str]
"""A training plate: image (BGR, cut as the reader gets it), label, source, key (the plate
text, or the file or video name; the holdout is drawn by it)."""


def training_plates(data: Path) -> Iterator[Plate]:
    """Every plate of the training split (see the module doc), in a fixed order."""
    us = data / "plate-crops"
    with (us / "labels.csv").open(newline="", encoding="utf-8") as f:
        state_of = {r[0]: r[1].strip().lower() for r in csv.reader(f) if len(r) >= 3}
    rows, _ = labelled_rows(us)
    for name, plate in tqdm(rows, desc="us crops", file=sys.stderr):
        state = state_of.get(name, "")
        img = cv2.imread(str(us / name)) if split_of_plate(plate) == "train" else None
        if img is not None and state in US_STATES:
            yield img, f"us-{state}", "crops-us", plate
    br = data / "plate-crops-br"
    rows, _ = labelled_rows(br)
    for name, plate in tqdm(rows, desc="br crops", file=sys.stderr):
        img = cv2.imread(str(br / name)) if split_of_plate(plate) == "train" else None
        if img is not None:
            yield img, "br", "crops-br", plate
    eu = data / "plate-crops-eu-unlabelled"
    labelled = {f for f, _ in read_label_rows(EU_LABELLED)} if EU_LABELLED.is_file() else set()
    for path in tqdm(sorted(eu.glob("*.jpg")), desc="eu crops", file=sys.stderr):
        img = cv2.imread(str(path)) if path.name not in labelled else None
        if img is not None:
            yield img, "eu", "crops-eu", path.name
    scenes = data / "scenes"
    held_out = {p.text for s in find_scenes(scenes, "val") for p in s.plates}
    for scene in tqdm(find_scenes(scenes, "train"), desc="scenes", file=sys.stderr):
        img = cv2.imread(str(scene.image_path))
        if img is None or scene.group not in ("us", "br", "eu"):
            continue
        for plate in scene.plates:
            crop = _cut(img, plate.box_px, SCENE_MARGIN) if plate.text not in held_out else None
            if crop is not None:
                yield crop, scene.group, "scenes", plate.text
    ro = data / "scenes-ro"
    if (ro / "labels.csv").is_file():
        with (ro / "labels.csv").open(newline="", encoding="utf-8") as f:
            boxes = list(csv.DictReader(f))
        images: dict[str, np.ndarray | None] = {}
        for row in tqdm(boxes, desc="scenes-ro", file=sys.stderr):
            video = row["file"].rsplit("_t", 1)[0]
            if split_of(video) != "train":
                continue
            if row["file"] not in images:
                images.clear()
                images[row["file"]] = cv2.imread(str(ro / row["file"]))
            img = images[row["file"]]
            box = (int(row["x"]), int(row["y"]), int(row["w"]), int(row["h"]))
            crop = None if img is None else _cut(img, box, SCENE_MARGIN)
            if crop is not None:
                yield crop, "eu", "scenes-ro", video


def prepare(data: Path) -> dict[str, np.ndarray]:
    """Every training plate stored for training: crop (at ``STORE_H`` x ``STORE_W``), label,
    source, key, holdout flag, and the width in pixels it was cut at."""
    plates = [(_store(img), img.shape[1], label, source, key)
              for img, label, source, key in training_plates(data) if img.size]
    return {"crops": np.stack([p[0] for p in plates]),
            "widths": np.array([p[1] for p in plates]),
            "labels": np.array([p[2] for p in plates]),
            "sources": np.array([p[3] for p in plates]),
            "keys": np.array([p[4] for p in plates]),
            "holdout": np.array([in_region_holdout(p[4]) for p in plates])}


SHAPE_PRIOR_WEIGHT = 20.0
"""``ShapeTable.prior_weight`` of the shipped table (20 and 100 compared on the holdout:
``edge_anpr/models/region.md``)."""


class _EvidenceReader(PlateReader):
    """The shipped reader, keeping the text its last read weighed the region with."""

    evidence = ""

    def _evidence(self, alternatives: list[list[tuple[str, float]]],
                  configured: tuple[str, ...]) -> str:
        self.evidence = super()._evidence(alternatives, configured)
        return self.evidence


def count_shapes(data: Path, models: Path | None = None) -> dict[str, dict[str, int]]:
    """country -> shape of the reader's evidence text (``PlateReader._evidence``, read as a
    camera with nothing configured reads) -> plates, over the training plates outside the
    holdout; a plate read as nothing is not counted."""
    reader = _EvidenceReader(models, regions=("generic",))
    counts: dict[str, dict[str, int]] = {c: {} for c in COUNTRIES}
    for img, label, _source, key in training_plates(data):
        if in_region_holdout(key):
            continue
        reader.evidence = ""
        reader.read(img)
        if reader.evidence:
            shapes = counts[country_of(label)]
            shape = text_shape(reader.evidence)
            shapes[shape] = shapes.get(shape, 0) + 1
    return {c: dict(sorted(shapes.items(), key=lambda kv: (-kv[1], kv[0])))
            for c, shapes in counts.items()}


def load_items(data: Path) -> dict[str, np.ndarray]:
    path = CACHE / f"region_items_v{DATA_VERSION}_{STORE_H}x{STORE_W}.npz"
    if path.is_file():
        say(f"prepared crops from {path}")
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    items = prepare(data)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **items)
    say(f"cached {len(items['labels'])} prepared crops in {path}")
    return items


_BORDERS = (cv2.BORDER_REPLICATE, cv2.BORDER_REFLECT_101, cv2.BORDER_CONSTANT)


def zoom_out(rng: np.random.Generator, stored: np.ndarray, most: float) -> np.ndarray:
    """The crop with up to ``most`` of its width and height added on each side (replicated,
    mirrored or plain grey): a tight crop made to look like a plate cut from a scene with a
    margin (``eval-crops --scenes`` adds 0.15 of the box, the recognizer 0.06 / 0.12)."""
    h, w = stored.shape[:2]
    left, right = (int(rng.uniform(0, most) * w) for _ in range(2))
    top, bottom = (int(rng.uniform(0, most) * h) for _ in range(2))
    border = _BORDERS[int(rng.integers(len(_BORDERS)))]
    grey = int(rng.integers(0, 256))
    value = (grey, grey, grey) if stored.ndim == 3 else grey
    padded = cv2.copyMakeBorder(stored, top, bottom, left, right, border, value=value)
    return np.asarray(padded, np.uint8)


def soften(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Blur and JPEG recompression of a grey uint8 image: a scene plate's softness."""
    if rng.random() < 0.7:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.2))
    if rng.random() < 0.7:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(20, 80))])
        if ok:
            img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return np.asarray(img, np.uint8)


def augment(rng: np.random.Generator, stored: np.ndarray, *, pad: float = 0.0,
            soft: float = 0.0) -> np.ndarray:
    """A random cut inside the stored crop (a tighter or shifted box), after ``zoom_out`` by
    up to ``pad`` (when above 0); shrinking, and with probability ``soft`` blur and JPEG
    (``soften``); brightness, contrast and noise. The result at the model's input size
    (grey)."""
    if pad > 0:
        stored = zoom_out(rng, stored, pad)
    h, w = stored.shape[:2]
    x0 = int(rng.uniform(0, 0.12) * w)
    x1 = w - int(rng.uniform(0, 0.12) * w)
    y0 = int(rng.uniform(0, 0.15) * h)
    y1 = h - int(rng.uniform(0, 0.15) * h)
    img = region_input(stored[y0:y1, x0:x1])[..., 0]
    softened = rng.random() < soft
    if rng.random() < 0.5:  # small or soft plates
        s = rng.uniform(0.3, 0.8)
        small = cv2.resize(img, (max(8, int(REGION_W * s)), max(4, int(REGION_H * s))),
                           interpolation=cv2.INTER_AREA)
        if softened:
            small = soften(rng, small)
        img = cv2.resize(small, (REGION_W, REGION_H), interpolation=cv2.INTER_LINEAR)
    elif softened:
        img = soften(rng, img)
    out = img.astype(np.float32) * rng.uniform(0.6, 1.3) + rng.uniform(-30, 30)
    out = out + rng.normal(0, rng.uniform(0, 8), out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)[..., None]


def build_model(width: int):  # type: ignore[no-untyped-def]
    tf = _tf()
    L = tf.keras.layers


    inp = tf.keras.Input((REGION_H, REGION_W, 1))
    x = conv_block(inp, width, 2)
    x = conv_block(x, 2 * width, 2)
    x = conv_block(x, 2 * width)
    x = conv_block(x, 4 * width, 2)
    x = conv_block(x, 4 * width)
    x = conv_block(x, 6 * width, 2)
    x = L.Flatten()(x)
    x = L.Dropout(0.4)(x)
    out = L.Dense(len(REGION_CLASSES), activation="softmax")(x)
    return tf.keras.Model(inp, out)


def allowed_loss(mask, probs):  # type: ignore[no-untyped-def]
    """-log of the probability on the allowed classes (one state, or all of a country's)."""
    tf = _tf()
    return -tf.math.log(tf.clip_by_value(tf.reduce_sum(mask * probs, axis=-1), 1e-7, 1.0))


def batches(rng: np.random.Generator, items: dict[str, np.ndarray], idx: np.ndarray,
            per_epoch: int, scene_weight: float = 1.0, pad: float = 0.0,
            soft: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """One epoch's inputs and masks: the three countries drawn equally often; within a
    country a plate cut from a scene ``scene_weight`` times as often as a crop (the US crops'
    states as the collection has them). A crop is zoomed out by up to ``pad`` (a scene plate
    has its margin already); any item is softened with probability ``soft`` (``augment``)."""
    labels = items["labels"][idx]
    country = np.array([lab.split("-")[0] for lab in labels])
    from_scene = np.char.startswith(items["sources"][idx].astype(str), "scenes")
    weight = np.where(from_scene, scene_weight, 1.0)
    chosen = []
    for c in ("us", "br", "eu"):
        in_country = country == c
        pool = idx[in_country]
        if len(pool):
            p = weight[in_country] / weight[in_country].sum()
            chosen.append(rng.choice(pool, per_epoch // 3, p=p))
    order = rng.permutation(np.concatenate(chosen))
    scene_items = np.char.startswith(items["sources"].astype(str), "scenes")
    x = np.stack([
        augment(rng, items["crops"][i], pad=0.0 if scene_items[i] else pad, soft=soft)
        for i in order
    ]).astype(np.float32) / 255.0
    y = np.stack([target_mask(items["labels"][i]) for i in order])
    return x, y


def score(model, items: dict[str, np.ndarray], idx: np.ndarray) -> str:  # type: ignore[no-untyped-def]
    """Country and state accuracy on ``idx`` (un-augmented), per source."""
    if not len(idx):
        return "empty"
    x = np.stack([region_input(items["crops"][i]) for i in idx]).astype(np.float32) / 255.0
    probs = model.predict(x, verbose=0, batch_size=256)
    parts = []
    group = [str(items["sources"][i]) + ("-" + str(items["labels"][i]).split("-")[0]
                                         if items["sources"][i] == "scenes" else "")
             for i in idx]
    for source in sorted(set(group)):
        rows = [k for k, g in enumerate(group) if g == source]
        right = state_right = states = 0
        for k in rows:
            label = str(items["labels"][idx[k]])
            s = summarise(probs[k].tolist())
            right += s.country == label.split("-")[0]
            if label.startswith("us-"):
                states += 1
                state_right += f"us-{s.state}" == label
        part = f"{source} country {right / len(rows):.3f} (n={len(rows)})"
        if states:
            part += f" state {state_right / states:.3f}"
        parts.append(part)
    return "; ".join(parts)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_anpr.train region")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--per-epoch", type=int, default=3000, help="items drawn per epoch")
    ap.add_argument("--width", type=int, default=16, help="channels of the first layer")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scene-weight", type=float, default=1.0,
                    help="how much more often a plate cut from a scene is drawn than a crop")
    ap.add_argument("--pad", type=float, default=0.0,
                    help="zoom a crop out by up to this share of its size on each side")
    ap.add_argument("--soft", type=float, default=0.0,
                    help="share of draws blurred and JPEG-recompressed")
    ap.add_argument("--scene-fold", default="",
                    help="I/K: hold out fold I of K of the scene plates too (choosing settings)")
    ap.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    ap.add_argument("--full", action="store_true",
                    help="train on the holdout too (after settings were chosen on it)")
    ap.add_argument("--out", type=Path, default=bundled_models_dir() / REGION_FILE)
    ap.add_argument("--shapes", action="store_true",
                    help=f"only count the read shapes of the training plates with the models "
                         f"beside --out (the reader's and this model) into {SHAPES_FILE} there")
    args = ap.parse_args(argv)
    data = shared_data_dir(REPO)
    if data is None:
        say("no ../shared/data: the region model needs the real crops")
        return 2
    if args.shapes:
        counts = count_shapes(data, args.out.parent)
        ShapeTable(counts, SHAPE_PRIOR_WEIGHT)  # refuses a table the reader would refuse
        path = args.out.parent / SHAPES_FILE
        path.write_text(json.dumps({"prior_weight": SHAPE_PRIOR_WEIGHT, "counts": counts},
                                   indent=1) + "\n", encoding="utf-8")
        say(f"wrote {path}: " + ", ".join(f"{c} {sum(n.values())} reads, {len(n)} shapes"
                                          for c, n in counts.items()))
        return 0
    tf = _tf()
    tf.keras.utils.set_random_seed(args.seed)
    items = load_items(data)
    per_source = {s: int((items["sources"] == s).sum()) for s in sorted(set(items["sources"]))}
    say(f"items: {per_source}; holdout {int(items['holdout'].sum())}")
    everything = np.arange(len(items["labels"]))
    held = items["holdout"].copy()
    if args.scene_fold:
        fold, folds = (int(v) for v in args.scene_fold.split("/"))
        scene = items["sources"] == "scenes"
        held |= scene & np.array([scene_fold(str(k), folds) == fold for k in items["keys"]])
    train_idx = everything if args.full else everything[~held]
    hold_idx = everything[held]
    say(f"training on {len(train_idx)}, holding out {len(hold_idx)}")
    tag = (f"region_v{DATA_VERSION}_w{args.width}_s{args.seed}_sw{args.scene_weight:g}"
           f"_p{args.pad:g}_soft{args.soft:g}_e{args.epochs}"
           f"{'_f' + args.scene_fold.replace('/', 'of') if args.scene_fold else ''}"
           f"{'_full' if args.full else ''}")
    ckpt, state_file = CACHE / f"{tag}.keras", CACHE / f"{tag}.epoch"
    start = 0
    if args.resume and ckpt.is_file() and state_file.is_file():
        model = tf.keras.models.load_model(ckpt, custom_objects={"allowed_loss": allowed_loss})
        start = int(state_file.read_text())
        say(f"resumed {ckpt} after epoch {start}")
    else:
        model = build_model(args.width)
        steps = args.epochs * (args.per_epoch // 64)
        lr = tf.keras.optimizers.schedules.CosineDecay(args.lr, steps)
        model.compile(tf.keras.optimizers.Adam(lr), loss=allowed_loss)
    say(f"model: {model.count_params()} parameters")
    rng = np.random.default_rng(args.seed + 1000 * start)
    for epoch in tqdm(range(start, args.epochs), desc="epochs", file=sys.stderr,
                      initial=start, total=args.epochs):
        x, y = batches(rng, items, train_idx, args.per_epoch, args.scene_weight, args.pad,
                       args.soft)
        hist = model.fit(x, y, batch_size=64, epochs=1, verbose=0)
        model.save(ckpt)
        state_file.write_text(str(epoch + 1))
        if (epoch + 1) % 5 == 0 or epoch + 1 == args.epochs:
            say(f"epoch {epoch + 1} loss {hist.history['loss'][-1]:.3f} holdout: "
                f"{score(model, items, hold_idx)}")
    rep = np.stack([region_input(items["crops"][i])
                    for i in np.random.default_rng(0).permutation(train_idx)[:300]])
    export_int8(model, rep.astype(np.float32) / 255.0, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
