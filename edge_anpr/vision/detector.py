"""Plate detector: histogram-of-oriented-gradients features and linear SVMs, scanned smartly.

The features are Dalal-Triggs HoG (9 unsigned orientation bins with linear interpolation, cells,
2x2-cell blocks with L2-Hys normalisation), but computed the way fast feature pyramids do it
rather than with ``cv2.HOGDescriptor`` per window:

* Orientation channels (gradient magnitude split over the 9 bins) are computed once per octave
  of a small image pyramid, never at a resolution finer than the smallest cell needs.
* A plate of width ``p`` pixels spans ``CELLS_PER_PLATE`` cells, so each searched plate width
  is one cell size; the cell grid for it is an area-resize of the octave's channels, and block
  normalisation runs on that small grid. Only the plate widths the configuration allows are
  searched (geometric steps of ``SCALE_STEP``), never a full pyramid.
* Every window shape (one per plate format: wide EU, 2:1 US, 3:1 BR) is a linear SVM over the
  same block grid, so adding a shape costs one small matrix product, not another feature pass.
  Scores for all window positions come from one ``blocks @ weights`` product and shifted sums.

Training (``edge_anpr.train.detector``) extracts its examples through the very same functions,
so the run-time features cannot drift from the trained ones. Nothing here starts threads; the
caller sets ``cv2.setNumThreads``.
"""

from __future__ import annotations

import ctypes
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
from numpy.typing import NDArray

from edge_anpr.errors import ModelError

log = logging.getLogger(__name__)

NBINS = 9
CELLS_PER_PLATE = 8
"""A plate's width spans this many cells at every searched scale."""
MIN_CELL_PX = 4.0
"""Cells are never computed from fewer image pixels than this (sets the finest octave)."""
SCALE_STEP = 2.0 ** (1.0 / 3.0)
"""Ratio between successive searched plate widths: three per octave. On the training holdout
1.26 found the same plates as 1.2 with fewer false candidates, in 80% of the time."""
_EPS = 1e-3
GROUPS = NBINS // 3
"""Orientation channels are kept as GROUPS 3-channel images: OpenCV's area resize takes at
most 4 channels at a time."""

BoxPx = tuple[int, int, int, int]
FloatArray = NDArray[np.float32]


@dataclass(frozen=True)
class WindowModel:
    """One linear SVM over a window of blocks, for one plate shape."""

    name: str
    win_cells: tuple[int, int]
    """Window size in cells (width, height)."""
    plate_cells: tuple[float, float, float, float]
    """The plate box inside the window, in cells: x, y, width, height."""
    weights: FloatArray
    """(block rows, block cols, 4 * NBINS)."""
    bias: float

    @property
    def blocks(self) -> tuple[int, int]:
        return self.win_cells[0] - 1, self.win_cells[1] - 1


@dataclass(frozen=True, slots=True)
class Detection:
    box_px: BoxPx
    score: float
    shape: str
    """Name of the window model that fired (eu, us, br...)."""
    verify_score: float | None = None
    """Second-stage score (None when the model has no verifier)."""


@dataclass(frozen=True, slots=True)
class ScaleGrid:
    """The block grid for one searched plate width."""

    plate_width_px: float
    cell_px: float
    """Cell size in input-image pixels (what the grid actually used)."""
    blocks: FloatArray
    """(4 * NBINS, rows, cols) normalised block descriptors, planar."""


# ---------------------------------------------------------------------------------------------
# Features


_BLAS_LIMITED = False


def single_threaded_blas() -> bool:
    """Ask numpy's OpenBLAS to use one thread (best effort; True when it could).

    Window scoring is one small matrix product per scale; OpenBLAS would otherwise split it
    over its own thread pool, competing with the other recognition workers. Setting
    ``OPENBLAS_NUM_THREADS=1`` in the environment before numpy loads does the same.
    """
    global _BLAS_LIMITED
    if _BLAS_LIMITED:
        return True
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            libs = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:
        return False
    for lib in sorted(libs):
        try:
            handle = ctypes.CDLL(lib)
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_",
                     "scipy_openblas_set_num_threads", "openblas_set_num_threads"):
            setter = getattr(handle, name, None)
            if setter is not None:
                setter(ctypes.c_int(1))
                _BLAS_LIMITED = True
                log.debug("blas_threads=1 library=%s", lib)
                return True
    return False


def _orientation_table() -> FloatArray:
    """Per-bin weights times magnitude for every integer gradient (gx, gy) in [-255, 255]^2.

    Gradients of a uint8 image with the [-1, 0, 1] kernel are integers, so one table lookup
    replaces the per-pixel angle, bin and interpolation arithmetic (about 4x faster in numpy).
    """
    r = np.arange(-255, 256, dtype=np.float32)
    gy, gx = np.meshgrid(r, r, indexing="ij")
    mag = np.sqrt(gx * gx + gy * gy)
    t = (np.degrees(np.arctan2(gy, gx)) % 180.0) * (NBINS / 180.0) - 0.5
    lower = np.floor(t)
    frac = (t - lower).ravel()
    b0 = lower.astype(np.int64).ravel() % NBINS
    table = np.zeros((r.size * r.size, NBINS), np.float32)
    rows = np.arange(table.shape[0])
    table[rows, b0] = mag.ravel() * (1.0 - frac)
    table[rows, (b0 + 1) % NBINS] = mag.ravel() * frac
    return table


_TABLE: FloatArray | None = None


def orientation_table() -> FloatArray:
    """The lookup table, built on first use (about 40 ms, 9 MB; shared by all threads)."""
    global _TABLE
    if _TABLE is None:
        _TABLE = _orientation_table()
    return _TABLE


def orientation_channels(gray: NDArray[np.uint8]) -> FloatArray:
    """(H, W, NBINS) gradient magnitude split linearly over unsigned orientation bins."""
    table = orientation_table()
    gx = np.asarray(cv2.Sobel(gray, cv2.CV_16S, 1, 0, ksize=1), np.int16)
    gy = np.asarray(cv2.Sobel(gray, cv2.CV_16S, 0, 1, ksize=1), np.int16)
    idx = gy.astype(np.int32) * 511
    idx += gx
    idx += 255 * 511 + 255
    return np.take(table, idx, axis=0)


_SCRATCH = threading.local()


def _scratch(
    name: str, shape: tuple[int, ...], dtype: type[np.generic] = np.float32
) -> NDArray[Any]:
    """An array of ``shape`` that this thread reuses from frame to frame (contents garbage).

    For the big per-frame temporaries: allocated afresh, glibc often hands arrays of a few MB
    back to the kernel when they are freed, and faulting those pages in again (thousands per
    frame) made a worker thread's frames several ms slower. Only the per-frame scan's own
    steps see these arrays (never a detection or a caller outside this module).

    It is the start of one buffer per name that only grows (by at least a quarter), not an
    array per shape: a new image size then reuses memory already faulted in (a fresh 16 MB
    products buffer cost a new size's first frame 2-10 ms), and sizes varying without end
    cost no more memory than the largest. Growing replaces the buffer (see
    ``_scratch_buffer``): whoever keeps views of it must check.
    """
    buffers: dict[tuple[str, type[np.generic]], NDArray[Any]] | None = getattr(
        _SCRATCH, "buffers", None
    )
    if buffers is None:
        buffers = _SCRATCH.buffers = {}
    size = math.prod(shape)
    buffer = buffers.get((name, dtype))
    if buffer is None or buffer.size < size:
        grown = size if buffer is None else max(size, buffer.size + buffer.size // 4)
        buffer = buffers[(name, dtype)] = np.empty(grown, dtype)
    return buffer[:size].reshape(shape)


def _scratch_buffer(name: str, dtype: type[np.generic] = np.float32) -> NDArray[Any] | None:
    """The buffer this thread's ``_scratch(name, ...)`` arrays are views of (None before
    the first)."""
    buffers: dict[tuple[str, type[np.generic]], NDArray[Any]] = getattr(_SCRATCH, "buffers", {})
    return buffers.get((name, dtype))


def _scratch_parts(name: str, shapes: list[tuple[int, ...]]) -> list[FloatArray]:
    """Arrays of ``shapes`` carved one after another out of this thread's ``name`` scratch,
    each starting at a multiple of 16 floats (64 bytes) into it."""
    sizes = [math.prod(shape) for shape in shapes]
    ends = np.cumsum([-(-size // 16) * 16 for size in sizes]).tolist()
    buffer = _scratch(name, (ends[-1],))
    return [
        buffer[start : start + size].reshape(shape)
        for start, size, shape in zip([0, *ends[:-1]], sizes, shapes, strict=True)
    ]


_Plan = TypeVar("_Plan")


def _layout_plan(
    kind: str, buffer: str, layout: PackedLayout, fits: Callable[[_Plan], bool],
    build: Callable[[], _Plan],
) -> _Plan:
    """This thread's plan of ``kind`` for ``layout``, built when it has none that ``fits``.

    A plan's arrays are views of the thread's ``buffer`` scratch: when that has been
    replaced by a larger one, all plans of the kind are dropped (rebuilding one is cheap)
    rather than each keeping an old buffer alive.
    """
    plans: dict[int, _Plan] | None = getattr(_SCRATCH, kind, None)
    on = getattr(_SCRATCH, kind + "_on", None)
    if plans is None or on is not _scratch_buffer(buffer):
        plans = {}
        setattr(_SCRATCH, kind, plans)
    plan = plans.get(id(layout))
    if plan is None or not fits(plan):
        if len(plans) >= 16:  # as PlateDetector's layouts, for ROI sizes
            plans.clear()
        plan = build()
        now = _scratch_buffer(buffer)
        if now is not on:  # this build grew the buffer (or is the first)
            plans.clear()
            setattr(_SCRATCH, kind + "_on", now)
        plans[id(layout)] = plan
    return plan


def micro_channels(gray: NDArray[np.uint8], out: FloatArray | None = None) -> FloatArray:
    """``orientation_channels`` averaged over 2x2 pixels (odd last row/column dropped), as
    GROUPS 3-channel images (GROUPS, rows, cols, 3): group g holds bins 3g..3g+2. Written
    into ``out`` when given (it must have that shape).

    Same values, bit for bit, as pooling ``orientation_channels(gray)`` with strided slices,
    but much faster: the index image is written as four quadrant images (pixels (2i+a,
    2j+b) for a, b in {0, 1}), so the table lookup yields contiguous (rows, cols, NBINS)
    arrays and the pooling sums have long inner loops, where strided 9-float pixels made
    numpy run a 9-element loop per pixel; and one ``cv2.mixChannels`` (no GIL) regroups the
    bins, where a numpy transpose-copy was as slow again. About ten numpy/OpenCV calls per
    octave: each call holds the GIL for its argument handling, and with two worker threads
    every call is also a chance to wait for the other thread's Python.
    """
    img_h, img_w = gray.shape[:2]
    h, w = img_h // 2, img_w // 2
    if h == 0 or w == 0:  # nothing to pool: a one-pixel-high or -wide octave
        return _regroup(orientation_channels(gray), out)
    table = orientation_table()
    # The first lookup fetches two quadrants, the others one each into part[1]: a call less
    # than one lookup per quadrant, and no more memory (part[0] holds the sum).
    part = _scratch("part", (2, h, w, NBINS))
    # The table index 511 * gy + gx + offset of the [-1, 0, 1] gradients, in one filter (the
    # two Sobels' border handling, BORDER_REFLECT_101; integers below 2**24 are exact in
    # float32). It is only needed until the int32 copy below, so it borrows part's memory.
    flat_idx = part.reshape(-1)[: img_h * img_w].reshape(img_h, img_w)
    cv2.filter2D(gray, cv2.CV_32F, _INDEX_KERNEL, dst=flat_idx, delta=255 * 511 + 255)
    # idx[b, a, i, j] = pixel (2i + a, 2j + b): idx[b] is a contiguous pair of quadrants.
    idx = _scratch("idx", (2, 2, h, w), np.int32)
    quads = flat_idx[: 2 * h, : 2 * w].reshape(h, 2, w, 2).transpose(3, 1, 0, 2)
    np.copyto(idx, quads, casting="unsafe")
    micro, other = part[0], part[1]
    # Summed in the order ((q00 + q10) + q01) + q11, as pooling with strided slices does.
    np.take(table, idx[0], axis=0, out=part, mode="clip")
    micro += other
    micro += np.take(table, idx[1, 0], axis=0, out=other, mode="clip")
    micro += np.take(table, idx[1, 1], axis=0, out=other, mode="clip")
    micro *= 0.25
    return _regroup(micro, out)


_INDEX_KERNEL = np.array([[0, -511, 0], [-1, 0, 1], [0, 511, 0]], np.float32)


_REGROUP = [v for b in range(NBINS) for v in (b, b)]


def _regroup(chans: FloatArray, out: FloatArray | None = None) -> FloatArray:
    """(rows, cols, NBINS) to (GROUPS, rows, cols, 3) in one OpenCV call."""
    rows, cols = chans.shape[:2]
    if out is None:
        out = np.empty((GROUPS, rows, cols, 3), np.float32)
    cv2.mixChannels([np.ascontiguousarray(chans)], list(out), _REGROUP)
    return out


def normalise_blocks(cells: FloatArray, out: FloatArray | None = None) -> FloatArray:
    """2x2-cell blocks at a one-cell stride, L2-Hys normalised.

    ``cells`` is planar (NBINS, rows, cols); the result is planar (4 * NBINS, rows - 1,
    cols - 1), plane ``q * NBINS + bin`` for the block's cell q (top-left, bottom-left,
    top-right, bottom-right). Planar keeps every later step a contiguous-array operation.
    Written into ``out`` when given (it must have that shape).
    """
    # Every step works in place on one of two arrays: the arithmetic (and so every bit of the
    # result) is that of the plain expressions, without allocating and freeing a temporary
    # per step while the GIL is held.
    energy = np.einsum("kij,kij->ij", cells, cells)
    inv = energy[:-1, :-1] + energy[1:, :-1]
    inv += energy[:-1, 1:]
    inv += energy[1:, 1:]
    blocks = np.concatenate(
        (cells[:, :-1, :-1], cells[:, 1:, :-1], cells[:, :-1, 1:], cells[:, 1:, 1:]), axis=0,
        out=out,
    )
    _inverse_norm(inv)
    blocks *= inv
    np.minimum(blocks, 0.2, out=blocks)
    inv = np.einsum("kij,kij->ij", blocks, blocks)
    _inverse_norm(inv)
    blocks *= inv
    return blocks


def _inverse_norm(energy: FloatArray) -> None:
    """``energy`` becomes ``1 / sqrt(energy + eps)``, in place."""
    energy += _EPS
    np.sqrt(energy, out=energy)
    np.divide(1.0, energy, out=energy)


def plate_widths(min_px: float, max_px: float, step: float = SCALE_STEP) -> list[float]:
    """The plate widths searched: geometric from ``min_px`` until ``max_px`` is covered.

    A detector tolerates about +-10% of scale, so widths ``step`` apart leave no gap; the last
    width is the first one at or above ``max_px / sqrt(step)`` so the top of the range is
    covered without scanning a whole extra scale beyond it.
    """
    if min_px <= 0 or max_px < min_px:
        raise ValueError(f"bad plate width range {min_px}..{max_px}")
    widths = [float(min_px)]
    limit = max_px / math.sqrt(step)
    while widths[-1] < limit:
        widths.append(widths[-1] * step)
    return widths


class FeaturePyramid:
    """Orientation channels of one grayscale image, built lazily per octave."""

    def __init__(self, gray: NDArray[np.uint8], finest_cell_px: float) -> None:
        self.height, self.width = gray.shape[:2]
        # The base resolution is chosen so the finest cell spans MIN_CELL_PX pixels.
        self.base_scale = min(1.0, MIN_CELL_PX / max(finest_cell_px, 1e-6))
        if self.base_scale < 1.0:
            size = (
                max(1, round(self.width * self.base_scale)),
                max(1, round(self.height * self.base_scale)),
            )
            base = np.asarray(cv2.resize(gray, size, interpolation=cv2.INTER_AREA), np.uint8)
        else:
            base = gray
        self._images: list[NDArray[np.uint8]] = [base]
        self._channels: dict[int, FloatArray] = {}

    def _image(self, level: int) -> NDArray[np.uint8]:
        """The grayscale image of octave ``level`` (each octave half the previous)."""
        while len(self._images) <= level:
            prev = self._images[-1]
            h, w = prev.shape[:2]
            half = cv2.resize(prev, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
            self._images.append(np.asarray(half, np.uint8))
        return self._images[level]

    def _octave(self, level: int) -> tuple[FloatArray, float]:
        """Orientation channels of octave ``level``, pooled over 2x2 pixels ("micro-cells"),
        as (GROUPS, rows, cols, 3), and the micro-cell size in input pixels.

        Gradients are taken at the octave's full resolution (cells of 4-8 pixels), but the
        per-scale cell pooling starts from the 4x smaller micro-cell image, which is where
        most of the time went otherwise. Group ``g`` holds bins ``3g..3g+2``: each is a
        contiguous 3-channel image that OpenCV resizes without a copy.
        """
        img = self._image(level)
        if level not in self._channels:
            self._channels[level] = micro_channels(img)
        micro = self._channels[level]
        px = self.width / img.shape[1] * (img.shape[1] / micro.shape[2])
        return micro, px

    def _micro_size(self, level: int) -> tuple[int, int, float]:
        """The (rows, cols) and micro-cell size in input pixels ``_octave`` would give,
        without computing the channels: the scan pools its own copy of them each frame, so
        a layout's geometry computing them too made a new image size's first frame slower."""
        img_h, img_w = self._image(level).shape[:2]
        rows, cols = img_h // 2, img_w // 2
        if rows == 0 or cols == 0:  # as micro_channels: nothing to pool
            rows, cols = img_h, img_w
        return rows, cols, self.width / img_w * (img_w / cols)

    def geometry(self, plate_width_px: float) -> GridGeometry | None:
        """Where the cell grid for ``plate_width_px`` comes from; None if it is too small."""
        cell_in = plate_width_px / CELLS_PER_PLATE
        cell_base = cell_in * self.base_scale
        level = max(0, math.floor(math.log2(max(cell_base / MIN_CELL_PX, 1.0))))
        h, w, px = self._micro_size(level)
        cell_oct = cell_in / px
        ncols, nrows = int(w / cell_oct), int(h / cell_oct)
        if ncols < 3 or nrows < 3:
            return None
        used_w, used_h = round(ncols * cell_oct), round(nrows * cell_oct)
        crop_h, crop_w = min(h, used_h), min(w, used_w)
        return GridGeometry(level, nrows, ncols, crop_h, crop_w, px * crop_w / ncols)

    def _pool(self, geo: GridGeometry, dst: FloatArray) -> None:
        """Area-resize the octave's channels into ``dst`` (GROUPS, rows, cols, 3), which may
        be a window of a larger array: OpenCV writes each group straight into it (releasing
        the GIL and allocating nothing), with no per-plane split and stack under the GIL."""
        chans, _ = self._octave(geo.level)
        crop = chans[:, : geo.crop_h, : geo.crop_w]
        for part, out in zip(crop, dst, strict=True):
            cv2.resize(part, (geo.cols, geo.rows), dst=out, interpolation=cv2.INTER_AREA)

    def grid(self, plate_width_px: float) -> ScaleGrid | None:
        """Block grid with cells of ``plate_width_px / CELLS_PER_PLATE``; None if too small."""
        geo = self.geometry(plate_width_px)
        if geo is None:
            return None
        pooled = np.empty((GROUPS, geo.rows, geo.cols, 3), np.float32)
        self._pool(geo, pooled)
        # One reshape-copy makes the planes planar (bin b = group b // 3, channel b % 3).
        cells = pooled.transpose(0, 3, 1, 2).reshape(NBINS, geo.rows, geo.cols)
        return ScaleGrid(plate_width_px, geo.cell_px, normalise_blocks(cells))

    def packed_blocks(self, layout: PackedLayout) -> FloatArray:
        """Block descriptors of all ``layout``'s grids, each at its place in one canvas.

        A block depends only on its own 2x2 cells, so every grid's blocks are exactly those
        ``grid`` gives; blocks straddling two grids (or the padding) are garbage that no
        window in ``layout`` uses. One canvas means one normalisation for all plate widths:
        about 20 numpy calls per frame rather than per width. The result is this thread's
        scratch: valid until its next frame.

        The octaves' channels, the canvas and every view the pooling reads and writes belong
        to this thread's ``_PoolPlan`` for ``layout``, made on its first frame, so a frame's
        pooling is a bare loop of ``cv2.resize`` calls: finding the octave, slicing and
        zipping views for each of them was most of the pooling's GIL time.
        """
        plan = _PoolPlan.get(layout, self)
        for level, out in plan.octaves:
            micro_channels(self._image(level), out)
        resize, area = cv2.resize, cv2.INTER_AREA
        for src, size, dst in plan.pools:
            resize(src, size, dst=dst, interpolation=area)
        # One copy makes the planes planar (bin b = group b // 3, channel b % 3).
        np.copyto(plan.planar, plan.canvas_planar)
        # Into this thread's scratch (valid until its next frame): a fresh array (~13 MB for
        # 1280x1000) reused the freed one only when the size repeated, so each new image
        # size's first frame faulted all its pages in (~2.5 ms).
        rows, cols = layout.canvas
        return normalise_blocks(plan.cells, _scratch("blocks", (4 * NBINS, rows - 1, cols - 1)))


@dataclass(frozen=True, slots=True)
class _PoolPlan:
    """One thread's buffers and views for pooling one ``PackedLayout``'s grids each frame.

    About 4 MB for 1280x720 frames (1.5 MB canvas, its planar copy, the octaves' channels);
    these were allocated afresh every frame before. Per thread, because the buffers are
    written every frame; a layout is shared by whoever shares the detector. The buffers are
    parts of the thread's "pool" scratch, shared by all image sizes: separate arrays per
    plan cost each new size's first frame ~1-2 ms of page faults.
    """

    layout: PackedLayout
    octaves: tuple[tuple[int, FloatArray], ...]
    """(level, (GROUPS, rows, cols, 3) buffer for ``micro_channels``) per octave used."""
    pools: tuple[tuple[FloatArray, tuple[int, int], FloatArray], ...]
    """(source crop, (cols, rows), canvas window) per grid and group: one resize each."""
    canvas_planar: FloatArray
    """The canvas (GROUPS, rows, cols, 3), viewed as (GROUPS, 3, rows, cols)."""
    planar: FloatArray
    """``cells`` viewed as (GROUPS, 3, rows, cols)."""
    cells: FloatArray
    """(NBINS, rows, cols): the canvas copied planar."""

    @classmethod
    def get(cls, layout: PackedLayout, pyramid: FeaturePyramid) -> _PoolPlan:
        return _layout_plan(
            "pool_plans", "pool", layout, lambda plan: plan.layout is layout,
            lambda: cls.build(layout, pyramid),
        )

    @classmethod
    def build(cls, layout: PackedLayout, pyramid: FeaturePyramid) -> _PoolPlan:
        rows, cols = layout.canvas
        shapes: list[tuple[int, ...]] = [(GROUPS, rows, cols, 3), (NBINS, rows, cols)]
        levels = sorted({geo.level for geo in layout.grids})
        for level in levels:
            img_h, img_w = pyramid._image(level).shape[:2]
            # Every grid has at least 3x3 cells, so its octave has at least 3x3 micro-cells.
            shapes.append((GROUPS, img_h // 2, img_w // 2, 3))
        canvas, cells, *channels = _scratch_parts("pool", shapes)
        octaves = dict(zip(levels, channels, strict=True))
        # Zeroed at the build: every frame the grids overwrite their places, and the padding
        # keeps zeros or (the canvas is shared by all sizes) cells of other sizes' grids:
        # finite values in blocks no window of this layout uses.
        canvas.fill(0.0)
        pools: list[tuple[FloatArray, tuple[int, int], FloatArray]] = []
        for geo, (y, x) in zip(layout.grids, layout.origins, strict=True):
            crop = octaves[geo.level][:, : geo.crop_h, : geo.crop_w]
            dst = canvas[:, y : y + geo.rows, x : x + geo.cols]
            size = (geo.cols, geo.rows)
            pools.extend((part, size, out) for part, out in zip(crop, dst, strict=True))
        return cls(
            layout, tuple(octaves.items()), tuple(pools), canvas.transpose(0, 3, 1, 2),
            cells.reshape(GROUPS, 3, rows, cols), cells,
        )


@dataclass(frozen=True, slots=True)
class GridGeometry:
    """Size and source of the cell grid for one plate width (depends on image size only)."""

    level: int
    """Pyramid octave the cells are pooled from."""
    rows: int
    cols: int
    crop_h: int
    crop_w: int
    """The part of the octave's micro-cell image the grid covers."""
    cell_px: float
    """Cell size in input-image pixels."""


def pack_grids(sizes: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], tuple[int, int]]:
    """Top-left corners (row, col) for (rows, cols) rectangles in one canvas as tall as the
    tallest, and the canvas size: each goes to the leftmost place it fits below the ones
    already placed. For 1280x720 frames this wastes ~10% of the canvas."""
    height = max(r for r, _ in sizes)
    filled: list[int] = []  # rows used so far in each canvas column
    origins = []
    for r, c in sizes:
        x = 0
        while True:
            # Past the last column too full for this rectangle, or here if there is none.
            blocked = [i for i, f in enumerate(filled[x : x + c]) if f + r > height]
            if not blocked:
                break
            x += blocked[-1] + 1
        y = max(filled[x : x + c], default=0)
        filled.extend([0] * (x + c - len(filled)))
        filled[x : x + c] = [y + r] * c
        origins.append((y, x))
    return origins, (height, len(filled))


@dataclass(frozen=True)
class PackedLayout:
    """How one image size's grids share a canvas, and where their windows are in the scores.

    Built once per (image size, plate width range). A new image size costs a layout (and
    first-use buffers) in its first frame, and folders of photos are mostly new sizes, so
    the build does per-window work only where the frame needs it anyway (the ``valid``
    index the scores are gathered with); boxes are worked out per row and per column, and
    combined only for the few hits (``boxes_of``).
    """

    grids: tuple[GridGeometry, ...]
    origins: tuple[tuple[int, int], ...]
    canvas: tuple[int, int]
    """Canvas size in cells (rows, cols)."""
    valid: NDArray[np.intp]
    """Index into ``WindowScorer.score``'s flat output of every window that can be a
    detection, in the order grid (plate width), model, row, column."""
    bias: FloatArray
    """The bias of each ``valid`` window's model (added after the gather, not per map)."""
    segment_starts: NDArray[np.intp]
    """Where each (grid, model) segment with windows begins in ``valid``, ascending."""
    segments: NDArray[np.intp]
    """(4, segments): per segment its kept columns' count, its first entry in ``col_boxes``
    and in ``row_boxes``, and its model index."""
    col_boxes: NDArray[np.int64]
    """(2, n): x and width in image pixels of each segment's kept window columns."""
    row_boxes: NDArray[np.int64]
    """(2, n): y and height in image pixels of each segment's kept window rows."""

    @classmethod
    def build(
        cls, grids: list[GridGeometry], models: tuple[WindowModel, ...], img_w: int, img_h: int
    ) -> PackedLayout:
        origins, canvas = pack_grids([(g.rows, g.cols) for g in grids])
        brows, bcols = canvas[0] - 1, canvas[1] - 1
        offset = 0
        per_model = []
        for model in models:
            bw, bh = model.blocks
            oh, ow = brows - bh + 1, bcols - bw + 1
            per_model.append((offset, ow))
            if oh > 0 and ow > 0:
                offset += oh * ow
        # (grid, model) segments in scan order, and each one's windows along each axis.
        found: list[tuple[int, int, int, WindowModel]] = []
        xs: list[tuple[int, float, float, float]] = []
        ys: list[tuple[int, float, float, float]] = []
        for geo, (y, x) in zip(grids, origins, strict=True):
            for index, (model, (start, map_w)) in enumerate(zip(models, per_model, strict=True)):
                bw, bh = model.blocks
                oh, ow = geo.rows - 1 - bh + 1, geo.cols - 1 - bw + 1
                if oh <= 0 or ow <= 0:
                    continue
                px, py, pwc, phc = model.plate_cells
                found.append((start + y * map_w + x, map_w, index, model))
                xs.append((ow, px, pwc, geo.cell_px))
                ys.append((oh, py, phc, geo.cell_px))
        # A box's x extent depends only on its window's column and its y extent only on the
        # row, so the "at least 4 x 2 pixels" rule keeps a product of columns and rows: the
        # kept windows, in row-major order, are those rows times those columns.
        col_keep, col_count, col_boxes = _window_spans(xs, img_w, 4)
        row_keep, row_count, row_boxes = _window_spans(ys, img_h, 2)
        col_first = np.cumsum(col_count) - col_count
        row_first = np.cumsum(row_count) - row_count
        valid: list[NDArray[np.intp]] = []
        segments: list[tuple[int, int, int, int, int]] = []
        bias: list[float] = []
        sizes: list[int] = []
        n_valid = 0
        for (first, map_w, index, model), nc, nr, c0, r0 in zip(
            found, col_count.tolist(), row_count.tolist(), col_first.tolist(),
            row_first.tolist(), strict=True,
        ):
            if nc == 0 or nr == 0:
                continue
            cols, rows = col_keep[c0 : c0 + nc], row_keep[r0 : r0 + nr]
            valid.append(((rows * map_w)[:, None] + (first + cols)).ravel())
            segments.append((n_valid, nc, c0, r0, index))
            bias.append(model.bias)
            sizes.append(nc * nr)
            n_valid += nc * nr
        if not valid:
            empty = np.empty(0, np.intp)
            return cls(
                tuple(grids), tuple(origins), canvas, empty, np.empty(0, np.float32), empty,
                np.empty((4, 0), np.intp), col_boxes, row_boxes,
            )
        table = np.array(segments, np.intp).T
        return cls(
            tuple(grids), tuple(origins), canvas, np.concatenate(valid),
            np.repeat(np.array(bias, np.float32), sizes), np.ascontiguousarray(table[0]),
            np.ascontiguousarray(table[1:]), col_boxes, row_boxes,
        )

    def boxes_of(self, hits: NDArray[np.intp]) -> tuple[NDArray[np.int64], NDArray[np.intp]]:
        """(4, len(hits)) plate boxes (x, y, width, height) in image pixels and the model
        index of the ``valid`` windows at positions ``hits``."""
        seg = np.searchsorted(self.segment_starts, hits, side="right") - 1
        ncols, col_first, row_first, shape = self.segments[:, seg]
        row, col = np.divmod(hits - self.segment_starts[seg], ncols)
        xw = self.col_boxes[:, col_first + col]
        yh = self.row_boxes[:, row_first + row]
        return np.stack((xw[0], yh[0], xw[1], yh[1])), shape


def _window_spans(
    segments: list[tuple[int, float, float, float]], limit: int, min_size: int
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.int64]]:
    """Along one axis, for segments of (window positions n, plate offset and size in
    cells, cell size in pixels): the positions whose plate span is at least ``min_size``
    pixels inside ``[0, limit]`` (each segment's own, ascending), how many each segment
    keeps, and (2, kept) their starts and sizes in pixels.

    The float64 arithmetic of ``(position + offset) * cell`` and ``round`` (half to even)
    per window: the training path's ``round((col + px) * c)`` and ``round((col + px) * c
    + pwc * c)``, which the boxes must match to the pixel. All segments at once, because
    one call per segment (dozens per layout) cost more than the arithmetic.
    """
    if not segments:  # no window fits at any plate width
        return np.empty(0, np.intp), np.empty(0, np.intp), np.empty((2, 0), np.int64)
    n, offset, size, cell = (np.array(v) for v in zip(*segments, strict=True))
    first = np.cumsum(n) - n
    pos = np.arange(int(n.sum())) - np.repeat(first, n)
    cell_at = np.repeat(cell, n)
    start = (pos + np.repeat(offset, n)) * cell_at
    end = np.rint(start + np.repeat(size, n) * cell_at)
    np.minimum(end, limit, out=end)
    np.rint(start, out=start)
    np.maximum(start, 0, out=start)
    span = end - start
    ok = span >= min_size
    # Segments always have positions (n > 0), as reduceat needs: it would give an empty
    # segment the next one's first value.
    count = np.add.reduceat(ok.astype(np.intp), first)
    keep = np.flatnonzero(ok)
    return pos[keep], count, np.stack((start[keep], span[keep])).astype(np.int64)


def window_features(
    grid: ScaleGrid, model_blocks: tuple[int, int], col: int, row: int
) -> FloatArray:
    """The flattened descriptor of one window (training uses this; run-time scores in bulk)."""
    bw, bh = model_blocks
    return np.ascontiguousarray(
        grid.blocks[:, row : row + bh, col : col + bw].transpose(1, 2, 0)
    ).reshape(-1)


def score_maps(grid: ScaleGrid, models: list[WindowModel]) -> list[FloatArray | None]:
    """Score of every window position for each model (None when the grid is too small).

    One matrix product gives, for every block, its dot product with every (model, block
    offset) weight vector; a window's score is then the sum of its blocks' products at their
    offsets, accumulated as shifted row-contiguous slices.
    """
    _, maps = WindowScorer(tuple(models)).score(grid.blocks)
    return maps


class WindowScorer:
    """Scores every window of every model on a grid, with the per-model constants prepared once.

    Run time keeps one per detector, so each grid costs one matrix product and one reduction
    per model (large numpy calls that release the GIL) plus a few microseconds of Python.
    """

    def __init__(self, models: tuple[WindowModel, ...]) -> None:
        self.models = models
        dim = 4 * NBINS
        # numpy's BLAS product (single_threaded_blas() keeps it on this thread): cv2.gemm is
        # several times slower for this shape.
        self.weights = np.ascontiguousarray(
            np.concatenate([m.weights.reshape(-1, dim) for m in models], axis=0)
        )
        starts = np.cumsum([0] + [m.blocks[0] * m.blocks[1] for m in models])
        self._first_offset = [int(v) for v in starts[:-1]]
        self._bias = [np.float32(m.bias) for m in models]

    def score(self, blocks: FloatArray) -> tuple[FloatArray, list[FloatArray | None]]:
        """All models' score maps over planar ``blocks`` (4 * NBINS, rows, cols), stored one
        after the other in one flat array (returned first, so a threshold is one call), and
        each model's map as a view of it.
        """
        dim, rows, cols = blocks.shape
        # The products (about 16 MB for a 1280x720 frame) go to a buffer this thread keeps.
        resp: FloatArray = _scratch("score", (self.weights.shape[0], rows * cols))
        np.matmul(self.weights, blocks.reshape(dim, rows * cols), out=resp)
        sizes = [(rows - m.blocks[1] + 1, cols - m.blocks[0] + 1) for m in self.models]
        flat = np.empty(sum(oh * ow for oh, ow in sizes if oh > 0 and ow > 0), np.float32)
        maps: list[FloatArray | None] = []
        item = resp.itemsize
        sk, sr = rows * cols * item, cols * item
        pos = 0
        for model, (oh, ow), first, bias in zip(
            self.models, sizes, self._first_offset, self._bias, strict=True
        ):
            if oh <= 0 or ow <= 0:
                maps.append(None)
                continue
            bw, bh = model.blocks
            # Window (y, x) sums resp[first + dy * bw + dx, y + dy, x + dx] over its block
            # offsets. A strided view lays those terms out as (bh, bw, oh, ow) over the same
            # memory, so the sum is one numpy reduction (which runs without the GIL) instead
            # of bh * bw small additions. The view is made by the ndarray constructor:
            # np.lib.stride_tricks.as_strided costs ~10 us of Python per call.
            terms: FloatArray = np.ndarray(
                (bh, bw, oh, ow), np.float32, resp, first * sk,
                (bw * sk + sr, sk + item, sr, item),
            )
            acc = flat[pos : pos + oh * ow].reshape(oh, ow)
            np.add.reduce(terms, axis=(0, 1), dtype=np.float32, out=acc)
            acc += bias
            maps.append(acc)
            pos += oh * ow
        return flat, maps


@dataclass(frozen=True, slots=True)
class _ScorePlan:
    """One thread's buffers and views for scoring one ``PackedLayout``'s canvas each frame.

    ``WindowScorer.score`` does the same with a dozen lines of Python and two allocations
    per frame (the flat maps, ~0.5 MB, and the gathered scores); here the strided views
    over the products and the maps' places are made once, so a frame's scoring is one
    matrix product, one reduction per model, a gather and one bias addition. The products
    (~16 MB for 1280x720), maps and gathered scores are parts of the thread's "score"
    scratch, which ``WindowScorer.score`` uses too: a new image size's plan then faults no
    new pages in, and all sizes share the memory.
    """

    layout: PackedLayout
    scorer: WindowScorer
    resp: FloatArray
    sums: tuple[tuple[FloatArray, FloatArray], ...]
    """(strided view of ``resp``: (bh, bw, oh, ow) terms, its place in ``flat``) per model."""
    flat: FloatArray
    gathered: FloatArray

    @classmethod
    def get(cls, layout: PackedLayout, scorer: WindowScorer) -> _ScorePlan:
        return _layout_plan(
            "score_plans", "score", layout,
            lambda plan: plan.layout is layout and plan.scorer is scorer,
            lambda: cls.build(layout, scorer),
        )

    @classmethod
    def build(cls, layout: PackedLayout, scorer: WindowScorer) -> _ScorePlan:
        rows, cols = layout.canvas[0] - 1, layout.canvas[1] - 1
        sizes = [(rows - m.blocks[1] + 1, cols - m.blocks[0] + 1) for m in scorer.models]
        n_flat = sum(oh * ow for oh, ow in sizes if oh > 0 and ow > 0)
        resp, flat, gathered = _scratch_parts(
            "score", [(scorer.weights.shape[0], rows * cols), (n_flat,), (layout.valid.size,)]
        )
        item = resp.itemsize
        sk, sr = rows * cols * item, cols * item
        sums = []
        pos = 0
        for model, (oh, ow), first in zip(scorer.models, sizes, scorer._first_offset, strict=True):
            if oh <= 0 or ow <= 0:
                continue
            bw, bh = model.blocks
            # As in WindowScorer.score: window (y, x) sums resp[first + dy * bw + dx, y + dy,
            # x + dx] over its block offsets, one reduction over this strided view.
            terms: FloatArray = np.ndarray(
                (bh, bw, oh, ow), np.float32, resp, first * sk,
                (bw * sk + sr, sk + item, sr, item),
            )
            sums.append((terms, flat[pos : pos + oh * ow].reshape(oh, ow)))
            pos += oh * ow
        return cls(layout, scorer, resp, tuple(sums), flat, gathered)

    def scores(self, blocks: FloatArray) -> FloatArray:
        """Every ``layout.valid`` window's score (bias included) from the canvas ``blocks``,
        the same float32 operations as ``WindowScorer.score``; valid until the next call."""
        dim, rows, cols = blocks.shape
        np.matmul(self.scorer.weights, blocks.reshape(dim, rows * cols), out=self.resp)
        add = np.add.reduce
        for terms, acc in self.sums:
            add(terms, axis=(0, 1), dtype=np.float32, out=acc)
        gathered = np.take(self.flat, self.layout.valid, out=self.gathered)
        gathered += self.layout.bias
        return gathered


# ---------------------------------------------------------------------------------------------
# Second stage: a finer look at each candidate


VERIFY_SIZE = (64, 32)
"""Candidate crops are resized to this (width, height) for the verifier's HoG."""
VERIFY_CELL = 4
"""Verifier HoG cell size in pixels (4 rejected more false candidates than 8 on the holdout)."""
VERIFY_MARGIN = (0.08, 0.15)
"""Margin added around a candidate box before the verifier looks at it (fraction of w, h)."""


def verify_features(gray: NDArray[np.uint8], box: tuple[float, float, float, float]) -> FloatArray:
    """HoG (``cv2.HOGDescriptor``, 4x4 cells, 3780 values) of a candidate crop at 64x32.

    At 4x the scanner's resolution across a plate, it sees character strokes the scanner's
    cells average away, so it rejects many scanner false alarms for about 0.1 ms each,
    before the (much more expensive) reader is asked.
    """
    features: FloatArray = verify_features_many(gray, [box])[0]
    return features


def verify_features_many(
    gray: NDArray[np.uint8], boxes: Sequence[tuple[float, float, float, float]]
) -> FloatArray:
    """``verify_features`` of each box, (len(boxes), 3780), with one HoG call for them all.

    Every OpenCV call lets the GIL go, and a worker coming back from a short one often finds
    the other worker holding it and sleeps (a frame has ~10 candidates; one HoG call each was
    the call most often followed by such a sleep, 4 times in 10, in a profile of two
    workers). So the 64x32 crops are stacked in one image, each between two rows that mirror
    its edge (BORDER_REFLECT_101, what HoG does at an image's border), and one ``compute`` at
    their places gives, bit for bit, each crop's own descriptor (checked by a test against
    HoG of the crop alone).
    """
    hog = _verify_hog()
    if not boxes:
        return np.empty((0, hog.getDescriptorSize()), np.float32)
    width, height = VERIFY_SIZE
    slot = height + 2
    stack = np.empty((len(boxes), slot, width), np.uint8)
    img_h, img_w = gray.shape[:2]
    empty = []
    for k, (x, y, w, h) in enumerate(boxes):
        mx, my = VERIFY_MARGIN[0] * w, VERIFY_MARGIN[1] * h
        x0, y0 = max(0, round(x - mx)), max(0, round(y - my))
        x1, y1 = min(img_w, round(x + w + mx)), min(img_h, round(y + h + my))
        if x1 - x0 < 4 or y1 - y0 < 4:
            empty.append(k)
            stack[k] = 0
            continue
        cv2.resize(gray[y0:y1, x0:x1], VERIFY_SIZE, dst=stack[k, 1 : height + 1],
                   interpolation=cv2.INTER_AREA)
    stack[:, 0] = stack[:, 2]
    stack[:, height + 1] = stack[:, height - 1]
    found = hog.compute(
        stack.reshape(-1, width), (VERIFY_CELL, VERIFY_CELL), (0, 0),
        [(0, k * slot + 1) for k in range(len(boxes))],
    )
    features = np.asarray(found, np.float32).reshape(len(boxes), -1)
    features[empty] = 0.0  # too small a crop to look at: no evidence either way
    return features


_PER_THREAD = threading.local()


def _verify_hog() -> cv2.HOGDescriptor:
    """This thread's descriptor (OpenCV objects are not shared between worker threads)."""
    hog: cv2.HOGDescriptor | None = getattr(_PER_THREAD, "hog", None)
    if hog is None:
        c = VERIFY_CELL
        hog = cv2.HOGDescriptor(VERIFY_SIZE, (2 * c, 2 * c), (c, c), (c, c), NBINS)
        _PER_THREAD.hog = hog
    return hog


@dataclass(frozen=True)
class Verifier:
    weights: FloatArray
    bias: float
    threshold: float

    def score(self, gray: NDArray[np.uint8], box: tuple[float, float, float, float]) -> float:
        return self.scores(gray, [box])[0]

    def scores(
        self, gray: NDArray[np.uint8], boxes: Sequence[tuple[float, float, float, float]]
    ) -> list[float]:
        """``score`` of each box, the features in one batch. Each score is still its own
        dot product, so it is the same float as ``score`` gives, not a matrix product's."""
        return [
            float(features @ self.weights + self.bias)
            for features in verify_features_many(gray, boxes)
        ]


# ---------------------------------------------------------------------------------------------
# Boxes


def iou(a: BoxPx | tuple[float, ...], b: BoxPx | tuple[float, ...]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = min(ax + aw, bx + bw) - max(ax, bx)
    ih = min(ay + ah, by + bh) - max(ay, by)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return float(inter / (aw * ah + bw * bh - inter))


def nms(dets: list[Detection], iou_threshold: float, limit: int | None = None) -> list[Detection]:
    """Greedy non-maximum suppression: best score first, drop boxes overlapping a kept one."""
    kept: list[Detection] = []
    # ``iou`` inlined against the kept boxes' corners and areas: the same integer arithmetic
    # and division, without a generator and a function call per pair (all under the GIL).
    corners: list[tuple[float, float, float, float, float]] = []
    for det in sorted(dets, key=lambda d: -d.score):
        ax, ay, aw, ah = det.box_px
        ax1, ay1, area = ax + aw, ay + ah, aw * ah
        for bx, by, bx1, by1, barea in corners:
            iw = min(ax1, bx1) - max(ax, bx)
            ih = min(ay1, by1) - max(ay, by)
            overlap = 0.0
            if iw > 0 and ih > 0:
                inter = iw * ih
                overlap = float(inter / (area + barea - inter))
            if not overlap <= iou_threshold:
                break
        else:
            kept.append(det)
            corners.append((ax, ay, ax1, ay1, area))
            if limit is not None and len(kept) >= limit:
                break
    return kept


# ---------------------------------------------------------------------------------------------
# The detector


@dataclass(frozen=True)
class DetectorModel:
    models: tuple[WindowModel, ...]
    threshold: float
    """Score above which a window is a candidate (the config may override)."""
    info: str = ""
    verifier: Verifier | None = None

    def save(self, path: Path) -> None:
        arrays: dict[str, NDArray[np.float32] | NDArray[np.int32] | NDArray[np.str_]] = {
            "names": np.array([m.name for m in self.models]),
            "threshold": np.array([self.threshold], np.float32),
            "hog": np.array([NBINS, CELLS_PER_PLATE], np.int32),
            "info": np.array([self.info]),
        }
        for m in self.models:
            arrays[f"{m.name}_win_cells"] = np.array(m.win_cells, np.int32)
            arrays[f"{m.name}_plate_cells"] = np.array(m.plate_cells, np.float32)
            arrays[f"{m.name}_weights"] = m.weights.astype(np.float32)
            arrays[f"{m.name}_bias"] = np.array([m.bias], np.float32)
        if self.verifier is not None:
            arrays["verifier_weights"] = self.verifier.weights.astype(np.float32)
            arrays["verifier_bias_threshold"] = np.array(
                [self.verifier.bias, self.verifier.threshold], np.float32
            )
        np.savez_compressed(path, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path) -> DetectorModel:
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: cannot load the plate detector: {exc}") from None
        with data:
            try:
                hog = tuple(int(v) for v in data["hog"])
                if hog != (NBINS, CELLS_PER_PLATE):
                    raise ModelError(
                        f"{path}: detector HoG layout {hog} does not match this code "
                        f"({NBINS}, {CELLS_PER_PLATE}); retrain with `python -m edge_anpr.train "
                        "detector`"
                    )
                models = []
                for name in [str(n) for n in data["names"]]:
                    wc = data[f"{name}_win_cells"]
                    pc = data[f"{name}_plate_cells"]
                    weights = data[f"{name}_weights"].astype(np.float32)
                    win = (int(wc[0]), int(wc[1]))
                    if weights.shape != (win[1] - 1, win[0] - 1, 4 * NBINS):
                        raise ModelError(f"{path}: {name} weights have shape {weights.shape}")
                    models.append(
                        WindowModel(
                            name=name,
                            win_cells=win,
                            plate_cells=(float(pc[0]), float(pc[1]), float(pc[2]), float(pc[3])),
                            weights=weights,
                            bias=float(data[f"{name}_bias"][0]),
                        )
                    )
                verifier = None
                if "verifier_weights" in data:
                    vw = data["verifier_weights"].astype(np.float32)
                    if vw.shape != (_verify_hog().getDescriptorSize(),):
                        raise ModelError(f"{path}: verifier weights have shape {vw.shape}")
                    vb, vt = (float(v) for v in data["verifier_bias_threshold"])
                    verifier = Verifier(vw, vb, vt)
                return cls(
                    tuple(models), float(data["threshold"][0]), str(data["info"][0]), verifier
                )
            except KeyError as exc:
                raise ModelError(f"{path}: detector file lacks {exc}") from None


def default_model_path() -> Path:
    return Path(__file__).resolve().parents[2] / "models" / "plate_hog.npz"


class PlateDetector:
    """Finds plate candidates in grayscale images. One per worker thread (holds no frame state)."""

    def __init__(
        self,
        model: DetectorModel,
        *,
        min_plate_width_px: int = 60,
        max_plate_width_px: int = 320,
        score_threshold: float | None = None,
        nms_iou: float = 0.3,
        verify: bool = True,
    ) -> None:
        single_threaded_blas()
        orientation_table()  # now, not in the first frame's latency
        self.verify = verify
        self.model = model
        self.min_plate_width_px = min_plate_width_px
        self.max_plate_width_px = max_plate_width_px
        self.threshold = model.threshold if score_threshold is None else score_threshold
        self.nms_iou = nms_iou
        self._scorer = WindowScorer(model.models)
        self._layouts: dict[tuple[int, int, float, float], PackedLayout] = {}

    def detect(
        self,
        gray: NDArray[np.uint8],
        *,
        min_plate_width_px: int | None = None,
        max_plate_width_px: int | None = None,
        roi: tuple[int, int, int, int] | None = None,
        limit: int | None = None,
        threshold: float | None = None,
    ) -> list[Detection]:
        """Candidate plate boxes (image pixels), best score first, after NMS."""
        lo = min_plate_width_px or self.min_plate_width_px
        hi = max_plate_width_px or self.max_plate_width_px
        ox = oy = 0
        full = gray
        if roi is not None:
            x, y, w, h = roi
            x, y = max(0, x), max(0, y)
            gray = gray[y : y + h, x : x + w]
            ox, oy = x, y
        if gray.size == 0:
            return []
        raw = self.scan(gray, lo, hi, self.threshold if threshold is None else threshold)
        if ox or oy:
            raw = [
                Detection((d.box_px[0] + ox, d.box_px[1] + oy, *d.box_px[2:]), d.score, d.shape)
                for d in raw
            ]
        kept = nms(raw, self.nms_iou, None if limit is None else 2 * limit)
        verifier = self.model.verifier if self.verify else None
        if verifier is not None:
            scores = verifier.scores(full, [d.box_px for d in kept])
            kept = [
                replace(d, verify_score=vs)
                for d, vs in zip(kept, scores, strict=True)
                if vs >= verifier.threshold
            ]
        return kept if limit is None else kept[:limit]

    def scan(
        self, gray: NDArray[np.uint8], min_px: float, max_px: float, threshold: float
    ) -> list[Detection]:
        """Every window above ``threshold`` at every allowed plate width (before NMS).

        All plate widths' grids are packed into one canvas (``PackedLayout``), so the whole
        frame is scored with a couple of dozen large numpy calls, which release the GIL,
        instead of that many per plate width. The windows, scores and their order are those
        of scanning each ``FeaturePyramid.grid`` with ``score_maps`` in turn.
        """
        widths = plate_widths(min_px, max_px)
        pyramid = FeaturePyramid(gray, widths[0] / CELLS_PER_PLATE)
        scorer = self._scorer
        if scorer.models is not self.model.models:
            scorer = self._scorer = WindowScorer(self.model.models)
            self._layouts.clear()
        key = (gray.shape[0], gray.shape[1], min_px, max_px)
        layout = self._layouts.get(key)
        if layout is None:
            grids = []
            for pw in widths:
                geo = pyramid.geometry(pw)
                if geo is None:
                    break
                grids.append(geo)
            if not grids:
                return []
            layout = PackedLayout.build(grids, scorer.models, gray.shape[1], gray.shape[0])
            if len(self._layouts) >= 16:  # ROI sizes could vary without end
                self._layouts.clear()
            self._layouts[key] = layout
        scores = _ScorePlan.get(layout, scorer).scores(pyramid.packed_blocks(layout))
        hits = np.flatnonzero(scores > threshold)
        if hits.size == 0:
            return []
        boxes, shapes = layout.boxes_of(hits)
        x0, y0, w, h = boxes.tolist()
        names = [m.name for m in self.model.models]
        shape = [names[i] for i in shapes.tolist()]
        score = scores[hits].tolist()
        return [
            Detection((x, y, bw, bh), s, n)
            for x, y, bw, bh, s, n in zip(x0, y0, w, h, score, shape, strict=True)
        ]


def load_detector(path: Path | None = None) -> DetectorModel:
    p = path or default_model_path()
    if not p.exists():
        raise ModelError(
            f"{p}: plate detector model not found; train it with `python -m edge_anpr.train "
            "detector`"
        )
    return DetectorModel.load(p)
