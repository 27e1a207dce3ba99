"""The CPU accounting of ``bench serve``: shares from counters, and the counters themselves."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from edge_anpr.lab.cpu import CpuSample, CpuShare, machine_ticks, process_cpu_s


def sample(wall: float, workers: float, loop: float, process: float, sender: float | None,
           machine: tuple[int, int] | None) -> CpuSample:
    return CpuSample(wall, workers, loop, process, sender, machine)


def test_share_divides_each_counter_by_the_window() -> None:
    start = sample(100.0, 10.0, 1.0, 12.0, 3.0, (1000, 5000))
    end = sample(104.0, 17.2, 1.3, 19.9, 3.12, (1040, 5800))
    share = CpuShare.between(start, end, cores=2)
    assert share.workers == pytest.approx(1.8)
    assert share.event_loop == pytest.approx(0.075)
    assert share.other_threads == pytest.approx((7.9 - 7.2 - 0.3) / 4)
    assert share.sender == pytest.approx(0.03)
    assert share.idle == pytest.approx(2 * 40 / 800)


def test_share_without_proc_leaves_sender_and_idle_unknown() -> None:
    start = sample(0.0, 0.0, 0.0, 0.0, None, None)
    end = sample(2.0, 1.0, 0.1, 1.0, None, None)
    share = CpuShare.between(start, end, cores=4)
    assert share.sender is None and share.idle is None
    assert share.other_threads == 0.0  # never negative, whatever the clocks' granularity
    assert "sender=n/a idle=n/a of 4" in share.describe()


def test_pooled_share_weights_windows_by_length() -> None:
    a = CpuShare(1.0, 0.1, 0.0, 0.02, 0.5, 2)
    b = CpuShare(2.0, 0.2, 0.0, None, 0.0, 2)
    pooled = CpuShare.pooled([(a, 1.0), (a, 1.0), (CpuShare(2.0, 0.4, 0.0, 0.05, 0.2, 2), 2.0)])
    assert pooled.workers == pytest.approx(1.5)
    assert pooled.event_loop == pytest.approx(0.25)
    assert pooled.sender == pytest.approx((0.02 + 0.02 + 0.1) / 4)
    assert pooled.idle == pytest.approx((0.5 + 0.5 + 0.4) / 4)
    assert CpuShare.pooled([(a, 1.0), (b, 1.0)]).sender is None


@pytest.mark.skipif(machine_ticks() is None, reason="needs Linux /proc")
def test_counters_follow_a_busy_child_and_the_machine() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import time\nt = time.process_time()\n"
         "while time.process_time() - t < 0.6: pass\nimport sys; sys.stdin.read()"],
        stdin=subprocess.PIPE,
    )
    try:
        before = process_cpu_s(child.pid)
        ticks_before = machine_ticks()
        time.sleep(1.2)
        after = process_cpu_s(child.pid)
        ticks_after = machine_ticks()
    finally:
        child.communicate(b"")
    assert before is not None and after is not None
    assert after - before >= 0.3  # it burned 0.6 s of CPU, most of it inside the window
    assert ticks_before is not None and ticks_after is not None
    idle = ticks_after[0] - ticks_before[0]
    total = ticks_after[1] - ticks_before[1]
    assert 0 <= idle < total
    assert process_cpu_s(2**31 - 1) is None  # no such process
    assert os.cpu_count()
