"""`edge-anpr bench scaling`, small: every mode runs its passes and the child processes end."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pytest

from edge_anpr.cli import build_parser, main
from edge_anpr.lab.cpu import proc_stat
from edge_anpr.lab.scaling import run_python_for


def children_of_this_process() -> set[int]:
    """Live child pids, from /proc (Linux, where the appliance and its CI run)."""
    me, pids = os.getpid(), set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        pid = int(stat.parent.name)
        fields = proc_stat(pid)  # state, parent pid, ...
        if fields is not None and int(fields[1]) == me and fields[0] != "Z":
            pids.add(pid)
    return pids


def test_bench_scaling_reports_threads_and_processes(capsys: pytest.CaptureFixture[str]) -> None:
    before = children_of_this_process()
    assert main(["bench", "scaling", "--frames", "4", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["workers"] == 2 and result["frames_per_pass"] == 4
    for mode in ("1_thread", "2_threads", "2_processes"):
        assert len(result[f"{mode}_rounds"]) == result["rounds"] == 3
        assert all(rate > 0 for rate in result[f"{mode}_rounds"])
    assert result["threads_scaling"] > 0 and result["processes_scaling"] > 0
    assert "2 processes" in out and "x of 1 thread" in out
    assert children_of_this_process() - before == set(), "bench child processes left running"


def test_added_python_holds_this_threads_cpu_for_the_time_asked() -> None:
    """The synthetic per-frame Python must cost what it says, or the bench's slope is off."""
    for ms in (2.0, 10.0):
        started = time.thread_time()
        run_python_for(ms)
        spent_ms = (time.thread_time() - started) * 1000
        assert ms <= spent_ms < ms + 2.0


def test_bench_scaling_with_added_python_reports_each_value_and_the_slope(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([
        "bench", "scaling", "--frames", "4", "--workers", "2", "--added-python-ms", "1,0,1",
    ]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    for prefix in ("", "added_python_1ms_"):
        for mode in ("1_thread", "2_threads", "2_processes"):
            assert len(result[f"{prefix}{mode}_rounds"]) == 3
        assert result[f"{prefix}threads_scaling"] > 0
    # With 4 frames a pass the slope is noise; that it is there and finite is what counts.
    assert math.isfinite(result["threads_scaling_per_added_python_ms"])
    assert "per ms of Python added per frame" in out


@pytest.mark.parametrize("bad", ["-1", "x", "1,,2", "nan", "inf"])
def test_added_python_ms_refuses_what_is_not_milliseconds(bad: str) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "scaling", "--added-python-ms", bad])
