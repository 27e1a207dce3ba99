"""The bounded hand-off from ingest to the workers.

The producer (the UDP drain loop) must never wait on slow recognition: a blocked producer stops
draining the socket and the kernel then drops datagrams of *every* camera. So ``put_nowait``
never blocks; each camera keeps at most ``ingest.queue_frames_per_camera`` frames and a new frame
pushes that camera's oldest out (counted ``queue_full``), which keeps what is processed fresh.
Consumers are served round-robin across cameras so one camera's flood cannot starve another.
"""

from __future__ import annotations

from collections import deque

import trio

from edge_anpr.ingest.reassembly import IngestStats
from edge_anpr.values import Frame


class FrameQueue:
    """Per-camera bounded queues, drop-oldest, fair round-robin ``get()`` for many consumers."""

    def __init__(self, frames_per_camera: int, stats: IngestStats | None = None) -> None:
        if frames_per_camera < 1:
            raise ValueError("frames_per_camera must be at least 1")
        self._limit = frames_per_camera
        self._stats = stats
        self._by_camera: dict[str, deque[Frame]] = {}
        self._turns: deque[str] = deque()
        """Cameras with at least one frame waiting, in the order they will be served."""
        self._waiting = trio.lowlevel.ParkingLot()
        self._closed = False
        self.dropped = 0

    def __len__(self) -> int:
        return sum(len(q) for q in self._by_camera.values())

    def put_nowait(self, frame: Frame) -> Frame | None:
        """Queue ``frame``; return the frame dropped to make room (or None). Never blocks."""
        if self._closed:
            raise trio.ClosedResourceError("FrameQueue is closed")
        q = self._by_camera.get(frame.camera)
        if q is None:
            q = self._by_camera[frame.camera] = deque()
        dropped = None
        if len(q) >= self._limit:
            dropped = q.popleft()
            self.dropped += 1
            if self._stats is not None:
                self._stats.drops["queue_full"] += 1
        if not q:
            self._turns.append(frame.camera)
        q.append(frame)
        self._waiting.unpark()
        return dropped

    def get_nowait(self) -> Frame:
        """The next frame in round-robin camera order; ``trio.WouldBlock`` when none waits."""
        if not self._turns:
            if self._closed:
                raise trio.EndOfChannel
            raise trio.WouldBlock
        camera = self._turns.popleft()
        q = self._by_camera[camera]
        frame = q.popleft()
        if q:
            self._turns.append(camera)
        else:
            del self._by_camera[camera]
        return frame

    async def get(self) -> Frame:
        """Wait for the next frame; after ``close()``, drain what is left then EndOfChannel."""
        await trio.lowlevel.checkpoint_if_cancelled()
        parked = False
        while True:
            try:
                frame = self.get_nowait()
            except trio.WouldBlock:
                await self._waiting.park()
                parked = True
                continue
            if not parked:
                # Still yield once (every await is a schedule point in trio), but without a
                # cancellation point: a frame taken must not be lost to a cancel.
                await trio.lowlevel.cancel_shielded_checkpoint()
            return frame

    def close(self) -> None:
        """No more frames will come; waiting consumers drain and then get EndOfChannel."""
        self._closed = True
        self._waiting.unpark_all()

    def __aiter__(self) -> FrameQueue:
        return self

    async def __anext__(self) -> Frame:
        try:
            return await self.get()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
