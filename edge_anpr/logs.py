"""Logging set-up and the rate limiter that keeps bad input from flooding the journal.

One line per event, ``key=value`` fields. A sender that spews garbage gets one warning line per
reason and per interval, with the count of what was suppressed, while every drop is still counted
in the stats.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr (journald picks it up under systemd); stdout stays free for JSON lines."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)


def fields(**kv: object) -> str:
    """Format structured fields as ``key=value`` pairs, quoting values with spaces."""
    parts = []
    for key, value in kv.items():
        text = str(value)
        if not text or any(c in text for c in ' "='):
            text = '"' + text.replace('"', '\\"') + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


class RateLimitedLog:
    """Log the first occurrence of each key, then at most once per interval with a count.

    Keys must come from a fixed set (a drop reason), never from input: a key the network
    chooses (a camera name, a sender address) turns a flood into as many lines. The clock is
    injected so the behaviour is testable without sleeping.
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 1024,
    ) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._clock = clock
        self._max_keys = max_keys
        self._last: dict[str, tuple[float, int]] = {}

    def warning(self, key: str, message: str) -> None:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last[0] < self._interval_s:
            self._last[key] = (last[0], last[1] + 1)
            return
        suppressed = last[1] if last else 0
        if last is None and len(self._last) >= self._max_keys:
            # Bounded memory under any input: forget the oldest key.
            self._last.pop(next(iter(self._last)))
        self._last[key] = (now, 0)
        suffix = f" suppressed_since_last={suppressed}" if suppressed else ""
        self._logger.warning("%s%s", message, suffix)
