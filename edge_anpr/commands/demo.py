"""``edge-anpr demo`` (what ``make run`` starts): the whole appliance on its embedded defaults.

It serves on a free UDP port, sends the bundled frames in ``edge_anpr/assets/demo/`` (rendered
by ``edge_anpr/train/demo_frames.py``, never real photographs) to it over UDP as a camera would
(the sequenced format, camera 0), prints every read and every plate event as it happens, then
drains, and compares what was read with ``demo/expected.json``.

Pacing: the demo sends a frame only when the previous one has an outcome (recognized, or
dropped with a reason), and not faster than ``DEMO_FPS``. A slow box (a Raspberry Pi, or an
arm64 userland under emulation at about 2 s a frame) therefore reads every frame instead of
dropping those that arrive while its workers are busy, and a fast one still looks like a live
camera. A frame whose plate was not read is named with its outcome: recognized with no read of
that plate, dropped (the ingest stage's drop reason, e.g. ``queue_full``), or no outcome within
``FRAME_TIMEOUT_S``.

MQTT is off in the demo (a fresh machine has no broker) and the outbox lives in a temporary
folder, so the demo leaves nothing behind; ``edge-anpr serve`` is the real thing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import trio

from edge_anpr.app import (
    Pipeline,
    Sinks,
    run_trio,
    running_pipeline,
    stop_on_signals,
)
from edge_anpr.assets import DEMO_DIR, expected_plates
from edge_anpr.config import Config, with_overrides
from edge_anpr.errors import EdgeAnprError
from edge_anpr.ingest.protocol import SEQ_MODULO, encode_sequenced
from edge_anpr.system.notify import SystemdNotifier
from edge_anpr.system.signals import STOP_SIGNALS
from edge_anpr.values import PlateRead
from edge_anpr.vision.workers import WorkerStats

log = logging.getLogger(__name__)

DEMO_FPS = 4.0
"""The fastest the demo sends: a fast box still shows reads arriving as from a live camera."""
FRAME_TIMEOUT_S = 120.0
"""How long the demo waits for one frame's outcome before it sends the next (a frame takes a few
seconds under arm64 emulation, a tenth of a second on a PC)."""


@dataclasses.dataclass
class DemoLog:
    """What the demo learnt: plates read (best confidence) and per frame, the sequence number it
    was sent with, the plates read from it and its outcome."""

    seen: dict[str, float] = dataclasses.field(default_factory=dict)
    sequence_of: dict[str, int] = dataclasses.field(default_factory=dict)
    reads_of: dict[int, set[str]] = dataclasses.field(default_factory=dict)
    outcome_of: dict[str, str] = dataclasses.field(default_factory=dict)

    def not_read(self, expected: dict[str, list[str]]) -> list[str]:
        """One line per expected plate not read: the plate, its frame and why."""
        lines = []
        for name, plates in sorted(expected.items()):
            sequence = self.sequence_of.get(name)
            for plate in plates:
                if plate in self.seen:
                    continue
                if sequence is None:
                    why = "not sent (the demo was stopped)"
                elif (outcome := self.outcome_of.get(name, "no outcome")) == "recognized":
                    reads = sorted(self.reads_of.get(sequence, ()))
                    why = f"recognized, read {', '.join(reads)}" if reads else "recognized, no read"
                else:
                    why = outcome
                lines.append(f"{plate} ({name}: {why})")
        return lines


def demo_main(
    cfg: Config, *, port: int | None, loop: bool, early: Sequence[int] = ()
) -> int:
    if not any(DEMO_DIR.glob("*.jpg")):
        raise EdgeAnprError(f"no demo frames in {DEMO_DIR}; reinstall the package")
    cfg = with_overrides(cfg, port=port if port is not None else 0, mqtt=False, source="--port")
    cfg = dataclasses.replace(
        cfg,
        ingest=dataclasses.replace(cfg.ingest, bind="127.0.0.1"),
        device=dataclasses.replace(
            cfg.device, stats_interval_s=max(cfg.device.stats_interval_s, 30)
        ),
        tracker=dataclasses.replace(cfg.tracker, quiet_time_s=min(cfg.tracker.quiet_time_s, 1.5)),
    )
    demo_log = DemoLog()
    with tempfile.TemporaryDirectory(prefix="edge-anpr-demo-") as tmp:
        run_trio(_demo, cfg, loop, str(Path(tmp) / "outbox.sqlite"), demo_log, early)
    seen = demo_log.seen
    expected = expected_plates()
    found, extra = expected & set(seen), set(seen) - expected
    missed = demo_log.not_read(_expected_by_frame())
    print(
        f"demo: read {len(found)} of {len(expected)} plates in the bundled frames"
        + (f"; not read: {', '.join(missed)}" if missed else "")
        + (f"; also read: {', '.join(sorted(extra))}" if extra else "")
    )
    return 0 if seen else 1


def _expected_by_frame() -> dict[str, list[str]]:
    """``expected.json`` as frame file -> plates (frames with none left out)."""
    path = DEMO_DIR / "expected.json"
    raw: Any = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    if not isinstance(raw, dict):
        return {}
    return {
        name: [p for p in item.get("plates", []) if isinstance(p, str)]
        for name, item in raw.items() if isinstance(item, dict) and item.get("plates")
    }

async def _demo(
    cfg: Config, loop: bool, outbox_path: str, demo_log: DemoLog, early: Sequence[int]
) -> None:
    seen = demo_log.seen

    def on_read(read: PlateRead) -> None:
        text = read.text
        seen[text.text] = max(seen.get(text.text, 0.0), text.confidence)
        if read.frame_sequence is not None:
            demo_log.reads_of.setdefault(read.frame_sequence, set()).add(text.text)
        latency_ms = (time.monotonic() - read.completed_monotonic_s) * 1000
        print(
            f"read   {text.text:<10} confidence={text.confidence:.2f} "
            f"region={text.region.code or '-'} camera={read.camera} box={list(read.box_px)} "
            f"latency_ms={latency_ms:.0f}",
            flush=True,
        )

    def on_event(event: dict[str, Any]) -> None:
        print(
            f"event  {event.get('kind', '?'):<6} {event.get('plate', '')!s:<10} "
            f"reads={event.get('read_count', '?')} id={event.get('event_id', '?')}",
            flush=True,
        )

    sinks = Sinks(on_read=on_read, on_event=on_event)
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async with running_pipeline(cfg, sinks=sinks, outbox_path=outbox_path) as (
            pipeline, helpers
        ):
            await _send_demo_frames(pipeline, helpers, signals, early, loop, demo_log)


async def _send_demo_frames(
    pipeline: Pipeline, helpers: trio.Nursery, signals: AsyncIterator[int], early: Sequence[int],
    loop: bool, demo_log: DemoLog,
) -> None:
    print(f"demo: serving on udp 127.0.0.1:{pipeline.port}, sending {DEMO_DIR}", flush=True)
    # Ctrl-C drains like SIGTERM does for `serve`; a second Ctrl-C stops at once.
    helpers.start_soon(
        stop_on_signals, pipeline, SystemdNotifier(None), helpers.cancel_scope, signals, early
    )
    frames = [(p.name, p.read_bytes()) for p in sorted(DEMO_DIR.glob("*.jpg"))]
    sequence = (time.time_ns() // 1_000_000) % SEQ_MODULO
    next_at = trio.current_time()
    with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        while not pipeline.stopping:
            for name, jpeg in frames:
                await trio.sleep_until(next_at)
                if pipeline.stopping:
                    break
                next_at = trio.current_time() + 1 / DEMO_FPS
                demo_log.sequence_of[name] = sequence
                outcome = await _send_and_wait(pipeline, sock, jpeg, sequence)
                demo_log.outcome_of[name] = outcome
                if outcome != "recognized":
                    print(f"frame  {name} {outcome}", flush=True)
                sequence = (sequence + 1) % SEQ_MODULO
            if not loop:
                break
    pipeline.stop()


async def _send_and_wait(
    pipeline: Pipeline, sock: trio.socket.SocketType, jpeg: bytes, sequence: int
) -> str:
    """Send one frame and wait for its outcome: ``recognized`` or ``dropped: <reason>`` (the
    ingest stage's drop reasons, the workers' ``undecodable``/``too_many_pixels``/failure, or
    no outcome within ``FRAME_TIMEOUT_S``). Only this frame is in flight, so any change of the
    counters is its doing."""
    stats, workers = pipeline.reassembler.stats, pipeline.worker_stats
    done, before, drops = pipeline.frames_done(), _worker_outcomes(workers), Counter(stats.drops)
    for packet in encode_sequenced(jpeg, camera=0, frame=sequence, time_us=time.time_ns() // 1000):
        await sock.sendto(packet, ("127.0.0.1", pipeline.port))
    with trio.move_on_after(FRAME_TIMEOUT_S):
        while True:
            if pipeline.frames_done() > done:
                return ", ".join(sorted(_worker_outcomes(workers) - before))
            new = Counter(stats.drops) - drops
            if new:
                return "dropped: " + ", ".join(sorted(new))
            await trio.sleep(0.02)
    return f"dropped: no outcome within {FRAME_TIMEOUT_S:g} s"


def _worker_outcomes(w: WorkerStats) -> Counter[str]:
    """The workers' counts of frames per outcome, named as the log names the reasons."""
    return Counter({
        "recognized": w.frames_recognized, "dropped: undecodable": w.frames_undecodable,
        "dropped: too_many_pixels": w.frames_too_large,
        "dropped: recognition failed (see the log)": w.frames_failed,
    })
