"""FrameQueue: never blocks the producer, drops a camera's oldest frame, serves cameras fairly."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from edge_anpr.ingest.events import IngestStats
from edge_anpr.ingest.queue import FrameQueue
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


def authed(camera: str, n: int) -> Frame:
    return Frame(camera=camera, sender=("10.0.0.1", 1), wire_format="sequenced", sequence=n,
                 jpeg=b"x", capture_time_us=0, completed_monotonic_s=0.0, authenticated=True)


async def test_one_frame_per_camera_keeps_the_camera_s_turn() -> None:
    q = FrameQueue(1)
    q.put_nowait(frame("a", 1))
    q.put_nowait(frame("b", 1))
    assert q.put_nowait(frame("a", 2)) is not None
    assert drain(q) == [("a", 2), ("b", 1)] and len(q) == 0


async def test_a_flood_of_made_up_cameras_cannot_take_a_trusted_camera_s_place() -> None:
    stats = IngestStats()
    q = FrameQueue(2, stats, total_frames=8, trusted_cameras={"gate"})
    q.put_nowait(frame("gate", 0))  # configured, by name
    q.put_nowait(authed("cam-7", 0))  # unconfigured, but authenticated
    for n in range(2000):  # one source posing as 2,000 camera ids
        q.put_nowait(frame(f"cam-{100 + n}", n))
    assert len(q) == 8 and stats.drops["queue_full"] == 2000 - 6
    q.put_nowait(frame("gate", 1))
    # trusted cameras first, whatever waited before them; then the newest of the flood
    order = drain(q)
    assert order[:3] == [("gate", 0), ("cam-7", 0), ("gate", 1)]
    assert [c for c, _ in order[3:]] == [f"cam-{100 + n}" for n in range(1995, 2000)]


async def test_a_full_queue_of_trusted_frames_drops_an_untrusted_newcomer() -> None:
    q = FrameQueue(4, total_frames=3, trusted_cameras={"gate", "lane"})
    for n in range(2):
        q.put_nowait(frame("gate", n))
    q.put_nowait(frame("lane", 0))
    newcomer = frame("cam-9", 0)
    assert q.put_nowait(newcomer) is newcomer
    # a trusted one pushes out the oldest frame of the trusted camera next in turn
    pushed = q.put_nowait(frame("lane", 1))
    assert pushed is not None and (pushed.camera, pushed.sequence) == ("gate", 0)
    assert drain(q) == [("gate", 1), ("lane", 0), ("lane", 1)]
