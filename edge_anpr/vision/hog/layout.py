"""Packing all searched plate widths' cell grids into one canvas, and where each window of
each grid lands in the scores and in the image.

Depends on the image size and plate width range only (never on pixel values), so a detector
builds one ``PackedLayout`` per size and reuses it every frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from edge_anpr.vision.hog.model import WindowModel


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
        found: list[tuple[int, int, int]] = []
        xs: list[tuple[int, float, float, float]] = []
        ys: list[tuple[int, float, float, float]] = []
        for geo, (y, x) in zip(grids, origins, strict=True):
            for index, (model, (start, map_w)) in enumerate(zip(models, per_model, strict=True)):
                bw, bh = model.blocks
                oh, ow = geo.rows - 1 - bh + 1, geo.cols - 1 - bw + 1
                if oh <= 0 or ow <= 0:
                    continue
                px, py, pwc, phc = model.plate_cells
                found.append((start + y * map_w + x, map_w, index))
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
        n_valid = 0
        for (first, map_w, index), nc, nr, c0, r0 in zip(
            found, col_count.tolist(), row_count.tolist(), col_first.tolist(),
            row_first.tolist(), strict=True,
        ):
            if nc == 0 or nr == 0:
                continue
            cols, rows = col_keep[c0 : c0 + nc], row_keep[r0 : r0 + nr]
            valid.append(((rows * map_w)[:, None] + (first + cols)).ravel())
            segments.append((n_valid, nc, c0, r0, index))
            n_valid += nc * nr
        if not valid:
            empty = np.empty(0, np.intp)
            return cls(
                tuple(grids), tuple(origins), canvas, empty, empty, np.empty((4, 0), np.intp),
                col_boxes, row_boxes,
            )
        table = np.array(segments, np.intp).T
        return cls(
            tuple(grids), tuple(origins), canvas, np.concatenate(valid),
            np.ascontiguousarray(table[0]), np.ascontiguousarray(table[1:]), col_boxes,
            row_boxes,
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

