"""What LiteRT's C++ side prints to stderr, turned into log records at their own level.

LiteRT writes ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` straight to file
descriptor 2 when a process first allocates an interpreter's tensors. Neither
``TF_CPP_MIN_LOG_LEVEL`` nor any Python call of ``ai_edge_litert`` silences it (its minimum
severity is a C++ setting the wheel does not expose), so such a line bypassed ``--log-level``
and reached the journal as an unprefixed line.

``native_stderr_to_log()`` points descriptor 2 at an anonymous file for the duration of the
block, then logs each captured ``INFO:``/``WARNING:``/``ERROR:`` line through ``logging`` at
DEBUG/WARNING/ERROR, and writes every other captured line back to stderr unchanged: those are
other threads' log lines, which are only delayed by the block, never lost or reordered among
themselves. Descriptor 2 is shared by the whole process, so blocks are serialised by one lock;
they wrap interpreter creation only (a few per worker, at start), never per-frame work.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from edge_anpr.logs import fields

log = logging.getLogger(__name__)

_LEVELS = {"INFO: ": logging.DEBUG, "WARNING: ": logging.WARNING, "ERROR: ": logging.ERROR}
"""LiteRT's minimal-logging prefixes and the level each is logged at (its INFO is below ours)."""

_lock = threading.Lock()


@contextmanager
def native_stderr_to_log() -> Iterator[None]:
    """Capture descriptor 2 while the block runs; see the module docstring for what follows."""
    with _lock, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured = sink.read()
            _replay(captured)


def _replay(captured: bytes) -> None:
    passthrough: list[bytes] = []
    for raw in captured.splitlines(keepends=True):
        line = raw.decode("utf-8", "replace").rstrip("\n")
        level = next((lv for prefix, lv in _LEVELS.items() if line.startswith(prefix)), None)
        if level is None:
            passthrough.append(raw)
            continue
        if passthrough:
            _write_all(b"".join(passthrough))
            passthrough.clear()
        log.log(level, "%s", fields(event="litert", message=line.split(": ", 1)[1]))
    if passthrough:
        _write_all(b"".join(passthrough))


def _write_all(data: bytes) -> None:
    while data:
        data = data[os.write(2, data):]
