"""Stop signals that arrive before the event loop listens for them.

``serve`` spends its first second or so (several on a Raspberry Pi) importing OpenCV and
LiteRT and loading every worker's models. Until trio's signal receiver is open, SIGTERM had
its default action and killed the process (exit 143, and any frame already received was
lost); SIGINT raised KeyboardInterrupt somewhere in an import. A stop during startup is an
ordinary stop: it is recorded here and handed to the service's signal task, which drains and
exits 0 as soon as the pipeline is up.

This module imports nothing heavy, so the CLI can take the signals over before the imports
that take the time.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""The first drains and stops, a second one stops at once."""

MAX_RECORDED = 2
"""Two say all there is to say (stop, then stop now); more are not kept (bounded memory)."""


class EarlyStopSignals:
    """The stop signals received while the context of ``held_stop_signals`` is open."""

    def __init__(self) -> None:
        self.received: list[int] = []

    def record(self, signum: int, _frame: FrameType | None) -> None:
        if len(self.received) < MAX_RECORDED:
            self.received.append(signum)


@contextlib.contextmanager
def held_stop_signals() -> Iterator[EarlyStopSignals]:
    """Record SIGINT/SIGTERM instead of dying of them; the previous handlers come back after.

    trio's ``open_signal_receiver`` takes the signals over while it is open and puts these
    handlers back when it closes, so signals after that are recorded here again (and go
    unheeded, the service being on its way out anyway).
    """
    early = EarlyStopSignals()
    previous = {signum: signal.signal(signum, early.record) for signum in STOP_SIGNALS}
    try:
        yield early
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
