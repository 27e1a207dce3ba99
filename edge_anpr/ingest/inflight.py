"""The state of frames in progress and of sequenced streams, as the reassembler keeps it.

Plain containers with no rules of their own (those are ``reassembly``'s): ``Partial`` holds the
bytes of a frame that have arrived and what it is charged, ``Stream`` the frames in flight and
the ordering state of one (source address, camera id).
"""

from __future__ import annotations

from collections import deque

from edge_anpr.ingest.events import Address
from edge_anpr.ingest.protocol import SEQ_MODULO

SlotKey = tuple[str, str, int] | tuple[str, str, int, int]
"""("L", ip, port): legacy sender; ("S", ip, camera): stream; ("S", ip, camera, seq): frame."""

LATE_MEMORY = 16
"""Frame numbers per stream remembered as already counted late, so a late frame of 140 chunks
is one drop, not 140."""


CHUNK_OVERHEAD_BYTES = 96
"""Bookkeeping per sequenced chunk (received flag, start/end offsets as Python ints), charged to
the byte budget up front so that a frame of 65,535 one-byte chunks is bounded like any other."""


class Partial:
    """A frame in progress and the bytes of it that have arrived, never more.

    A datagram that announces a frame costs a sender nothing, so it must not cost the receiver
    an allocation (and a memset) of the announced size. Legacy frames arrive in order: their
    buffer ``buf`` grows with the data. Sequenced chunks arrive in any order: each range of
    bytes received is one entry of ``pieces``, in offset order like ``starts``/``ends``, joined
    once the frame is complete (its ranges then cover ``0..length`` exactly, without gaps or
    overlaps). Either way ``cost`` (charged to ``ingest.max_buffered_bytes`` when the frame
    starts) bounds what the frame can ever hold.
    """

    __slots__ = (
        "auth", "buf", "camera", "cost", "count", "covered", "ends", "got", "key", "last_s",
        "length", "pieces", "received", "sender", "seq", "starts", "stream", "time_us",
    )

    def __init__(
        self, key: SlotKey, sender: Address, stream: Stream | None, camera: str, length: int,
        count: int, seq: int, time_us: int, now_s: float,
    ) -> None:
        self.key = key
        self.auth = stream is not None and stream.auth
        """Of an authenticated stream: its slot is taken only for another such frame."""
        self.sender = sender
        self.stream = stream
        self.camera = camera
        self.buf = bytearray()
        self.pieces: list[bytes] = []
        self.cost = frame_cost(length, count)
        self.length = length
        self.count = count
        self.seq = seq
        self.time_us = time_us
        self.covered = 0
        self.received = 0
        self.got = bytearray(count) if count else bytearray()
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.last_s = now_s


def seq_distance(a: int, b: int) -> int:
    """Signed serial-number distance from ``b`` to ``a`` (negative: ``a`` is older)."""
    half = SEQ_MODULO // 2
    return (a - b + half) % SEQ_MODULO - half


def frame_cost(length: int, count: int) -> int:
    return length + count * CHUNK_OVERHEAD_BYTES


class Stream:
    """One sequenced stream: (source address, camera id)."""

    __slots__ = (
        "auth", "camera", "capped", "far_late_last", "far_late_run", "frames", "key",
        "last_handed", "last_s", "late_seen",
    )

    def __init__(self, key: SlotKey, camera: str, now_s: float, auth: bool) -> None:
        self.key = key
        self.camera = camera
        self.auth = auth
        """Every chunk of the stream carries a tag checked against the camera's key."""
        self.frames: dict[int, Partial] = {}
        self.last_handed: int | None = None
        self.late_seen: deque[int] = deque(maxlen=LATE_MEMORY)
        self.far_late_run = 0
        """Far-late frames in a row, each newer than the one before
        (``reassembly.FAR_LATE_RESYNC``)."""
        self.far_late_last: int | None = None
        self.capped = False
        """Counted in its source's share of unauthenticated streams (``Reassembler``)."""
        self.last_s = now_s
