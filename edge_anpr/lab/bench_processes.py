"""``edge-anpr bench serve --processes P[,P...]``: the appliance as processes, as deployed.

For each process count, ``edge-anpr serve`` runs as a subprocess (the supervisor and its ``P``
children, ``commands/processes.py``) against a throwaway local mosquitto, fed by ``--cameras``
``edge-anpr send`` processes (sequenced format, camera ids ``0..C-1``: camera ``k`` is served by
process ``k % P``), each looping the bundled 1280x720 JPEG demo frames.

- Throughput: ``ROUNDS`` interleaved windows per process count (1, P, P, 1, 1, ...), each on a
  fresh service: the senders offer a quarter more than the best rate seen for that count (the
  first window of each count probes at a high rate first), a warm-up, then a timed window.
  frames/s is read from the children's own counters: their ``--stdout`` stats lines (every
  0.5 s, each says which process wrote it): per process, frames finished between its first
  stats line in the window and its last, over the time between them (its ``uptime_s``).
  The result per count is the median of its windows, with every window's rate printed;
  ``scaling`` is the best multi-process median over the one-process median, and
  ``scaling_rounds`` the same ratio round by round (the spread).
- CPU: over each timed window, the CPU time of the service (the supervisor and its children,
  ``/proc/PID/stat``) and of the whole machine (``/proc/stat``), as cores in use. The service's
  frames per CPU-second say whether processes cost more per frame than one; the machine's
  busy cores less the service's are the harness (senders, mosquitto, this process), which on
  a machine of few cores takes from what the service can use: with ``cores`` cores, a harness
  of ``h`` cores and one process using ``c1`` cores, P processes can reach at most
  ``(cores - h) / c1`` times one (``ceiling``).
- Total RSS: the supervisor's and every child's ``VmRSS`` (``/proc``) at the end of each
  window; the largest is reported.
- Latency, once per count after the rounds: the tracker's quiet time cut to 0.1 s so that each
  looped frame is a new vehicle, the senders at half the measured capacity; for every event
  that reaches an MQTT subscriber, the time since the frame's last datagram was reassembled.
  That instant is the child's ``read`` line's arrival here less the ``latency_ms`` it carries
  (a pipe's delay, well under a millisecond, is not counted).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_anpr.assets import DEMO_DIR
from edge_anpr.lab.bench_serve import _local_broker
from edge_anpr.lab.cpu import machine_ticks, process_cpu_s

ROUNDS = 5
WARMUP_S = 3.0
WINDOW_S = 8.0
PROBE_S = 3.0
LATENCY_S = 12.0
STATS_INTERVAL_S = 0.5


@dataclass
class _Lines:
    """What the service wrote on stdout, gathered by a reader thread."""

    stats: list[tuple[float, int, int, float]] = field(default_factory=list)
    """(arrival, process, frames finished, uptime_s) of every stats line."""
    completed: dict[tuple[str, int], float] = field(default_factory=dict)
    """(camera, frame sequence) -> when that frame was complete (monotonic)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, line: bytes) -> None:
        now = time.monotonic()
        try:
            obj = json.loads(line)
        except ValueError:
            return
        with self.lock:
            if obj.get("type") == "stats":
                done = sum(int(obj.get(k, 0)) for k in (
                    "frames_recognized", "frames_undecodable", "frames_too_large",
                    "frames_failed",
                ))
                self.stats.append((now, int(obj.get("process", 0)), done, float(obj["uptime_s"])))
            elif obj.get("type") == "read" and obj.get("frame_sequence") is not None:
                key = (str(obj["camera"]), int(obj["frame_sequence"]))
                self.completed[key] = now - float(obj["latency_ms"]) / 1000

    def frames_per_s(self, start: float, end: float) -> float:
        with self.lock:
            rows = [r for r in self.stats if start <= r[0] <= end]
        total = 0.0
        for process in {r[1] for r in rows}:
            mine = [r for r in rows if r[1] == process]
            if len(mine) >= 2 and mine[-1][3] > mine[0][3]:
                total += (mine[-1][2] - mine[0][2]) / (mine[-1][3] - mine[0][3])
        return total


def bench_serve_processes(
    *, cameras: int, processes: Sequence[int], workers: int | None, rounds: int = ROUNDS
) -> int:
    counts = sorted(set(processes))
    cores = os.cpu_count() or 1
    per_count: dict[int, list[float]] = {p: [] for p in counts}
    rss: dict[int, float] = {p: 0.0 for p in counts}
    cpu: dict[int, list[tuple[float, float]]] = {p: [] for p in counts}
    """(service cores, machine busy cores) of every window."""
    worker_counts = {p: workers or max(1, cores // p) for p in counts}
    load_at_start = round(os.getloadavg()[0], 2)
    print(f"bench serve: {cameras} camera(s), processes {counts}, workers per process "
          f"{worker_counts}, {rounds} interleaved rounds, load average {load_at_start:.2f}",
          flush=True)
    results: list[dict[str, Any]] = []
    with _local_broker() as broker, tempfile.TemporaryDirectory(prefix="edge-anpr-bp-") as tmp:
        if broker is None:
            print("bench serve --processes needs mosquitto")
            return 1
        for round_no in range(rounds):
            for p in counts if round_no % 2 == 0 else counts[::-1]:
                cfg = _write_config(Path(tmp), broker, p, worker_counts[p], f"r{round_no}")
                with _service(cfg) as (port, lines, pid):
                    best = max(per_count[p], default=0.0)
                    if not best:
                        with _senders(port, cameras, 60.0):
                            time.sleep(WARMUP_S)
                            t0 = time.monotonic()
                            time.sleep(PROBE_S)
                            best = lines.frames_per_s(t0, time.monotonic())
                    offered = max(2.0, 1.25 * best)
                    with _senders(port, cameras, offered):
                        time.sleep(WARMUP_S)
                        t0 = time.monotonic()
                        service0, machine0 = _tree_cpu_s(pid), _machine_busy_s()
                        time.sleep(WINDOW_S)
                        t1 = time.monotonic()
                        service1, machine1 = _tree_cpu_s(pid), _machine_busy_s()
                        fps = lines.frames_per_s(t0, t1)
                        rss[p] = max(rss[p], _tree_rss_mb(pid))
                        cpu[p].append(((service1 - service0) / (t1 - t0),
                                       (machine1 - machine0) / (t1 - t0)))
                per_count[p].append(fps)
                print(f"round {round_no + 1}/{rounds} processes={p} workers={worker_counts[p]} "
                      f"frames_per_s={fps:.1f} offered={offered:.0f}", flush=True)
        for p in counts:
            median = statistics.median(per_count[p])
            service_cores = statistics.median(c for c, _ in cpu[p])
            harness_cores = statistics.median(max(0.0, m - c) for c, m in cpu[p])
            cfg = _write_config(Path(tmp), broker, p, worker_counts[p], "latency", latency=True)
            p50, p99, n = _latency(cfg, broker, cameras, max(1.0, median * 0.5))
            result = {
                "processes": p, "workers_per_process": worker_counts[p],
                "frames_per_s": round(median, 1),
                "rounds_frames_per_s": [round(x, 1) for x in per_count[p]],
                "rss_total_mb": round(rss[p], 1),
                "service_cores": round(service_cores, 3),
                "harness_cores": round(harness_cores, 3),
                "frames_per_cpu_s": round(median / service_cores, 2) if service_cores else None,
                "latency_p50_ms": p50, "latency_p99_ms": p99, "latency_samples": n,
            }
            results.append(result)
            print(f"processes={p} workers={worker_counts[p]} frames_per_s={median:.1f} "
                  f"(rounds {', '.join(f'{x:.1f}' for x in per_count[p])}) "
                  f"rss_total={rss[p]:.0f} MB service_cores={service_cores:.2f} "
                  f"harness_cores={harness_cores:.2f} "
                  f"frames_per_cpu_s={result['frames_per_cpu_s']} "
                  f"latency p50={p50} p99={p99} ms (n={n})", flush=True)
    summary: dict[str, Any] = {
        "bench": "serve", "cameras": cameras, "mqtt": "local mosquitto",
        "method": f"{rounds} interleaved {WINDOW_S:g} s windows per process count, medians",
        "load_average_1m": [load_at_start, round(os.getloadavg()[0], 2)], "results": results,
    }
    one = next((r for r in results if r["processes"] == 1), None)
    more = [r for r in results if r["processes"] > 1]
    if one and more and one["frames_per_s"]:
        top = max(more, key=lambda r: r["frames_per_s"])
        summary["scaling"] = round(top["frames_per_s"] / one["frames_per_s"], 2)
        summary["scaling_processes"] = top["processes"]
        rounds_ratio = [
            round(b / a, 2) for a, b in zip(per_count[1], per_count[top["processes"]],
                                              strict=True) if a
        ]
        summary["scaling_rounds"] = rounds_ratio
        print(f"scaling {top['processes']} processes / 1 process, {cameras} camera(s): "
              f"{summary['scaling']:.2f}x (rounds: {', '.join(f'{r:.2f}x' for r in rounds_ratio)}"
              f"; spread {min(rounds_ratio):.2f}-{max(rounds_ratio):.2f})")
        if one["frames_per_cpu_s"] and top["frames_per_cpu_s"] and one["service_cores"]:
            # what this machine leaves the service, against what one process takes
            ceiling = (cores - top["harness_cores"]) / one["service_cores"]
            summary["cpu_efficiency"] = round(
                top["frames_per_cpu_s"] / one["frames_per_cpu_s"], 3)
            summary["ceiling"] = round(ceiling, 2)
            print(f"per CPU-second {top['processes']} processes / 1 process: "
                  f"{summary['cpu_efficiency']:.3f}; one process uses "
                  f"{one['service_cores']:.2f} cores, the harness "
                  f"{top['harness_cores']:.2f} of {cores}: at most {ceiling:.2f}x here")
    print(json.dumps(summary))
    return 0


def _write_config(
    tmp: Path, broker: tuple[str, int], processes: int, workers: int, tag: str,
    latency: bool = False,
) -> Path:
    path = tmp / f"p{processes}-{tag}.toml"
    tracker = "quiet_time_s = 0.1\nparked_suppress_s = 0.0\n" if latency else ""
    path.write_text(f"""
[device]
name = "bench"
stats_interval_s = {STATS_INTERVAL_S}

[ingest]
bind = "127.0.0.1"
port = 0

[workers]
count = {workers}
processes = {processes}

[tracker]
{tracker}
[mqtt]
host = "{broker[0]}"
port = {broker[1]}
outbox_path = "{tmp / f'outbox-p{processes}-{tag}.sqlite'}"
homeassistant_discovery = false
""")
    return path


@contextmanager
def _service(config: Path) -> Iterator[tuple[int, _Lines, int]]:
    """``serve --stdout`` running (every child's workers ready); its port, lines and pid."""
    log = config.with_suffix(".log")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_anpr", "serve", "--config", str(config), "--stdout"],
        stdout=subprocess.PIPE, stderr=log.open("wb"),
    )
    lines = _Lines()
    assert proc.stdout is not None
    out = proc.stdout

    def read() -> None:
        for line in out:
            lines.take(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        processes = int(config.read_text().split("processes = ")[1].split()[0])
        port = _wait_ready(log, proc, processes)
        yield port, lines, proc.pid
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)


def _wait_ready(log: Path, proc: subprocess.Popen[bytes], processes: int) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if text.count("event=workers_ready") >= processes and "serving udp=" in text:
            port = text.split("serving udp=")[1].split()[0].rsplit(":", 1)[1]
            return int(port)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"serve did not start:\n{log.read_text(errors='replace')[-2000:]}")


@contextmanager
def _senders(port: int, cameras: int, total_fps: float) -> Iterator[None]:
    procs = [
        subprocess.Popen([
            sys.executable, "-m", "edge_anpr", "send", str(DEMO_DIR), "--host", "127.0.0.1",
            "--port", str(port), "--format", "sequenced", "--camera", str(cam),
            "--fps", f"{total_fps / cameras:.2f}", "--loop",
        ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for cam in range(cameras)
    ]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()
        time.sleep(1.0)  # the queues drain before the next phase


def _tree_pids(pid: int) -> list[int]:
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    return pids


def _tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its children (all their threads)."""
    return sum(process_cpu_s(p) or 0.0 for p in _tree_pids(pid))


def _machine_busy_s() -> float:
    """CPU seconds all cores spent busy since boot (0 without ``/proc/stat``)."""
    ticks = machine_ticks()
    if ticks is None:
        return 0.0
    idle, total = ticks
    return (total - idle) / (os.sysconf("SC_CLK_TCK"))


def _tree_rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` and its children, in MB."""
    total_kb = 0
    for p in _tree_pids(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024


def _latency(
    config: Path, broker: tuple[str, int], cameras: int, total_fps: float
) -> tuple[float, float, int]:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    arrivals: list[tuple[float, str, int]] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="edge-anpr-bench-sub")

    def on_message(c: Any, u: Any, m: Any) -> None:
        payload = json.loads(m.payload)
        seq = payload.get("frame_sequence")
        if payload.get("kind") in ("start", "update") and isinstance(seq, int):
            arrivals.append((time.monotonic(), str(payload["camera"]), seq))

    client.on_connect = lambda c, u, f, rc, p: c.subscribe("edge-anpr/bench/+/event", qos=1)
    client.on_message = on_message
    client.connect(broker[0], broker[1], keepalive=30)
    client.loop_start()
    try:
        with _service(config) as (port, lines, _):
            time.sleep(0.5)
            with _senders(port, cameras, total_fps):
                time.sleep(LATENCY_S)
            time.sleep(1.0)
            with lines.lock:
                completed = dict(lines.completed)
    finally:
        client.loop_stop()
        client.disconnect()
    samples = sorted(
        (t - completed[(cam, seq)]) * 1000 for t, cam, seq in arrivals if (cam, seq) in completed
    )
    if not samples:
        return float("nan"), float("nan"), 0
    p99 = samples[min(len(samples) - 1, int(0.99 * len(samples)))]
    return round(statistics.median(samples), 1), round(p99, 1), len(samples)
