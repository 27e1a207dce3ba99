"""Replay protection for authenticated frames, sans-IO (rules in docs/protocol.md).

A tag proves who made a datagram, not when: a captured datagram stays valid for ever. The
capture time (``time`` in the sequenced header) is covered by the tag, so the receiver refuses
an authenticated frame unless

- its capture time is within ``window_s`` of the appliance's clock (``stale`` otherwise; a
  capture time of 0, unknown, is never fresh), and
- it is strictly newer than the capture time of the last frame accepted from the same camera id
  (``replayed`` otherwise).

Invariant: ``last_us[camera]`` only grows, and only through ``accept``, which the reassembler
calls for an authenticated frame it hands on. The map is the whole state: the shell persists it
(``ingest.replay_state``) so a datagram captured before a restart of the appliance is still
refused after it. A camera's sender that restarts goes on working, since its capture times go on
moving forward. Nothing here reads a clock: the wall-clock time comes in with every call.
``tests/test_ingest_replay.py`` holds the rules.
"""

from __future__ import annotations

from collections.abc import Mapping

from edge_anpr.ingest.protocol import DropReason


class ReplayGuard:
    """Per camera id, the capture time of the last authenticated frame accepted."""

    __slots__ = ("_last_us", "_window_us", "changes")

    def __init__(self, window_s: float, last_us: Mapping[int, int] | None = None) -> None:
        self._window_us = int(window_s * 1_000_000)
        self._last_us: dict[int, int] = dict(last_us or {})
        self.changes = 0
        """How many times the state has changed: the shell saves it when this moves."""

    def check(
        self, camera: int, time_us: int, wall_us: int | None
    ) -> tuple[DropReason, str] | None:
        """None when a datagram of ``camera`` captured at ``time_us`` may be taken at wall-clock
        time ``wall_us`` (None: no clock known, so nothing is fresh); else the drop reason and
        its detail."""
        if time_us == 0 or wall_us is None:
            return "stale", "no capture time: replay protection needs the camera's clock (NTP)"
        skew_us = time_us - wall_us
        if abs(skew_us) > self._window_us:
            return "stale", (
                f"capture time {skew_us / 1e6:+.3f} s from the appliance's clock "
                f"(ingest.replay_window_s = {self._window_us / 1e6:g}): a recording sent "
                "again, or a clock problem (check NTP on camera and appliance)"
            )
        return self.check_newer(camera, time_us)

    def check_newer(self, camera: int, time_us: int) -> tuple[DropReason, str] | None:
        """The strictly-newer rule alone (a frame completing: its first chunk was fresh)."""
        last = self._last_us.get(camera)
        if last is not None and time_us <= last:
            return "replayed", (
                f"capture time {time_us} is not after {last}, the last accepted from this camera"
            )
        return None

    def accept(self, camera: int, time_us: int) -> None:
        """Record an authenticated frame of ``camera`` handed on (never moves a time back)."""
        if time_us > self._last_us.get(camera, 0):
            self._last_us[camera] = time_us
            self.changes += 1

    def last_us(self) -> dict[int, int]:
        """A copy of the state, to persist: camera id -> last accepted capture time (us)."""
        return dict(self._last_us)
