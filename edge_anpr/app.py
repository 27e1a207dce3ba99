"""Wiring of the stages into the appliance: one trio nursery, cancellation as the shutdown path.

This first version runs ingest only: the UDP task reassembles frames into a ``FrameQueue``,
consumer tasks decode each frame (OpenCV, in a worker thread) and, with ``--stdout``, print one
JSON line per frame plus a periodic stats line. SIGINT/SIGTERM cancel the nursery; exit code 0.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import sys
import time
from typing import Any

import trio

from edge_anpr.config import Config
from edge_anpr.errors import EdgeAnprError
from edge_anpr.ingest.queue import FrameQueue
from edge_anpr.ingest.reassembly import Dropped, Reassembler
from edge_anpr.ingest.udp import DropLog, run_udp_ingest
from edge_anpr.logs import fields
from edge_anpr.values import Frame

if sys.version_info < (3, 11):  # pragma: no cover - trio depends on the backport there
    from exceptiongroup import BaseExceptionGroup

log = logging.getLogger(__name__)


def serve_main(cfg: Config, *, stdout_json: bool, port: int | None, mqtt: bool) -> int:
    """Run the appliance until SIGINT/SIGTERM; 0 on a clean stop."""
    if port is not None:
        if not 0 <= port <= 65535:
            raise EdgeAnprError(f"--port must be 0..65535, got {port}")
        cfg = dataclasses.replace(cfg, ingest=dataclasses.replace(cfg.ingest, port=port))
    if mqtt and cfg.mqtt.enabled:
        log.info("%s", fields(event="mqtt_not_wired", note="this build runs ingest only"))
    try:
        trio.run(_serve, cfg, stdout_json)
    except BaseExceptionGroup as group:
        # Surface one user-facing error (e.g. the port is in use) as itself, not a group.
        leaves = list(_leaves(group))
        if len(leaves) == 1 and isinstance(leaves[0], EdgeAnprError):
            raise leaves[0] from None
        raise
    return 0


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


class _Output:
    """JSON lines on stdout, flushed one by one (a pipe reader sees each as it happens)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def line(self, obj: dict[str, Any]) -> None:
        if self.enabled:
            sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
            sys.stdout.flush()


async def _serve(cfg: Config, stdout_json: bool) -> None:
    reassembler = Reassembler(cfg)
    queue = FrameQueue(cfg.ingest.queue_frames_per_camera, reassembler.stats)
    out = _Output(stdout_json)
    workers = cfg.workers.count or os.cpu_count() or 1
    limiter = trio.CapacityLimiter(workers)
    counters = {"frames_decoded": 0}
    started = time.monotonic()
    drops = DropLog()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_on_signal, nursery.cancel_scope)
        await nursery.start(run_udp_ingest, cfg, queue, reassembler)
        for _ in range(workers):
            nursery.start_soon(_consume, queue, limiter, reassembler, out, counters, drops)
        nursery.start_soon(
            _stats_every, cfg.device.stats_interval_s, reassembler, queue, out, counters, started
        )
    log.info("%s", fields(event="stopped", **reassembler.stats.snapshot()))


async def _stop_on_signal(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("%s", fields(event="shutdown", signal=signal.Signals(signum).name))
            scope.cancel()
            return


def decode_frame(jpeg: bytes) -> tuple[int, int] | None:
    """Width and height of an encoded image, or None when OpenCV cannot decode it."""
    import cv2
    import numpy as np

    image = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return None
    height, width = image.shape[:2]
    return int(width), int(height)


async def _consume(
    queue: FrameQueue, limiter: trio.CapacityLimiter, reassembler: Reassembler, out: _Output,
    counters: dict[str, int], drops: DropLog,
) -> None:
    async for frame in queue:
        size = await trio.to_thread.run_sync(decode_frame, frame.jpeg, limiter=limiter)
        if size is None:
            reassembler.stats.drops["undecodable"] += 1
            drops.dropped(Dropped(
                "undecodable", frame.sender, frame.camera,
                f"{len(frame.jpeg)}-byte {frame.wire_format} frame is not a decodable image",
            ))
            continue
        counters["frames_decoded"] += 1
        out.line(_frame_line(frame, size))


def _frame_line(frame: Frame, size: tuple[int, int]) -> dict[str, Any]:
    return {
        "type": "frame", "camera": frame.camera, "sequence": frame.sequence,
        "wire_format": frame.wire_format, "sender": f"{frame.sender[0]}:{frame.sender[1]}",
        "bytes": len(frame.jpeg), "width": size[0], "height": size[1],
        "capture_time_us": frame.capture_time_us,
    }


async def _stats_every(
    interval_s: float, reassembler: Reassembler, queue: FrameQueue, out: _Output,
    counters: dict[str, int], started: float,
) -> None:
    while True:
        await trio.sleep(interval_s)
        line = {
            "type": "stats",
            "uptime_s": round(time.monotonic() - started, 1),
            **reassembler.stats.snapshot(),
            "frames_decoded": counters["frames_decoded"],
            "senders_tracked": reassembler.tracked_senders(),
            "frames_in_flight": reassembler.tracked_frames(),
            "bytes_buffered": reassembler.tracked_bytes(),
            "queue_depth": len(queue),
        }
        out.line(line)
        log.info("%s", fields(event="stats", **{k: v for k, v in line.items() if k != "type"}))
