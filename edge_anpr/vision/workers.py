"""The recognition worker pool: frames in, plate reads out, one worker per core.

Each worker is a trio task owning one ``FrameRecognizer`` (its own HoG detector and its own
TFLite interpreters), built inside a worker thread so model loading never blocks the event
loop. Blocking work goes through ``trio.to_thread.run_sync`` with a ``CapacityLimiter`` sized
to the worker count; a recognizer is only ever used by one thread at a time (its worker awaits
each call), which is what the interpreters require. OpenCV's own thread pool is set to one
thread so N workers use N cores rather than N x cores threads fighting for them.

Shutdown: workers run until the frame queue is closed and drained (the frames in hand are
finished), then the last one out closes the reads channel so the event stage can end.

Posted images (the HTTP API) come through the same queue with ``Frame.request`` set: they are
counted and timed like camera frames, and their result goes to the ``JobBoard`` their poster
waits on (``vision.jobs``), never to the event stage.

Liveness: worker ``i`` is the stage ``worker-i`` of ``system.notify.Liveness``. It beats when
its thread finishes a frame, and every ``IDLE_BEAT_S`` while its thread holds no frame (no
camera sending is not a hang); a thread stuck on a frame stops its beats. A worker that ends
(the shutdown drain) retires its stage.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import trio

from edge_anpr.config import Config
from edge_anpr.errors import ImageTooLarge
from edge_anpr.ingest.queue import FrameQueue
from edge_anpr.logs import RateLimitedLog, fields
from edge_anpr.system.notify import Liveness
from edge_anpr.values import Frame, PlateRead
from edge_anpr.vision.jobs import JobBoard, JobResult

if TYPE_CHECKING:
    from edge_anpr.vision.recognize import MotionGate
else:
    MotionGate = object

log = logging.getLogger(__name__)

IDLE_BEAT_S = 1.0
"""How often an idle worker (its thread holds no frame) beats."""
MAX_GATED_CAMERAS = 1024
"""Bound on per-camera motion state (a camera name comes from the network)."""


class Recognizer(Protocol):
    """What a worker needs of ``edge_anpr.vision.recognize.FrameRecognizer``: reads, None for
    bytes that are not an image, ``ImageTooLarge`` for one refused before decoding."""

    def recognize_jpeg(
        self, data: bytes, *, camera: str | None = None, gate: MotionGate | None = None,
        regions: Sequence[str] = (),
    ) -> Sequence[PlateRead] | None: ...


RecognizerFactory = Callable[[], Recognizer]


class MotionGates:
    """One motion gate per camera, each lent to one worker thread at a time.

    Any worker may take any camera's next frame, and a gate holds the previous frame of its
    camera, so two threads must not use one gate at once. A busy gate is not waited for: that
    frame is simply recognised without gating (the safe side: never skip a frame that might
    hold a plate), which keeps workers of one busy camera running in parallel.
    """

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._gates: dict[str, MotionGate] = {}
        self._lent: set[str] = set()

    def lend(self, camera: str) -> MotionGate | None:
        if not self._enabled or camera in self._lent:
            return None
        gate = self._gates.get(camera)
        if gate is None:
            if len(self._gates) >= MAX_GATED_CAMERAS:
                return None
            gate = self._gates[camera] = MotionGate()
        self._lent.add(camera)
        return gate

    def give_back(self, camera: str) -> None:
        self._lent.discard(camera)


LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0,
)
"""Upper bounds of the recognition-time histogram (seconds; one more bucket is unbounded)."""


@dataclass
class LatencyHistogram:
    """Counts of observed durations per bucket (``bounds``, then one unbounded), their sum and
    count: what a Prometheus histogram exports, kept without the library."""

    bounds: tuple[float, ...] = LATENCY_BUCKETS_S
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))
    sum_s: float = 0.0
    count: int = 0

    def observe(self, seconds: float) -> None:
        index = next((i for i, b in enumerate(self.bounds) if seconds <= b), len(self.bounds))
        self.counts[index] += 1
        self.sum_s += seconds
        self.count += 1


@dataclass
class WorkerStats:
    frames_recognized: int = 0
    frames_undecodable: int = 0
    frames_too_large: int = 0
    """Refused undecoded: the header announced more than ``ingest.max_frame_pixels``."""
    frames_failed: int = 0
    reads: int = 0
    reads_below_confidence: int = 0
    busy_s: float = 0.0
    cpu_s: float = 0.0
    """CPU time of the worker threads on frames (``time.thread_time``); against ``busy_s``,
    the wall time, it shows how long they waited (for the GIL, or for a core)."""
    stage_ms: Counter[str] = field(default_factory=Counter)
    recognition_s: LatencyHistogram = field(default_factory=LatencyHistogram)
    """Wall time of each frame in its worker thread (decode, detect, read)."""

    def snapshot(self) -> dict[str, object]:
        return {
            "frames_recognized": self.frames_recognized,
            "frames_undecodable": self.frames_undecodable,
            "frames_too_large": self.frames_too_large,
            "frames_failed": self.frames_failed,
            "reads": self.reads,
            "reads_below_confidence": self.reads_below_confidence,
        }


@contextlib.contextmanager
def gil_switch_interval(seconds: float) -> Iterator[None]:
    """Python's switch interval for the workers' life, restored after.

    The event loop holds the GIL for a few hundred microseconds at a time (a frame's datagrams,
    the tracker), and a worker coming back from OpenCV or TFLite waits until it lets go; with
    Python's 5 ms interval that wait runs to the end of the burst. At 0.1 ms the GIL is handed
    to the waiting thread sooner. Measured on the 2-core build machine, one pipeline switched
    between the two every 5 s: +2.1% frames/s with 2 workers, +2.4% with 1 (README).
    """
    previous = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def worker_count(cfg: Config) -> int:
    """``workers.count``, else one per core (``serve`` with several processes sets the count
    for each, ``system.processes.workers_per_process``)."""
    return cfg.workers.count or os.cpu_count() or 1


def worker_stage(index: int) -> str:
    """The liveness stage name of worker ``index``."""
    return f"worker-{index}"


def default_recognizer_factory(cfg: Config) -> RecognizerFactory:
    def build() -> Recognizer:
        import cv2

        from edge_anpr.vision.recognize import FrameRecognizer

        cv2.setNumThreads(1)
        return FrameRecognizer(cfg)

    return build


SNAPSHOT_READS_AHEAD = 16
"""Reads waiting for the event stage that may carry their frame's JPEG (for a snapshot). Past
this the event stage is behind and reads go without: at most this many frames are kept alive
by reads, whatever their size."""


def reads_from(
    frame: Frame, found: Sequence[PlateRead], min_confidence: float, stats: WorkerStats,
    *, with_jpeg: bool = False,
) -> list[PlateRead]:
    reads = []
    for plate in found:
        if plate.text.confidence < min_confidence:
            stats.reads_below_confidence += 1
            continue
        reads.append(plate.in_frame(frame, with_jpeg=with_jpeg))
    stats.reads += len(reads)
    return reads


async def run_workers(
    cfg: Config,
    frames: FrameQueue,
    reads: trio.MemorySendChannel[PlateRead],
    stats: WorkerStats,
    *,
    factory: RecognizerFactory | None = None,
    count: int | None = None,
    on_read: Callable[[PlateRead], None] | None = None,
    liveness: Liveness | None = None,
    jobs: JobBoard | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Start ``count`` workers; report readiness once every recognizer has loaded its models.

    ``on_read`` sees every read of a camera frame as it is made (``serve --stdout``, the
    demo), before tracking. ``liveness``, when given, watches ``worker_stage(i)`` for each
    worker (module docstring). ``jobs`` takes the results of posted images (``Frame.request``).
    """
    n = count or worker_count(cfg)
    build = factory or default_recognizer_factory(cfg)
    limiter = trio.CapacityLimiter(n)
    gates = MotionGates(cfg.detector.motion_gating)
    recognizers = [await trio.to_thread.run_sync(build, limiter=limiter) for _ in range(n)]
    log.info("%s", fields(event="workers_ready", workers=n))
    async with reads, trio.open_nursery() as nursery:
        task_status.started(n)
        for index, recognizer in enumerate(recognizers):
            nursery.start_soon(
                _work, index, cfg, recognizer, frames, reads.clone(), limiter, gates, stats,
                on_read, liveness, jobs,
            )


def _answer(
    request: int, done: _Done, cfg: Config, stats: WorkerStats, jobs: JobBoard | None
) -> None:
    """Count a posted image's result like a camera frame's and hand it to its poster (the
    poster answers and logs bad uploads; only a failure, our bug, is logged here)."""
    busy_ms = done.busy_s * 1000
    if done.failed is not None:
        stats.frames_failed += 1
        log.error("recognition failed %s", fields(request=request), exc_info=done.failed)
        result = JobResult("failed", recognition_ms=busy_ms)
    elif done.too_large is not None:
        stats.frames_too_large += 1
        result = JobResult("too_large", recognition_ms=busy_ms)
    elif done.found is None:
        stats.frames_undecodable += 1
        result = JobResult("undecodable", recognition_ms=busy_ms)
    else:
        stats.frames_recognized += 1
        found = reads_from(done.job.frame, done.found, cfg.reader.min_confidence, stats)
        result = JobResult("read", tuple(found), busy_ms)
    if jobs is not None:
        jobs.finish(request, result)


HANDED_AHEAD = 1
"""Frames a worker thread holds besides the one it is recognising, so that it goes straight on
to the next frame instead of waiting for the event loop (which, sharing the GIL with the other
workers, took milliseconds per frame to hand over the next one: 13% of a worker's time)."""


@dataclass(frozen=True, slots=True)
class _Job:
    frame: Frame
    gate: MotionGate | None


@dataclass(frozen=True, slots=True)
class _Done:
    job: _Job
    found: Sequence[PlateRead] | None
    failed: BaseException | None
    too_large: ImageTooLarge | None
    busy_s: float
    cpu_s: float


async def _work(
    index: int,
    cfg: Config,
    recognizer: Recognizer,
    frames: FrameQueue,
    reads: trio.MemorySendChannel[PlateRead],
    limiter: trio.CapacityLimiter,
    gates: MotionGates,
    stats: WorkerStats,
    on_read: Callable[[PlateRead], None] | None,
    liveness: Liveness | None = None,
    jobs: JobBoard | None = None,
) -> None:
    """One worker: a thread (``trio.to_thread``) that recognises the frames this task hands it.

    The thread runs for the worker's life and takes frames from its own inbox, which a feeder
    task keeps ``HANDED_AHEAD`` frames ahead; results come back through a channel the thread
    writes to with ``run_sync_soon`` (which never blocks the thread). Motion gates are lent and
    given back here, on the event loop, so their bookkeeping never crosses threads. Shutdown:
    when the frame queue ends, or this task is cancelled, the feeder posts a stop marker; the
    thread finishes the frames it holds and returns, and every result is handled before this
    returns.
    """
    token = trio.lowlevel.current_trio_token()
    stage = worker_stage(index)
    in_thread = 0
    """Jobs handed to the thread and not yet delivered back (only touched on the event loop)."""

    def beat() -> None:
        if liveness is not None:
            liveness.beat(stage)

    inbox: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
    slots = trio.Semaphore(1 + HANDED_AHEAD)
    done_tx, done_rx = trio.open_memory_channel[_Done](math.inf)

    def recognise_frames() -> None:
        while (job := inbox.get()) is not None:
            started, cpu_started = time.perf_counter(), time.thread_time()
            try:
                found = recognizer.recognize_jpeg(
                    job.frame.jpeg, camera=job.frame.camera, gate=job.gate,
                    regions=job.frame.regions,
                )
                failed = too_large = None
            except ImageTooLarge as exc:
                found, failed, too_large = None, None, exc
            except Exception as exc:
                # A bug on one strange frame must not kill the worker: report it, go on.
                found, failed, too_large = None, exc, None
            token.run_sync_soon(deliver, _Done(
                job, found, failed, too_large, time.perf_counter() - started,
                time.thread_time() - cpu_started,
            ))

    def deliver(done: _Done) -> None:
        # Runs on the event loop. The channel is unbounded, so this never blocks; it can only
        # be closed when the task is being torn down, and then the result has nowhere to go.
        nonlocal in_thread
        in_thread -= 1
        beat()
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            done_tx.send_nowait(done)

    async def feed() -> None:
        nonlocal in_thread
        try:
            while True:
                await slots.acquire()
                try:
                    frame = await frames.get()
                except trio.EndOfChannel:
                    return
                in_thread += 1
                gate = gates.lend(frame.camera) if frame.request is None else None
                inbox.put(_Job(frame, gate))
        finally:
            inbox.put(None)  # also on cancellation: the thread must not wait for ever

    async def run_thread() -> None:
        async with done_tx:
            await trio.to_thread.run_sync(recognise_frames, limiter=limiter)

    async def beat_while_idle() -> None:
        while True:
            if in_thread == 0:
                beat()
            await trio.sleep(IDLE_BEAT_S)

    bad_input = RateLimitedLog(log, interval_s=30.0)
    snapshots = cfg.mqtt.enabled and cfg.mqtt.snapshot_max_width_px > 0
    async with reads, trio.open_nursery() as nursery:
        nursery.start_soon(feed)
        nursery.start_soon(run_thread)
        nursery.start_soon(beat_while_idle)
        async for done in done_rx:
            slots.release()
            frame = done.job.frame
            if done.job.gate is not None:
                gates.give_back(frame.camera)
            stats.busy_s += done.busy_s
            stats.cpu_s += done.cpu_s
            stats.recognition_s.observe(done.busy_s)
            if frame.request is not None:
                _answer(frame.request, done, cfg, stats, jobs)
                continue
            if done.failed is not None:
                stats.frames_failed += 1
                log.error(
                    "recognition failed %s", fields(worker=index, camera=frame.camera),
                    exc_info=done.failed,
                )
                continue
            if done.too_large is not None:
                stats.frames_too_large += 1
                big = done.too_large
                bad_input.warning(
                    "too_many_pixels",
                    "frame dropped "
                    + fields(
                        reason="too_many_pixels", camera=frame.camera,
                        sender=f"{frame.sender[0]}:{frame.sender[1]}",
                        pixels=f"{big.width}x{big.height}", max_pixels=big.max_pixels,
                    ),
                )
                continue
            if done.found is None:
                stats.frames_undecodable += 1
                bad_input.warning(
                    "undecodable",  # never a camera name: those come from the network
                    "frame dropped "
                    + fields(
                        reason="undecodable", camera=frame.camera,
                        sender=f"{frame.sender[0]}:{frame.sender[1]}", bytes=len(frame.jpeg),
                    ),
                )
                continue
            stats.frames_recognized += 1
            waiting = reads.statistics().current_buffer_used
            for read in reads_from(frame, done.found, cfg.reader.min_confidence, stats,
                                   with_jpeg=snapshots and waiting < SNAPSHOT_READS_AHEAD):
                if on_read is not None:
                    on_read(read)
                await reads.send(read)
        # The thread has returned (the results channel ended) and the feeder with it: only the
        # idle beats are left to stop.
        nursery.cancel_scope.cancel()
    if liveness is not None:
        liveness.retire(stage)
