"""FrameQueue: never blocks the producer, drops a camera's oldest frame, serves cameras fairly."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from edge_anpr.ingest.queue import FrameQueue
from edge_anpr.ingest.reassembly import IngestStats
from edge_anpr.values import Frame


def frame(camera: str, n: int) -> Frame:
    return Frame(camera=camera, sender=("10.0.0.1", 1), wire_format="sequenced", sequence=n,
                 jpeg=b"x", capture_time_us=0, completed_monotonic_s=0.0)


def drain(q: FrameQueue) -> list[tuple[str, int | None]]:
    out = []
    while True:
        try:
            f = q.get_nowait()
        except trio.WouldBlock:
            return out
        out.append((f.camera, f.sequence))


async def test_full_camera_drops_its_oldest_frame_and_counts_it() -> None:
    stats = IngestStats()
    q = FrameQueue(2, stats)
    assert q.put_nowait(frame("a", 1)) is None
    assert q.put_nowait(frame("a", 2)) is None
    dropped = q.put_nowait(frame("a", 3))
    assert dropped is not None and dropped.sequence == 1
    q.put_nowait(frame("b", 1))  # another camera has its own room
    assert q.dropped == 1 and stats.drops["queue_full"] == 1
    assert drain(q) == [("a", 2), ("b", 1), ("a", 3)]


async def test_round_robin_across_cameras() -> None:
    q = FrameQueue(10)
    for n in range(5):
        q.put_nowait(frame("flood", n))
    q.put_nowait(frame("quiet", 0))
    q.put_nowait(frame("other", 0))
    order = drain(q)
    assert order[:3] == [("flood", 0), ("quiet", 0), ("other", 0)]
    assert [n for c, n in order if c == "flood"] == [0, 1, 2, 3, 4]


async def test_close_lets_consumers_drain_then_end() -> None:
    q = FrameQueue(4)
    q.put_nowait(frame("a", 1))
    q.put_nowait(frame("b", 1))
    q.close()
    got = [(f.camera, f.sequence) async for f in q]
    assert got == [("a", 1), ("b", 1)]
    with pytest.raises(trio.EndOfChannel):
        await q.get()
    with pytest.raises(trio.ClosedResourceError):
        q.put_nowait(frame("a", 2))


async def test_many_waiting_consumers_each_get_distinct_frames() -> None:
    q = FrameQueue(8)
    got: list[int | None] = []

    async def worker() -> None:
        async for f in q:
            got.append(f.sequence)
            await trio.sleep(0)

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(worker)
        await trio.testing.wait_all_tasks_blocked()
        for n in range(6):
            q.put_nowait(frame(f"cam{n % 2}", n))
            await trio.sleep(0)
        q.close()
    assert sorted(s for s in got if s is not None) == [0, 1, 2, 3, 4, 5]


async def test_waiting_consumer_is_woken_and_cancel_loses_nothing() -> None:
    q = FrameQueue(2)
    with trio.move_on_after(0.05):
        await q.get()  # nothing there: cancelled while parked
    q.put_nowait(frame("a", 1))
    with trio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(trio.Cancelled):
            await q.get()
    assert len(q) == 1  # a cancelled get() took nothing
    assert (await q.get()).sequence == 1


async def test_producer_never_waits() -> None:
    q = FrameQueue(1)
    with trio.testing.assert_no_checkpoints():
        for n in range(1000):
            q.put_nowait(frame("a", n))
    assert len(q) == 1 and q.dropped == 999
