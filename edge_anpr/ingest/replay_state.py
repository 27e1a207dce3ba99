"""The replay guard's state on disk, so that a restart of the appliance does not forget it.

One small JSON file beside the outbox (``replay_state_path``): per camera id, the capture time of
the last authenticated frame accepted. ``load_replay_state`` reads it once at start.

Invariant: the file holds every capture time accepted before any frame accepted with it is read.
``ReplayJournal.write`` replaces the file whenever the state changed, and the UDP shell calls
it at the end of each drain pass, before any worker can take the pass's frames (``ingest.udp``;
``tests/test_ingest_serve.py`` kills a real appliance to check it): a process killed
at any moment (SIGKILL, the OOM killer, a crash) leaves a file that refuses every frame it read,
so a replay after the restart is refused too, and a camera goes on working at once (its capture
times go on forward). That write is not fsynced: a written file survives the death of the
process in the kernel's page cache, and an fsync per frame would wait for an SD card on the
event loop. ``keep_replay_state`` fsyncs the file at most once a second while it changes and
writes it once more when cancelled, which bounds what a power loss can take back to about a
second; a frame captured before a power loss is refused anyway as ``stale`` when the appliance
takes longer than twice ``ingest.replay_window_s`` to boot. A write goes to a temporary file
that then replaces the old one, so even a torn write leaves the previous state.

A missing file is a first start. An unreadable or damaged one is logged and taken as empty:
the freshness window (``ingest.replay_window_s``) still refuses every datagram captured longer
ago than that, and refusing to start would take the cameras down with it. A file that cannot be
written is logged (at most once a minute) and frames are still read: a full disk must not take
the keyed cameras down; it re-opens replays after a crash only, until it is fixed.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

import trio

from edge_anpr.ingest.replay import ReplayGuard
from edge_anpr.logs import RateLimitedLog, fields

log = logging.getLogger(__name__)

FILE_NAME = "edge-anpr-replay.json"
SAVE_EVERY_S = 1.0
FORMAT_VERSION = 1


def replay_state_path(outbox_path: str, process: int = 0) -> str:
    """The state file: in the outbox's folder, whose writability the outbox already needs.

    With several appliance processes (``system.processes``) each saves its own cameras'
    state, process ``i > 0`` in ``edge-anpr-replay-<i>.json``: one shared file would keep only
    the last writer's cameras. Loading reads them all (``load_replay_states``).
    """
    name = FILE_NAME if process == 0 else f"{Path(FILE_NAME).stem}-{process}.json"
    return os.path.join(os.path.dirname(outbox_path) or ".", name)


def load_replay_states(path: str, wall_us: int) -> dict[int, int]:
    """``load_replay_state`` of ``path`` and of every process's file beside it, merged: per
    camera the latest time any of them accepted (the safe side). A camera moves to another
    process when the process count changes; its last accepted time must go with it."""
    folder = os.path.dirname(path) or "."
    stem = Path(FILE_NAME).stem
    pattern = re.compile(re.escape(stem) + r"(-[0-9]+)?\.json")
    try:
        names = sorted(n for n in os.listdir(folder) if pattern.fullmatch(n))
    except OSError:
        names = []
    merged: dict[int, int] = {}
    for name in names:
        for camera, last_us in load_replay_state(os.path.join(folder, name), wall_us).items():
            merged[camera] = max(last_us, merged.get(camera, last_us))
    return merged


def load_replay_state(path: str, wall_us: int) -> dict[int, int]:
    """Camera id -> last accepted capture time (us) saved at ``path``; {} when there is none."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
        state = {int(k): int(v) for k, v in raw["last_capture_time_us"].items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("%s", fields(
            event="replay_state_unreadable", path=path, error=exc,
            effect="starting empty; the freshness window still applies",
        ))
        return {}
    ahead = {cam: t for cam, t in state.items() if t > wall_us}
    if ahead:
        # Only a clock that went back does this; the state stays (it is the safe side), and
        # those cameras' frames are refused until the clock passes it.
        cam, t = max(ahead.items(), key=lambda item: item[1])
        log.warning("%s", fields(
            event="replay_state_ahead_of_clock", path=path, cameras=len(ahead), camera_id=cam,
            ahead_s=round((t - wall_us) / 1e6, 1),
            hint="frames of these cameras are refused until the clock catches up; delete the "
            "file if the clock was wrong",
        ))
    return state


def save_replay_state(path: str, last_us: Mapping[int, int], *, sync: bool = True) -> None:
    """Replace the file at ``path`` with ``last_us``, atomically (fsynced first with ``sync``)."""
    tmp = f"{path}.tmp"
    body = {"version": FORMAT_VERSION,
            "last_capture_time_us": {str(k): v for k, v in sorted(last_us.items())}}
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(body, f)
        if sync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def sync_file(path: str) -> None:
    """Wait until the file at ``path`` (as it is now) is on the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ReplayJournal:
    """Writes ``guard``'s state to ``path`` through to the file (module docstring).

    ``write`` is called on the event loop, by the shell, before frames are handed on: it costs
    a comparison when nothing changed and one small file replaced (no fsync) when it did.
    """

    def __init__(self, guard: ReplayGuard, path: str) -> None:
        self.guard = guard
        self.path = path
        self.written = guard.changes
        """``guard.changes`` as of the last write that succeeded."""
        self._failures = RateLimitedLog(log, interval_s=60.0)

    def write(self) -> None:
        """Write the state when it changed since the last write; a failure is logged."""
        changes = self.guard.changes
        if changes == self.written:
            return
        try:
            save_replay_state(self.path, self.guard.last_us(), sync=False)
        except OSError as exc:
            self._failures.warning("save", fields(
                event="replay_state_unwritable", path=self.path, error=exc.strerror,
                effect="frames are still read; a replay after a crash would be too",
            ))
        else:
            self.written = changes


async def keep_replay_state(journal: ReplayJournal) -> None:
    """Make the journal's file durable: fsync it at most every ``SAVE_EVERY_S`` while it
    changes, and write it (fsynced) once more when cancelled. Never raises for a failed write:
    it is logged (at most once a minute) and tried again."""
    failures = RateLimitedLog(log, interval_s=60.0)
    guard, path = journal.guard, journal.path
    synced = guard.changes
    try:
        while True:
            await trio.sleep(SAVE_EVERY_S)
            if journal.written == synced:
                continue
            written = journal.written
            try:
                await trio.to_thread.run_sync(sync_file, path)
            except OSError as exc:
                failures.warning("sync", fields(
                    event="replay_state_unwritable", path=path, error=exc.strerror,
                ))
            else:
                synced = written
    finally:
        if guard.changes != synced:
            try:
                save_replay_state(path, guard.last_us())  # a small file: done before it returns
            except OSError as exc:
                log.warning("%s", fields(
                    event="replay_state_unwritable", path=path, error=exc.strerror,
                ))
