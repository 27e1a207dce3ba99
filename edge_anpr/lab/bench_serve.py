"""``edge-anpr bench serve``: the whole pipeline, measured the way a camera would load it.

For 1 worker and then for N workers, the real pipeline (``app.run_pipeline``: UDP, reassembly,
recognition workers, tracker, outbox, MQTT) runs in this process against a throwaway local
mosquitto (started here when the ``mosquitto`` binary exists; otherwise MQTT is off and the
latency is measured to the outbox write, which the report says). ``edge-anpr send`` runs as a
second process, as a camera would, looping over 1280x720 JPEG frames.

Two phases per worker count:

1. throughput: the sender offers more frames than the workers can take (the frame queue keeps
   the newest and counts drops); frames/s is what the workers finished in a timed window after
   a warm-up. The windows of the worker counts are interleaved, ``ROUNDS`` of each in the order
   1, N, N, 1, 1, N, each with a fresh pipeline, and the scaling ratio pools them (every
   round's own ratio is printed too): measured as one block per count, any drift of the
   machine's speed between the blocks went straight into the ratio;
2. latency: the sender offers about half that rate, so frames do not queue; for every event
   published, the time from the last datagram of the frame that caused it to its arrival at
   an MQTT subscriber on the broker (p50, p99). This phase runs a pipeline whose tracker quiet
   time is cut to 0.1 s, so that each looped frame is a new vehicle and yields a sample; the
   throughput phase keeps the configured tracker (one event per vehicle).

Each throughput window also says where the cores went (``lab.cpu``): the workers' CPU,
the event loop's, the sender's and the machine's idle time, and the workers' CPU per frame.
frames/s is worker cores / CPU per frame, so the scaling ratio is printed as the product of
those two ratios: what the workers could not get of the cores, and what a frame costs more when
several run.

Peak RSS is this process's (``ru_maxrss``): everything but the sender and the broker.

``--stand-in`` runs the same windows with ``lab.standin.GilFreeLoad`` in the workers: the
real recognizer's CPU per frame, spent where it holds no GIL. Its ratio is what the rest of the
pipeline and the machine allow; the real ratio's shortfall from it is the workers' own Python.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trio

from edge_anpr.app import Pipeline, Sinks, run_trio, running_pipeline
from edge_anpr.assets import DEMO_DIR, required_demo_jpegs
from edge_anpr.config import Config
from edge_anpr.lab.cpu import CpuSample, CpuShare
from edge_anpr.lab.progress import show_progress
from edge_anpr.values import PlateRead
from edge_anpr.vision.workers import RecognizerFactory

PROBE_S = 3.0
WARMUP_S = 2.0
WINDOW_S = 8.0
ROUNDS = 3
"""Throughput windows per worker count. On the shared build machine the speed of one worker
alone drifted by a quarter between runs minutes apart; with one 12 s block per count, ten runs
gave ratios from 1.49 to 2.11."""
LATENCY_S = 12.0


@dataclasses.dataclass(frozen=True)
class Window:
    """One timed throughput window of one pipeline."""

    frames: int
    seconds: float
    offered_fps: float
    queue_drops: int
    cpu: CpuShare
    """Cores used over exactly ``seconds``: ``cpu.workers * seconds`` is the workers' CPU
    time on the window's frames."""

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds


def bench_serve(
    cfg: Config, *, frames: int, workers: int | None, stand_in: bool = False
) -> int:
    """Print per-worker-count throughput, latency and the scaling ratio; frames caps the window.

    With ``stand_in`` the workers run ``lab.standin.GilFreeLoad``: the real recognizer's
    CPU per frame without its GIL, so the ratio is the pipeline's own ceiling.
    """
    del frames  # the windows are timed; the frame count is whatever fits in them
    many = workers or os.cpu_count() or 1
    factory: RecognizerFactory | None = None
    recognizer = "FrameRecognizer"
    if stand_in:
        from edge_anpr.lab.standin import calibrate

        calibration = calibrate(cfg, required_demo_jpegs())
        factory = calibration.factory()
        recognizer = (
            f"GIL-free stand-in: {calibration.chunks} OpenCV blurs a frame, "
            f"{calibration.stand_in_ms:.2f} ms of CPU against the real recognizer's "
            f"{calibration.real_ms:.2f} ms (one thread, demo frames)"
        )
        print(f"recognizer: {recognizer}", flush=True)
    counts = [1] if many == 1 else [1, many]
    windows: dict[int, list[Window]] = {n: [] for n in counts}
    results: list[dict[str, Any]] = []
    with _local_broker() as broker, tempfile.TemporaryDirectory(prefix="edge-anpr-bench-") as tmp:
        mqtt = broker is not None

        def config_for(n: int, phase: str) -> Config:
            return _bench_config(cfg, n, broker, Path(tmp) / f"outbox-{n}-{phase}.sqlite")

        for round_no in range(ROUNDS):
            for n in counts if round_no % 2 == 0 else counts[::-1]:
                # A quarter above the best rate seen yet: a probe made in a slow moment must
                # not leave the later windows short of frames.
                offered = max(
                    [w.offered_fps for w in windows[n][:1]]
                    + [1.25 * w.frames_per_s for w in windows[n]],
                    default=None,
                )
                run_trio(
                    _throughput_window, config_for(n, f"r{round_no}"), offered, windows[n],
                    factory,
                )
                window = windows[n][-1]
                print(
                    f"round {round_no + 1}/{ROUNDS} workers={n} "
                    f"frames_per_s={window.frames_per_s:.1f} offered={window.offered_fps:.0f}",
                    flush=True,
                )
        for n in counts:
            measured = windows[n]
            cpu = CpuShare.pooled([(w.cpu, w.seconds) for w in measured])
            result: dict[str, Any] = {
                "workers": n,
                "frames_per_s": sum(w.frames for w in measured) / sum(w.seconds for w in measured),
                "rounds_frames_per_s": [round(w.frames_per_s, 1) for w in measured],
                "queue_drops": sum(w.queue_drops for w in measured),
                "cpu_cores": cpu.as_json(),
                "worker_cpu_ms_per_frame": round(
                    1000 * sum(w.cpu.workers * w.seconds for w in measured)
                    / max(1, sum(w.frames for w in measured)), 2
                ),
            }
            run_trio(_measure_latency, config_for(n, "latency"), mqtt, result, factory)
            results.append(result)
            _print_row(result, mqtt)
            print(
                f"workers={n} {cpu.describe()} "
                f"worker_cpu_ms_per_frame={result['worker_cpu_ms_per_frame']:.2f}",
                flush=True,
            )
    summary: dict[str, Any] = {
        "bench": "serve", "frame": "1280x720 JPEG (bundled demo frames)",
        "mqtt": "local mosquitto" if broker else "off (latency to outbox write)",
        "method": f"{ROUNDS} interleaved {WINDOW_S:g} s throughput windows per worker count",
        "recognizer": recognizer,
        "results": results,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if len(results) == 2 and results[0]["frames_per_s"]:
        summary["scaling"] = round(results[1]["frames_per_s"] / results[0]["frames_per_s"], 2)
        per_round = [
            round(b.frames_per_s / a.frames_per_s, 2)
            for a, b in zip(windows[counts[0]], windows[counts[1]], strict=True)
            if a.frames
        ]
        summary["scaling_rounds"] = per_round
        one, more = results
        # frames/s = cores the workers ran on / CPU per frame, so the ratio is the product of
        # the two ratios below (up to the frames at the windows' edges).
        cores_ratio = more["cpu_cores"]["workers"] / max(one["cpu_cores"]["workers"], 1e-9)
        cost_ratio = one["worker_cpu_ms_per_frame"] / max(more["worker_cpu_ms_per_frame"], 1e-9)
        summary["scaling_parts"] = {
            "worker_cores": round(cores_ratio, 3), "cpu_per_frame": round(cost_ratio, 3),
        }
        print(
            f"scaling {many} workers / 1 worker: {summary['scaling']:.2f}x "
            f"(rounds: {', '.join(f'{r:.2f}x' for r in per_round)}) = worker cores "
            f"{more['cpu_cores']['workers']:.2f}/{one['cpu_cores']['workers']:.2f} "
            f"({cores_ratio:.3f}x) x CPU per frame {one['worker_cpu_ms_per_frame']:.2f}/"
            f"{more['worker_cpu_ms_per_frame']:.2f} ms ({cost_ratio:.3f}x)"
        )
    print(f"peak RSS: {summary['peak_rss_mb']:.0f} MB")
    print(json.dumps(summary))
    return 0


def _bench_config(
    cfg: Config, workers: int, broker: tuple[str, int] | None, outbox: Path
) -> Config:
    return dataclasses.replace(
        cfg,
        ingest=dataclasses.replace(cfg.ingest, bind="127.0.0.1", port=0),
        workers=dataclasses.replace(cfg.workers, count=workers),
        device=dataclasses.replace(cfg.device, stats_interval_s=3600),
        mqtt=dataclasses.replace(
            cfg.mqtt, enabled=broker is not None, host=broker[0] if broker else "",
            port=broker[1] if broker else 1883, outbox_path=str(outbox),
            homeassistant_discovery=False,
        ),
    )


def _print_row(result: dict[str, Any], mqtt: bool) -> None:
    target = "MQTT subscriber" if mqtt else "outbox"
    print(
        f"workers={result['workers']} frames_per_s={result['frames_per_s']:.1f} "
        f"latency_to_{target.split()[0].lower()}_ms p50={result['latency_p50_ms']:.1f} "
        f"p99={result['latency_p99_ms']:.1f} (n={result['latency_samples']}) "
        f"queue_drops={result['queue_drops']}",
        flush=True,
    )


async def _throughput_window(
    cfg: Config, offered_fps: float | None, out: list[Window], factory: RecognizerFactory | None
) -> None:
    """One throughput window on a fresh pipeline, appended to ``out``.

    Without ``offered_fps`` a short probe at a high offered rate first estimates the capacity;
    the window then offers 25% more than that, enough to keep every worker busy without
    spending a core on reassembling frames that would only be dropped. Later windows of the
    same worker count are given their offered rate by the caller.
    """

    async def body(pipeline: Pipeline) -> None:
        offered = offered_fps
        if offered is None:
            probe = await _done(pipeline, offered_fps=120.0, warmup_s=WARMUP_S, window_s=PROBE_S)
            offered = max(2.0, probe.frames_per_s * 1.25)
        out.append(
            await _done(pipeline, offered_fps=offered, warmup_s=WARMUP_S, window_s=WINDOW_S)
        )

    await _with_pipeline(cfg, Sinks(), body, factory)


async def _measure_latency(
    cfg: Config, mqtt: bool, result: dict[str, Any], factory: RecognizerFactory | None
) -> None:
    # Latency with every looped frame a new vehicle, so that every frame yields a sample.
    completed_by_seq: dict[int, float] = {}
    latencies_ms: list[float] = []

    def on_read(read: PlateRead) -> None:
        if read.frame_sequence is not None:
            completed_by_seq[read.frame_sequence] = read.completed_monotonic_s
            if len(completed_by_seq) > 100_000:
                completed_by_seq.pop(next(iter(completed_by_seq)))

    def on_event(payload: dict[str, Any]) -> None:
        if not mqtt:
            _latency(payload, completed_by_seq, latencies_ms)

    async def latency(pipeline: Pipeline) -> None:
        async with trio.open_nursery() as nursery:
            if mqtt:
                nursery.start_soon(
                    _subscribe, cfg, f"edge-anpr/{cfg.device.name}/+/event", completed_by_seq,
                    latencies_ms,
                )
                await trio.sleep(0.5)  # subscribed before the first frame
            nursery.start_soon(
                _offer, pipeline.port, max(1.0, result["frames_per_s"] * 0.5), LATENCY_S
            )
            await _wait_showing_progress(LATENCY_S, "latency at half capacity")
            await trio.sleep(1.0)
            nursery.cancel_scope.cancel()

    every_frame_new = dataclasses.replace(
        cfg, tracker=dataclasses.replace(cfg.tracker, quiet_time_s=0.1, parked_suppress_s=0.0)
    )
    await _with_pipeline(
        every_frame_new, Sinks(on_read=on_read, on_event=on_event), latency, factory
    )
    ordered = sorted(latencies_ms)
    result["latency_samples"] = len(ordered)
    result["latency_p50_ms"] = statistics.median(ordered) if ordered else float("nan")
    result["latency_p99_ms"] = (
        ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else float("nan")
    )


async def _with_pipeline(
    cfg: Config,
    sinks: Sinks,
    body: Callable[[Pipeline], Awaitable[None]],
    factory: RecognizerFactory | None,
) -> None:
    """Run ``body`` against a fresh pipeline, then drain and stop it."""
    async with running_pipeline(cfg, sinks=sinks, recognizer_factory=factory) as (pipeline, _):
        await body(pipeline)
        pipeline.stop()


def _latency(payload: dict[str, Any], completed: dict[int, float], out: list[float]) -> None:
    seq = payload.get("frame_sequence")
    if payload.get("kind") in ("start", "update") and isinstance(seq, int) and seq in completed:
        out.append((time.monotonic() - completed[seq]) * 1000)


async def _done(
    pipeline: Pipeline, *, offered_fps: float, warmup_s: float, window_s: float
) -> Window:
    stats = pipeline.worker_stats
    cores = os.cpu_count() or 1
    async with trio.open_nursery() as nursery:
        sender: trio.Process = await nursery.start(
            _offer, pipeline.port, offered_fps, warmup_s + window_s + 1
        )
        await _wait_showing_progress(warmup_s, f"warm-up at {offered_fps:.0f} frames/s offered")
        first, drops = pipeline.frames_done(), pipeline.queue.dropped
        cpu0 = CpuSample.now(stats.cpu_s, sender.pid)
        await _wait_showing_progress(window_s, "measuring")
        cpu1 = CpuSample.now(stats.cpu_s, sender.pid)
        window = Window(
            pipeline.frames_done() - first, cpu1.wall_s - cpu0.wall_s, offered_fps,
            pipeline.queue.dropped - drops, CpuShare.between(cpu0, cpu1, cores),
        )
        nursery.cancel_scope.cancel()
    await trio.sleep(1.0)  # let the queue drain before the next phase
    return window


async def _wait_showing_progress(seconds: float, what: str) -> None:
    steps = max(1, int(seconds * 4))
    for step in range(steps):
        show_progress(step, steps, what)
        await trio.sleep(seconds / steps)
    show_progress(steps, steps, what, final=True)


async def _offer(
    port: int, fps: float, seconds: float,
    *, task_status: trio.TaskStatus[trio.Process] = trio.TASK_STATUS_IGNORED,
) -> None:
    """``edge-anpr send`` looping the demo frames at ``fps``; started, it gives its process."""
    command = [
        sys.executable, "-m", "edge_anpr", "send", str(DEMO_DIR), "--host", "127.0.0.1",
        "--port", str(port), "--fps", f"{fps:.2f}", "--loop", "--format", "sequenced",
        "--count", str(max(1, int(fps * seconds))),
    ]
    await trio.run_process(command, stdout=subprocess.DEVNULL, task_status=task_status)


async def _subscribe(
    cfg: Config, topic: str, completed: dict[int, float], out: list[float]
) -> None:
    """A thread-free paho subscriber polled from trio; records arrival latency per event."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="edge-anpr-bench-sub")
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
    client.on_message = lambda c, u, m: _latency(json.loads(m.payload), completed, out)
    client.connect(cfg.mqtt.host, cfg.mqtt.port, keepalive=30)
    try:
        while True:
            client.loop(timeout=0)
            sock = client.socket()
            with trio.move_on_after(0.05):
                if sock is not None:
                    await trio.lowlevel.wait_readable(sock)
    finally:
        client.disconnect()


@contextmanager
def _local_broker() -> Iterator[tuple[str, int] | None]:
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if binary is None:
        print("mosquitto not found: MQTT off, latency measured to the outbox write")
        yield None
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    with tempfile.TemporaryDirectory(prefix="edge-anpr-bench-broker-") as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            yield ("127.0.0.1", port)
        finally:
            proc.terminate()
            proc.wait(timeout=5)
