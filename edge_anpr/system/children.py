"""What the supervisor of several appliance processes knows of their readiness and liveness.

Each child of ``serve``'s supervisor (``commands/processes.py``) talks ``sd_notify`` as a lone
``serve`` does (``system/notify.py``), but to a socket of the supervisor's instead of systemd's:
``READY=1`` once its pipeline is up, ``WATCHDOG=1`` while every one of its stages beats,
``STATUS=...`` (``unhealthy: publish`` when one is silent). ``ChildHealth`` turns those
datagrams into the supervisor's own word to systemd. Sans-IO: datagrams and a clock in,
answers out; the sockets are the supervisor's.

Invariants (tests/test_processes.py holds them):

- ``all_ready()`` is true exactly when every child has sent ``READY=1``: the supervisor says
  ``READY=1`` to systemd only then, so a set whose second process never comes up fails the
  start (``TimeoutStartSec``) instead of looking started.
- With a watchdog (``silence_s`` set), ``silent()`` names every ready child whose last
  ``READY=1`` or ``WATCHDOG=1`` is older than ``silence_s``: a child that withholds its pings
  (a stuck stage) or cannot send them (a frozen process) is silent while it is still alive,
  and the supervisor withholds its own pings, so systemd restarts the set.
- A datagram that is not ``KEY=value`` lines is ignored: a child cannot make the supervisor
  fail by what it sends.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def parse_notification(datagram: bytes) -> dict[str, str]:
    """The ``KEY=value`` assignments of one ``sd_notify`` datagram (others are skipped)."""
    out: dict[str, str] = {}
    for line in datagram.decode("utf-8", "replace").split("\n"):
        key, sep, value = line.partition("=")
        if sep and key:
            out[key] = value
    return out


class ChildHealth:
    """Readiness and last sign of life of ``count`` children, from their notifications."""

    def __init__(
        self, count: int, silence_s: float | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if count < 1:
            raise ValueError("ChildHealth needs at least one child")
        if silence_s is not None and silence_s <= 0:
            raise ValueError("silence_s must be positive")
        self.count = count
        self.silence_s = silence_s
        self._clock = clock
        self._ready = [False] * count
        self._last: list[float | None] = [None] * count
        self._status = [""] * count

    def note(self, index: int, datagram: bytes) -> None:
        """Child ``index`` sent ``datagram``."""
        items = parse_notification(datagram)
        if items.get("READY") == "1":
            self._ready[index] = True
        if items.get("READY") == "1" or items.get("WATCHDOG") == "1":
            self._last[index] = self._clock()
        if "STATUS" in items:
            self._status[index] = items["STATUS"]

    def all_ready(self) -> bool:
        return all(self._ready)

    def ready_count(self) -> int:
        return sum(self._ready)

    def silent(self) -> list[int]:
        """Ready children silent for longer than ``silence_s`` (none without a watchdog)."""
        if self.silence_s is None:
            return []
        now = self._clock()
        return [
            i for i, last in enumerate(self._last)
            if self._ready[i] and last is not None and now - last > self.silence_s
        ]

    def status(self, index: int) -> str:
        """Child ``index``'s last ``STATUS=`` text ('' when it sent none)."""
        return self._status[index]
