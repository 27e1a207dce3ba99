"""Sans-IO frame reassembly for both wire formats (rules in docs/protocol.md).

``Reassembler.feed(datagram, sender, now_s, wall_us=...)`` and ``Reassembler.expire(now_s)``
return typed events, ``FrameReady`` or ``Dropped``; nothing here touches a socket, a thread or the
time of day (both clocks come in as arguments), so every rule is tested with plain calls,
including adversarial input. Authenticated frames also pass the replay rules of ``replay``.
``feed_coalesced`` takes the datagrams of one UDP GRO receive at once, with exactly the results
of ``feed`` on each.

Memory is bounded whatever arrives: every frame in progress is charged its announced length when
it starts, but holds only the bytes that have arrived (so a header announcing 4 MiB costs what a
small one does until its data comes; assembly is O(bytes)); the number of such frames and their
charged bytes are capped globally (the least recently active frame is dropped
to make room), frames per sequenced stream are capped, and tracked senders (legacy senders with a
frame in progress plus sequenced streams) are capped with least-recently-active eviction.

Invariant: frames and streams of authenticated cameras (every chunk tagged with the camera's
key) are evicted only to make room for other authenticated ones. Forged datagrams cost nothing
to send, from any address and camera id; an unauthenticated frame or stream that would fit only
in an authenticated one's place is refused instead (``tests/test_ingest_shares.py``).
"""

from __future__ import annotations

import bisect
import hmac
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence

from edge_anpr.config import CameraConfig, IngestConfig
from edge_anpr.ingest.events import Address, Dropped, Event, FrameReady, IngestStats
from edge_anpr.ingest.inflight import Partial, SlotKey, Stream, frame_cost, seq_distance
from edge_anpr.ingest.protocol import (
    HEADER_BYTES,
    LEGACY_HEADER,
    MAGIC,
    SEQ_MODULO,
    BadDatagram,
    DropReason,
    compute_tag,
    key_bytes,
    parse_header,
    seq_newer,
)
from edge_anpr.ingest.replay import ReplayGuard
from edge_anpr.ingest.runs import CoalescedRuns
from edge_anpr.values import Frame

RESYNC_FRAMES = 1024
"""A frame number this far *behind* the last one handed on means the sender restarted its
numbering (a late frame is never a thousand frames late): the stream starts over instead of
dropping every frame as late until the counter catches up."""
FAR_LATE_RESYNC = 3
"""Frames in a row, each newer than the one before, arriving further behind the last frame
handed on than a stream can have in flight, that make the stream start over. Reordering never
does that (a late chunk belongs to a frame that was in flight); a stream that goes on below its
last number does: a sender that restarted just behind its old numbers, or one spoofed datagram
that completed a frame numbered far ahead. Without this, that one datagram made the next
thousand frames of the stream ``late``; with it, two are."""


_NO_EVENTS: tuple[Event, ...] = ()


class Reassembler(CoalescedRuns):
    """Datagrams in, frames and counted drops out. One instance per listening socket.

    It reads its limits, keys and formats from ``ingest`` and, of ``cameras``, each camera's
    name, sequenced ``id``, legacy ``source`` and ``key``. ``replay_last_us`` is the replay
    state saved by an earlier run (``replay.last_us()``: camera id -> last accepted capture
    time); ``replay`` is None when ``ingest.replay_window_s`` is 0.
    """

    def __init__(
        self, ingest: IngestConfig, cameras: Mapping[str, CameraConfig] | None = None,
        *, replay_last_us: Mapping[int, int] | None = None,
    ) -> None:
        ing = ingest
        self._legacy_on = ing.legacy
        self._max_frame = ing.max_frame_bytes
        self._timeout_s = ing.frame_timeout_s
        self._stream_idle_s = max(10 * ing.frame_timeout_s, 10.0)
        self._per_stream = ing.max_frames_in_flight_per_stream
        self._max_frames = ing.max_frames_in_flight_total
        self._max_bytes = ing.max_buffered_bytes
        self._max_senders = ing.max_senders
        self._per_source = ing.max_streams_per_source
        self._capped_streams: Counter[str] = Counter()
        """Per source address: its unauthenticated streams of unconfigured camera ids."""
        self._allow_unauth = ing.allow_unauthenticated
        global_key = key_bytes(ing.key)
        self._cam_names: dict[int, str] = {}
        self._cam_keys: dict[int, bytes | None] = {}
        self._global_key = global_key
        self._legacy_names: dict[str, str] = {}
        self._unauth_ids: set[int] = set()
        """Camera ids whose unauthenticated datagrams are taken even when unauthenticated
        senders are not (``cameras.<name>.allow_unauthenticated``)."""
        self._legacy_ok: dict[str, bool] = {}
        """Per configured legacy source: may its frames be taken (``_legacy_allowed``)."""
        for name, cam in (cameras or {}).items():
            if cam.id >= 0:
                self._cam_names[cam.id] = name
                self._cam_keys[cam.id] = key_bytes(cam.key) or global_key
                if cam.allow_unauthenticated:
                    self._unauth_ids.add(cam.id)
            if cam.source:
                self._legacy_names[cam.source] = name
                # A legacy frame carries no tag: a camera with a key of its own is one that
                # authenticates, so a legacy frame claiming its address is refused.
                self._legacy_ok[cam.source] = cam.allow_unauthenticated or (
                    ing.allow_unauthenticated and not cam.key
                )
        self.replay = (
            ReplayGuard(ing.replay_window_s, replay_last_us) if ing.replay_window_s > 0 else None
        )
        self.stats = IngestStats()
        self._legacy: dict[Address, Partial] = {}
        self._streams: dict[tuple[str, int], Stream] = {}
        # Least recently active first, unauthenticated ones [False] apart from authenticated
        # ones [True]: tracked senders (legacy frames in progress and sequenced streams), and
        # frames in progress of both formats with the bytes charged for them.
        self._senders_lru: tuple[OrderedDict[SlotKey, Partial | Stream], ...] = (
            OrderedDict(), OrderedDict(),
        )
        self._frames_lru: tuple[OrderedDict[SlotKey, Partial], ...] = (OrderedDict(), OrderedDict())
        self._bytes = [0, 0]

    # -- bounds, for tests and the stats line ---------------------------------------------

    def tracked_bytes(self) -> int:
        """Bytes charged for frames in progress (at most ``ingest.max_buffered_bytes``): each
        frame's announced length plus its per-chunk bookkeeping."""
        return self._bytes[0] + self._bytes[1]

    def tracked_frames(self) -> int:
        """Frames in progress (at most ``ingest.max_frames_in_flight_total``)."""
        return len(self._frames_lru[0]) + len(self._frames_lru[1])

    def tracked_senders(self) -> int:
        """Legacy senders with a frame in progress plus sequenced streams (<= max_senders)."""
        return len(self._senders_lru[0]) + len(self._senders_lru[1])

    # -- input ------------------------------------------------------------------------------

    def feed(
        self, data: bytes, sender: Address, now_s: float, wall_us: int | None = None
    ) -> Sequence[Event]:
        """Take one datagram from ``sender`` received at monotonic time ``now_s`` and wall-clock
        time ``wall_us`` (microseconds since the epoch; without it no authenticated frame is
        fresh while replay protection is on)."""
        st = self.stats
        st.datagrams += 1
        st.datagram_bytes += len(data)
        if data[:4] == MAGIC:
            return self._feed_sequenced(data, sender, now_s, wall_us)
        if not self._legacy_on:
            return self._drop("legacy_disabled", sender, None, "legacy format is disabled")
        if not self._legacy_ok.get(sender[0], self._allow_unauth):
            return self._drop(
                "unauthenticated", sender, self._legacy_name(sender[0]),
                "legacy frames carry no tag and this sender may not send unauthenticated ones",
            )
        return self._feed_legacy(data, sender, now_s)

    def expire(self, now_s: float) -> list[Event]:
        """Drop frames idle for ``frame_timeout_s`` and forget long-idle streams.

        Both LRU maps are ordered by last activity, so this stops at the first live entry.
        """
        events: list[Event] = []
        cutoff = now_s - self._timeout_s
        for frames in self._frames_lru:
            while frames:
                part = next(iter(frames.values()))
                if part.last_s > cutoff:
                    break
                events.append(self._discard(
                    part, "timeout", f"no datagram for {self._timeout_s:g} s",
                ))
        idle_cutoff = now_s - self._stream_idle_s
        for senders in self._senders_lru:
            while senders:
                owner = next(iter(senders.values()))
                if owner.last_s > idle_cutoff or not isinstance(owner, Stream) or owner.frames:
                    break
                del senders[owner.key]
                self._forget_stream(owner)
        return events

    # -- legacy -----------------------------------------------------------------------------

    def _legacy_name(self, ip: str) -> str:
        name = self._legacy_names.get(ip)
        return name if name is not None else f"legacy-{ip}"

    def _feed_legacy(self, data: bytes, sender: Address, now_s: float) -> Sequence[Event]:
        part = self._legacy.get(sender)
        size = len(data)
        # The original server took any 4-byte datagram for a header, which broke frames whose
        # last chunk was 4 bytes long; here it is data when exactly 4 bytes are missing.
        if size == 4 and (part is None or part.length - part.covered != 4):
            events: list[Event] = []
            if part is not None:
                events.append(self._discard(
                    part, "abandoned", f"new header after {part.covered} of {part.length} bytes",
                ))
            (length,) = LEGACY_HEADER.unpack(data)
            camera = self._legacy_name(sender[0])
            if length == 0 or length > self._max_frame:
                events.extend(self._drop(
                    "bad_length", sender, camera,
                    f"legacy header announces {length} bytes (max {self._max_frame})",
                ))
                return events
            key: SlotKey = ("L", sender[0], sender[1])
            if not self._make_sender_room(False, events):
                events.extend(self._drop(
                    "memory_limit", sender, camera,
                    f"all {self._max_senders} tracked senders are authenticated streams",
                ))
                return events
            if length > self._max_bytes:
                events.extend(self._drop(
                    "memory_limit", sender, camera,
                    f"frame of {length} bytes exceeds ingest.max_buffered_bytes",
                ))
                return events
            if not self._make_room(frame_cost(length, 0), False, events):
                events.extend(self._drop(
                    "memory_limit", sender, camera,
                    "the frames in progress of authenticated streams leave no room",
                ))
                return events
            part = Partial(key, sender, None, camera, length, 0, 0, 0, now_s)
            self._legacy[sender] = part
            self._senders_lru[False][key] = part
            self._add_frame(part)
            return events
        if part is None:
            return self._drop(
                "no_frame", sender, self._legacy_name(sender[0]),
                f"{size}-byte datagram with no frame in progress",
            )
        covered = part.covered
        if covered + size > part.length:
            return [self._discard(
                part, "overflow", f"{size} bytes after {covered} of {part.length} would overflow",
            )]
        part.buf += data
        part.covered = covered + size
        part.last_s = now_s
        self._frames_lru[False].move_to_end(part.key)
        self._senders_lru[False].move_to_end(part.key)
        if part.covered < part.length:
            return _NO_EVENTS
        self._remove_frame(part)
        return [self._ready(part, sender, None, now_s)]

    # -- sequenced --------------------------------------------------------------------------

    def _feed_sequenced(
        self, data: bytes, sender: Address, now_s: float, wall_us: int | None
    ) -> Sequence[Event]:
        try:
            flags, cam_id, seq, index, count, length, off, time_us, n = parse_header(
                data, self._max_frame
            )
        except BadDatagram as exc:
            return self._drop(exc.reason, sender, self._camera_of(data), exc.detail)
        name = self._cam_names.get(cam_id)
        camera = name if name is not None else f"cam-{cam_id}"
        key = self._cam_keys.get(cam_id, self._global_key)
        view = memoryview(data)
        end = HEADER_BYTES + n
        if key is not None:
            if not flags:
                return self._drop("unauthenticated", sender, camera, "untagged datagram")
            if not hmac.compare_digest(compute_tag(key, view[:end]), view[end:]):
                return self._drop("bad_tag", sender, camera, "tag does not match the key")
            if self.replay is not None:
                refused = self.replay.check(cam_id, time_us, wall_us)
                if refused is not None and not self._late_or_duplicate(sender, cam_id, seq):
                    return self._drop(refused[0], sender, camera, refused[1])
        elif not (self._allow_unauth or cam_id in self._unauth_ids):
            return self._drop(
                "unauthenticated", sender, camera,
                "no key configured for this camera and unauthenticated senders are not allowed",
            )
        payload = view[HEADER_BYTES:end]
        events: list[Event] = []
        stream = self._streams.get((sender[0], cam_id))
        if stream is None:
            # A source may make up camera ids, but only a bounded share of the tracked streams:
            # ids that are configured, or that authenticate, are not the source's to invent.
            capped = key is None and name is None
            if capped and self._capped_streams[sender[0]] >= self._per_source:
                return self._drop(
                    "source_limit", sender, camera,
                    f"{self._per_source} unauthenticated streams from this address already "
                    "(ingest.max_streams_per_source)",
                )
            auth = key is not None
            if not self._make_sender_room(auth, events):
                events.extend(self._drop(
                    "memory_limit", sender, camera,
                    f"all {self._max_senders} tracked senders are authenticated streams",
                ))
                return events
            skey: SlotKey = ("S", sender[0], cam_id)
            stream = Stream(skey, camera, now_s, auth)
            if capped:
                stream.capped = True
                self._capped_streams[sender[0]] += 1
            self._streams[(sender[0], cam_id)] = stream
            self._senders_lru[auth][skey] = stream
        else:
            self._senders_lru[stream.auth].move_to_end(stream.key)
        stream.last_s = now_s
        part = stream.frames.get(seq)
        if part is None:
            if stream.last_handed is not None:
                behind = (stream.last_handed - seq) % SEQ_MODULO
                if behind == 0:
                    self.stats.duplicates += 1
                    return events
                if behind <= RESYNC_FRAMES and not self._goes_on_below(stream, seq, behind):
                    if seq not in stream.late_seen:
                        stream.late_seen.append(seq)
                        events.extend(self._drop(
                            "late", sender, camera,
                            f"frame {seq} is older than frame {stream.last_handed} handed on",
                        ))
                    return events
                if behind < SEQ_MODULO // 2:
                    # Far behind: the sender restarted its numbering. Start the stream over.
                    self.stats.streams_reset += 1
                    for old in list(stream.frames.values()):
                        events.append(self._discard(old, "lost", "sender restarted numbering"))
                    stream.last_handed = None
                    stream.late_seen.clear()
                    stream.far_late_run, stream.far_late_last = 0, None
            if len(stream.frames) >= self._per_stream:
                oldest = min(stream.frames.values(), key=lambda p: seq_distance(p.seq, seq))
                if seq_distance(oldest.seq, seq) > 0:
                    # The new frame is older than every frame in flight: it is the one to drop.
                    events.extend(self._drop(
                        "stream_limit", sender, camera,
                        f"frame {seq} is older than the {len(stream.frames)} frames in flight",
                    ))
                    return events
                events.append(self._discard(
                    oldest, "stream_limit",
                    f"{len(stream.frames)} frames in flight when frame {seq} started",
                ))
            cost = frame_cost(length, count)
            if cost > self._max_bytes:
                events.extend(self._drop(
                    "memory_limit", sender, camera,
                    f"frame of {length} bytes in {count} chunks costs more than "
                    f"ingest.max_buffered_bytes ({self._max_bytes})",
                ))
                return events
            if not self._make_room(cost, stream.auth, events):
                events.extend(self._drop(
                    "memory_limit", sender, camera,
                    "the frames in progress of authenticated streams leave no room",
                ))
                return events
            part = Partial(
                ("S", sender[0], cam_id, seq), sender, stream, camera, length, count, seq,
                time_us, now_s,
            )
            stream.frames[seq] = part
            self._add_frame(part)
        elif count != part.count or length != part.length or time_us != part.time_us:
            events.append(self._discard(
                part, "inconsistent",
                f"chunk says count={count} length={length} time={time_us}, "
                f"frame says count={part.count} length={part.length} time={part.time_us}",
            ))
            return events
        if part.got[index]:
            self.stats.duplicates += 1
            return events
        end = off + len(payload)
        starts = part.starts
        pos = bisect.bisect_right(starts, off)
        if (pos > 0 and part.ends[pos - 1] > off) or (pos < len(starts) and starts[pos] < end):
            events.append(self._discard(
                part, "overlap", f"chunk {index} bytes {off}..{end} overlap earlier chunks",
            ))
            return events
        starts.insert(pos, off)
        part.ends.insert(pos, end)
        part.pieces.insert(pos, bytes(payload))
        part.got[index] = 1
        part.received += 1
        part.covered += end - off
        part.last_s = now_s
        part.sender = sender
        self._frames_lru[part.auth].move_to_end(part.key)
        if part.received < part.count:
            if part.covered >= part.length:
                events.append(self._discard(
                    part, "inconsistent",
                    f"{part.received} of {part.count} chunks already cover all {part.length} bytes",
                ))
            return events
        if part.covered != part.length:
            events.append(self._discard(
                part, "inconsistent",
                f"all {part.count} chunks cover {part.covered} of {part.length} bytes",
            ))
            return events
        return self._complete_sequenced(stream, part, now_s, events)

    def _complete_sequenced(
        self, stream: Stream, part: Partial, now_s: float, events: list[Event],
    ) -> list[Event]:
        seq = part.seq
        cam_id = stream.key[2]
        guard = self.replay
        if guard is not None and self._cam_keys.get(cam_id, self._global_key) is not None:
            refused = guard.check_newer(cam_id, part.time_us)
            if refused is not None:  # a newer frame of the camera was handed on meanwhile
                events.append(self._discard(part, refused[0], refused[1]))
                return events
            guard.accept(cam_id, part.time_us)
        self._remove_frame(part)
        older = [p for p in stream.frames.values() if seq_newer(seq, p.seq)]
        older.sort(key=lambda p: (seq - p.seq) % SEQ_MODULO, reverse=True)
        for other in older:
            events.append(self._discard(other, "lost", f"frame {seq} completed first"))
        # Chunks of frames at or before last_handed are refused on arrival, so a frame that
        # completes here is always newer than the last one handed on.
        stream.last_handed = seq
        stream.far_late_run, stream.far_late_last = 0, None
        events.append(self._ready(part, part.sender, seq, now_s))
        return events

    def _forget_stream(self, stream: Stream) -> None:
        ip = stream.key[1]
        del self._streams[(ip, stream.key[2])]
        if stream.capped:
            left = self._capped_streams[ip] - 1
            if left:
                self._capped_streams[ip] = left
            else:
                del self._capped_streams[ip]

    def _late_or_duplicate(self, sender: Address, cam_id: int, seq: int) -> bool:
        """Whether a chunk the replay rules refuse is one the stream itself takes for a
        duplicate of its last frame or a late chunk of a frame it could have had in flight:
        network reordering, counted as such. Neither changes the stream's state, so a replay
        can never reset a stream (``_goes_on_below``) or make its frames late."""
        stream = self._streams.get((sender[0], cam_id))
        if stream is None or stream.last_handed is None or seq in stream.frames:
            return False
        return (stream.last_handed - seq) % SEQ_MODULO <= self._per_stream

    def _goes_on_below(self, stream: Stream, seq: int, behind: int) -> bool:
        """Whether the new frame ``seq``, ``behind`` numbers behind the last one handed on, is
        the ``FAR_LATE_RESYNC``-th in a row of a stream going on below that number."""
        if behind <= self._per_stream or seq == stream.far_late_last:
            return False
        last = stream.far_late_last
        newer = last is not None and seq_newer(seq, last)
        stream.far_late_run = stream.far_late_run + 1 if newer else 1
        stream.far_late_last = seq
        return stream.far_late_run >= FAR_LATE_RESYNC

    def _camera_of(self, data: bytes) -> str | None:
        if len(data) < 8:
            return None
        cam = int.from_bytes(data[6:8], "big")
        return self._cam_names.get(cam, f"cam-{cam}")

    # -- bookkeeping ------------------------------------------------------------------------

    def _ready(self, part: Partial, sender: Address, seq: int | None, now_s: float) -> FrameReady:
        self.stats.frames_completed += 1
        self.stats.frame_bytes += part.length
        # A stream is one camera id, whose key (or none) every chunk was checked against.
        stream = part.stream
        authenticated = stream is not None and (
            self._cam_keys.get(stream.key[2], self._global_key) is not None
        )
        return FrameReady(Frame(
            camera=part.camera, sender=sender,
            wire_format="legacy" if seq is None else "sequenced",
            sequence=seq, capture_time_us=part.time_us,
            jpeg=bytes(part.buf) if stream is None else b"".join(part.pieces),
            completed_monotonic_s=now_s, authenticated=authenticated,
        ))

    def _drop(
        self, reason: DropReason, sender: Address, camera: str | None, detail: str,
    ) -> list[Event]:
        self.stats.drops[reason] += 1
        return [Dropped(reason, sender, camera, detail, 0)]

    def _add_frame(self, part: Partial) -> None:
        self._frames_lru[part.auth][part.key] = part
        self._bytes[part.auth] += part.cost

    def _remove_frame(self, part: Partial) -> None:
        if self._frames_lru[part.auth].pop(part.key, None) is None:
            return
        self._bytes[part.auth] -= part.cost
        if part.stream is None:
            self._legacy.pop(part.sender, None)
            self._senders_lru[False].pop(part.key, None)
        else:
            part.stream.frames.pop(part.seq, None)

    def _discard(self, part: Partial, reason: DropReason, detail: str) -> Dropped:
        """Drop a frame in progress, free its buffer, and report what was missing."""
        self._remove_frame(part)
        self.stats.drops[reason] += 1
        if part.stream is None:
            return Dropped(reason, part.sender, part.camera, detail, 0)
        return Dropped(
            reason, part.sender, part.camera, f"frame {part.seq}: {detail}",
            part.count - part.received,
        )

    def _make_room(self, cost: int, auth: bool, events: list[Event]) -> bool:
        """Make room for one more frame costing ``cost`` bytes, of an authenticated stream or
        not; False (nothing dropped) when it cannot have any.

        Invariant: a frame of an authenticated stream is dropped for room only to make room
        for another one (``tests/test_ingest_shares.py``). Room is taken from the least
        recently active unauthenticated frame first; an unauthenticated frame that would fit
        only by dropping an authenticated one is refused instead.
        """
        unauth, authed = self._frames_lru
        if not auth and (
            len(authed) >= self._max_frames or self._bytes[True] + cost > self._max_bytes
        ):
            return False
        while unauth or authed:
            held = len(unauth) + len(authed)
            charged = self._bytes[False] + self._bytes[True]
            if held < self._max_frames and charged + cost <= self._max_bytes:
                break
            victim = next(iter((unauth or authed).values()))
            events.append(self._discard(
                victim, "memory_limit", f"{held} frames / {charged} bytes in flight, room needed",
            ))
        return True

    def _make_sender_room(self, auth: bool, events: list[Event]) -> bool:
        """Evict least recently active senders/streams until one more fits, unauthenticated
        ones first; an authenticated stream is evicted only for another one (False, nothing
        evicted, when an unauthenticated one would need that)."""
        unauth, authed = self._senders_lru
        while len(unauth) + len(authed) >= self._max_senders:
            if not unauth and not auth:
                return False
            _, owner = (unauth or authed).popitem(last=False)
            self.stats.senders_evicted += 1
            if isinstance(owner, Stream):
                self._forget_stream(owner)
                for part in list(owner.frames.values()):
                    events.append(self._discard(part, "evicted", "least recently active stream"))
            else:
                events.append(self._discard(owner, "evicted", "least recently active sender"))
        return True
