"""Where the machine's CPU went during a bench window: workers, event loop, sender, idle.

``bench serve`` reports frames/s; this says *why* N workers give what they give. Frames/s is
the cores the workers got divided by the CPU each frame cost them, so the scaling ratio splits
exactly into "cores the workers ran on" times "CPU per frame with one worker / with N". The
first falls short when the event loop, the sender or idle time (threads waiting for the GIL)
take a share of the cores; the second when frames get dearer with several workers running
(the GIL's hand-overs, shared caches).

The worker threads time themselves (``time.thread_time`` around each frame, in
``WorkerStats.cpu_s``); the event loop is the calling thread. The sender's CPU and the
machine's idle time come from ``/proc``, so they are None where there is none.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name, from the state on (None when
    there is no such process, or no ``/proc``)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    return stat.rsplit(")", 1)[1].split()


def process_cpu_s(pid: int) -> float | None:
    """User plus system CPU seconds of process ``pid`` so far (None without ``/proc``)."""
    fields = proc_stat(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


def machine_ticks() -> tuple[int, int] | None:
    """(idle, total) clock ticks of all CPUs since boot (None without ``/proc/stat``).

    Idle counts iowait too: a CPU waiting for a disk is as free for work as an idle one."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            first = stat.readline().split()
    except OSError:
        return None
    ticks = [int(v) for v in first[1:9]]  # user nice system idle iowait irq softirq steal
    return ticks[3] + ticks[4], sum(ticks)


@dataclass(frozen=True)
class CpuSample:
    """The CPU counters at one moment of a window."""

    wall_s: float
    workers_s: float
    event_loop_s: float
    process_s: float
    sender_s: float | None
    machine: tuple[int, int] | None

    @classmethod
    def now(cls, workers_cpu_s: float, sender_pid: int | None) -> CpuSample:
        """Call from the event loop's thread: its own CPU time is the event loop's."""
        return cls(
            time.monotonic(), workers_cpu_s, time.thread_time(), time.process_time(),
            process_cpu_s(sender_pid) if sender_pid is not None else None, machine_ticks(),
        )


@dataclass(frozen=True)
class CpuShare:
    """Cores used over a window (CPU seconds per second), by whom."""

    workers: float
    event_loop: float
    other_threads: float
    """The pipeline's other threads (model loading, MQTT, the outbox): the process's CPU
    less the workers' and the event loop's."""
    sender: float | None
    idle: float | None
    cores: int

    @classmethod
    def between(cls, start: CpuSample, end: CpuSample, cores: int) -> CpuShare:
        wall = max(end.wall_s - start.wall_s, 1e-9)
        workers = (end.workers_s - start.workers_s) / wall
        loop = (end.event_loop_s - start.event_loop_s) / wall
        process = (end.process_s - start.process_s) / wall
        sender = (
            (end.sender_s - start.sender_s) / wall
            if start.sender_s is not None and end.sender_s is not None else None
        )
        idle = None
        if start.machine is not None and end.machine is not None:
            total = end.machine[1] - start.machine[1]
            if total > 0:
                idle = cores * (end.machine[0] - start.machine[0]) / total
        return cls(workers, loop, max(0.0, process - workers - loop), sender, idle, cores)

    @classmethod
    def pooled(cls, shares: list[tuple[CpuShare, float]]) -> CpuShare:
        """The share over several windows, each weighted by its length in seconds."""
        total = sum(seconds for _, seconds in shares) or 1.0

        def mean(values: list[tuple[float | None, float]]) -> float | None:
            if any(v is None for v, _ in values):
                return None
            return sum(v * s for v, s in values if v is not None) / total

        return cls(
            workers=sum(c.workers * s for c, s in shares) / total,
            event_loop=sum(c.event_loop * s for c, s in shares) / total,
            other_threads=sum(c.other_threads * s for c, s in shares) / total,
            sender=mean([(c.sender, s) for c, s in shares]),
            idle=mean([(c.idle, s) for c, s in shares]),
            cores=shares[0][0].cores if shares else os.cpu_count() or 1,
        )

    def describe(self) -> str:
        def cores(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.2f}"

        return (
            f"cpu_cores workers={self.workers:.2f} event_loop={self.event_loop:.2f} "
            f"other_threads={self.other_threads:.2f} sender={cores(self.sender)} "
            f"idle={cores(self.idle)} of {self.cores}"
        )

    def as_json(self) -> dict[str, float | int | None]:
        def r(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {
            "workers": r(self.workers), "event_loop": r(self.event_loop),
            "other_threads": r(self.other_threads), "sender": r(self.sender),
            "idle": r(self.idle), "cores": self.cores,
        }
