"""``edge-anpr serve``: the appliance until SIGTERM, with optional JSON lines on stdout."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

import trio

from edge_anpr.app import Sinks, run_trio, running_pipeline, stop_on_signals
from edge_anpr.config import Config, config_warnings, with_overrides
from edge_anpr.logs import fields
from edge_anpr.publish.topics import read_payload
from edge_anpr.system.notify import SystemdNotifier, run_watchdog
from edge_anpr.system.processes import ProcessSlot, process_count, workers_per_process
from edge_anpr.system.signals import STOP_SIGNALS
from edge_anpr.values import PlateRead

log = logging.getLogger(__name__)


class JsonLines:
    """JSON lines on stdout, flushed one by one (a pipe reader sees each as it happens)."""

    def __init__(self, enabled: bool, slot: ProcessSlot | None = None) -> None:
        self.enabled = enabled
        self.process = None if slot is None else slot.index
        """With several processes, every line says which one wrote it (``"process": i``)."""

    def write(self, obj: dict[str, Any]) -> None:
        if self.enabled:
            if self.process is not None:
                obj = {**obj, "process": self.process}
            sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
            sys.stdout.flush()


def read_line(read: PlateRead) -> dict[str, Any]:
    return {
        "type": "read",
        "camera": read.camera,
        **read_payload(read),
        "frame_sequence": read.frame_sequence,
        "capture_time_us": read.capture_time_us,
        "latency_ms": round((time.monotonic() - read.completed_monotonic_s) * 1000, 2),
    }


def serve_main(
    cfg: Config, *, stdout_json: bool, port: int | None, mqtt: bool,
    processes: int | None = None, early: Sequence[int] = (), argv: Sequence[str] = (),
) -> int:
    """Run the appliance until SIGINT/SIGTERM; 0 on a clean stop.

    ``cfg`` was checked by the loader; the overrides go through the same checks, so a bad
    ``--port`` or ``--processes`` is a ``ConfigError`` (exit 2) before anything binds or
    loads. With more than one process (``system.processes.process_count``) this process
    supervises copies of itself started with ``argv`` (``commands.processes``); each copy
    serves one share of the cameras with ``workers_per_process`` workers.
    """
    given = (("--port", port), ("--processes", processes))
    flags = [flag for flag, value in given if value is not None]
    cfg = with_overrides(
        cfg, port=port, mqtt=mqtt, processes=processes, source=", ".join(flags) or "command line"
    )
    slot = ProcessSlot.from_environ()
    count = slot.count if slot is not None else process_count(cfg)
    if slot is None and count > 1:
        from edge_anpr.commands.processes import run_processes

        return run_processes(cfg, argv, count, early)
    if slot is not None or cfg.workers.processes:
        workers = workers_per_process(cfg, count)
        cfg = dataclasses.replace(cfg, workers=dataclasses.replace(cfg.workers, count=workers))
    for warning in config_warnings(cfg):
        log.warning("%s", fields(event="config_warning", warning=warning))
    run_trio(_serve, cfg, JsonLines(stdout_json, slot), early)
    return 0


async def _serve(cfg: Config, out: JsonLines, early: Sequence[int]) -> None:
    notifier = SystemdNotifier.from_environ()
    notifier.status("loading models")
    sinks = Sinks(
        on_read=lambda read: out.write(read_line(read)),
        on_event=lambda event: out.write({"type": "event", **event}),
        on_stats=lambda snap: out.write({"type": "stats", **snap}),
    )
    try:
        # Listening before the models load: a stop meanwhile waits here, then drains.
        with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
            async with running_pipeline(cfg, sinks=sinks) as (pipeline, helpers):
                http = (
                    f", http {cfg.http.bind}:{pipeline.http_port}"
                    if pipeline.http_port is not None else ""
                )
                notifier.ready(f"listening on udp {cfg.ingest.bind}:{pipeline.port}{http}")
                helpers.start_soon(
                    stop_on_signals, pipeline, notifier, helpers.cancel_scope, signals, early
                )
                # Pings only while every stage beats (app.py, "Liveness"); the status names the
                # silent ones.
                helpers.start_soon(run_watchdog, notifier, pipeline.liveness)
    finally:
        notifier.stopping()

