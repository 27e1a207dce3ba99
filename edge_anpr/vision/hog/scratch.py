"""Per-thread scratch memory for the scan: buffers reused frame to frame, and plans over them.

Invariant: an array handed out here is only ever used by the thread that asked for it, and
only until that thread asks for the same name again (contents are garbage on hand-out). Plans
(``layout_plan``) hold views of one named buffer and are dropped whenever that buffer has
been replaced by a larger one, so no plan writes to memory another view no longer sees.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

_SCRATCH = threading.local()


def scratch(
    name: str, shape: tuple[int, ...], dtype: type[np.generic] = np.float32
) -> NDArray[Any]:
    """An array of ``shape`` that this thread reuses from frame to frame (contents garbage).

    For the big per-frame temporaries: allocated afresh, glibc often hands arrays of a few MB
    back to the kernel when they are freed, and faulting those pages in again (thousands per
    frame) made a worker thread's frames several ms slower. Only the per-frame scan's own
    steps see these arrays (never a detection or a caller outside this package).

    It is the start of one buffer per name that only grows (by at least a quarter), not an
    array per shape: a new image size then reuses memory already faulted in (a fresh 16 MB
    products buffer cost a new size's first frame 2-10 ms), and sizes varying without end
    cost no more memory than the largest. Growing replaces the buffer (see
    ``scratch_buffer``): whoever keeps views of it must check.
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


def scratch_buffer(name: str, dtype: type[np.generic] = np.float32) -> NDArray[Any] | None:
    """The buffer this thread's ``scratch(name, ...)`` arrays are views of (None before
    the first)."""
    buffers: dict[tuple[str, type[np.generic]], NDArray[Any]] = getattr(_SCRATCH, "buffers", {})
    return buffers.get((name, dtype))


def scratch_buffers() -> dict[tuple[str, type[np.generic]], NDArray[Any]]:
    """This thread's buffers by name and type: what its scans keep between frames."""
    return dict(getattr(_SCRATCH, "buffers", {}))


def scratch_parts(name: str, shapes: list[tuple[int, ...]]) -> list[NDArray[np.float32]]:
    """Arrays of ``shapes`` carved one after another out of this thread's ``name`` scratch,
    each starting at a multiple of 16 floats (64 bytes) into it."""
    sizes = [math.prod(shape) for shape in shapes]
    ends = np.cumsum([-(-size // 16) * 16 for size in sizes]).tolist()
    buffer = scratch(name, (ends[-1],))
    return [
        buffer[start : start + size].reshape(shape)
        for start, size, shape in zip([0, *ends[:-1]], sizes, shapes, strict=True)
    ]


_Plan = TypeVar("_Plan")


def layout_plan(
    kind: str, buffer: str, layout: object, fits: Callable[[_Plan], bool],
    build: Callable[[], _Plan],
) -> _Plan:
    """This thread's plan of ``kind`` for ``layout`` (a ``PackedLayout``, found by identity:
    ``fits`` must check the plan is for this very object), built when it has none that fits.

    A plan's arrays are views of the thread's ``buffer`` scratch: when that has been
    replaced by a larger one, all plans of the kind are dropped (rebuilding one is cheap)
    rather than each keeping an old buffer alive.
    """
    plans: dict[int, _Plan] | None = getattr(_SCRATCH, kind, None)
    on = getattr(_SCRATCH, kind + "_on", None)
    if plans is None or on is not scratch_buffer(buffer):
        plans = {}
        setattr(_SCRATCH, kind, plans)
    plan = plans.get(id(layout))
    if plan is None or not fits(plan):
        if len(plans) >= 16:  # as PlateDetector's layouts, for ROI sizes
            plans.clear()
        plan = build()
        now = scratch_buffer(buffer)
        if now is not on:  # this build grew the buffer (or is the first)
            plans.clear()
            setattr(_SCRATCH, kind + "_on", now)
        plans[id(layout)] = plan
    return plan
