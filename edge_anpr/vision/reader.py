"""Reading one plate crop: segment the characters, classify each, rank the texts.

Two bundled int8 TFLite models do the work:

* ``segmenter.tflite``: the grey crop letterboxed to 64x128 -> a 16x32 grid (stride 4) of
  5 sigmoid channels: character-centre heat, x/y offset of the centre inside the cell, and the
  character's width and height divided by 64. Peaks of the heat map are characters.
* ``classifier.tflite``: each character cut out of the full-resolution crop (aspect kept,
  32x24) -> 37 softmax scores, ``0-9A-Z`` and a last "not a character" class that rejects
  junk boxes (small print, stickers, bolts) and lets the detector drop false candidates.

A third, ``region.tflite`` (``vision.region``), tells where the plate is from; that region
chooses the plate-format regions a crop is read with (``plates.origin``) and goes on the read.
The per-character alternatives go through ``edge_anpr.plates.formats`` (beam plus region
patterns) into ranked candidates. The preprocessing functions here are also what training uses,
so run time and training can never disagree on them.

``PlateReader`` is not thread-safe: each worker thread creates its own (each owns its
interpreters; loading takes a few milliseconds).
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from edge_anpr.config import Config
from edge_anpr.errors import ConfigError, ModelError
from edge_anpr.models import bundled_models_dir
from edge_anpr.plates.formats import check_regions, fits_any, prefer_group_kind, rank_candidates
from edge_anpr.plates.origin import formats_for, us_plate, us_serials
from edge_anpr.plates.us import LOOKALIKES, write_us
from edge_anpr.values import NO_REGION, Candidate, PlateRegion, PlateText
from edge_anpr.vision.marks import drop_end_marks
from edge_anpr.vision.region import REGION_FILE, RegionReader
from edge_anpr.vision.tflite import Int8Model

log = logging.getLogger(__name__)

SEG_H, SEG_W, SEG_STRIDE = 64, 128, 4
SEG_CHANNELS = 5
CHAR_H, CHAR_W = 32, 24
CLASSES = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
NOT_A_CHAR = len(CLASSES)
_CLASS_INDEX = {c: i for i, c in enumerate(CLASSES)}
SEGMENTER_FILE = "segmenter.tflite"
CLASSIFIER_FILE = "classifier.tflite"
HEAT_THRESHOLD = 0.3
JUNK_THRESHOLD = 0.25
"""A box is dropped when its "not a character" probability reaches this (chosen on the
training split: 0.25 read 89.4% exactly there, 0.5 read 88.1%)."""
GROUP_GAP = 0.45
"""Characters further apart than this share of their height belong to different printed
groups (``char_groups``)."""
MIN_HEIGHT_RATIO = 0.6
"""Boxes shorter than this share of the median box height are small print, not characters
(stacked two-letter prefixes, sticker digits): US labels leave them out."""
RAISED_DY = 0.35
RAISED_HEIGHT = 0.9
ON_LINE_DY = 0.2
"""A box is a raised letter, not a character, when its centre sits more than ``RAISED_DY`` of
the median height above the line (the other boxes' median centre), it is shorter than
``RAISED_HEIGHT`` of the median height, and its neighbours along the line sit on it (centre
within ``ON_LINE_DY`` of the height): the top letter of a stacked prefix or of the state name
beside the characters, first in the line, or a letter of the state name above the serial's
gap, between two characters (``_drop_raised``)."""


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How a crop was placed in the segmenter input: input = crop * scale + (dx, dy)."""

    scale: float
    dx: float
    dy: float


def to_grey(image: NDArray[np.uint8]) -> NDArray[np.uint8]:
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        return image[..., 0]
    raise ValueError(f"expected a grey or BGR image, got shape {image.shape}")


def letterbox(grey: NDArray[np.uint8]) -> tuple[NDArray[np.uint8], Letterbox]:
    """Fit the crop into SEG_H x SEG_W keeping its aspect, centred, padded with mid-grey."""
    h, w = grey.shape
    scale = min(SEG_W / w, SEG_H / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(grey, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1
                         else cv2.INTER_LINEAR)
    out = np.full((SEG_H, SEG_W), 127, np.uint8)
    dx, dy = (SEG_W - nw) // 2, (SEG_H - nh) // 2
    out[dy : dy + nh, dx : dx + nw] = resized
    return out, Letterbox(scale, float(dx), float(dy))


def char_crop(
    grey: NDArray[np.uint8], box: Sequence[float] | NDArray[np.float32]
) -> NDArray[np.uint8]:
    """Cut one character box (x0, y0, x1, y1) with a margin, aspect kept, to CHAR_H x CHAR_W."""
    return np.asarray(char_crops([grey], np.asarray([box[:4]], np.float64))[0], np.uint8)


def char_crops(
    greys: Sequence[NDArray[np.uint8]], boxes: NDArray[np.floating[Any]]
) -> NDArray[np.uint8]:
    """``char_crop`` of each box (N x 4+: x0, y0, x1, y1) in its image ``greys[k]``, as one
    N x CHAR_H x CHAR_W array.

    The crops' geometry is computed for all boxes at once, in float64 as one box at a time
    computed it in Python floats (the same operations in the same order: the same matrices to
    the bit), and each ``warpAffine`` writes straight into its row of the result. Done a box at
    a time, the Python around the ~50 warps of a frame (holding the GIL the other recognition
    workers wait for) cost more than the warps themselves.
    """
    out = np.empty((len(boxes), CHAR_H, CHAR_W), np.uint8)
    if not len(boxes):
        return out
    b = np.asarray(boxes, np.float64)
    x0, y0, x1, y1 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    bw, bh = np.maximum(1.0, x1 - x0), np.maximum(1.0, y1 - y0)
    ch = bh * 1.2
    cw = np.maximum(bw + 0.2 * bh, ch * CHAR_W / CHAR_H)
    ch = np.maximum(ch, cw * CHAR_H / CHAR_W)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    sx, sy = CHAR_W / cw, CHAR_H / ch
    m = np.zeros((len(b), 2, 3), np.float32)
    m[:, 0, 0], m[:, 0, 2] = sx, CHAR_W / 2 - cx * sx
    m[:, 1, 1], m[:, 1, 2] = sy, CHAR_H / 2 - cy * sy
    # Bilinear for every box: OpenCV's warps have no area interpolation and take INTER_AREA,
    # which shrinking boxes once asked for, as INTER_LINEAR (the test compares the crops with
    # that per-box choice).
    warp, size = cv2.warpAffine, (CHAR_W, CHAR_H)
    linear, border = cv2.INTER_LINEAR, cv2.BORDER_REPLICATE
    for grey, matrix, dst in zip(greys, m, out, strict=True):
        warp(grey, matrix, size, dst=dst, flags=linear, borderMode=border)
    return out


def normalise_chars(crops: NDArray[np.uint8]) -> NDArray[np.float32]:
    """Per-crop contrast stretch to [0, 1] (so dark-on-light and dim plates look alike)."""
    x = crops.astype(np.float32)
    lo, hi = _percentiles(x, (5.0, 95.0))
    return np.asarray(np.clip((x - lo) / np.maximum(hi - lo, 16.0), 0, 1)[..., None], np.float32)


def _percentiles(x: NDArray[np.float32], qs: Sequence[float]) -> list[NDArray[np.float32]]:
    """``np.percentile(x, q, axis=(1, 2), keepdims=True)`` (linear method) for each of
    ``qs``, from one sort.

    ``np.percentile`` spends most of its time in Python-level bookkeeping, holding the GIL
    that the other recognition workers need; a sort and a lerp give the same numbers. One
    sort serves every ``q``: a sort lets the GIL go however small the array, and a worker
    coming back from it often has to wait for the GIL.
    """
    flat = np.sort(x.reshape(len(x), -1), axis=1)
    last = flat.shape[1] - 1
    values = []
    for q in qs:
        pos = q / 100.0 * last
        below = math.floor(pos)
        above = min(below + 1, last)
        frac = pos - below
        value = flat[:, below] + (flat[:, above] - flat[:, below]) * frac
        values.append(np.asarray(value.reshape(-1, 1, 1), np.float32))
    return values


def decode_segmentation(
    maps: NDArray[np.float32], lb: Letterbox, threshold: float = HEAT_THRESHOLD
) -> NDArray[np.float32]:
    """Heat peaks -> character boxes in crop pixels (N x 5: x0, y0, x1, y1, score),
    in reading order (top line first when there are two lines), junk-sized boxes removed."""
    return decode_segmentations(maps[None], [lb], threshold)[0]


def decode_segmentations(
    maps: NDArray[np.float32], lbs: Sequence[Letterbox], threshold: float = HEAT_THRESHOLD
) -> list[NDArray[np.float32]]:
    """``decode_segmentation`` for a batch of maps (B x H x W x 5), one call for the batch.

    The heat maps are stacked with a separator row below each (lower than any heat), so one
    3x3 dilation and one peak search serve the whole batch; the few dozen peaks are then
    handled as plain Python floats, and the boxes of all crops become one array at the end.
    Per-crop numpy calls on such small arrays cost more in interpreter overhead, all of it
    holding the GIL the other recognition workers wait for, than the arithmetic itself (a
    version doing the boxes, overlaps and rescaling for the whole batch in numpy was slower,
    3x for one crop and 1.3x for ten: it takes some 50 numpy calls).
    """
    count, rows, cols = maps.shape[:3]
    heat = np.full((count, rows + 1, cols), -1.0, np.float32)
    heat[:, :rows] = maps[..., 0]
    flat = heat.reshape(count * (rows + 1), cols)
    pooled = cv2.dilate(flat, _PEAK_KERNEL)
    # flat positions, split by hand: np.nonzero of the 2-D mask costs several times more
    crop_of, at = np.divmod(np.flatnonzero((flat >= pooled) & (flat > threshold)),
                            (rows + 1) * cols)
    ys, xs = np.divmod(at, cols)
    peaks = maps[crop_of, ys, xs].tolist()
    per_crop: list[list[Box5]] = [[] for _ in range(count)]
    for k, y, x, (score, ox, oy, w, h) in zip(
        crop_of.tolist(), ys.tolist(), xs.tolist(), peaks, strict=True
    ):
        cx, cy = (x + ox) * SEG_STRIDE, (y + oy) * SEG_STRIDE
        bw, bh = w * SEG_H, h * SEG_H
        per_crop[k].append((cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2, score))
    found: list[Box5] = []
    bounds = [0]
    for boxes, lb in zip(per_crop, lbs, strict=True):
        if boxes:
            found += _crop_boxes(boxes, lb)
        bounds.append(len(found))
    # one array for the batch, handed out as row slices: one conversion instead of one per crop
    out = np.array(found, np.float32).reshape(-1, 5)
    return [out[a:b] for a, b in itertools.pairwise(bounds)]


def _crop_boxes(peaks: list[Box5], lb: Letterbox) -> list[Box5]:
    """One crop's peak boxes: suppressed, back in crop pixels, small print removed, ordered."""
    kept = _nms(peaks)
    s, dx, dy = lb.scale, lb.dx, lb.dy
    kept = [((x0 - dx) / s, (y0 - dy) / s, (x1 - dx) / s, (y1 - dy) / s, sc)
            for x0, y0, x1, y1, sc in kept]
    heights = [b[3] - b[1] for b in kept]
    median = _median(heights)
    least = MIN_HEIGHT_RATIO * median
    tall = [h for h in heights if h >= least]
    if len(tall) < len(heights):  # as rare as small print
        kept = [b for b, h in zip(kept, heights, strict=True) if h >= least]
        if len(kept) > 1:
            median = _median(tall)
    return _drop_raised(_reading_order(kept, median), median)


def _drop_raised(boxes: list[Box5], h: float) -> list[Box5]:
    """``boxes`` (reading order, median height ``h``) without raised, smaller boxes set among
    characters on the line.

    US plates print stacked two-letter prefixes (R over T) and state names above the serial;
    the segmenter boxes the upper letter, which reads as a character before the plate number
    (3887 read V3887) or, a letter of the state name above the gap of the serial, inside it
    (357 HPB read 35A7HPB under "Arkansas"). A first box alone above the line (the box after
    it sits on the line, so the first line of a two-line plate is never touched), or a box
    above the line between two boxes on it, and shorter than the characters is such a
    letter. Chosen on the training crops (2,640 US, Brazilian and scene plates): the first-box
    rule changes 5 of their reads, each from an extra first character to the label; the
    inner-box rule, with the same two measures, 2 more, the same way.
    """
    if len(boxes) < 4:
        return boxes
    centres = [(b[1] + b[3]) / 2 for b in boxes]

    def raised_letter(i: int, line: float, neighbours: tuple[int, ...]) -> bool:
        box = boxes[i]
        return (line - centres[i] > RAISED_DY * h and box[3] - box[1] < RAISED_HEIGHT * h
                and all(abs(centres[j] - line) < ON_LINE_DY * h for j in neighbours))

    if raised_letter(0, _median(centres[1:]), (1,)):
        boxes, centres = boxes[1:], centres[1:]
    if len(boxes) < 5:
        return boxes
    line = _median(centres)
    last = len(boxes) - 1
    return [b for i, b in enumerate(boxes)
            if i in (0, last) or not raised_letter(i, line, (i - 1, i + 1))]


_PEAK_KERNEL = np.ones((3, 3), np.uint8)
Box5 = tuple[float, float, float, float, float]


def _nms(boxes: list[Box5], overlap: float = 0.5) -> list[Box5]:
    """Greedy suppression, best score first, of boxes covering over ``overlap`` of the
    smaller one (characters never overlap that much).

    Per pair this is ``ix = max(0.0, min(x1, a1) - max(x0, a0))``, the same for y, ``small =
    min(area, kept area)`` and ``small > 0 and ix * iy / small > overlap``, with the ``min`` /
    ``max`` builtins written as the comparisons they make (same values, NaN and signed zeros
    included), and a pair given up as soon as ix or iy would be clamped to 0, where the test
    cannot pass (0 * iy / small is 0, or NaN for an infinite iy: never over ``overlap``).
    Most pairs are side-by-side characters, settled by one subtraction; the builtin calls
    per pair were most of the time.
    """
    kept: list[tuple[float, float, float, float, float]] = []  # x0, y0, x1, y1, area
    out: list[Box5] = []
    for box in sorted(boxes, key=lambda b: -b[4]):
        x0, y0, x1, y1, _ = box
        area = (x1 - x0) * (y1 - y0)
        for a0, b0, a1, b1, kept_area in kept:
            ix = (a1 if a1 < x1 else x1) - (a0 if a0 > x0 else x0)
            if ix > 0.0:
                iy = (b1 if b1 < y1 else y1) - (b0 if b0 > y0 else y0)
                if iy > 0.0:
                    small = kept_area if kept_area < area else area
                    if small > 0 and ix * iy / small > overlap:
                        break
        else:
            kept.append((x0, y0, x1, y1, area))
            out.append(box)
    return out


def _median(values: list[float]) -> float:
    """``statistics.median`` (the same value, also for even counts) without its overhead."""
    data = sorted(values)
    n = len(data)
    if n % 2:
        return data[n // 2]
    return (data[n // 2 - 1] + data[n // 2]) / 2


def reading_order(boxes: NDArray[np.float32]) -> NDArray[np.float32]:
    """Sort left to right; when centres form two rows clearly apart, top row first."""
    rows = [(r[0], r[1], r[2], r[3], r[4]) for r in boxes.tolist()]
    median = _median([b[3] - b[1] for b in rows]) if len(rows) > 1 else 0.0
    ordered = _reading_order(rows, median)
    return np.array(ordered, np.float32).reshape(-1, boxes.shape[1])


def _reading_order(boxes: list[Box5], h: float) -> list[Box5]:
    """``boxes`` sorted by x centre; when the sorted y centres have a gap over 0.6 of ``h``,
    the boxes' median height (y1 - y0, which the caller has already), the boxes below the
    widest gap come after the others."""
    if len(boxes) < 2:
        return boxes
    by_cy = sorted(boxes, key=lambda b: b[1] + b[3])
    gaps = [(b[1] + b[3] - a[1] - a[3]) / 2 for a, b in itertools.pairwise(by_cy)]
    widest = max(range(len(gaps)), key=gaps.__getitem__)
    if gaps[widest] > 0.6 * h:
        lower = {id(b) for b in by_cy[widest + 1 :]}
        return sorted(boxes, key=lambda b: (id(b) in lower, b[0] + b[2]))
    return sorted(boxes, key=lambda b: b[0] + b[2])


def char_groups(boxes: Sequence[Sequence[float]]) -> list[int]:
    """A group id per character box (boxes in reading order, x0, y0, x1, y1 first): a new
    group starts on a new line or after a gap wider than ``GROUP_GAP`` of the median
    character height (the space, dash or emblem between a plate's printed groups)."""
    if not boxes:
        return []
    h = _median([b[3] - b[1] for b in boxes])
    ids = [0]
    for a, b in itertools.pairwise(boxes):
        new_line = (b[1] + b[3] - a[1] - a[3]) / 2 > 0.6 * h or b[0] + b[2] < a[0] + a[2]
        ids.append(ids[-1] + (new_line or b[0] - a[2] > GROUP_GAP * h))
    return ids


@dataclass(frozen=True, slots=True)
class ReadTiming:
    segment_ms: float
    classify_ms: float
    region_ms: float = 0.0


class PlateReader:
    """Reads plate crops with the int8 models. Not thread-safe: one per worker thread."""

    def __init__(
        self, models_dir: Path | None = None, *, regions: Sequence[str] = ("generic",),
        top_n: int = 5, min_chars: int = 2, num_threads: int = 1,
    ) -> None:
        try:
            check_regions(regions)
        except ValueError as exc:
            raise ConfigError(f"reader.regions: {exc}") from None
        folder = models_dir or bundled_models_dir()
        self.models_dir = folder
        self._seg = Int8Model(folder / SEGMENTER_FILE, num_threads=num_threads, batch_step=1)
        self._cls = Int8Model(folder / CLASSIFIER_FILE, num_threads=num_threads, batch_step=8)
        if self._seg.input_shape[1:] != (SEG_H, SEG_W, 1):
            raise ModelError(f"{folder / SEGMENTER_FILE}: input {self._seg.input_shape} is not "
                             f"(1, {SEG_H}, {SEG_W}, 1)")
        if self._cls.input_shape[1:] != (CHAR_H, CHAR_W, 1):
            raise ModelError(f"{folder / CLASSIFIER_FILE}: input {self._cls.input_shape} is not "
                             f"(N, {CHAR_H}, {CHAR_W}, 1)")
        self._seg_table = self._seg.pixel_table(1.0 / 255.0)
        """Segmenter input for each grey level (pixel / 255, quantised) as one look-up."""
        region_path = folder / REGION_FILE
        if not region_path.is_file():
            region_path = bundled_models_dir() / REGION_FILE
        self._region = RegionReader(region_path, num_threads=num_threads)
        self.regions = tuple(regions)
        self.top_n = top_n
        self.min_chars = min_chars
        self.last_timing = ReadTiming(0.0, 0.0)
        self._warm_up()

    def _warm_up(self) -> None:
        """First calls allocate and initialise (interpreters, OpenCV kernels, numpy paths):
        do them now so the first real read is as fast as the others."""
        maps = self._seg.run(np.zeros((1, SEG_H, SEG_W, 1), np.float32))[0]
        maps[:] = 0.5
        maps[8, 4:28:6, 0] = 0.9
        boxes = decode_segmentation(maps, Letterbox(1.0, 0.0, 0.0))
        self.classify(np.full((SEG_H, SEG_W), 127, np.uint8), boxes)
        # the batch sizes a frame's reads use, so no interpreter is made mid-frame
        for n in range(1, 6):
            self._seg.run(np.zeros((n, SEG_H, SEG_W, 1), np.float32))
        for n in range(8, 49, 8):
            self._cls.run(np.zeros((n, CHAR_H, CHAR_W, 1), np.float32))

    def segment(self, grey: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Character boxes (N x 5) in crop pixels, reading order."""
        return self._segment_many([grey])[0]

    def _segment_many(self, greys: Sequence[NDArray[np.uint8]]) -> list[NDArray[np.float32]]:
        """``segment`` for several crops with one segmenter call."""
        boxed = [letterbox(g) for g in greys]
        pixels = np.stack([img for img, _ in boxed])[..., None]
        maps = self._seg.run_quantised(np.take(self._seg_table, pixels))
        return decode_segmentations(maps, [lb for _, lb in boxed])

    def classify(self, grey: NDArray[np.uint8], boxes: NDArray[np.float32]) -> NDArray[np.float32]:
        """Softmax scores N x 37 for the given boxes."""
        if len(boxes) == 0:
            return np.zeros((0, NOT_A_CHAR + 1), np.float32)
        return self._cls.run(normalise_chars(char_crops([grey] * len(boxes), boxes)))

    def read(
        self, crop: NDArray[np.uint8], regions: Sequence[str] | None = None
    ) -> PlateText | None:
        """Text of one plate crop (BGR or grey), or None when it does not look like a plate.

        ``regions`` overrides the reader's own list for this read (a camera's own regions).
        """
        return self.read_many([crop], regions)[0]

    def read_many(
        self, crops: Sequence[NDArray[np.uint8]], regions: Sequence[str] | None = None
    ) -> list[PlateText | None]:
        """``read`` for several crops, with one segmenter and one classifier call for all.

        The recognizer reads several boxes of the same plate; batching them makes the
        interpreter calls (which release the GIL) larger and the Python around them (which
        holds it, and so stalls the other recognition workers) run once instead of per crop.
        """
        results: list[PlateText | None] = [None] * len(crops)
        greys = [to_grey(c) for c in crops]
        usable = [i for i, g in enumerate(greys) if g.shape[0] >= 8 and g.shape[1] >= 16]
        if not usable:
            return results
        t0 = time.perf_counter()
        boxes = self._segment_many([greys[i] for i in usable])
        tr = time.perf_counter()
        region_rows = dict(zip(
            usable, self._region.probabilities([greys[i] for i in usable]).tolist(), strict=True
        ))
        t1 = time.perf_counter()
        owners = [greys[i] for i, bs in zip(usable, boxes, strict=True) for _ in range(len(bs))]
        if not owners:
            return results
        every_box = np.concatenate(boxes)
        probs = self._cls.run(normalise_chars(char_crops(owners, every_box)))
        t2 = time.perf_counter()
        self.last_timing = ReadTiming((tr - t0) * 1000, (t2 - t1) * 1000, (t1 - tr) * 1000)
        # Every character of every crop at once, then plain Python values: per-crop numpy
        # calls here held the GIL the other workers need.
        is_char = (probs[:, NOT_A_CHAR] < JUNK_THRESHOLD).tolist()
        char_probs = probs[:, :NOT_A_CHAR]
        char_probs = char_probs / np.maximum(char_probs.sum(axis=1, keepdims=True), 1e-6)
        top = np.argsort(-char_probs, axis=1)[:, :3]
        top_p = np.take_along_axis(char_probs, top, axis=1).tolist()
        alternatives = [
            [(CLASSES[k], p) for k, p in zip(ks, ps, strict=True)]
            for ks, ps in zip(top.tolist(), top_p, strict=True)
        ]
        rows = char_probs.tolist()
        box_rows = every_box.tolist()
        start = 0
        for i, bs in zip(usable, boxes, strict=True):
            end = start + len(bs)
            keep = [j for j in range(start, end) if is_char[j]]
            start = end
            keep = [keep[k] for k in drop_end_marks([box_rows[j] for j in keep],
                                                    [top_p[j][0] for j in keep])]
            if len(keep) >= max(1, self.min_chars):
                groups = char_groups([box_rows[j] for j in keep])
                alts = prefer_group_kind([alternatives[j] for j in keep], groups)
                configured = tuple(regions or self.regions)
                origin = self._region.region_given(
                    region_rows[i], self._evidence(alts, configured)
                )
                results[i] = self._text(
                    alts, [rows[j] for j in keep], formats_for(configured, origin), origin,
                    us_serials(configured, origin), us_plate(configured, origin),
                )
        return results

    def _evidence(self, alternatives: list[list[tuple[str, float]]],
                  configured: tuple[str, ...]) -> str:
        """The text the plate's region is weighed with (``RegionReader.region_given``): its
        best reading with the camera's own formats, before the region picks any, so that
        formats the region picked cannot make the text agree with the region."""
        return rank_candidates(alternatives, configured, 1)[0].text

    def _text(
        self, alternatives: list[list[tuple[str, float]]], rows: list[list[float]],
        regions: Sequence[str], origin: PlateRegion = NO_REGION,
        us: tuple[str, ...] | None = None, us_ranked: bool = False,
    ) -> PlateText:
        """The ranked reading of one crop from its characters' top alternatives and scores,
        with ``origin``, the region the plate was read to be from.

        The plate is reported with its own confidence (a format it does not fit never lowers
        it), the other candidates with their ranking scores (``rank_candidates``), which are
        no higher: the candidates are sorted by what they report. With ``us`` (the serials of
        ``plates.origin.us_serials``), the plate and every candidate are written by the US
        convention (``plates.us.write_us``); a candidate that then equals an earlier one is
        dropped. With ``us_ranked`` (a US plate, ``plates.origin.us_plate``, ranked as with
        ``generic``), the format region is ``us`` when the plate fits a US serial, else
        ``generic``. Writing changes no confidence: the characters' are those of the
        reading."""
        ranked = rank_candidates(alternatives, regions, self.top_n)
        best = ranked[0]
        char_conf = tuple(
            row[CLASSES.index(c)] for row, c in zip(rows, best.text, strict=True)
        )
        texts = [r.text for r in ranked]
        format_region = best.region
        if us is not None:
            texts = [
                t if LOOKALIKES.isdisjoint(t) else
                write_us(t, [row[_CLASS_INDEX[c]] for row, c in zip(rows, t, strict=True)], us)
                for t in texts
            ]
        if us_ranked:
            format_region = "us" if fits_any(texts[0], ("us",)) else "generic"
        written: dict[str, float] = {texts[0]: best.confidence}
        for text, r in zip(texts[1:], ranked[1:], strict=True):
            written.setdefault(text, r.score)
        return PlateText(
            text=texts[0],
            confidence=best.confidence,
            char_confidences=char_conf,
            candidates=tuple(Candidate(t, score) for t, score in written.items()),
            format_region=format_region,
            region=origin,
        )


def make_reader(cfg: Config) -> PlateReader:
    models = Path(cfg.models.dir) if cfg.models.dir else None
    return PlateReader(models, regions=cfg.reader.regions, top_n=cfg.reader.top_n)


