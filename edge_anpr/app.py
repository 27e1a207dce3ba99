"""Wiring of the stages into the appliance: one trio nursery, cancellation as the shutdown path.

Data flow: UDP task (``ingest.udp``) -> ``FrameQueue`` (bounded per camera, the newest frames
win) -> recognition workers (``vision.workers``, one per core) -> channel of ``PlateRead`` ->
event stage (``publish.stage``: tracker, known plates, SQLite outbox, MQTT).

Shutdown is ordered so nothing in hand is lost. SIGTERM/SIGINT (or ``Pipeline.stop``) cancels
only the UDP task and closes the frame queue; workers finish the frames already received and
close the reads channel; the event stage sees the end of its input, ends the open events,
writes them to the outbox and flushes it to the broker under its own shielded deadline. A drain
longer than ``device.shutdown_timeout_s`` is cut short by cancelling everything; what is not
published by then stays in the outbox for the next start.

A stage that crashes is logged with its traceback and restarted with backoff
(``system.supervise``) while the others keep running.

Liveness (``Pipeline.liveness``, which ``serve`` feeds to the systemd watchdog): the stages
``ingest`` (the UDP drain loop), ``worker-0``..``worker-N-1`` (each recognition worker),
``events`` (the event stage) and, with MQTT enabled, ``publish`` (the broker connection) each
beat from their own loop, idle turns included, and the pipeline is healthy while none has been
silent for ``STALL_AFTER_S``. What each beat means is in ``ingest/udp.py``,
``vision/workers.py``, ``publish/stage.py`` and ``publish/mqtt.py``. A stage that ends on
purpose (the shutdown drain) is retired and no longer watched.

HTTP API (``http.server``, with ``http.port`` set): started once the workers are ready; posted
images go to the workers through the frame queue's request lane and the ``JobBoard``; ``stop``
stops it accepting, and the requests in progress are answered before the stages end.

Stats: one loop (``_report_stats``), every ``device.stats_interval_s``, takes the pipeline's
counters and the event stage's (``publish.stage.StatsReport``) and reports them once: one log
line, the ``on_stats`` sink, and ``<prefix>/status/stats`` over MQTT.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

import trio

from edge_anpr.config import Config
from edge_anpr.errors import EdgeAnprError
from edge_anpr.http.server import Backend, HttpServer
from edge_anpr.ingest.queue import FrameQueue
from edge_anpr.ingest.reassembly import Reassembler
from edge_anpr.ingest.replay_state import (
    ReplayJournal,
    keep_replay_state,
    load_replay_states,
    replay_state_path,
)
from edge_anpr.ingest.udp import run_udp_ingest
from edge_anpr.logs import fields
from edge_anpr.publish.outbox import default_outbox_path
from edge_anpr.publish.stage import (
    SnapshotMaker,
    StatsReport,
    report_log_fields,
    run_event_stage,
)
from edge_anpr.system.notify import Liveness, SystemdNotifier
from edge_anpr.system.processes import ProcessSlot, orphan_outboxes, outbox_path_for
from edge_anpr.system.supervise import supervise
from edge_anpr.values import PlateRead
from edge_anpr.vision.jobs import JobBoard
from edge_anpr.vision.workers import (
    RecognizerFactory,
    WorkerStats,
    gil_switch_interval,
    run_workers,
    worker_count,
    worker_stage,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

if sys.version_info < (3, 11):  # pragma: no cover - trio depends on the backport there
    from exceptiongroup import BaseExceptionGroup

log = logging.getLogger(__name__)

READS_BUFFER = 256
"""Reads waiting for the event stage; workers wait (they never drop a read) when it is full."""
STALL_AFTER_S = 30.0
"""A stage silent for this long is stuck (``Pipeline.liveness``, the systemd watchdog)."""


@dataclass
class Sinks:
    """Where the pipeline reports besides MQTT (``serve --stdout`` and the demo use these)."""

    on_read: Callable[[PlateRead], None] | None = None
    on_event: Callable[[dict[str, Any]], None] | None = None
    on_stats: Callable[[dict[str, Any]], None] | None = None


@dataclass
class Pipeline:
    """Handle on a running pipeline: its port, its counters and the graceful stop."""

    port: int
    workers: int
    reassembler: Reassembler
    queue: FrameQueue
    worker_stats: WorkerStats
    _ingest_scope: trio.CancelScope
    _stages_scope: trio.CancelScope
    _shutdown_timeout_s: float
    liveness: Liveness
    report: StatsReport | None = None
    jobs: JobBoard | None = None
    http: HttpServer | None = None
    http_port: int | None = None
    """The HTTP API's TCP port; None when ``http.port`` is 0 (off)."""
    started_monotonic_s: float = dataclasses.field(default_factory=time.monotonic)

    @property
    def stopping(self) -> bool:
        return self._ingest_scope.cancel_called

    def stop(self) -> None:
        """Stop taking frames, finish those in hand, flush; give up after the timeout."""
        if self.stopping:
            return
        log.info("%s", fields(event="draining", frames_waiting=len(self.queue)))
        self.liveness.retire("ingest")
        if self.http is not None:
            self.http.stop()
        self._ingest_scope.cancel()
        self.queue.close()
        self._stages_scope.deadline = trio.current_time() + self._shutdown_timeout_s

    def frames_done(self) -> int:
        w = self.worker_stats
        return w.frames_recognized + w.frames_undecodable + w.frames_too_large + w.frames_failed

    def snapshot(self) -> dict[str, Any]:
        return {
            "uptime_s": round(time.monotonic() - self.started_monotonic_s, 1),
            "workers": self.workers,
            **self.reassembler.stats.snapshot(),
            "senders_tracked": self.reassembler.tracked_senders(),
            "frames_in_flight": self.reassembler.tracked_frames(),
            "bytes_buffered": self.reassembler.tracked_bytes(),
            "queue_depth": len(self.queue),
            **self.worker_stats.snapshot(),
        }


async def run_pipeline(
    cfg: Config,
    *,
    sinks: Sinks | None = None,
    recognizer_factory: RecognizerFactory | None = None,
    outbox_path: str | None = None,
    stall_after_s: float = STALL_AFTER_S,
    task_status: trio.TaskStatus[Pipeline] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run every stage until stopped and drained; ``task_status`` gets the ``Pipeline``."""
    sinks = sinks or Sinks()
    n_workers = worker_count(cfg)
    stage_names = ["ingest", *(worker_stage(i) for i in range(n_workers)), "events"]
    if cfg.mqtt.enabled:
        stage_names.append("publish")
    liveness = Liveness(stage_names, stall_after_s)
    slot = ProcessSlot.from_environ()
    adopt: list[str] = []
    if outbox_path is None:
        # The configured outbox: this process's own file, and those of processes gone since a
        # run with more of them (an explicit ``outbox_path`` is the caller's, taken as it is).
        configured = default_outbox_path(cfg.mqtt.outbox_path)
        adopt = orphan_outboxes(configured, slot)
        if slot is not None:
            outbox_path = outbox_path_for(configured, slot.index)
    # Replay protection's state lives beside the outbox, loaded before the first datagram,
    # written before each frame it accepts is handed on (ReplayJournal) and made durable while
    # it changes and once more after the last datagram (keep_replay_state).
    replay_path = replay_state_path(
        outbox_path or default_outbox_path(cfg.mqtt.outbox_path), slot.index if slot else 0
    )
    replay_last_us = (
        load_replay_states(replay_path, time.time_ns() // 1000)
        if cfg.ingest.replay_window_s > 0 else None
    )
    reassembler = Reassembler(cfg.ingest, cfg.cameras, replay_last_us=replay_last_us)
    journal = (
        ReplayJournal(reassembler.replay, replay_path) if reassembler.replay is not None else None
    )
    queue = FrameQueue(
        cfg.ingest.queue_frames_per_camera, reassembler.stats,
        total_frames=cfg.ingest.queue_frames_total, trusted_cameras=cfg.cameras,
    )
    worker_stats = WorkerStats()
    reads_tx, reads_rx = trio.open_memory_channel[PlateRead](READS_BUFFER)
    ingest_scope = trio.CancelScope()
    pipeline: Pipeline | None = None
    report = StatsReport(cfg.device.name)
    jobs = JobBoard(cfg.http.max_pending)

    with gil_switch_interval(cfg.workers.gil_switch_interval_ms / 1000):
        async with trio.open_nursery() as outer:
            if journal is not None:
                # in the outer nursery: its last save comes after the ingest stage has stopped
                outer.start_soon(keep_replay_state, journal)
            async with trio.open_nursery() as stages:
                port: int = await stages.start(
                    _ingest, cfg, queue, reassembler, ingest_scope,
                    functools.partial(liveness.beat, "ingest"),
                    journal.write if journal is not None else _nothing,
                )
                workers: int = await stages.start(
                    functools.partial(
                        run_workers, cfg, queue, reads_tx, worker_stats,
                        factory=recognizer_factory, count=n_workers, on_read=sinks.on_read,
                        liveness=liveness, jobs=jobs,
                    )
                )
                stages.start_soon(
                    supervise, "events",
                    functools.partial(
                        run_event_stage, cfg, reads_rx, report, on_event=sinks.on_event,
                        outbox_path=outbox_path, liveness=liveness, snapshot=_snapshot_maker(cfg),
                        adopt=adopt,
                    ),
                )
                liveness.start_all()
                pipeline = Pipeline(
                    port, workers, reassembler, queue, worker_stats, ingest_scope,
                    stages.cancel_scope, cfg.device.shutdown_timeout_s, liveness, report, jobs,
                )
                if cfg.http.port:
                    pipeline.http = _http_server(cfg, pipeline)
                    pipeline.http_port = await stages.start(pipeline.http.run)
                outer.start_soon(
                    _report_stats, cfg.device.stats_interval_s, pipeline, report, sinks
                )
                task_status.started(pipeline)
            outer.cancel_scope.cancel()
    log.info("%s", fields(event="stopped", **_flat(pipeline.snapshot())))


def _snapshot_maker(cfg: Config) -> SnapshotMaker | None:
    """``vision.snapshot.make_snapshot`` bound to the config's limits; None when off."""
    if not cfg.mqtt.enabled or cfg.mqtt.snapshot_max_width_px == 0:
        return None
    from edge_anpr.vision.snapshot import make_snapshot

    return functools.partial(
        make_snapshot, max_width_px=cfg.mqtt.snapshot_max_width_px,
        max_pixels=cfg.ingest.max_frame_pixels,
    )


class PipelineOptions(TypedDict, total=False):
    """``run_pipeline``'s keyword options, as ``running_pipeline`` passes them on."""

    sinks: Sinks | None
    recognizer_factory: RecognizerFactory | None
    outbox_path: str | None
    stall_after_s: float


@asynccontextmanager
async def running_pipeline(
    cfg: Config, **options: Unpack[PipelineOptions]
) -> AsyncIterator[tuple[Pipeline, trio.Nursery]]:
    """A started pipeline (``run_pipeline`` with ``options``) and a nursery for helper tasks
    (signals, watchdog, a sender).

    Leaving the block waits until the pipeline has stopped and drained (someone must call
    ``Pipeline.stop``); when it has, the helpers are cancelled: they have nothing left to do.
    """
    async with trio.open_nursery() as helpers:

        async def run_then_cancel_helpers(
            task_status: trio.TaskStatus[Pipeline] = trio.TASK_STATUS_IGNORED,
        ) -> None:
            await run_pipeline(cfg, task_status=task_status, **options)
            helpers.cancel_scope.cancel()

        pipeline: Pipeline = await helpers.start(run_then_cancel_helpers)
        yield pipeline, helpers


def _http_server(cfg: Config, pipeline: Pipeline) -> HttpServer:
    assert pipeline.report is not None and pipeline.jobs is not None
    report = pipeline.report
    return HttpServer(cfg, Backend(
        queue=pipeline.queue, jobs=pipeline.jobs,
        report=lambda: report.build(pipeline.snapshot()), liveness=pipeline.liveness,
        recognition=pipeline.worker_stats.recognition_s,
        stopping=lambda: pipeline.stopping,
    ))


def _nothing() -> None:
    """Nothing to persist (replay protection off)."""


async def _ingest(
    cfg: Config,
    queue: FrameQueue,
    reassembler: Reassembler,
    scope: trio.CancelScope,
    beat: Callable[[], None],
    persist: Callable[[], None],
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The UDP task under ``scope``: a failure to bind is fatal, a later crash restarts it."""
    port: int | None = None
    with scope:
        try:
            async with trio.open_nursery() as nursery:
                port = await nursery.start(functools.partial(
                    run_udp_ingest, cfg, queue, reassembler, beat=beat, persist=persist,
                ))
                task_status.started(port)
        except Exception:
            if port is None:  # never bound (port in use...): the caller must hear of it
                raise
            log.exception("%s", fields(event="stage_crashed", stage="ingest"))
        assert port is not None
        same_port = dataclasses.replace(cfg, ingest=dataclasses.replace(cfg.ingest, port=port))
        await supervise("ingest", functools.partial(
            run_udp_ingest, same_port, queue, reassembler, beat=beat, persist=persist,
        ))


async def _report_stats(
    interval_s: float, pipeline: Pipeline, report: StatsReport, sinks: Sinks
) -> None:
    """The one stats loop: log line, ``on_stats`` (the pipeline's counters) and MQTT."""
    while True:
        await trio.sleep(interval_s)
        snap = pipeline.snapshot()
        if sinks.on_stats is not None:
            sinks.on_stats(snap)
        full = report.build(snap, tick=True)
        log.info("%s", fields(event="stats", **_flat(snap), **report_log_fields(full)))
        report.send(full)


def _flat(snap: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in snap.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


# --- `edge-anpr serve` -------------------------------------------------------------------------


def run_trio(fn: Callable[..., Any], *args: Any) -> None:
    try:
        trio.run(fn, *args)
    except BaseExceptionGroup as group:
        # Surface one user-facing error (e.g. the port is in use) as itself, not a group.
        leaves = _leaves(group)
        if len(leaves) == 1 and isinstance(leaves[0], EdgeAnprError):
            raise leaves[0] from None
        raise


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


async def stop_on_signals(
    pipeline: Pipeline, notifier: SystemdNotifier, everything: trio.CancelScope,
    signals: AsyncIterator[int], early: Sequence[int] = (),
) -> None:
    """First SIGTERM/SIGINT drains gracefully; a second one cancels at once.

    ``signals`` is a receiver opened before the pipeline started, and ``early`` what
    ``held_stop_signals`` caught before that: a stop during startup takes effect as soon as
    the pipeline is up, like any other.
    """

    def heed(signum: int) -> bool:
        """Act on one signal; True once everything has been cancelled."""
        name = signal.Signals(signum).name
        if pipeline.stopping:
            log.warning("%s", fields(event="shutdown_forced", signal=name))
            everything.cancel()
            return True
        log.info("%s", fields(event="shutdown", signal=name))
        notifier.stopping()
        pipeline.stop()
        return False

    for signum in early:
        if heed(signum):
            return
    async for signum in signals:
        if heed(signum):
            return
