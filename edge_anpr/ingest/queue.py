"""The bounded hand-off from ingest to the workers.

The producer (the UDP drain loop) must never wait on slow recognition: a blocked producer stops
draining the socket and the kernel then drops datagrams of *every* camera. So ``put_nowait``
never blocks; each camera keeps at most ``ingest.queue_frames_per_camera`` frames and a new frame
pushes that camera's oldest out (counted ``queue_full``), which keeps what is processed fresh.
Consumers are served round-robin across cameras so one camera's flood cannot starve another.

Camera names come from the network (``cam-<id>``: one source posing as 2,000 ids), so the queue
also holds at most ``total_frames`` frames in all, and serves *trusted* cameras (configured by
name, or sending authenticated frames) before the others: a flood of made-up cameras can fill
the untrusted places and compete among itself, but never takes a turn or a place from a
trusted camera. When the queue is full, the oldest frame of the untrusted camera next in turn
is pushed out; a new untrusted frame with no untrusted frame to push out is itself dropped.
Both count as ``queue_full``.

Images posted to the HTTP API wait in a lane of their own (``put_request``): their poster
waits for the answer, so they are never pushed out. The lane takes turns with the trusted
cameras as if it were one more of them (after every trusted camera with a frame waiting has
had one turn) and is served before untrusted cameras. Its length is bounded by the caller,
which admits at most ``http.max_pending`` posted images at once (``vision.jobs.JobBoard``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection

import trio

from edge_anpr.ingest.events import IngestStats
from edge_anpr.values import Frame


class FrameQueue:
    """Per-camera bounded queues, drop-oldest, fair round-robin ``get()`` for many consumers,
    trusted cameras first (module docstring)."""

    def __init__(
        self, frames_per_camera: int, stats: IngestStats | None = None, *,
        total_frames: int | None = None, trusted_cameras: Collection[str] = (),
    ) -> None:
        if frames_per_camera < 1:
            raise ValueError("frames_per_camera must be at least 1")
        if total_frames is not None and total_frames < 1:
            raise ValueError("total_frames must be at least 1")
        self._limit = frames_per_camera
        self._total_limit = total_frames
        self._trusted_names = frozenset(trusted_cameras)
        self._stats = stats
        self._by_camera: dict[str, deque[Frame]] = {}
        self._trusted: dict[str, bool] = {}
        """Per camera with frames waiting: is it served first (fixed while frames wait)."""
        self._turns: dict[bool, deque[str]] = {True: deque(), False: deque()}
        """Cameras with at least one frame waiting, trusted and not, in the order they will be
        served."""
        self._total = 0
        """Camera frames waiting (the lane of posted images is not counted here)."""
        self._requests: deque[Frame] = deque()
        self._camera_turns = 0
        """Camera frames served since the last posted image."""
        self._lane_round = 0
        """Trusted cameras that had frames waiting when the last posted image was served: each
        gets one turn before the next posted image (unless none waits any more)."""
        self._waiting = trio.lowlevel.ParkingLot()
        self._closed = False
        self.dropped = 0
        self.requests_queued = 0
        """Posted images ever queued (``put_request``)."""

    def __len__(self) -> int:
        """Frames waiting: camera frames and posted images."""
        return self._total + len(self._requests)

    def put_request(self, frame: Frame) -> None:
        """Queue a posted image (``frame.request`` set); never dropped. Its poster bounds how
        many wait (module docstring). ``trio.ClosedResourceError`` once the queue is closed."""
        if self._closed:
            raise trio.ClosedResourceError("FrameQueue is closed")
        self._requests.append(frame)
        self.requests_queued += 1
        self._waiting.unpark()

    def put_nowait(self, frame: Frame) -> Frame | None:
        """Queue ``frame``; return the frame dropped to make room (possibly ``frame`` itself),
        or None. Never blocks."""
        if self._closed:
            raise trio.ClosedResourceError("FrameQueue is closed")
        camera = frame.camera
        q = self._by_camera.get(camera)
        trusted = self._trusted.get(camera)
        if trusted is None:
            trusted = frame.authenticated or camera in self._trusted_names
        dropped = None
        if q is not None and len(q) >= self._limit:
            # the camera keeps its deque and its place in the turns: the new frame follows
            dropped = q.popleft()
            self._total -= 1
        elif self._total_limit is not None and self._total >= self._total_limit:
            victims = self._turns[False] or (self._turns[True] if trusted else None)
            if not victims:
                self._count_drop()
                return frame
            dropped = self._pop(victims[0])
        if dropped is not None:
            self._count_drop()
        q = self._by_camera.get(camera)
        if q is None:
            q = self._by_camera[camera] = deque()
            self._trusted[camera] = trusted
            self._turns[trusted].append(camera)
        q.append(frame)
        self._total += 1
        self._waiting.unpark()
        return dropped

    def _count_drop(self) -> None:
        self.dropped += 1
        if self._stats is not None:
            self._stats.drops["queue_full"] += 1

    def _pop(self, camera: str) -> Frame:
        """The oldest frame of ``camera`` (which has one), keeping its turn while more wait."""
        q = self._by_camera[camera]
        frame = q.popleft()
        self._total -= 1
        if not q:
            del self._by_camera[camera]
            self._turns[self._trusted.pop(camera)].remove(camera)
        return frame

    def get_nowait(self) -> Frame:
        """The next frame, trusted cameras (and posted images, as one more of them) first,
        round-robin within each kind; ``trio.WouldBlock`` when none waits."""
        if self._requests and (
            self._camera_turns >= self._lane_round or not self._turns[True]
        ):
            self._camera_turns = 0
            self._lane_round = len(self._turns[True])
            return self._requests.popleft()
        turns = self._turns[True] or self._turns[False]
        if not turns:
            if self._closed:
                raise trio.EndOfChannel
            raise trio.WouldBlock
        camera = turns.popleft()
        q = self._by_camera[camera]
        frame = q.popleft()
        self._total -= 1
        self._camera_turns += 1
        if q:
            turns.append(camera)
        else:
            del self._by_camera[camera]
            del self._trusted[camera]
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
