"""Keeping numpy's OpenBLAS on the calling thread (window scoring's matrix products)."""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

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
