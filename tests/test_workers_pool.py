"""The recognition worker pool with the real recognizer: every frame is answered, bad frames are
counted and never stop a worker, and the pool drains and ends when its queue closes."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence

import trio

from edge_anpr.assets import DEMO_DIR
from edge_anpr.config import Config
from edge_anpr.ingest.queue import FrameQueue
from edge_anpr.values import Frame, PlateRead
from edge_anpr.vision.recognize import FrameRecognizer, MotionGate
from edge_anpr.vision.workers import Recognizer, WorkerStats, run_workers

CRASH = b"\xff\xd8 this frame makes the recognizer raise"


class CrashesOnOneFrame:
    """The real recognizer, except that one particular payload raises (a stand-in for a bug
    that only a strange frame triggers)."""

    def __init__(self, cfg: Config) -> None:
        self.real = FrameRecognizer(cfg)

    def recognize_jpeg(
        self, data: bytes, *, camera: str | None = None, gate: MotionGate | None = None,
        regions: Sequence[str] = (),
    ) -> Sequence[PlateRead] | None:
        if data == CRASH:
            raise RuntimeError("boom")
        return self.real.recognize_jpeg(data, camera=camera, gate=gate, regions=regions)


def frame(camera: str, jpeg: bytes, sequence: int) -> Frame:
    return Frame(camera, ("127.0.0.1", 9), "sequenced", sequence, jpeg, 0, 0.0)


async def test_pool_reads_every_frame_counts_bad_ones_and_drains() -> None:
    cfg = Config()
    expected = json.loads((DEMO_DIR / "expected.json").read_text())
    names = sorted(expected)
    queue = FrameQueue(frames_per_camera=len(names) + 2)
    # each demo frame on a camera of its own, so the queue keeps them all; plus a frame that
    # is not a JPEG and one that makes the recognizer raise, in the middle of the stream
    payloads = [(DEMO_DIR / n).read_bytes() for n in names]
    payloads[2:2] = [b"not a jpeg at all", CRASH]
    for i, data in enumerate(payloads):
        queue.put_nowait(frame(f"cam-{i}", data, i))
    queue.close()
    send, receive = trio.open_memory_channel[PlateRead](math.inf)
    stats = WorkerStats()

    def build() -> Recognizer:
        return CrashesOnOneFrame(cfg)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                functools.partial(run_workers, cfg, queue, send, stats, factory=build, count=2)
            )
        reads = [read async for read in receive]
    assert stats.frames_failed == 1
    assert stats.frames_undecodable == 1
    assert stats.frames_recognized == len(names)
    # the workers' own CPU time on their frames: some, and never more than their wall time
    assert 0.0 < stats.cpu_s <= stats.busy_s * 1.01 + 0.01
    by_sequence = {r.frame_sequence: r.text.text for r in reads}
    got = sorted(by_sequence.values())
    assert got == sorted(p for n in names for p in expected[n]["plates"])


async def test_cancelled_pool_stops_promptly_with_frames_waiting() -> None:
    cfg = Config()
    queue = FrameQueue(frames_per_camera=64)
    data = (DEMO_DIR / "frame_00.jpg").read_bytes()
    for i in range(40):
        queue.put_nowait(frame("gate", data, i))
    send, _receive = trio.open_memory_channel[PlateRead](math.inf)
    stats = WorkerStats()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                functools.partial(run_workers, cfg, queue, send, stats, count=2)
            )
            await trio.sleep(0.2)
            cancelled_at = trio.current_time()
            nursery.cancel_scope.cancel()
    # each worker thread finishes at most the frame it is on and the one handed to it (a frame
    # takes tens of milliseconds), then returns: nothing waits for the 40 queued frames
    assert trio.current_time() - cancelled_at < 0.5
    assert 0 < stats.frames_recognized < 40
