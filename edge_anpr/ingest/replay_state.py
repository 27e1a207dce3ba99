"""The replay guard's state on disk, so that a restart of the appliance does not forget it.

One small JSON file beside the outbox (``replay_state_path``): per camera id, the capture time of
the last authenticated frame accepted. ``load_replay_state`` reads it once at start;
``keep_replay_state`` writes it at most once a second while it changes, and once more when
cancelled (the pipeline's shutdown). A write goes to a temporary file that then replaces the old
one, so a crash mid-write leaves the previous state, never a torn one. The file is written in a
worker thread: a write that waits for an SD card must not hold up the socket.

A missing file is a first start. An unreadable or damaged one is logged and taken as empty:
the freshness window (``ingest.replay_window_s``) still refuses every datagram captured longer
ago than that, and refusing to start would take the cameras down with it.
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


def save_replay_state(path: str, last_us: Mapping[int, int]) -> None:
    """Replace the file at ``path`` with ``last_us``, atomically."""
    tmp = f"{path}.tmp"
    body = {"version": FORMAT_VERSION,
            "last_capture_time_us": {str(k): v for k, v in sorted(last_us.items())}}
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(body, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


async def keep_replay_state(guard: ReplayGuard, path: str) -> None:
    """Save ``guard``'s state to ``path`` whenever it changed, at most every ``SAVE_EVERY_S``,
    and once more when cancelled. Never raises for a failed write: it is logged (at most once a
    minute) and tried again."""
    failures = RateLimitedLog(log, interval_s=60.0)
    saved = guard.changes
    try:
        while True:
            await trio.sleep(SAVE_EVERY_S)
            if guard.changes == saved:
                continue
            changes = guard.changes
            try:
                await trio.to_thread.run_sync(save_replay_state, path, guard.last_us())
            except OSError as exc:
                failures.warning("save", fields(
                    event="replay_state_unwritable", path=path, error=exc.strerror,
                ))
            else:
                saved = changes
    finally:
        if guard.changes != saved:
            try:
                save_replay_state(path, guard.last_us())  # a small file: done before it returns
            except OSError as exc:
                log.warning("%s", fields(
                    event="replay_state_unwritable", path=path, error=exc.strerror,
                ))
