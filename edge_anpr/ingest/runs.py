"""The fast path for coalesced receives (UDP GRO): a run of datagrams taken in one pass.

``CoalescedRuns.feed_coalesced`` is ``Reassembler.feed`` applied to each datagram of one
receive, with exactly its events, counters and state (``tests/test_ingest_coalesced.py`` holds
the plain path as the oracle); it is kept apart because it duplicates, for speed, checks that
``reassembly`` makes one datagram at a time.
"""

from __future__ import annotations

import bisect
import struct
from collections import OrderedDict
from collections.abc import Sequence

from edge_anpr.ingest.events import Address, Event, IngestStats
from edge_anpr.ingest.inflight import Partial, SlotKey, Stream
from edge_anpr.ingest.protocol import HEADER_BYTES, MAGIC, BadDatagram, parse_header

_RUN_HEADER = struct.Struct(">12sH6sI8s")
"""A sequenced header as the bytes a run's chunks share (magic to frame number; count and
length; time) and the two numbers that step along it (index, offset)."""


class CoalescedRuns:
    """``feed_coalesced`` for ``Reassembler``, which provides ``feed`` and the state below."""

    stats: IngestStats
    _legacy: dict[Address, Partial]
    _streams: dict[tuple[str, int], Stream]
    _frames_lru: tuple[OrderedDict[SlotKey, Partial], ...]
    _senders_lru: tuple[OrderedDict[SlotKey, Partial | Stream], ...]
    _max_frame: int
    _cam_keys: dict[int, bytes | None]
    _global_key: bytes | None
    _allow_unauth: bool
    _unauth_ids: set[int]

    def feed(
        self, data: bytes, sender: Address, now_s: float, wall_us: int | None = None
    ) -> Sequence[Event]:
        """One datagram, as ``Reassembler.feed`` takes it (which overrides this)."""
        raise NotImplementedError

    def feed_coalesced(
        self, data: bytes, size: int, sender: Address, now_s: float, wall_us: int | None = None
    ) -> Sequence[Event]:
        """Take the datagrams of one coalesced receive (UDP GRO): ``size`` bytes each, the
        last one possibly shorter; ``size`` 0 means ``data`` is one datagram.

        The events, counters and state are exactly those of feeding the datagrams one by one
        (a property test checks it). A run of datagrams that continue a frame already in
        progress, in order, with nothing unusual about them, is checked and copied in one
        pass: the per-datagram path costs a few microseconds of Python each, 40-odd per
        1280x720 frame, all of it on the event loop and holding the GIL the recognition
        workers wait for. Anything else (a frame's first or last datagram, a tagged one, a
        duplicate, a reordering, a bad header) goes through ``feed``. Every attempt at a run
        either takes at least one datagram or gives up on its first, so a crafted buffer
        costs at most about twice the per-datagram path.
        """
        total = len(data)
        if size <= 0 or size >= total:
            return self.feed(data, sender, now_s, wall_us)
        events: list[Event] = []
        pos = 0
        full_end = total - total % size  # where the full-size datagrams end
        while pos < total:
            if pos + size < full_end:  # at least two full datagrams: worth a run
                taken = self._run(data, pos, size, full_end, sender, now_s)
                if taken:
                    pos += taken * size
                    continue
            end = min(pos + size, total)
            events.extend(self.feed(data[pos:end], sender, now_s, wall_us))
            pos = end
        return events

    def _run(
        self, data: bytes, pos: int, size: int, limit: int, sender: Address, now_s: float
    ) -> int:
        """How many datagrams from ``pos`` (full-size, before ``limit``) were taken in bulk as
        the in-order continuation of a frame in progress; 0 when the first one is not."""
        if data.startswith(MAGIC, pos):
            return self._sequenced_run(data, pos, size, limit, sender, now_s)
        if size != 4:  # a 4-byte legacy datagram may be a header
            return self._legacy_run(data, pos, size, limit, sender, now_s)
        return 0

    def _legacy_run(
        self, data: bytes, pos: int, size: int, limit: int, sender: Address, now_s: float
    ) -> int:
        """Legacy data datagrams (never 4 bytes, so never a header) that fill the sender's
        frame without completing it: appended as one piece. (With the legacy format off no
        sender has a frame in progress.)"""
        part = self._legacy.get(sender)
        if part is None:
            return 0
        room = part.length - part.covered - 1  # the run must leave the frame incomplete
        most = min((limit - pos) // size, room // size)
        count = 0
        # feed() takes any datagram that starts with the magic for a sequenced one
        while count < most and not data.startswith(MAGIC, pos + count * size):
            count += 1
        if not count:
            return 0
        taken = count * size
        part.buf += data[pos : pos + taken]
        part.covered += taken
        part.last_s = now_s
        self._frames_lru[False].move_to_end(part.key)
        self._senders_lru[False].move_to_end(part.key)
        self.stats.datagrams += count
        self.stats.datagram_bytes += taken
        return count

    def _sequenced_run(
        self, data: bytes, pos: int, size: int, limit: int, sender: Address, now_s: float
    ) -> int:
        """Untagged sequenced chunks of one frame in progress with consecutive indexes and
        offsets, none received before, that leave the frame incomplete: their headers are
        compared with what the run's first one implies, their payloads copied in place.
        Every check ``_feed_sequenced`` makes per chunk holds for the run as a whole: the first
        header goes through ``parse_header``, and each later one must equal it byte for byte
        but for its index and offset, which step by one chunk within the bounds set here."""
        try:
            flags, cam_id, seq, index, count, length, off, time_us, _ = parse_header(
                data, self._max_frame, pos, size
            )
        except BadDatagram:
            return 0  # feed() counts it, with the reason
        if flags or (
            self._cam_keys.get(cam_id, self._global_key) is not None
            or not (self._allow_unauth or cam_id in self._unauth_ids)
        ):
            return 0
        stream = self._streams.get((sender[0], cam_id))
        part = stream.frames.get(seq) if stream is not None else None
        if part is None or stream is None:
            return 0
        if count != part.count or length != part.length or time_us != part.time_us:
            return 0
        payload = size - HEADER_BYTES
        got = part.got
        # Room: the run leaves at least one chunk and one byte missing (the datagram that
        # completes the frame goes through feed), stays inside the frame, and stops before
        # the first chunk already received and the first byte range already covered.
        most = min(
            (limit - pos) // size,
            count - part.received - 1,
            count - index,
            (length - part.covered - 1) // payload,
            (length - off) // payload,
        )
        seen = got.find(1, index, index + most) if most > 0 else -1
        if seen >= 0:
            most = seen - index
        starts = part.starts
        at = bisect.bisect_right(starts, off)
        if at > 0 and part.ends[at - 1] > off:
            return 0
        if at < len(starts):
            most = min(most, (starts[at] - off) // payload)
        if most <= 0:
            return 0
        # The fields every chunk of the run shares, as bytes; index and offset as numbers.
        head = data[pos : pos + 12]
        middle = data[pos + 14 : pos + 20]
        tail = data[pos + 24 : pos + 32]
        unpack = _RUN_HEADER.unpack_from
        taken = 0
        p = pos
        while taken < most and unpack(data, p) == (
            head, index + taken, middle, off + taken * payload, tail
        ):
            taken += 1
            p += size
        if not taken:
            return 0
        view = memoryview(data)
        part.pieces.insert(at, b"".join([
            view[p + HEADER_BYTES : p + size] for p in range(pos, pos + taken * size, size)
        ]))
        o = off + taken * payload
        got[index : index + taken] = b"\x01" * taken
        starts.insert(at, off)
        part.ends.insert(at, o)
        part.received += taken
        part.covered += o - off
        part.last_s = now_s
        part.sender = sender
        stream.last_s = now_s
        self._senders_lru[False].move_to_end(stream.key)  # untagged: never an authenticated one
        self._frames_lru[False].move_to_end(part.key)
        self.stats.datagrams += taken
        self.stats.datagram_bytes += taken * size
        return taken
