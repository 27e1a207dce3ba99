"""``edge-anpr serve``: the appliance until SIGTERM, with optional JSON lines on stdout."""

from __future__ import annotations

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
from edge_anpr.system.signals import STOP_SIGNALS
from edge_anpr.values import PlateRead

log = logging.getLogger(__name__)


class JsonLines:
    """JSON lines on stdout, flushed one by one (a pipe reader sees each as it happens)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def write(self, obj: dict[str, Any]) -> None:
        if self.enabled:
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
    cfg: Config, *, stdout_json: bool, port: int | None, mqtt: bool, early: Sequence[int] = ()
) -> int:
    """Run the appliance until SIGINT/SIGTERM; 0 on a clean stop.

    ``cfg`` was checked by the loader; the overrides go through the same checks, so a bad
    ``--port`` is a ``ConfigError`` (exit 2) before anything binds or loads.
    """
    cfg = with_overrides(cfg, port=port, mqtt=mqtt, source="--port")
    for warning in config_warnings(cfg):
        log.warning("%s", fields(event="config_warning", warning=warning))
    run_trio(_serve, cfg, JsonLines(stdout_json), early)
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

