"""``GET /metrics`` and ``GET /health``: the appliance's counters as Prometheus text and JSON
(pure: an ``Observed`` value in, bytes or a dict out).

The counters live where they are counted (ingest, workers, event stage, outbox, MQTT, the HTTP
server); ``Observed`` is one reading of them all, taken on the event loop by the server. The
exposition is prometheus_client's (a collector that yields metric families from the reading,
in a registry of its own, rendered with ``generate_latest``): its HTTP server and global
registry are not used, so nothing runs in a thread of its own. Names and meanings are listed in
docs/http.md; ``tests/test_http_metrics.py`` parses the output with prometheus_client's parser.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from edge_anpr.vision.workers import LatencyHistogram

METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST
PREFIX = "edge_anpr_"
FRAME_OUTCOMES = ("recognized", "undecodable", "too_large", "failed")


@dataclass(frozen=True)
class Observed:
    """One reading of every counter the two endpoints show."""

    report: Mapping[str, Any]
    """The stats report (``publish.stage.StatsReport.build``): ``pipeline`` (ingest and
    workers, ``app.Pipeline.snapshot``), and, while the event stage runs, ``tracker``,
    ``outbox`` and (with MQTT) ``mqtt``."""
    recognition: LatencyHistogram
    silence_s: Mapping[str, float]
    """Seconds since each watched stage last beat (``system.notify.Liveness``)."""
    max_silence_s: float
    http_requests: Mapping[tuple[str, int], int] = field(default_factory=dict)
    """Requests answered, by (endpoint, status code)."""
    http_pending: int = 0
    """Posted images being recognised or waiting for a worker."""
    http_connections: Mapping[str, int] = field(default_factory=dict)
    """The HTTP server's connections: ``open``, ``cap`` and the counters ``evicted``,
    ``refused`` and ``accept_errors`` (``http.server.HttpServer.observe``)."""
    stopping: bool = False


def render_metrics(observed: Observed) -> bytes:
    """The Prometheus text exposition (format 0.0.4) of ``observed``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Reading(observed))
    return generate_latest(registry)


class _Reading(Collector):
    def __init__(self, observed: Observed) -> None:
        self._observed = observed

    def collect(self) -> Iterable[Metric]:
        return list(_families(self._observed))


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(PREFIX + name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, value=value)


def num(counters: Mapping[str, Any], key: str) -> float:
    """A counter of a report section (0 when absent)."""
    return float(counters.get(key, 0) or 0)


def _families(o: Observed) -> Iterable[Metric]:
    pipeline: Mapping[str, Any] = o.report.get("pipeline", {})
    yield _gauge("uptime_seconds", "Seconds since the pipeline started.",
                 num(pipeline, "uptime_s"))
    yield _gauge("workers", "Recognition workers.", num(pipeline, "workers"))
    healthy = GaugeMetricFamily(
        PREFIX + "stage_healthy", "1 while the stage beats within its allowance, else 0.",
        labels=["stage"],
    )
    silence = GaugeMetricFamily(
        PREFIX + "stage_silence_seconds", "Seconds since the stage's last beat.",
        labels=["stage"],
    )
    for stage, seconds in o.silence_s.items():
        healthy.add_metric([stage], 1.0 if seconds <= o.max_silence_s else 0.0)
        silence.add_metric([stage], seconds)
    yield healthy
    yield silence

    yield _counter("datagrams", "UDP datagrams received.", num(pipeline, "datagrams"))
    yield _counter("frames_completed", "Frames reassembled from UDP.",
                   num(pipeline, "frames_completed"))
    frames = CounterMetricFamily(
        PREFIX + "frames", "Frames (camera frames and posted images) the workers finished, "
        "by outcome.", labels=["outcome"],
    )
    for outcome in FRAME_OUTCOMES:
        frames.add_metric([outcome], num(pipeline, f"frames_{outcome}"))
    yield frames
    drops = CounterMetricFamily(
        PREFIX + "drops", "Datagrams or frames dropped before recognition, by reason "
        "(docs/protocol.md).", labels=["reason"],
    )
    for reason, count in sorted(dict(pipeline.get("dropped", {})).items()):
        drops.add_metric([str(reason)], float(count))
    yield drops
    if "kernel_drops" in pipeline:
        yield _counter("kernel_drops", "Datagrams the kernel dropped (full receive buffer).",
                       num(pipeline, "kernel_drops"))
    yield _gauge("queue_depth", "Frames waiting for a worker (camera frames and posted "
                 "images).", num(pipeline, "queue_depth"))
    yield _counter("reads", "Plate reads made (at least reader.min_confidence).",
                   num(pipeline, "reads"))
    yield _counter("reads_below_confidence", "Plate reads under reader.min_confidence.",
                   num(pipeline, "reads_below_confidence"))

    h = o.recognition
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip(h.bounds, h.counts, strict=False):
        running += count
        buckets.append((_le(bound), float(running)))
    buckets.append(("+Inf", float(h.count)))
    yield HistogramMetricFamily(
        PREFIX + "recognition_seconds", "Time a worker thread spent on one frame (decode, "
        "detect, read).", buckets=buckets, sum_value=h.sum_s,
    )

    tracker: Mapping[str, Any] = o.report.get("tracker", {})
    if tracker:
        yield _counter("events", "Plate events started.", num(tracker, "events"))
        yield _gauge("open_events", "Plate events open now.", num(tracker, "open_events"))
        yield _counter("known_matches", "Events that matched a known plate.",
                       num(tracker, "known_matches"))
        yield _counter("gate_commands", "Gate commands written to the outbox.",
                       num(tracker, "gate_commands"))
        yield _counter("outbox_write_errors", "Outbox writes that failed (a full or broken "
                       "disk): messages lost.", num(tracker, "outbox_errors"))
    outbox: Mapping[str, Any] = o.report.get("outbox", {})
    if outbox:
        yield _gauge("outbox_pending", "MQTT messages in the outbox, not yet acknowledged.",
                     num(outbox, "pending"))
        yield _counter("outbox_evicted", "Outbox messages evicted when it was full.",
                       num(outbox, "evicted"))
        yield _counter("outbox_expired", "Outbox messages expired (late gate commands).",
                       num(outbox, "expired"))
    mqtt: Mapping[str, Any] = o.report.get("mqtt", {})
    if mqtt:
        yield _gauge("mqtt_connected", "1 while connected to the broker.",
                     1.0 if mqtt.get("connected") else 0.0)
        yield _counter("mqtt_published", "MQTT messages acknowledged by the broker.",
                       num(mqtt, "published"))
        yield _gauge("mqtt_inflight", "MQTT messages sent and not yet acknowledged.",
                     num(mqtt, "inflight"))

    requests = CounterMetricFamily(
        PREFIX + "http_requests", "HTTP requests answered, by endpoint and status code.",
        labels=["endpoint", "code"],
    )
    for (endpoint, code), count in sorted(o.http_requests.items()):
        requests.add_metric([endpoint, str(code)], float(count))
    yield requests
    yield _gauge("http_pending", "Posted images being recognised or waiting for a worker.",
                 float(o.http_pending))
    conns = o.http_connections
    if conns:
        yield _gauge("http_connections", "HTTP connections open.", num(conns, "open"))
        yield _gauge("http_connections_max", "HTTP connections held at most (http.max_connections "
                     "within the open-files limit).", num(conns, "cap"))
        yield _counter("http_connections_evicted", "Idle HTTP connections closed to make room.",
                       num(conns, "evicted"))
        yield _counter("http_connections_refused", "HTTP connections refused: every place was "
                       "serving a request.", num(conns, "refused"))
        yield _counter("http_accept_errors", "HTTP accepts failed for lack of file descriptors "
                       "or memory (EMFILE...).", num(conns, "accept_errors"))


def _le(bound: float) -> str:
    return repr(float(bound))


def health_json(o: Observed) -> tuple[int, dict[str, Any]]:
    """``GET /health``: 200 with ``status`` ``ok`` while every stage beats and the outbox takes
    what is written to it, else 503 with ``unhealthy`` (a stage is silent), ``degraded``
    (every stage beats but something is being lost: ``degraded`` names it, e.g.
    ``outbox_write_failing`` on a full disk) or ``stopping`` (the shutdown drain); each
    stage's silence, and the stats report."""
    stages = {
        stage: {"ok": seconds <= o.max_silence_s, "silent_s": round(seconds, 3)}
        for stage, seconds in o.silence_s.items()
    }
    ok = all(s["ok"] for s in stages.values())
    degraded = [] if o.report.get("health", {}).get("outbox_writable", True) else [
        "outbox_write_failing"
    ]
    status = "stopping" if o.stopping else (
        "unhealthy" if not ok else "degraded" if degraded else "ok"
    )
    body = {
        "status": status,
        "degraded": degraded,
        "stages": stages,
        "stats": dict(o.report),
        "http": {
            "pending": o.http_pending,
            "connections": dict(o.http_connections),
            "requests": {f"{e} {c}": n for (e, c), n in sorted(o.http_requests.items())},
        },
    }
    return (200 if status == "ok" else 503), body
