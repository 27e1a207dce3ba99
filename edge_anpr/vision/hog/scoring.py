"""Window scoring: every window of every plate shape's linear SVM over a block grid.

Every window shape (one per plate format: wide EU, 2:1 US, 3:1 BR) is a linear SVM over the
same block grid, so adding a shape costs one small matrix product, not another feature pass.
Scores for all window positions come from one ``blocks @ weights`` product and shifted sums.
"""

from __future__ import annotations

import numpy as np

from edge_anpr.vision.hog.features import NBINS, FloatArray
from edge_anpr.vision.hog.model import WindowModel
from edge_anpr.vision.hog.pyramid import ScaleGrid
from edge_anpr.vision.hog.scratch import scratch


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

    The one scoring path: run time scores the packed canvas of all plate widths with it
    (``PlateDetector.scan``), training one width's grid (``score_maps``). Run time keeps one
    per detector, so a frame costs one matrix product and one reduction per model (large numpy
    calls that release the GIL) plus a few microseconds of Python.
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
        resp: FloatArray = scratch("score", (self.weights.shape[0], rows * cols))
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
