"""Logging set-up and the rate limiter that keeps bad input from flooding the journal.

One line per event, ``key=value`` fields. A sender that spews garbage gets one warning line per
reason and per interval, with the count of what was suppressed, while every drop is still counted
in the stats.

Under systemd, stderr is a stream to journald, which reads a ``<N>`` prefix on each line as that
line's syslog priority (sd-daemon(3)); without it every line is stored at the unit's default
level and ``journalctl -p warning`` finds nothing. systemd says which stream is the journal in
``JOURNAL_STREAM`` (``device:inode``), so the prefix is written only when stderr is that very
stream, never to a terminal, a pipe or a file that merely inherited the variable.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping

_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_JOURNAL_FORMAT = "%(levelname)s %(name)s %(message)s"
"""The journal stamps each line with its own time: no second timestamp."""

_SYSLOG_PRIORITY = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
                    (logging.INFO, 6))
"""Python levels to syslog priorities (crit, err, warning, info); anything lower is debug (7)."""


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a Python logging level: 2 (crit) .. 7 (debug)."""
    for threshold, priority in _SYSLOG_PRIORITY:
        if levelno >= threshold:
            return priority
    return 7


def stderr_is_journal(environ: Mapping[str, str] = os.environ, fd: int = 2) -> bool:
    """Whether ``fd`` is the stream ``JOURNAL_STREAM`` names (systemd's ``device:inode``)."""
    device, _, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (int(device), int(inode))


class JournalFormatter(logging.Formatter):
    """Every line of a record (a traceback too) starts with ``<N>``, the record's syslog
    priority, so no line of it is stored at another priority than the record's."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr (journald picks it up under systemd, with each line's priority); stdout
    stays free for JSON lines. ``level`` is a level name in any case."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    if stderr_is_journal():
        handler.setFormatter(JournalFormatter(_JOURNAL_FORMAT))
    else:
        handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper())


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
        self.log(logging.WARNING, key, message)

    def info(self, key: str, message: str) -> None:
        self.log(logging.INFO, key, message)

    def log(self, level: int, key: str, message: str) -> None:
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
        self._logger.log(level, "%s%s", message, suffix)


class RateLimitFilter(logging.Filter):
    """For a library's logger that writes a line per bad input (python-multipart warns once
    per malformed body): the first record passes, then at most one per ``interval_s``, with the
    count of those dropped since. The records' text comes from the network, so there is one
    budget for the whole logger, not one per message."""

    def __init__(
        self, interval_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._clock = clock
        self._last: float | None = None
        self._dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = self._clock()
        if self._last is not None and now - self._last < self._interval_s:
            self._dropped += 1
            return False
        self._last = now
        if self._dropped:
            record.msg = f"{record.getMessage()} suppressed_since_last={self._dropped}"
            record.args = ()
            self._dropped = 0
        return True


def rate_limit_logger(name: str, interval_s: float = 60.0) -> None:
    """Give the logger ``name`` a ``RateLimitFilter`` (once)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RateLimitFilter) for f in logger.filters):
        logger.addFilter(RateLimitFilter(interval_s))
