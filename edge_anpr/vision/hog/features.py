"""HoG features: orientation channels, cell pooling and L2-Hys block normalisation.

The features are Dalal-Triggs HoG (``NBINS`` unsigned orientation bins with linear
interpolation, cells, 2x2-cell blocks with L2-Hys normalisation) computed as planes, not per
window: a gradient's magnitude is split over its two nearest bins by a table lookup
(``orientation_table``), channels are pooled over 2x2 pixels (``micro_channels``), and
``normalise_blocks`` turns a planar cell grid into planar blocks. Training and run time call
the same functions, so the run-time features cannot drift from the trained ones. The model file
records ``NBINS`` and ``CELLS_PER_PLATE`` and refuses to load under other values.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from edge_anpr.vision.hog.scratch import scratch

NBINS = 9
CELLS_PER_PLATE = 8
"""A plate's width spans this many cells at every searched scale."""
_EPS = 1e-3
GROUPS = NBINS // 3
"""Orientation channels are kept as GROUPS 3-channel images: OpenCV's area resize takes at
most 4 channels at a time."""

FloatArray = NDArray[np.float32]


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
    part = scratch("part", (2, h, w, NBINS))
    # The table index 511 * gy + gx + offset of the [-1, 0, 1] gradients, in one filter (the
    # two Sobels' border handling, BORDER_REFLECT_101; integers below 2**24 are exact in
    # float32). It is only needed until the int32 copy below, so it borrows part's memory.
    flat_idx = part.reshape(-1)[: img_h * img_w].reshape(img_h, img_w)
    cv2.filter2D(gray, cv2.CV_32F, _INDEX_KERNEL, dst=flat_idx, delta=255 * 511 + 255)
    # idx[b, a, i, j] = pixel (2i + a, 2j + b): idx[b] is a contiguous pair of quadrants.
    idx = scratch("idx", (2, 2, h, w), np.int32)
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

