"""The event stage: plate reads in; events, known plates and gate commands out via the outbox.

Entry point for the integrator (``cfg`` comes from the config loader, which has checked
everything this stage relies on: topic names, TLS files, known-plate patterns)::

    stats = StatsReport(cfg.device.name)
    await nursery.start(run_event_stage, cfg, reads_rx, stats)
    # keyword options: on_event=callable(dict) for `serve --stdout` JSON lines,
    #                  outbox_path=..., clock=..., wall_us=..., id_source=...
    ...every device.stats_interval_s (app's one stats loop):
    stats.send(stats.build(pipeline_counters))

``run_event_stage(cfg, reads, stats, *, on_event=None, ..., task_status)`` runs until
``reads`` is closed or the task is cancelled (the SIGTERM path), and in both cases:

1. ends every open event (``Tracker.close``) and writes those ``end`` messages to the outbox;
2. gives the outbox up to ``mqtt.flush_timeout_s`` to reach the broker (shielded from the
   cancellation), publishes ``offline`` and disconnects cleanly;
3. leaves whatever is still unsent in the outbox file for the next start.

Per event step (see ``plates/tracker.py``) it writes, in this order, to the outbox:
``<camera>/event``; ``<camera>/plate`` (retained) when the camera's last plate changed (below);
``<camera>/sighting`` (``plate_seen``) when the event starts; ``<camera>/known`` and
``<camera>/sighting`` (``known_plate``) the first time the event matches a known-plate entry;
``<camera>/gate`` (``{"command": "open"}``, with a time to live of ``mqtt.gate_command_ttl_s``)
the first time it matches an entry with ``gate = true`` and every read of the event came from
authenticated frames (or the camera sets ``allow_gate_unauthenticated``); otherwise the command
is withheld and counted (``gate_refused_unauthenticated``). An event read less confidently than
``mqtt.gate_min_confidence`` opens nothing yet (``gate_withheld_low_confidence``): the detector
reports plates it is sure of with less sure reads, and those must never open a gate. Known-plate
matching compares the best text and then the event's candidates. The stage has no stats loop of
its own: while it runs, its ``StatsReport`` adds the tracker's, the outbox's and the
connection's counters to the report ``app`` builds every ``device.stats_interval_s``, and
``StatsReport.send`` publishes that report to ``<prefix>/status/stats`` (QoS 0, not stored:
stale counters are worthless).

The last plate of a camera (``<camera>/plate`` and ``<camera>/snapshot``, both retained) is
held by the camera's newest event: a start takes it over, an update or end of that event
changes its text, and steps of older events (an end after a newer car was seen) never take it
back. Invariant: the retained plate never goes back to an older vehicle
(``tests/test_homeassistant_device.py``).

Snapshots (``snapshot``, optional: ``vision.snapshot.make_snapshot``, given by ``app``). A read
may carry its frame's JPEG (``PlateRead.frame_jpeg``, attached by the workers while the reads
buffer is short). When such a read starts the camera's newest event or improves it (an
``update``), the snapshot is made from it in a thread (the stage awaits it) and written retained to
``<camera>/snapshot`` with ``replace``: one row per camera in the outbox, however long the
broker is away. The tracker never sees the JPEG, so no open event holds a frame.

Liveness (``liveness``, optional): the stage ``events`` beats for every read and every tick of
the quiet-event timer (twice a second at least, reads or not); the stage ``publish`` is the
publisher's (``publish/mqtt.py``). Both are retired when the input ends (the shutdown drain);
a crashed stage is not retired: its restart beats again, and a crash loop shows as silence.

With ``mqtt.enabled = false`` (or ``serve --no-mqtt``) nothing connects: events are logged,
passed to ``on_event`` and written to the bounded outbox, which a later start with MQTT enabled
will send.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import trio

from edge_anpr.config import Config
from edge_anpr.logs import RateLimitedLog, fields
from edge_anpr.plates.known import KnownMatch, KnownPlates
from edge_anpr.plates.tracker import Tracker
from edge_anpr.publish.mqtt import MqttPublisher
from edge_anpr.publish.outbox import Outbox, default_outbox_path
from edge_anpr.publish.topics import (
    Topics,
    event_payload,
    gate_payload,
    known_payload,
    plate_payload,
    sighting_payload,
)
from edge_anpr.publish.unconfigured import AnnouncedCameras
from edge_anpr.system.notify import Liveness
from edge_anpr.values import PlateEvent, PlateRead

log = logging.getLogger(__name__)

MAX_TRACKED_EVENT_STATE = 4096
"""Per-event "already sent known/gate" flags kept for open events (bounded)."""
MAX_PLATE_HOLDERS = 1024
"""Cameras whose newest event is remembered (a camera name comes from the network)."""

SnapshotMaker = Callable[[bytes, tuple[int, int, int, int]], bytes | None]
"""(frame JPEG, plate box in pixels) -> snapshot JPEG, or None when the frame does not decode."""


@dataclass
class _EventState:
    known_sent: bool = False
    gate_sent: bool = False


@dataclass
class EventSink:
    """Turns tracker events into outbox messages. Sans-IO apart from the outbox it writes to."""

    cfg: Config
    outbox: Outbox
    topics: Topics
    on_event: Callable[[dict[str, Any]], None] | None = None
    clock: Callable[[], float] = time.monotonic
    known: KnownPlates = field(init=False)
    events: int = 0
    known_matches: int = 0
    gate_commands: int = 0
    gate_refused_unauthenticated: int = 0
    gate_withheld_low_confidence: int = 0
    """Known-plate matches with ``gate = true`` whose event read stayed under
    ``mqtt.gate_min_confidence`` (counted once per event update)."""
    outbox_errors: int = 0
    outbox_failing: bool = False
    """The last write to the outbox failed (a full or broken disk): ``/health`` is degraded
    until one succeeds again."""
    _bad_disk: RateLimitedLog = field(default_factory=lambda: RateLimitedLog(log))
    _refused_gate: RateLimitedLog = field(default_factory=lambda: RateLimitedLog(log))
    _unconfigured_log: RateLimitedLog = field(
        default_factory=lambda: RateLimitedLog(log, interval_s=60.0)
    )
    announced: AnnouncedCameras = field(init=False)
    """The cameras with retained state (``publish.unconfigured``)."""
    snapshots: int = 0
    _state: OrderedDict[str, _EventState] = field(default_factory=OrderedDict)
    _holder: OrderedDict[str, tuple[str, str]] = field(default_factory=OrderedDict)
    """camera -> (event id, text) of its newest event: what its retained plate shows."""

    def __post_init__(self) -> None:
        self.known = KnownPlates(self.cfg.known_plates)
        self.announced = AnnouncedCameras(
            self.cfg.cameras, self.cfg.mqtt.max_unconfigured_cameras,
            self.cfg.mqtt.unconfigured_expire_s,
        )

    def handle(self, event: PlateEvent) -> None:
        self.events += 1
        announced = self.announced.seen(event.camera, self.clock())
        state = self._state.get(event.event_id)
        if state is None:
            state = self._state[event.event_id] = _EventState()
            while len(self._state) > MAX_TRACKED_EVENT_STATE:
                self._state.popitem(last=False)
        match = self.known.match([event.text, *(c.text for c in event.candidates)])
        payload = event_payload(self.cfg.device.name, event, match)
        self._put(self.topics.event(event.camera), payload)
        if self._takes_plate(event):
            self._put(self.topics.plate(event.camera), plate_payload(event), retain=announced)
        if event.kind == "start":
            self._put(self.topics.sighting(event.camera), sighting_payload(event, None))
        if match is not None:
            self._known(event, match, state)
        if event.kind == "end":
            self._state.pop(event.event_id, None)
        latency_ms = round((self.clock() - event.latency_origin_s) * 1000, 1)
        line = "plate event " + fields(
            kind=event.kind, camera=event.camera, plate=event.text,
            confidence=event.confidence, reads=event.read_count, event_id=event.event_id,
            known=match.entry.name if match else "", latency_ms=latency_ms,
        )
        if event.camera in self.cfg.cameras:
            log.info("%s", line)
        else:  # a name any sender can make up: one line a minute for all of them
            self._unconfigured_log.info("unconfigured", line)
        if self.on_event is not None:
            self.on_event(payload)

    def _takes_plate(self, event: PlateEvent) -> bool:
        """Whether ``event`` changes its camera's last plate: a start takes it over; a step of
        the newest event changes it when its text changed; an older event never takes it."""
        holder = self._holder.get(event.camera)
        if event.kind != "start" and (holder is None or holder[0] != event.event_id):
            return False
        if holder == (event.event_id, event.text):
            return False
        self._holder[event.camera] = (event.event_id, event.text)
        self._holder.move_to_end(event.camera)
        while len(self._holder) > MAX_PLATE_HOLDERS:
            self._holder.popitem(last=False)
        return True

    def wants_snapshot(self, event: PlateEvent) -> bool:
        """A snapshot of the read behind ``event`` is wanted: it started or improved (update)
        its camera's newest event."""
        holder = self._holder.get(event.camera)
        return (event.kind != "end" and holder is not None and holder[0] == event.event_id
                and self.announced.announced(event.camera))

    def expire(self, now: float) -> list[str]:
        """Unconfigured cameras quiet for ``mqtt.unconfigured_expire_s``: their retained plate
        and snapshot are cleared (an empty retained message replaces any still pending)."""
        gone = self.announced.expire(now)
        for camera in gone:
            self._holder.pop(camera, None)
            for topic in (self.topics.plate(camera), self.topics.snapshot(camera)):
                self._put_bytes(topic, b"", retain=True, replace=True)
            log.info("%s", fields(event="camera_expired", camera=camera,
                                  quiet_s=self.announced.expire_s))
        return gone

    def snapshot(self, event: PlateEvent, jpeg: bytes) -> None:
        """Write ``jpeg`` as the camera's retained snapshot, unless a newer event has taken the
        camera over while it was being made."""
        if not self.wants_snapshot(event):
            return
        self.snapshots += 1
        self._put_bytes(self.topics.snapshot(event.camera), jpeg, retain=True, replace=True)

    def _known(self, event: PlateEvent, match: KnownMatch, state: _EventState) -> None:
        if not state.known_sent:
            state.known_sent = True
            self.known_matches += 1
            self._put(self.topics.known(event.camera), known_payload(event, match))
            self._put(self.topics.sighting(event.camera), sighting_payload(event, match))
        if match.entry.gate and not state.gate_sent:
            if event.confidence < self.cfg.mqtt.gate_min_confidence:
                # Not yet: a later update of the event, read more surely, may open it.
                self.gate_withheld_low_confidence += 1
                return
            state.gate_sent = True
            if not self._may_open_gate(event):
                self.gate_refused_unauthenticated += 1
                self._refused_gate.warning(
                    "gate_refused",
                    "gate command withheld "
                    + fields(reason="unauthenticated", camera=event.camera, plate=event.text,
                             name=match.entry.name, event_id=event.event_id),
                )
                return
            self.gate_commands += 1
            self._put(
                self.topics.gate(event.camera), gate_payload(event, match),
                ttl_s=self.cfg.mqtt.gate_command_ttl_s,
            )
            log.info(
                "gate open %s",
                fields(camera=event.camera, plate=event.text, name=match.entry.name,
                       event_id=event.event_id),
            )

    def _may_open_gate(self, event: PlateEvent) -> bool:
        """Only an event read from authenticated frames alone opens the gate, unless its camera
        is configured to take the risk (``cameras.<name>.allow_gate_unauthenticated``)."""
        if event.authenticated:
            return True
        cam = self.cfg.cameras.get(event.camera)
        return cam is not None and cam.allow_gate_unauthenticated

    def _put(
        self, topic: str, payload: dict[str, Any], retain: bool = False, ttl_s: float = 0.0
    ) -> None:
        data = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        self._put_bytes(topic, data, retain=retain, ttl_s=ttl_s)

    def _put_bytes(
        self, topic: str, data: bytes, retain: bool = False, ttl_s: float = 0.0,
        replace: bool = False,
    ) -> None:
        try:
            self.outbox.put(topic, data, qos=1, retain=retain, ttl_s=ttl_s, replace=replace)
            self.outbox_failing = False
        except sqlite3.Error as exc:
            # A full or broken disk must not stop tracking (nor the stdout/log output).
            self.outbox_errors += 1
            self.outbox_failing = True
            self._bad_disk.warning(
                "outbox", f"outbox write failed {fields(topic=topic, error=exc)}"
            )

    def stats(self) -> dict[str, int]:
        return {
            "events": self.events, "known_matches": self.known_matches,
            "gate_commands": self.gate_commands,
            "gate_refused_unauthenticated": self.gate_refused_unauthenticated,
            "gate_withheld_low_confidence": self.gate_withheld_low_confidence,
            "outbox_errors": self.outbox_errors, "outbox_failing": int(self.outbox_failing),
            "snapshots": self.snapshots,
        }


class StatsReport:
    """The stats report's event-stage part, and its way to MQTT.

    ``build(pipeline)`` is the ``<prefix>/status/stats`` payload (``schemas/stats.json``):
    ``pipeline`` as given, plus the counters of the running event stage, plus ``health``: a
    few figures worked out from them for dashboards and Home Assistant's diagnostic sensors
    (frames per second since the previous report, drops of every reason, queue depth, outbox
    pending, outbox writable, broker connected). Only the stats loop's report (``tick``)
    starts a new period of the frame rate: ``/health`` and ``/metrics`` build the report too,
    as often as they are polled, and read the rate of the period so far without resetting
    it. ``send`` publishes it when a broker is connected. While no event stage runs (before it
    starts, while it restarts) the report holds ``pipeline`` and ``health`` only and ``send``
    does nothing.
    """

    def __init__(self, device: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.device = device
        self._clock = clock
        self._counters: Callable[[], dict[str, Any]] | None = None
        self._send: Callable[[str], bool] | None = None
        self._previous: tuple[float, int] | None = None
        """(clock, frames recognised) at the previous report: the rate's origin."""

    def attach(
        self, counters: Callable[[], dict[str, Any]], send: Callable[[str], bool] | None
    ) -> None:
        self._counters, self._send = counters, send

    def detach(self) -> None:
        self._counters = self._send = None

    def build(self, pipeline: dict[str, Any], *, tick: bool = False) -> dict[str, Any]:
        """The report now; ``tick`` (the stats loop's, once per ``device.stats_interval_s``)
        ends the frame rate's period here. The first report of all starts it."""
        report: dict[str, Any] = {"v": 1, "device": self.device}
        if self._counters is not None:
            report.update(self._counters())
        report["pipeline"] = pipeline
        report["health"] = self._health(pipeline, report, tick)
        return report

    def _health(
        self, pipeline: dict[str, Any], report: dict[str, Any], tick: bool
    ) -> dict[str, Any]:
        now, frames = self._clock(), int(pipeline.get("frames_recognized", 0))
        rate = 0.0
        if self._previous is not None and now > self._previous[0]:
            rate = max(0, frames - self._previous[1]) / (now - self._previous[0])
        if tick or self._previous is None:
            self._previous = (now, frames)
        dropped = sum(int(n) for n in pipeline.get("dropped", {}).values()) + sum(
            int(pipeline.get(key, 0)) for key in ("frames_undecodable", "frames_too_large")
        )
        return {
            "frames_per_s": round(rate, 2),
            "dropped": dropped,
            "queue_depth": int(pipeline.get("queue_depth", 0)),
            "outbox_pending": int(report.get("outbox", {}).get("pending", 0)),
            "outbox_writable": not report.get("tracker", {}).get("outbox_failing", 0),
            "broker_connected": bool(report.get("mqtt", {}).get("connected", False)),
        }

    def send(self, report: dict[str, Any]) -> bool:
        """Publish ``report`` (QoS 0, not stored); False when there is no broker to take it."""
        if self._send is None:
            return False
        return self._send(json.dumps(report, sort_keys=True, default=str))


def report_log_fields(report: dict[str, Any]) -> dict[str, Any]:
    """The event-stage part of the one stats log line."""
    if "tracker" not in report:
        return {}
    return {
        "open_events": report["tracker"]["open_events"],
        "events": report["tracker"]["events"],
        "outbox_pending": report["outbox"]["pending"],
        "outbox_evicted": report["outbox"]["evicted"],
        "outbox_errors": report["tracker"].get("outbox_errors", 0),
        "mqtt_connected": report.get("mqtt", {}).get("connected", False),
    }


async def run_event_stage(
    cfg: Config,
    reads: trio.MemoryReceiveChannel[PlateRead],
    stats: StatsReport | None = None,
    *,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    outbox_path: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall_us: Callable[[], int] = lambda: time.time_ns() // 1000,
    id_source: Callable[[], str] | None = None,
    liveness: Liveness | None = None,
    snapshot: SnapshotMaker | None = None,
    adopt: Sequence[str] = (),
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Track reads into events and publish them (see the module docstring).

    ``adopt``: outbox files of processes that no longer run, taken over into this stage's
    outbox before anything else is written to it (``Outbox.adopt``), so their messages go
    out first, in their order; a file already taken over (a restart of the stage) is gone.
    """

    def beat(stage: str) -> Callable[[], None]:
        if liveness is None:
            return lambda: None
        return lambda: liveness.beat(stage)

    topics = Topics.from_config(cfg)
    path = outbox_path or default_outbox_path(cfg.mqtt.outbox_path)
    outbox = Outbox(path, cfg.mqtt.outbox_max_messages, wall_us=wall_us)
    for orphan in adopt:
        outbox.adopt(orphan)
    try:
        tracker = Tracker(cfg.tracker, id_source=id_source)
        sink = EventSink(cfg, outbox, topics, on_event=on_event, clock=clock)
        publisher = (
            MqttPublisher(cfg, outbox, topics, beat=beat("publish")) if cfg.mqtt.enabled
            else None
        )
        log.info(
            "event stage started %s",
            fields(outbox=path, pending=len(outbox), mqtt=cfg.mqtt.enabled,
                   broker=f"{cfg.mqtt.host}:{cfg.mqtt.port}", prefix=topics.prefix,
                   known_plates=len(sink.known)),
        )

        def emit(events: list[PlateEvent]) -> None:
            for event in events:
                sink.handle(event)
                if publisher is not None and sink.announced.announced(event.camera):
                    publisher.add_camera(event.camera)
            expired = sink.expire(clock())
            if publisher is not None:
                for camera in expired:
                    publisher.remove_camera(camera)
            if (events or expired) and publisher is not None:
                publisher.wake()

        def counters() -> dict[str, Any]:
            out: dict[str, Any] = {
                "tracker": {"open_events": tracker.open_events(),
                            "suppressed_reads": tracker.suppressed_reads, **sink.stats()},
                "outbox": outbox.stats(),
            }
            if publisher is not None:
                out["mqtt"] = publisher.stats()
            return out

        def send_stats(payload: str) -> bool:
            assert publisher is not None
            return publisher.publish_direct(topics.stats, payload, qos=0)

        async with trio.open_nursery() as nursery:
            # Shielded from birth, ended only by this block's ``finally`` (which encloses the
            # spawn) and started with ``start_soon``: ``nursery.start`` leaves a child that
            # calls ``started`` inside an already cancelled caller where it was, and a shielded
            # child there would never end. Flipping ``shield`` after the start instead, from
            # this task while the publisher's task checks for cancellation, trips trio's
            # internal assertions.
            publisher_scope = trio.CancelScope(shield=True)
            publishing = False
            try:
                if publisher is not None:
                    for camera in cfg.cameras:
                        publisher.add_camera(camera)
                    nursery.start_soon(_run_in_scope, publisher.run, publisher_scope)
                    publishing = True
                beat_events = beat("events")
                nursery.start_soon(
                    _ticker, tracker, emit, clock, cfg.tracker.quiet_time_s, beat_events
                )
                if stats is not None:
                    stats.attach(counters, send_stats if publisher is not None else None)
                task_status.started()
                async for read in reads:
                    beat_events()
                    jpeg = read.frame_jpeg
                    events = tracker.push(
                        replace(read, frame_jpeg=b"") if jpeg else read, clock(), wall_us()
                    )
                    emit(events)
                    if snapshot is not None and jpeg:
                        await _snapshot(sink, publisher, snapshot, jpeg, read, events)
                if liveness is not None:  # the input ended: the drain below is not watched
                    liveness.retire("events")
                    liveness.retire("publish")
            finally:
                if stats is not None:
                    stats.detach()
                with trio.CancelScope(shield=True):
                    emit(tracker.close(clock()))
                    if publisher is not None and publishing:
                        with trio.move_on_after(cfg.mqtt.flush_timeout_s):
                            await publisher.wait_flushed()
                        await publisher.say_goodbye()
                    publisher_scope.cancel()
                    nursery.cancel_scope.cancel()
                    log.info("event stage stopped %s", fields(unsent=len(outbox)))
    finally:
        outbox.close()


async def _snapshot(
    sink: EventSink, publisher: MqttPublisher | None, make: SnapshotMaker, jpeg: bytes,
    read: PlateRead, events: list[PlateEvent],
) -> None:
    """The snapshot of ``read`` for the event it started or improved, if the sink wants one
    (made in a thread: decoding and encoding take milliseconds)."""
    for event in events:
        if event.camera != read.camera or not sink.wants_snapshot(event):
            continue
        image = await trio.to_thread.run_sync(make, jpeg, read.box_px)
        if image is not None:
            sink.snapshot(event, image)
            if publisher is not None:
                publisher.wake()
        return


async def _run_in_scope(fn: Callable[[], Awaitable[None]], scope: trio.CancelScope) -> None:
    """Run ``fn`` inside ``scope`` (shielded: only ``scope.cancel()`` stops it)."""
    with scope:
        await fn()


async def _ticker(
    tracker: Tracker,
    emit: Callable[[list[PlateEvent]], None],
    clock: Callable[[], float],
    quiet_time_s: float,
    beat: Callable[[], None],
) -> None:
    """Ends quiet events even when no read arrives (the stage's idle turn: it beats)."""
    interval = min(0.5, quiet_time_s / 4)
    while True:
        beat()
        await trio.sleep(interval)
        emit(tracker.tick(clock()))
