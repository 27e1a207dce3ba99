"""``edge-anpr demo`` (what ``make run`` starts): the whole appliance on its embedded defaults.

It serves on a free UDP port, starts ``edge-anpr send`` as a separate process (as a camera
would be) with the bundled frames in ``edge_anpr/assets/demo/`` (rendered by
``edge_anpr/train/demo_frames.py``, never real photographs), prints every read and every plate
event as it happens, then drains, and compares what was read with ``demo/expected.json``.

MQTT is off in the demo (a fresh machine has no broker) and the outbox lives in a temporary
folder, so the demo leaves nothing behind; ``edge-anpr serve`` is the real thing.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import tempfile
import time
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
from edge_anpr.system.notify import SystemdNotifier
from edge_anpr.system.signals import STOP_SIGNALS
from edge_anpr.values import PlateRead

log = logging.getLogger(__name__)

DEMO_FPS = 4.0
SETTLE_S = 10.0
"""After the sender is done, how long to wait at most for the workers to finish its frames."""


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
    seen: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="edge-anpr-demo-") as tmp:
        run_trio(_demo, cfg, loop, str(Path(tmp) / "outbox.sqlite"), seen, early)
    expected = expected_plates()
    found, missed, extra = expected & set(seen), expected - set(seen), set(seen) - expected
    print(
        f"demo: read {len(found)} of {len(expected)} plates in the bundled frames"
        + (f"; not read: {', '.join(sorted(missed))}" if missed else "")
        + (f"; also read: {', '.join(sorted(extra))}" if extra else "")
    )
    return 0 if seen else 1


async def _demo(
    cfg: Config, loop: bool, outbox_path: str, seen: dict[str, float], early: Sequence[int]
) -> None:
    def on_read(read: PlateRead) -> None:
        text = read.text
        seen[text.text] = max(seen.get(text.text, 0.0), text.confidence)
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
            await _send_demo_frames(pipeline, helpers, signals, early, loop)


async def _send_demo_frames(
    pipeline: Pipeline, helpers: trio.Nursery, signals: AsyncIterator[int], early: Sequence[int],
    loop: bool,
) -> None:
    print(f"demo: serving on udp 127.0.0.1:{pipeline.port}, sending {DEMO_DIR}", flush=True)
    # Ctrl-C drains like SIGTERM does for `serve`; a second Ctrl-C stops at once.
    helpers.start_soon(
        stop_on_signals, pipeline, SystemdNotifier(None), helpers.cancel_scope, signals, early
    )
    command = [
        sys.executable, "-m", "edge_anpr", "send", str(DEMO_DIR), "--host", "127.0.0.1",
        "--port", str(pipeline.port), "--fps", str(DEMO_FPS), "--format", "sequenced",
    ]
    if loop:
        command.append("--loop")
    await trio.run_process(command, check=False)
    with trio.move_on_after(SETTLE_S):
        while pipeline.frames_done() + pipeline.queue.dropped < (
            pipeline.reassembler.stats.frames_completed
        ):
            await trio.sleep(0.05)
    pipeline.stop()

