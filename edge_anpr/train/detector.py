"""Train the plate detector: one linear SVM per plate shape over shared HoG block grids.

Run: ``PYTHONPATH=. python -m edge_anpr.train detector`` (no TensorFlow needed). Reads the
TRAINING part of ``../shared/data/scenes`` only (``edge_anpr.lab.datasplit``); the validation
part is never opened here. Writes ``edge_anpr/models/plate_hog.npz``.

Shapes: ``eu`` (4.4:1), ``us`` (2:1), ``br`` (3.1:1), each a window of cells around a plate
``CELLS_PER_PLATE`` cells wide. Examples are extracted with the run-time feature code
(``edge_anpr.vision.hog``), so training and detection features are the same function.

Positives: every training plate of the shape's region, (a) cut from the full-image grid exactly
as the scanner sees it at the nearest searched widths and (b) from randomly warped copies
(rotation, scale, shift, brightness, contrast, blur, noise) of the plate's surroundings.
Negatives: random windows of all training scenes away from every plate, then hard-negative
mining rounds (the highest-scoring false windows of a full scan are added and the SVM refit).
The SVM is the primal L2-loss linear SVM solved by Newton steps on the active set (exact, a
few seconds for ~1000 dimensions), with positive and negative classes weighted equally.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_anpr.boxes import BoxPx, iou
from edge_anpr.config import DetectorConfig
from edge_anpr.lab.datasplit import in_holdout, shared_data_dir
from edge_anpr.lab.scenes import Scene, find_scenes, normalise, scale_box
from edge_anpr.vision.hog import (
    DetectorModel,
    PlateDetector,
    Verifier,
    WindowModel,
    default_model_path,
)
from edge_anpr.vision.hog.features import CELLS_PER_PLATE
from edge_anpr.vision.hog.pyramid import FeaturePyramid, ScaleGrid, plate_widths
from edge_anpr.vision.hog.scoring import score_maps, window_features
from edge_anpr.vision.hog.verifier import verify_features

log = logging.getLogger("edge_anpr.train.detector")

# Shape name -> (plate aspect w/h, window size in cells). The plate is centred in the window.
SHAPES: dict[str, tuple[float, tuple[int, int]]] = {
    "eu": (4.4, (10, 4)),
    "us": (2.0, (10, 6)),
    "br": (3.1, (10, 4)),
}
# Scene sub-folder -> shape trained from its plates.
REGION_SHAPE = {"eu": "eu", "us": "us", "br": "br"}

SCAN_MIN_PX = 56
SCAN_MAX_PX = 1000
"""Plate widths mined for negatives (wider than the default run-time range, for robustness)."""
RUN_MIN_PX = 64
"""The scanner alone (``kind = "hog"``) searches from 64 px (``vision.recognize.SCAN_FLOOR_PX``)."""
RUN_MAX_PX = DetectorConfig().max_plate_width_px
"""The default run-time range: verifier examples and the holdout report use it."""
NEG_IOU = 0.2
"""Windows whose plate box overlaps a labelled plate by more than this are never negatives."""


def plate_cells(shape: str) -> tuple[float, float, float, float]:
    aspect, (wc, hc) = SHAPES[shape]
    pw = float(CELLS_PER_PLATE)
    ph = pw / aspect
    return ((wc - pw) / 2.0, (hc - ph) / 2.0, pw, ph)


def holdout(name: str) -> bool:
    """A fixed 20% of the TRAINING images, held out while choosing settings."""
    return in_holdout(name)


@dataclass
class Loaded:
    scene: Scene
    gray: np.ndarray
    boxes: list[BoxPx]


def load(scenes: list[Scene]) -> list[Loaded]:
    out = []
    for sc in scenes:
        img = cv2.imread(str(sc.image_path), cv2.IMREAD_GRAYSCALE)
        if img is None:
            log.warning("unreadable image=%s", sc.image_path)
            continue
        gray, factor = normalise(img)
        out.append(Loaded(sc, gray, [scale_box(p.box_px, factor) for p in sc.plates]))
    return out


def window_at(
    grid: ScaleGrid, shape: str, box: tuple[float, float, float, float]
) -> np.ndarray | None:
    """Descriptor of the window whose plate box best covers ``box`` on this grid."""
    px, py, _, _ = plate_cells(shape)
    _, (wc, hc) = SHAPES[shape]
    c = grid.cell_px
    col = round(box[0] / c - px)
    row = round(box[1] / c - py)
    _, rows, cols = grid.blocks.shape
    if col < 0 or row < 0 or col + wc - 1 > cols or row + hc - 1 > rows:
        return None
    return window_features(grid, (wc - 1, hc - 1), col, row)


def exact_positives(data: list[Loaded], shape: str, region: str) -> list[np.ndarray]:
    out = []
    for d in data:
        if d.scene.group != region:
            continue
        pyr = FeaturePyramid(d.gray, SCAN_MIN_PX / CELLS_PER_PLATE)
        for box in d.boxes:
            for f in (0.93, 1.0, 1.07):
                grid = pyr.grid(box[2] * f)
                if grid is None:
                    continue
                cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
                w = box[2] * f
                h = w / SHAPES[shape][0]
                feat = window_at(grid, shape, (cx - w / 2, cy - h / 2, w, h))
                if feat is not None:
                    out.append(feat)
    return out


def augmented_positives(
    data: list[Loaded], shape: str, region: str, per_plate: int, rng: np.random.Generator
) -> list[np.ndarray]:
    out = []
    aspect = SHAPES[shape][0]
    for d in data:
        if d.scene.group != region:
            continue
        H, W = d.gray.shape
        for box in d.boxes:
            x, y, w, h = box
            cx, cy = x + w / 2, y + h / 2
            for _ in range(per_plate):
                angle = rng.uniform(-5, 5)
                scale = math.exp(rng.uniform(-0.09, 0.09))
                shift = rng.uniform(-0.04, 0.04, 2) * w
                m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
                m[:, 2] += shift
                # Warp only the surroundings the window sees (and margin for gradients).
                rx0, ry0 = int(max(0, cx - 1.2 * w)), int(max(0, cy - 1.2 * w))
                rx1, ry1 = int(min(W, cx + 1.2 * w)), int(min(H, cy + 1.2 * w))
                m_local = m.copy()
                m_local[:, 2] += m[:, :2] @ np.array([rx0, ry0]) - np.array([rx0, ry0])
                crop = d.gray[ry0:ry1, rx0:rx1]
                if crop.size == 0:
                    continue
                warped = cv2.warpAffine(crop, m_local, (crop.shape[1], crop.shape[0]),
                                        borderMode=cv2.BORDER_REFLECT)
                warped = photometric(warped, rng)
                ncx = cx - rx0 + shift[0]
                ncy = cy - ry0 + shift[1]
                nw = w * scale
                nh = nw / aspect
                pyr = FeaturePyramid(warped, nw / CELLS_PER_PLATE * rng.uniform(0.7, 1.0))
                grid = pyr.grid(nw)
                if grid is None:
                    continue
                feat = window_at(grid, shape, (ncx - nw / 2, ncy - nh / 2, nw, nh))
                if feat is not None:
                    out.append(feat)
    return out


LAYOUT_SHAPES = {"eu": ("eu", "de", "nl", "uk_front", "uk_rear", "one_line"),
                 "us": ("us", "us_dark", "us_two_line"), "br": ("br_old", "br_mercosur")}


def rendered_positives(
    data: list[Loaded], shape: str, count: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Rendered plates (``edge_anpr.train.render``) composited into real training scenes."""
    try:
        from edge_anpr.train.render import render_plate
    except ImportError:  # pragma: no cover - the renderer needs Pillow
        log.warning("renderer unavailable: no rendered positives")
        return []
    out = []
    aspect = SHAPES[shape][0]
    layouts = LAYOUT_SHAPES[shape]
    while len(out) < count:
        d = data[int(rng.integers(len(data)))]
        plate = render_plate(rng, layouts[int(rng.integers(len(layouts)))])
        face = cv2.cvtColor(plate.image, cv2.COLOR_RGB2GRAY)
        H, W = d.gray.shape
        w = float(np.exp(rng.uniform(np.log(64), np.log(380))))
        h = w * face.shape[0] / face.shape[1]
        # The surroundings the window sees, with room for the plate anywhere inside.
        cw, ch = int(2.6 * w), int(2.6 * w)
        if cw >= W or ch >= H:
            continue
        x0, y0 = int(rng.integers(0, W - cw)), int(rng.integers(0, H - ch))
        crop = d.gray[y0:y0 + ch, x0:x0 + cw].copy()
        cx, cy = cw / 2 + rng.uniform(-0.05, 0.05) * w, ch / 2 + rng.uniform(-0.05, 0.05) * w
        jit = rng.uniform(-0.04, 0.04, (4, 2)) * np.array([w, h])
        dst = np.array([[cx - w / 2, cy - h / 2], [cx + w / 2, cy - h / 2],
                        [cx + w / 2, cy + h / 2], [cx - w / 2, cy + h / 2]]) + jit
        src = np.array([[0, 0], [face.shape[1], 0], [face.shape[1], face.shape[0]],
                        [0, face.shape[0]]], np.float32)
        m = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
        warped = cv2.warpPerspective(face, m, (cw, ch), flags=cv2.INTER_AREA)
        mask = cv2.warpPerspective(np.full(face.shape, 255, np.uint8), m, (cw, ch),
                                   flags=cv2.INTER_AREA).astype(np.float32) / 255.0
        gain = rng.uniform(0.5, 1.1)
        comp = crop * (1 - mask) + warped * gain * mask
        comp = photometric(np.clip(comp, 0, 255).astype(np.uint8), rng)
        pyr = FeaturePyramid(comp, w / CELLS_PER_PLATE * rng.uniform(0.7, 1.0))
        grid = pyr.grid(w)
        if grid is None:
            continue
        ph = w / aspect
        feat = window_at(grid, shape, (cx - w / 2, cy - ph / 2, w, ph))
        if feat is not None:
            out.append(feat)
    return out


def photometric(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    f = img.astype(np.float32)
    f = (f - 128.0) * rng.uniform(0.6, 1.3) + 128.0 + rng.uniform(-40, 40)
    if rng.random() < 0.3:
        k = int(rng.choice([3, 5]))
        f = cv2.GaussianBlur(f, (k, k), 0)
    if rng.random() < 0.3:
        f += rng.normal(0, rng.uniform(2, 8), f.shape).astype(np.float32)
    if rng.random() < 0.3:
        g = rng.uniform(0.7, 1.4)
        f = 255.0 * (np.clip(f, 0, 255) / 255.0) ** g
    return np.clip(f, 0, 255).astype(np.uint8)


def plate_box_of(shape: str, col: int, row: int, cell: float) -> tuple[float, float, float, float]:
    px, py, pw, ph = plate_cells(shape)
    return ((col + px) * cell, (row + py) * cell, pw * cell, ph * cell)


def random_negatives(
    data: list[Loaded], shape: str, per_image: int, rng: np.random.Generator
) -> list[np.ndarray]:
    _, (wc, hc) = SHAPES[shape]
    out = []
    widths = plate_widths(SCAN_MIN_PX, SCAN_MAX_PX)
    for d in data:
        pyr = FeaturePyramid(d.gray, widths[0] / CELLS_PER_PLATE)
        grids = [g for g in (pyr.grid(w) for w in widths) if g is not None]
        tries = 0
        got = 0
        while got < per_image and tries < per_image * 5 and grids:
            tries += 1
            grid = grids[int(rng.integers(len(grids)))]
            _, rows, cols = grid.blocks.shape
            if rows - hc + 1 <= 0 or cols - wc + 1 <= 0:
                continue
            row = int(rng.integers(rows - hc + 2))
            col = int(rng.integers(cols - wc + 2))
            if row + hc - 1 > rows or col + wc - 1 > cols:
                continue
            box = plate_box_of(shape, col, row, grid.cell_px)
            if any(iou(box, b) > NEG_IOU for b in d.boxes):
                continue
            out.append(window_features(grid, (wc - 1, hc - 1), col, row))
            got += 1
    return out


def hard_negatives(
    data: list[Loaded], model: WindowModel, per_image: int, floor: float
) -> tuple[list[np.ndarray], int]:
    """The best-scoring windows that are not plates, per image (after a light NMS)."""
    wc, hc = model.win_cells
    out = []
    total = 0
    widths = plate_widths(SCAN_MIN_PX, SCAN_MAX_PX)
    for d in data:
        pyr = FeaturePyramid(d.gray, widths[0] / CELLS_PER_PLATE)
        found: list[tuple[float, tuple[float, float, float, float], np.ndarray]] = []
        for w in widths:
            grid = pyr.grid(w)
            if grid is None:
                break
            (smap,) = score_maps(grid, [model])
            if smap is None:
                continue
            ys, xs = np.nonzero(smap > floor)
            if len(ys) > 400:
                order = np.argsort(-smap[ys, xs])[:400]
                ys, xs = ys[order], xs[order]
            for row, col in zip(ys.tolist(), xs.tolist(), strict=True):
                box = plate_box_of(model.name, col, row, grid.cell_px)
                if any(iou(box, b) > NEG_IOU for b in d.boxes):
                    continue
                found.append((float(smap[row, col]), box,
                              window_features(grid, (wc - 1, hc - 1), col, row)))
        total += len(found)
        found.sort(key=lambda t: -t[0])
        kept: list[tuple[float, tuple[float, float, float, float], np.ndarray]] = []
        for item in found:
            if all(iou(item[1], k[1]) < 0.5 for k in kept):
                kept.append(item)
                if len(kept) >= per_image:
                    break
        out.extend(k[2] for k in kept)
    return out, total


def train_svm(
    pos: np.ndarray, neg: np.ndarray, lam: float, iters: int = 40
) -> tuple[np.ndarray, float]:
    """Primal L2-loss linear SVM (Newton on the active set); classes weighted equally."""
    x = np.concatenate([pos, neg]).astype(np.float32)
    y = np.concatenate([np.ones(len(pos)), -np.ones(len(neg))]).astype(np.float64)
    c = np.where(y > 0, 0.5 * len(y) / len(pos), 0.5 * len(y) / len(neg))
    xa = np.concatenate([x, np.ones((len(x), 1), np.float32)], axis=1)
    dim = xa.shape[1]
    reg = np.full(dim, lam)
    reg[-1] = 1e-6
    w = np.zeros(dim)
    prev: np.ndarray | None = None
    for _ in range(iters):
        f = xa @ w
        active = y * f < 1
        if prev is not None and np.array_equal(active, prev):
            break
        prev = active
        xs = xa[active].astype(np.float64)
        cs = c[active]
        hess = (xs * cs[:, None]).T @ xs + np.diag(reg)
        rhs = (xs * cs[:, None]).T @ y[active]
        w_new = np.linalg.solve(hess, rhs)
        # Newton direction with a backtracking step keeps the objective decreasing.
        step = 1.0
        obj = _objective(xa, y, c, w, reg)
        while step > 1e-3:
            cand = w + step * (w_new - w)
            if _objective(xa, y, c, cand, reg) <= obj + 1e-9:
                break
            step *= 0.5
        w = w + step * (w_new - w)
    return w[:-1].astype(np.float32), float(w[-1])


def _objective(
    xa: np.ndarray, y: np.ndarray, c: np.ndarray, w: np.ndarray, reg: np.ndarray
) -> float:
    margin = np.maximum(0.0, 1.0 - y * (xa @ w))
    return float(0.5 * np.sum(reg * w * w) + 0.5 * np.sum(c * margin * margin))


def make_model(shape: str, w: np.ndarray, b: float) -> WindowModel:
    _, (wc, hc) = SHAPES[shape]
    return WindowModel(shape, (wc, hc), plate_cells(shape),
                       w.reshape(hc - 1, wc - 1, -1).astype(np.float32), b)


def evaluate(
    data: list[Loaded], detector: PlateDetector, limit: int, threshold: float
) -> dict[str, float]:
    plates = hits = fps = 0
    for d in data:
        dets = detector.detect(d.gray, limit=limit, threshold=threshold)
        plates += len(d.boxes)
        matched = set()
        for det in dets:
            best = max(((iou(det.box_px, b), i) for i, b in enumerate(d.boxes)),
                       default=(0.0, -1))
            if best[0] >= 0.3:
                matched.add(best[1])
            else:
                fps += 1
        hits += len(matched)
    return {"recall": hits / max(plates, 1), "fp_per_image": fps / max(len(data), 1),
            "images": len(data), "plates": plates}


def train_shape(shape: str, train: list[Loaded], lam: float, rounds: int,
                rng: np.random.Generator, rendered: int = 0) -> WindowModel:
    region = next(r for r, s in REGION_SHAPE.items() if s == shape)
    t0 = time.monotonic()
    pos = exact_positives(train, shape, region) + augmented_positives(train, shape, region, 12, rng)
    if rendered:
        pos += rendered_positives(train, shape, rendered, rng)
    neg = random_negatives(train, shape, 60, rng)
    log.info("shape=%s positives=%d negatives=%d seconds=%.1f", shape, len(pos), len(neg),
             time.monotonic() - t0)
    p, n = np.array(pos), np.array(neg)
    w, b = train_svm(p, n, lam)
    model = make_model(shape, w, b)
    for r in range(rounds):
        hard, total = hard_negatives(train, model, 25, -1.0)
        n = np.concatenate([n, np.array(hard)]) if hard else n
        w, b = train_svm(p, n, lam)
        model = make_model(shape, w, b)
        log.info("shape=%s round=%d hard=%d above_floor=%d negatives=%d seconds=%.1f", shape,
                 r + 1, len(hard), total, len(n), time.monotonic() - t0)
    return model


def _jitter(box: tuple[float, float, float, float], rng: np.random.Generator,
            amount: float) -> tuple[float, float, float, float]:
    x, y, w, h = box
    f = math.exp(rng.uniform(-amount, amount))
    cx = x + w / 2 + rng.uniform(-amount, amount) * w * 0.5
    cy = y + h / 2 + rng.uniform(-amount, amount) * h
    return (cx - w * f / 2, cy - h * f / 2, w * f, h * f)


def verifier_examples(
    data: list[Loaded], model: DetectorModel, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Positives: labelled boxes (jittered) and scanner candidates on plates; negatives: the
    scanner's false candidates (what the verifier exists to reject), slightly jittered."""
    det = PlateDetector(model, min_plate_width_px=RUN_MIN_PX, max_plate_width_px=RUN_MAX_PX,
                        verify=False)
    pos: list[np.ndarray] = []
    neg: list[np.ndarray] = []
    for d in data:
        for b in d.boxes:
            pos.append(verify_features(d.gray, b))
            for _ in range(6):
                pos.append(verify_features(d.gray, _jitter(b, rng, 0.1)))
        for cand in det.detect(d.gray, limit=16, threshold=-0.75):
            overlap = max((iou(cand.box_px, b) for b in d.boxes), default=0.0)
            if overlap >= 0.3:
                pos.append(verify_features(d.gray, cand.box_px))
            elif overlap < NEG_IOU:
                neg.append(verify_features(d.gray, cand.box_px))
                for _ in range(3):
                    neg.append(verify_features(d.gray, _jitter(cand.box_px, rng, 0.1)))
    return pos, neg


def candidate_scores(data: list[Loaded], model: DetectorModel, verifier: Verifier
                     ) -> tuple[list[float], list[float]]:
    """Verifier scores of the scanner's candidates on plates and elsewhere."""
    det = PlateDetector(model, min_plate_width_px=RUN_MIN_PX, max_plate_width_px=RUN_MAX_PX,
                        verify=False)
    on, off = [], []
    for d in data:
        for cand in det.detect(d.gray, limit=8):
            score = verifier.score(d.gray, cand.box_px)
            if any(iou(cand.box_px, b) >= 0.3 for b in d.boxes):
                on.append(score)
            else:
                off.append(score)
    return on, off


def train_verifier(data: list[Loaded], model: DetectorModel, lam: float,
                   rng: np.random.Generator, keep: float = 0.98) -> Verifier:
    """Fit on two halves in turn to get out-of-sample scores of the candidates on plates; the
    threshold keeps ``keep`` of them. The final verifier is then fit on everything."""
    halves = [[d for d in data if holdout_half(d) == k] for k in (0, 1)]
    on_scores: list[float] = []
    off_scores: list[float] = []
    for k in (0, 1):
        pos, neg = verifier_examples(halves[k], model, rng)
        w, b = train_svm(np.array(pos), np.array(neg), lam)
        on, off = candidate_scores(halves[1 - k], model, Verifier(w, b, 0.0))
        on_scores += on
        off_scores += off
    threshold = float(np.quantile(on_scores, 1.0 - keep)) if on_scores else 0.0
    rejected = float(np.mean(np.array(off_scores) < threshold)) if off_scores else 0.0
    log.info("verifier out_of_sample plate_candidates=%d kept=%.3f other_candidates=%d "
             "rejected=%.3f threshold=%.3f", len(on_scores),
             float(np.mean(np.array(on_scores) >= threshold)), len(off_scores), rejected,
             threshold)
    pos, neg = verifier_examples(data, model, rng)
    w, b = train_svm(np.array(pos), np.array(neg), lam)
    log.info("verifier positives=%d negatives=%d", len(pos), len(neg))
    return Verifier(w, b, threshold)


def holdout_half(d: Loaded) -> int:
    return hashlib.sha256(("half:" + d.scene.image_path.name).encode()).digest()[0] & 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_anpr.train detector")
    ap.add_argument("--data", type=Path, default=None, help="scenes folder (default ../shared)")
    ap.add_argument("--out", type=Path, default=default_model_path())
    ap.add_argument("--lam", type=float, default=1.0, help="L2 regularisation")
    ap.add_argument("--rounds", type=int, default=3, help="hard-negative mining rounds")
    ap.add_argument("--holdout", action="store_true",
                    help="train on 80%% of the training images and report on the other 20%%")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-verifier", action="store_true", help="skip the second stage")
    ap.add_argument("--shapes-from", type=Path, default=None,
                    help="reuse the window SVMs of this model file (train the verifier only)")
    ap.add_argument("--rendered", type=int, default=0,
                    help="rendered plates composited into training scenes, per shape (400 "
                         "raised held-out false candidates 0.95 -> 2.26 per image: off)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cv2.setNumThreads(1)
    root = args.data or ((shared_data_dir() or Path("../shared/data")) / "scenes")
    if not root.is_dir():
        print(f"no scenes folder at {root}", file=sys.stderr)
        return 1
    scenes = find_scenes(root, "train")
    data = load(scenes)
    if args.holdout:
        train = [d for d in data if not holdout(d.scene.image_path.name)]
        held = [d for d in data if holdout(d.scene.image_path.name)]
    else:
        train, held = data, []
    log.info("training images=%d held_out=%d", len(train), len(held))
    rng = np.random.default_rng(args.seed)
    if args.shapes_from is not None:
        models = DetectorModel.load(args.shapes_from).models
        log.info("window models loaded from=%s", args.shapes_from)
    else:
        models = tuple(train_shape(s, train, args.lam, args.rounds, rng, args.rendered)
                       for s in SHAPES)
    threshold = 0.0
    info = (f"HoG {CELLS_PER_PLATE} cells per plate width, shapes {','.join(SHAPES)}, "
            f"lam={args.lam}, rounds={args.rounds}, rendered={args.rendered}, "
            f"train images={len(train)}")
    model = DetectorModel(models, threshold, info)
    if not args.no_verifier:
        verifier = train_verifier(train, model, args.lam, rng)
        model = DetectorModel(models, threshold, info + ", verifier", verifier)
    if held:
        for verify in (False, True):
            det = PlateDetector(model, min_plate_width_px=RUN_MIN_PX,
                                max_plate_width_px=RUN_MAX_PX, verify=verify)
            for t in (-0.25, 0.0, 0.25):
                log.info("holdout verify=%s threshold=%s limit=8 %s", verify, t,
                         evaluate(held, det, 8, t))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)
    log.info("saved path=%s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
