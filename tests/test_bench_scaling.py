"""`edge-anpr bench scaling`, small: every mode runs its passes and the child processes end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edge_anpr.cli import main


def children_of_this_process() -> set[int]:
    """Live child pids, from /proc (Linux, where the appliance and its CI run)."""
    me, pids = os.getpid(), set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] != "Z":
            pids.add(int(stat.parent.name))
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
