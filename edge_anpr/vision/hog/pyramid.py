"""The feature pyramid: orientation channels per octave, pooled into one cell grid per
searched plate width.

A plate of width ``p`` pixels spans ``CELLS_PER_PLATE`` cells, so each searched plate width is
one cell size; the cell grid for it is an area-resize of an octave's channels, and block
normalisation runs on that small grid. Only the plate widths the configuration allows are
searched (geometric steps of ``SCALE_STEP``), never a full pyramid. Channels are never computed
at a resolution finer than the smallest cell needs (``MIN_CELL_PX``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from edge_anpr.vision.hog.features import (
    CELLS_PER_PLATE,
    GROUPS,
    NBINS,
    FloatArray,
    micro_channels,
    normalise_blocks,
)
from edge_anpr.vision.hog.layout import GridGeometry, PackedLayout
from edge_anpr.vision.hog.scratch import layout_plan, scratch, scratch_parts

MIN_CELL_PX = 4.0
"""Cells are never computed from fewer image pixels than this (sets the finest octave)."""
SCALE_STEP = 2.0 ** (1.0 / 3.0)
"""Ratio between successive searched plate widths: three per octave. On the training holdout
1.26 found the same plates as 1.2 with fewer false candidates, in 80% of the time."""


@dataclass(frozen=True, slots=True)
class ScaleGrid:
    """The block grid for one searched plate width."""

    plate_width_px: float
    cell_px: float
    """Cell size in input-image pixels (what the grid actually used)."""
    blocks: FloatArray
    """(4 * NBINS, rows, cols) normalised block descriptors, planar."""


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
        """Block grid with cells of ``plate_width_px / CELLS_PER_PLATE``; None if too small.

        One width at a time: what training extracts its windows from, and the test oracle
        of ``packed_blocks``, which the run-time scan uses instead
        (``test_scan_finds_what_scanning_each_grid_finds``)."""
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

        It earns its place over one ``grid`` per width copied into the canvas: ~11% less
        detection CPU per 1280x720 frame (19.5 vs 21.9 ms, frames interleaved on one
        thread), ~10% less CPU per frame in ``edge-anpr bench recognize --frames 300``
        (``cpu`` median 27.8-30.1 vs 32.2-34.3 ms over three alternating runs each).

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
        return normalise_blocks(plan.cells, scratch("blocks", (4 * NBINS, rows - 1, cols - 1)))


@dataclass(frozen=True, slots=True)
class _PoolPlan:
    """One thread's buffers and views for pooling one ``PackedLayout``'s grids each frame.

    About 4 MB for 1280x720 frames (1.5 MB canvas, its planar copy, the octaves' channels),
    allocated once rather than every frame. Per thread, because the buffers are
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
        return layout_plan(
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
        canvas, cells, *channels = scratch_parts("pool", shapes)
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

