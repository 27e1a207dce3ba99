"""``edge-anpr bench scaling``: the recognizer alone over N cores, in threads and in processes.

The appliance's workers are threads, each with its own recognizer, sharing one GIL. How far
they can scale is bounded twice: by the machine (two busy cores run each frame a little slower
than one) and by the GIL. This bench separates the two, outside the pipeline (no UDP, tracker
or MQTT): frames/s of 1 thread, of N threads and of N processes of one thread each, on the
bundled 1280x720 demo frames that ``bench serve`` sends. ``bench serve`` then shows what the
rest of the pipeline costs on top.

Every mode loads its recognizers once, then runs ``--rounds`` timed passes, interleaved (1,
threads, processes, then the reverse, ...) so that drift of a shared machine's speed falls on
all three; a ratio is the median of the rounds' own ratios. The threads run with the
pipeline's GIL switch interval (``workers.gil_switch_interval_ms``). The processes are
children of this one that load their models, then run a pass each time they are told ``go``
on stdin and answer with their frames/s.

``--added-python-ms 0,1.5`` asks what the GIL costs per millisecond: every frame is followed by
that much CPU time of plain Python in every mode (interleaved with the other values in each
round), so the threads' ratio shows how it falls as the Python per frame grows, while the
processes, which share no GIL, keep theirs. The slope prices the Python that any change adds
to (or removes from) a frame's path.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import trio

from edge_anpr.assets import required_demo_jpegs
from edge_anpr.config import Config, load_config
from edge_anpr.lab.progress import show_progress

ROUNDS = 3
"""Rounds of passes unless ``--rounds`` says otherwise."""


def bench_scaling(
    cfg: Config, config_path: Path | None, *, frames: int, workers: int | None,
    added_python_ms: Sequence[float] = (0.0,), rounds: int = ROUNDS,
) -> int:
    """Print frames/s of 1 thread, N threads and N processes, and both ratios to 1 thread,
    for each amount of Python added per frame."""
    import cv2

    from edge_anpr.vision.recognize import FrameRecognizer
    from edge_anpr.vision.workers import gil_switch_interval

    n = workers or os.cpu_count() or 1
    jpegs = required_demo_jpegs()
    cv2.setNumThreads(1)
    recognizers = [FrameRecognizer(cfg) for _ in range(n)]
    for recognizer in recognizers:
        _recognize(recognizer, jpegs, len(jpegs))  # warm-up
    modes = ["1 thread", f"{n} threads", f"{n} processes"]
    passes = [(ms, mode) for ms in added_python_ms for mode in modes]
    rates: dict[tuple[float, str], list[float]] = {key: [] for key in passes}
    with _ChildProcesses(n, config_path) as children, gil_switch_interval(
        cfg.workers.gil_switch_interval_ms / 1000
    ):
        steps, step = rounds * len(passes), 0
        for round_no in range(rounds):
            for ms, mode in passes if round_no % 2 == 0 else passes[::-1]:
                show_progress(step, steps, f"{mode}, +{ms:g} ms Python" if ms else mode)
                if mode == modes[0]:
                    rate = trio.run(_in_threads, recognizers[:1], jpegs, frames, ms)
                elif mode == modes[1]:
                    rate = trio.run(_in_threads, recognizers, jpegs, frames, ms)
                else:
                    rate = _in_processes(children, frames, ms)
                rates[(ms, mode)].append(rate)
                step += 1
        show_progress(steps, steps, "passes", final=True)
    result: dict[str, object] = {
        "bench": "scaling", "frames_per_pass": frames, "workers": n, "rounds": rounds,
        "frame": "1280x720 JPEG (bundled demo frames)",
    }
    threads_scaling: list[float] = []
    for ms in added_python_ms:
        if len(added_python_ms) > 1:
            print(f"with {ms:g} ms of Python added per frame:")
        ones = rates[(ms, modes[0])]
        prefix = f"added_python_{ms:g}ms_" if ms else ""
        for mode in modes:
            median = statistics.median(rates[(ms, mode)])
            key = prefix + mode.replace(" ", "_")
            result[f"{key}_frames_per_s"] = round(median, 1)
            result[f"{key}_rounds"] = [round(r, 1) for r in rates[(ms, mode)]]
            if mode == modes[0]:
                print(f"{mode:>12}: {median:.1f} frames/s (median of {rounds} passes)")
                continue
            # A round's passes ran minutes apart at most: its ratio is paired, so a shared
            # machine's slow spell falls on both sides of it.
            ratio = statistics.median(
                r / one for r, one in zip(rates[(ms, mode)], ones, strict=True)
            )
            kind = "threads" if mode == modes[1] else "processes"
            result[f"{prefix}{kind}_scaling"] = round(ratio, 3)
            if kind == "threads":
                threads_scaling.append(ratio)
            print(f"{mode:>12}: {median:.1f} frames/s (median of {rounds} passes), "
                  f"{ratio:.2f}x of 1 thread (median of the rounds' ratios)")
    if len(set(added_python_ms)) > 1:
        slope = _slope(added_python_ms, threads_scaling)
        result["threads_scaling_per_added_python_ms"] = round(slope, 4)
        print(f"{n} threads' scaling changes by {slope:+.3f}x per ms of Python added per frame "
              "(least squares over the values)")
    print(json.dumps(result))
    return 0


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``ys`` over ``xs`` (at least two distinct ``xs``)."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


def run_python_for(ms: float) -> None:
    """Plain Python for ``ms`` of this thread's CPU time: what a frame's own Python would do
    to the GIL (the loop is bytecode, so it lets the GIL go when another thread asks, as any
    Python does), without touching memory a real frame would."""
    end = time.thread_time() + ms / 1000
    total = 0
    while time.thread_time() < end:
        for i in range(50):
            total += i


class _Recognizer(Protocol):
    def recognize_jpeg(self, data: bytes) -> object: ...


def _recognize(
    recognizer: _Recognizer, jpegs: Sequence[bytes], frames: int, added_python_ms: float = 0.0
) -> None:
    for i in range(frames):
        recognizer.recognize_jpeg(jpegs[i % len(jpegs)])
        if added_python_ms:
            run_python_for(added_python_ms)


async def _in_threads(
    recognizers: Sequence[_Recognizer], jpegs: Sequence[bytes], frames: int,
    added_python_ms: float = 0.0,
) -> float:
    """Frames/s of one worker thread per recognizer, all recognising at once."""
    limiter = trio.CapacityLimiter(len(recognizers))
    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for recognizer in recognizers:
            nursery.start_soon(functools.partial(
                trio.to_thread.run_sync, _recognize, recognizer, jpegs, frames, added_python_ms,
                limiter=limiter,
            ))
    return len(recognizers) * frames / (time.perf_counter() - started)


class _ChildProcesses:
    """``n`` child processes, each with its own recognizer, ready for ``go`` lines."""

    def __init__(self, n: int, config_path: Path | None) -> None:
        self._n = n
        self._config = str(config_path) if config_path else ""
        self.procs: list[subprocess.Popen[str]] = []

    def __enter__(self) -> list[subprocess.Popen[str]]:
        try:
            for _ in range(self._n):
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "edge_anpr.lab.scaling", self._config],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                ))
            for proc in self.procs:
                assert proc.stdout is not None
                if proc.stdout.readline().strip() != "ready":
                    raise RuntimeError("a bench child process did not start")
        except BaseException:
            self.__exit__()
            raise
        return self.procs

    def __exit__(self, *_: object) -> None:
        for proc in self.procs:
            if proc.stdin is not None and not proc.stdin.closed:
                proc.stdin.close()  # end of input: the child returns
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _in_processes(
    children: Sequence[subprocess.Popen[str]], frames: int, added_python_ms: float = 0.0
) -> float:
    """Summed frames/s of the child processes, all told to start at once."""
    for proc in children:
        assert proc.stdin is not None
        proc.stdin.write(f"go {frames} {added_python_ms!r}\n")
        proc.stdin.flush()
    total = 0.0
    for proc in children:
        assert proc.stdout is not None
        total += float(proc.stdout.readline())
    return total


def _child(config: str) -> None:
    """One bench process: load, say ``ready``, then one timed pass per ``go FRAMES MS`` line
    (MS: Python added per frame)."""
    import cv2

    from edge_anpr.vision.recognize import FrameRecognizer

    cv2.setNumThreads(1)
    recognizer = FrameRecognizer(load_config(Path(config) if config else None))
    jpegs = required_demo_jpegs()
    _recognize(recognizer, jpegs, len(jpegs))  # warm-up
    print("ready", flush=True)
    for line in sys.stdin:
        _, frames, added_python_ms = line.split()
        started = time.perf_counter()
        _recognize(recognizer, jpegs, int(frames), float(added_python_ms))
        print(int(frames) / (time.perf_counter() - started), flush=True)


if __name__ == "__main__":
    _child(sys.argv[1] if len(sys.argv) > 1 else "")
