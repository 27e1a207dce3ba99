"""Every rule of PROTOCOL.md, through plain calls to the sans-IO reassembler."""

from __future__ import annotations

import random
import struct
from collections.abc import Iterable, Sequence
from typing import Any

import pytest

from edge_anpr.config import config_from_dict
from edge_anpr.ingest.events import Dropped, Event, FrameReady
from edge_anpr.ingest.inflight import CHUNK_OVERHEAD_BYTES, frame_cost
from edge_anpr.ingest.protocol import (
    HEADER,
    MAX_DATAGRAM,
    SEQ_MODULO,
    compute_tag,
    encode_legacy,
    encode_sequenced,
)
from edge_anpr.ingest.reassembly import Reassembler
from edge_anpr.values import Frame

A = ("10.0.0.1", 5000)
SECRET = b"s3cret-camera-key"
GLOBAL = b"global-sender-key"
OWN = b"own-camera-key-3"
B = ("10.0.0.2", 5001)


def make(
    ingest: dict[str, Any] | None = None, cameras: dict[str, Any] | None = None
) -> Reassembler:
    # The frames here carry no capture time: replay protection has its own tests
    # (test_ingest_replay.py), so it is off unless a test turns it on.
    ing = {"replay_window_s": 0, **(ingest or {})}
    cfg = config_from_dict({"ingest": ing, "cameras": cameras or {}})
    return Reassembler(cfg.ingest, cfg.cameras)


def payload(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def feed(r: Reassembler, datagrams: Iterable[bytes], sender: tuple[str, int] = A,
         now: float = 0.0) -> list[Event]:
    out: list[Event] = []
    for d in datagrams:
        out.extend(r.feed(d, sender, now))
    return out


def ready(events: Sequence[Event]) -> list[Frame]:
    return [e.frame for e in events if isinstance(e, FrameReady)]


def dropped(events: Sequence[Event]) -> list[Dropped]:
    return [e for e in events if isinstance(e, Dropped)]


def reasons(events: Sequence[Event]) -> list[str]:
    return [e.reason for e in dropped(events)]


def raw(*, camera: int = 1, frame: int = 0, index: int = 0, count: int = 1,
        length: int | None = None, offset: int = 0, time_us: int = 0, body: bytes = b"abcd",
        version: int = 2, flags: int = 0, magic: bytes = b"EANP") -> bytes:
    """A hand-made sequenced datagram, for the cases the encoder refuses to produce."""
    length = len(body) if length is None else length
    return HEADER.pack(magic, version, flags, camera, frame, index, count, length, offset,
                       time_us) + body


# -- sequenced format -----------------------------------------------------------------------


def test_sequenced_frame_is_byte_identical_with_metadata() -> None:
    r = make()
    jpeg = payload(5000)
    events = feed(r, encode_sequenced(jpeg, camera=7, frame=42, time_us=123456))
    (frame,) = ready(events)
    assert frame.jpeg == jpeg
    assert (frame.camera, frame.sequence, frame.capture_time_us) == ("cam-7", 42, 123456)
    assert frame.wire_format == "sequenced"
    assert r.tracked_frames() == 0 and r.tracked_bytes() == 0


def test_reordered_chunks_reassemble() -> None:
    r = make()
    jpeg = payload(20000, seed=1)
    chunks = encode_sequenced(jpeg, camera=1, frame=1)
    random.Random(3).shuffle(chunks)
    (frame,) = ready(feed(r, chunks))
    assert frame.jpeg == jpeg


def test_duplicates_are_ignored_and_counted() -> None:
    r = make()
    jpeg = payload(6000)
    chunks = encode_sequenced(jpeg, camera=1, frame=1)
    events = feed(r, [c for c in chunks[:-1] for _ in range(2)] + chunks[-1:] + chunks)
    assert [f.jpeg for f in ready(events)] == [jpeg]
    assert dropped(events) == []
    assert r.stats.duplicates == (len(chunks) - 1) + len(chunks)


def test_overlapping_payloads_reject_the_frame() -> None:
    r = make()
    events = feed(r, [
        raw(index=0, count=2, length=8, offset=0, body=b"abcde"),
        raw(index=1, count=2, length=8, offset=4, body=b"efgh"),
    ])
    assert ready(events) == []
    assert reasons(events) == ["overlap"]
    assert r.tracked_frames() == 0


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (raw(version=3), "malformed"),
        (raw(flags=0x02), "malformed"),
        (raw(index=2, count=2, length=8), "malformed"),
        (raw(count=0), "malformed"),
        (raw(offset=2, length=4), "malformed"),  # offset + n > length
        (raw(length=5 * 1024 * 1024), "bad_length"),  # above max_frame_bytes
        (raw(length=0, body=b""), "bad_length"),
        (raw(body=b"")[:20], "malformed"),  # shorter than the header
        (raw(body=b"", length=1), "malformed"),  # no payload
        (raw(flags=0x01, body=b"")[:40], "malformed"),  # tag flag, no room for a tag
    ],
)
def test_bad_headers_are_rejected(datagram: bytes, reason: str) -> None:
    r = make()
    events = r.feed(datagram, A, 0.0)
    assert reasons(events) == [reason]
    assert r.stats.drops[reason] == 1
    assert r.tracked_frames() == 0


def test_wrong_magic_is_not_sequenced() -> None:
    # Only "EANP" selects the sequenced format; anything else is legacy input.
    r = make({"legacy": False})
    assert reasons(r.feed(raw(magic=b"EANQ"), A, 0.0)) == ["legacy_disabled"]
    r2 = make()
    assert reasons(r2.feed(raw(magic=b"EANQ"), A, 0.0)) == ["no_frame"]


@pytest.mark.parametrize(
    "second",
    [
        raw(index=1, count=3, length=12, offset=4, body=b"efgh"),  # count differs
        raw(index=1, count=2, length=9, offset=4, body=b"efgh"),  # length differs
        raw(index=1, count=2, length=8, offset=4, body=b"efgh", time_us=9),  # time differs
    ],
)
def test_inconsistent_chunks_reject_the_frame(second: bytes) -> None:
    r = make()
    first = raw(index=0, count=2, length=8, offset=0, body=b"abcd")
    events = feed(r, [first, second])
    assert reasons(events) == ["inconsistent"]
    assert ready(events) == [] and r.tracked_frames() == 0


def test_chunks_that_cannot_cover_the_length_are_rejected() -> None:
    r = make()
    events = feed(r, [
        raw(index=0, count=2, length=10, offset=0, body=b"abcd"),
        raw(index=1, count=2, length=10, offset=4, body=b"efgh"),
    ])
    assert reasons(events) == ["inconsistent"]
    assert ready(events) == []


def test_incomplete_frame_expires_with_missing_count() -> None:
    r = make({"frame_timeout_s": 1.0})
    chunks = encode_sequenced(payload(10000), camera=1, frame=1)
    feed(r, chunks[:3], now=10.0)
    assert r.expire(10.9) == []
    (drop,) = dropped(r.expire(11.01))
    assert (drop.reason, drop.missing_chunks, drop.camera) == ("timeout", len(chunks) - 3, "cam-1")
    assert r.tracked_frames() == 0 and r.tracked_bytes() == 0


def test_activity_postpones_expiry() -> None:
    r = make({"frame_timeout_s": 1.0})
    chunks = encode_sequenced(payload(10000), camera=1, frame=1)
    feed(r, chunks[:2], now=0.0)
    feed(r, chunks[2:4], now=0.8)
    assert r.expire(1.5) == []
    assert ready(feed(r, chunks[4:], now=1.6))


def test_newer_complete_frame_drops_older_incomplete_as_lost() -> None:
    r = make()
    old = encode_sequenced(payload(8000, 1), camera=1, frame=10)
    new = encode_sequenced(payload(3000, 2), camera=1, frame=11)
    events = feed(r, old[:2] + new)
    assert [f.sequence for f in ready(events)] == [11]
    (lost,) = dropped(events)
    assert (lost.reason, lost.missing_chunks) == ("lost", len(old) - 2)
    # The rest of frame 10 is late now: one drop for the frame, not one per chunk.
    late = feed(r, old[2:])
    assert reasons(late) == ["late"]
    assert ready(late) == []


def test_completed_frames_are_handed_on_in_order() -> None:
    r = make()
    f1 = encode_sequenced(payload(3000, 1), camera=1, frame=1)
    f2 = encode_sequenced(payload(3000, 2), camera=1, frame=2)
    f3 = encode_sequenced(payload(3000, 3), camera=1, frame=3)
    # Interleaved: 1 and 2 both in flight, 2 completes before 1, then 3.
    events = feed(r, f1[:1] + f2 + f1[1:] + f3)
    assert [f.sequence for f in ready(events)] == [2, 3]
    assert reasons(events) == ["lost", "late"]


def test_late_frame_after_a_newer_one_is_dropped() -> None:
    r = make()
    feed(r, encode_sequenced(payload(3000), camera=1, frame=5))
    events = feed(r, encode_sequenced(payload(3000), camera=1, frame=4))
    assert ready(events) == [] and reasons(events) == ["late"]
    # A repeat of the frame already handed on is a duplicate, not a new frame.
    again = feed(r, encode_sequenced(payload(3000), camera=1, frame=5))
    assert again == [] and r.stats.duplicates == len(encode_sequenced(payload(3000), camera=1,
                                                                       frame=5))


def test_sequence_numbers_wrap_at_2_32() -> None:
    r = make()
    seqs = [SEQ_MODULO - 2, SEQ_MODULO - 1, 0, 1]
    events = feed(r, [d for s in seqs for d in encode_sequenced(payload(2000, s), camera=1,
                                                               frame=s)])
    assert [f.sequence for f in ready(events)] == seqs
    assert dropped(events) == []
    late = feed(r, encode_sequenced(payload(2000), camera=1, frame=SEQ_MODULO - 1))
    assert reasons(late) == ["late"]


def test_wrap_keeps_in_order_rule_for_in_flight_frames() -> None:
    r = make()
    before = encode_sequenced(payload(6000, 1), camera=1, frame=SEQ_MODULO - 1)
    after = encode_sequenced(payload(2000, 2), camera=1, frame=0)
    events = feed(r, before[:1] + after)
    assert [f.sequence for f in ready(events)] == [0]
    assert [(d.reason, d.missing_chunks) for d in dropped(events)] == [("lost", len(before) - 1)]


def test_sender_restarting_its_numbering_starts_the_stream_over() -> None:
    r = make()
    feed(r, encode_sequenced(payload(2000), camera=1, frame=500_000))
    events = feed(r, encode_sequenced(payload(2000), camera=1, frame=0))
    assert [f.sequence for f in ready(events)] == [0]
    assert r.stats.streams_reset == 1


def test_streams_are_per_source_address_and_camera() -> None:
    r = make()
    a = encode_sequenced(payload(4000, 1), camera=1, frame=7)
    b = encode_sequenced(payload(4000, 2), camera=1, frame=7)
    c = encode_sequenced(payload(4000, 3), camera=2, frame=7)
    events = []
    for da, db, dc in zip(a, b, c, strict=True):
        events += r.feed(da, A, 0.0)
        events += r.feed(db, B, 0.0)
        events += r.feed(dc, A, 0.0)
    got = {(f.sender[0], f.camera): f.jpeg for f in ready(events)}
    assert got == {("10.0.0.1", "cam-1"): payload(4000, 1), ("10.0.0.2", "cam-1"): payload(4000, 2),
                   ("10.0.0.1", "cam-2"): payload(4000, 3)}


def test_too_many_frames_in_flight_per_stream_drops_the_oldest() -> None:
    r = make({"max_frames_in_flight_per_stream": 2})
    frames = [encode_sequenced(payload(5000, s), camera=1, frame=s) for s in (1, 2, 3)]
    events = feed(r, [f[0] for f in frames])
    assert [(d.reason, d.detail.split(":")[0]) for d in dropped(events)] == [
        ("stream_limit", "frame 1")
    ]
    assert r.tracked_frames() == 2
    # An even older frame than those in flight is the one refused.
    events = feed(r, encode_sequenced(payload(5000), camera=1, frame=0)[:1])
    assert reasons(events) == ["stream_limit"] and r.tracked_frames() == 2


@pytest.mark.parametrize("base", [1, SEQ_MODULO - 3])
def test_stream_limit_drops_the_oldest_even_when_a_newer_frame_is_in_flight(base: int) -> None:
    r = make({"max_frames_in_flight_per_stream": 2})
    old, new, middle = base, (base + 4) % SEQ_MODULO, (base + 2) % SEQ_MODULO
    for s in (old, new, middle):
        events = feed(r, encode_sequenced(payload(5000, 1), camera=1, frame=s)[:1])
    assert [d.detail.split(":")[0] for d in dropped(events)] == [f"frame {old}"]
    assert reasons(events) == ["stream_limit"] and r.tracked_frames() == 2


def test_global_byte_budget_evicts_least_recently_active_frame() -> None:
    r = make({"max_buffered_bytes": 65536, "max_frame_bytes": 40000})
    f1 = encode_sequenced(payload(30000, 1), camera=1, frame=1)
    f2 = encode_sequenced(payload(30000, 2), camera=2, frame=1)
    f3 = encode_sequenced(payload(30000, 3), camera=3, frame=1)
    feed(r, f1[:1], now=0.0)
    feed(r, f2[:1], now=0.1)
    feed(r, f1[1:2], now=0.2)  # camera 1 is now more recently active than camera 2
    events = feed(r, f3[:1], now=0.3)
    assert [(d.reason, d.camera) for d in dropped(events)] == [("memory_limit", "cam-2")]
    assert r.tracked_bytes() == 2 * frame_cost(30000, len(f1)) <= 65536
    assert ready(feed(r, f1[2:] + f3[1:]))  # the survivors still complete


def test_many_tiny_chunks_are_charged_to_the_byte_budget() -> None:
    r = make({"max_buffered_bytes": 8 << 20})
    # 60,000 one-byte chunks announced: the bookkeeping, not the 60 KB, is what costs memory.
    r.feed(raw(index=0, count=60000, length=60000, body=b"x"), A, 0.0)
    assert r.tracked_bytes() == 60000 + 60000 * CHUNK_OVERHEAD_BYTES
    events = r.feed(raw(camera=2, index=0, count=60000, length=60000, body=b"x"), A, 0.0)
    assert [(d.reason, d.camera) for d in dropped(events)] == [("memory_limit", "cam-1")]
    assert r.tracked_bytes() <= 8 << 20 and r.tracked_frames() == 1


def test_frame_costing_more_than_the_whole_budget_is_refused() -> None:
    r = make({"max_buffered_bytes": 1 << 20, "max_frame_bytes": 2 << 20})
    events = r.feed(raw(index=0, count=2, length=1_500_000, body=b"x"), A, 0.0)
    assert reasons(events) == ["memory_limit"] and r.tracked_frames() == 0
    events = feed(r, [struct.pack("<I", 1_500_000), b"y" * 100])
    assert reasons(events) == ["memory_limit", "no_frame"] and r.tracked_bytes() == 0


def test_count_above_length_is_malformed() -> None:
    r = make()
    assert reasons(r.feed(raw(index=0, count=10, length=4, body=b"abcd"), A, 0.0)) == [
        "malformed"
    ]


def test_legacy_header_costs_no_memory_until_data_arrives() -> None:
    import tracemalloc

    r = make()
    tracemalloc.start()
    try:
        for port in range(100):  # 100 headers announcing 4 MiB each: 400 MiB if preallocated
            r.feed(struct.pack("<I", 4 * 1024 * 1024), ("10.0.0.1", port), 0.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert r.tracked_bytes() <= 64 * 1024 * 1024  # the budget still counts what was announced
    assert r.stats.drops["memory_limit"] == 100 - 16


def test_sequenced_header_costs_only_the_data_that_arrived() -> None:
    import tracemalloc

    r = make()
    body = b"x" * 1400
    # 100 first chunks of frames announcing 4 MiB (2,996 chunks): 400 MiB if preallocated
    datagrams = [raw(camera=cam, frame=1, count=2996, length=4 * 1024 * 1024, body=body)
                 for cam in range(100)]
    tracemalloc.start()
    try:
        for cam, d in enumerate(datagrams):
            r.feed(d, (f"10.0.{cam}.1", 1), 0.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    # the budget still counts what was announced
    fit = 64 * 1024 * 1024 // frame_cost(4 * 1024 * 1024, 2996)
    assert r.tracked_frames() == fit == 14
    assert r.stats.drops["memory_limit"] == 100 - fit
    # chunks out of order still assemble: the ranges received are joined when complete
    jpeg = payload(20000)
    chunks = encode_sequenced(jpeg, camera=500, frame=1)
    (f,) = ready(feed(r, chunks[::-1], sender=B))
    assert f.jpeg == jpeg


def test_global_frame_count_bound() -> None:
    r = make({"max_frames_in_flight_total": 3})
    for cam in range(6):
        feed(r, encode_sequenced(payload(3000), camera=cam, frame=1)[:1])
        assert r.tracked_frames() <= 3
    assert r.stats.drops["memory_limit"] == 3


def test_least_recently_active_stream_is_evicted() -> None:
    r = make({"max_senders": 2})
    part = encode_sequenced(payload(5000), camera=1, frame=1)
    feed(r, part[:1], sender=("10.0.0.1", 1), now=0.0)
    feed(r, part[:1], sender=("10.0.0.2", 1), now=0.1)
    feed(r, part[1:2], sender=("10.0.0.1", 1), now=0.2)  # .1 active again: .2 is the oldest
    events = feed(r, part[:1], sender=("10.0.0.3", 1), now=0.3)
    assert [(d.reason, d.sender[0]) for d in dropped(events)] == [("evicted", "10.0.0.2")]
    assert r.stats.senders_evicted == 1 and r.tracked_senders() == 2


def test_configured_camera_names() -> None:
    r = make(cameras={"gate": {"id": 3}, "yard": {"source": "10.0.0.9"}})
    (f,) = ready(feed(r, encode_sequenced(payload(100), camera=3, frame=0)))
    assert f.camera == "gate"
    (g,) = ready(feed(r, encode_legacy(payload(100)), sender=("10.0.0.9", 4444)))
    assert g.camera == "yard"
    (h,) = ready(feed(r, encode_legacy(payload(100)), sender=("10.0.0.8", 4444)))
    assert h.camera == "legacy-10.0.0.8"


def test_idle_streams_are_forgotten() -> None:
    r = make({"frame_timeout_s": 1.0})
    feed(r, encode_sequenced(payload(100), camera=1, frame=0), now=0.0)
    assert r.tracked_senders() == 1
    r.expire(5.0)
    assert r.tracked_senders() == 1
    r.expire(10.5)
    assert r.tracked_senders() == 0


# -- authentication -------------------------------------------------------------------------


def test_valid_tag_for_a_camera_key_is_accepted() -> None:
    r = make(cameras={"gate": {"id": 3, "key": SECRET.decode()}})
    jpeg = payload(4000)
    (f,) = ready(feed(r, encode_sequenced(jpeg, camera=3, frame=1, key=SECRET)))
    assert f.jpeg == jpeg and f.camera == "gate"


@pytest.mark.parametrize(
    ("key", "reason"), [(b"wrong", "bad_tag"), (None, "unauthenticated")]
)
def test_bad_or_missing_tag_is_rejected(key: bytes | None, reason: str) -> None:
    r = make(cameras={"gate": {"id": 3, "key": SECRET.decode()}})
    chunks = encode_sequenced(payload(4000), camera=3, frame=1, key=key)
    events = feed(r, chunks)
    assert ready(events) == []
    assert set(reasons(events)) == {reason}
    assert r.stats.drops[reason] == len(chunks)
    assert r.tracked_senders() == 0  # rejected before any state is created


def test_tampered_payload_fails_the_tag() -> None:
    r = make({"key": GLOBAL.decode()})
    chunks = encode_sequenced(payload(100), camera=9, frame=1, key=GLOBAL)
    tampered = bytearray(chunks[0])
    tampered[40] ^= 0xFF
    assert reasons(r.feed(bytes(tampered), A, 0.0)) == ["bad_tag"]
    assert ready(feed(r, chunks))


def test_global_key_applies_to_unconfigured_cameras() -> None:
    r = make({"key": GLOBAL.decode()}, cameras={"gate": {"id": 3, "key": OWN.decode()}})
    assert ready(feed(r, encode_sequenced(payload(100), camera=5, frame=1, key=GLOBAL)))
    assert reasons(feed(r, encode_sequenced(payload(100), camera=3, frame=1, key=GLOBAL))) == [
        "bad_tag"
    ]
    assert ready(feed(r, encode_sequenced(payload(100), camera=3, frame=1, key=OWN)))


@pytest.mark.parametrize("allow", [True, False])
def test_allow_unauthenticated(allow: bool) -> None:
    r = make({"allow_unauthenticated": allow}, cameras={"gate": {"id": 3, "key": OWN.decode()}})
    events = feed(r, encode_sequenced(payload(100), camera=4, frame=1))
    if allow:
        assert len(ready(events)) == 1
    else:
        assert ready(events) == [] and reasons(events) == ["unauthenticated"]
    # A keyed camera needs its tag whatever the setting.
    assert reasons(feed(r, encode_sequenced(payload(100), camera=3, frame=1))) == [
        "unauthenticated"
    ]


def test_tag_covers_header_and_payload() -> None:
    (d,) = encode_sequenced(b"hello", camera=1, frame=2, key=b"k")
    assert d[-16:] == compute_tag(b"k", d[:-16])
    assert len(d) == 32 + 5 + 16


# -- legacy format --------------------------------------------------------------------------


def test_legacy_frame_reassembles() -> None:
    r = make()
    jpeg = payload(10000)
    datagrams = encode_legacy(jpeg)
    assert all(len(d) <= MAX_DATAGRAM for d in datagrams)
    (f,) = ready(feed(r, datagrams))
    assert f.jpeg == jpeg and f.wire_format == "legacy" and f.sequence is None
    assert f.camera == "legacy-10.0.0.1" and r.tracked_senders() == 0


def test_legacy_last_chunk_of_exactly_4_bytes_is_data() -> None:
    r = make()
    jpeg = payload(MAX_DATAGRAM + 4)
    datagrams = encode_legacy(jpeg)
    assert len(datagrams[-1]) == 4
    (f,) = ready(feed(r, datagrams))
    assert f.jpeg == jpeg
    assert dropped(feed(r, datagrams)) == []  # and the next frame works too


def test_legacy_4_bytes_when_more_remain_is_a_new_header() -> None:
    r = make()
    first = encode_legacy(payload(3000, 1))
    second = encode_legacy(payload(2000, 2))
    events = feed(r, first[:2] + second)
    assert [(d.reason, d.camera) for d in dropped(events)] == [("abandoned", "legacy-10.0.0.1")]
    assert [f.jpeg for f in ready(events)] == [payload(2000, 2)]


def test_legacy_overflow_abandons_the_frame() -> None:
    r = make()
    events = feed(r, [struct.pack("<I", 10), b"x" * 6, b"y" * 6])
    assert reasons(events) == ["overflow"] and ready(events) == []
    assert r.tracked_frames() == 0


def test_legacy_data_without_a_frame_is_ignored() -> None:
    r = make()
    assert reasons(r.feed(b"z" * 100, A, 0.0)) == ["no_frame"]
    assert r.tracked_senders() == 0


@pytest.mark.parametrize("n", [0, 4 * 1024 * 1024 + 1])
def test_legacy_header_out_of_range_is_rejected(n: int) -> None:
    r = make()
    events = feed(r, [struct.pack("<I", n), b"x" * 100])
    assert reasons(events) == ["bad_length", "no_frame"]


def test_legacy_frame_times_out() -> None:
    r = make({"frame_timeout_s": 0.5})
    feed(r, encode_legacy(payload(5000))[:2], now=0.0)
    assert reasons(r.expire(0.6)) == ["timeout"]
    assert r.tracked_senders() == 0 and r.tracked_bytes() == 0


def test_legacy_senders_are_per_address_and_port() -> None:
    r = make()
    a, b = encode_legacy(payload(4000, 1)), encode_legacy(payload(4000, 2))
    events = []
    for da, db in zip(a, b, strict=True):
        events += r.feed(da, ("10.0.0.1", 1), 0.0)
        events += r.feed(db, ("10.0.0.1", 2), 0.0)
    assert sorted(f.jpeg for f in ready(events)) == sorted([payload(4000, 1), payload(4000, 2)])


def test_legacy_disabled() -> None:
    r = make({"legacy": False})
    events = feed(r, encode_legacy(payload(100)))
    assert set(reasons(events)) == {"legacy_disabled"} and ready(events) == []
    assert ready(feed(r, encode_sequenced(payload(100), camera=1, frame=1)))


def test_least_recently_active_legacy_sender_is_evicted() -> None:
    r = make({"max_senders": 2})
    frame = encode_legacy(payload(5000))
    feed(r, frame[:2], sender=("10.0.0.1", 1), now=0.0)
    feed(r, frame[:2], sender=("10.0.0.2", 1), now=0.1)
    feed(r, frame[2:3], sender=("10.0.0.1", 1), now=0.2)
    events = feed(r, frame[:2], sender=("10.0.0.3", 1), now=0.3)
    assert [(d.reason, d.sender) for d in dropped(events)] == [("evicted", ("10.0.0.2", 1))]
    assert r.stats.senders_evicted == 1
    (f,) = ready(feed(r, frame[3:], sender=("10.0.0.1", 1), now=0.4))
    assert f.jpeg == payload(5000)


def test_stats_count_datagrams_frames_and_drops() -> None:
    r = make()
    chunks = encode_sequenced(payload(3000), camera=1, frame=1)
    feed(r, chunks)
    r.feed(b"junk", A, 0.0)  # 4 bytes: a legacy header announcing ~1.8 GB
    snap = r.stats.snapshot()
    assert snap["datagrams"] == len(chunks) + 1
    assert snap["frames_completed"] == 1 and snap["frame_bytes"] == 3000
    assert snap["dropped"] == {"bad_length": 1}


def test_only_frames_tagged_with_a_key_are_authenticated() -> None:
    r = make({"key": GLOBAL.decode()}, cameras={"gate": {"id": 3, "key": OWN.decode()},
                                                "open": {"id": 4}})
    (tagged,) = ready(feed(r, encode_sequenced(payload(100), camera=3, frame=1, key=OWN)))
    (global_key,) = ready(feed(r, encode_sequenced(payload(100), camera=9, frame=1, key=GLOBAL)))
    assert tagged.authenticated and global_key.authenticated
    r = make(cameras={"open": {"id": 4}})
    (untagged,) = ready(feed(r, encode_sequenced(payload(100), camera=4, frame=1)))
    # a tag with no key to check it against proves nothing
    (unchecked,) = ready(feed(r, encode_sequenced(payload(100), camera=4, frame=2, key=OWN)))
    (legacy,) = ready(feed(r, encode_legacy(payload(100))))
    assert not (untagged.authenticated or unchecked.authenticated or legacy.authenticated)


def test_legacy_frames_follow_the_authentication_rules() -> None:
    cams = {
        "keyed": {"id": 3, "key": OWN.decode(), "source": A[0]},
        "old": {"source": B[0]},
    }
    lenient = make(cameras=cams)
    # a legacy frame claiming a keyed camera's address is refused: it cannot carry a tag
    events = feed(lenient, encode_legacy(payload(100)), sender=A)
    assert ready(events) == [] and set(reasons(events)) == {"unauthenticated"}
    assert ready(feed(lenient, encode_legacy(payload(100)), sender=B))
    assert ready(feed(lenient, encode_legacy(payload(100)), sender=("10.0.0.7", 1)))
    strict = make({"allow_unauthenticated": False}, cameras=cams)
    for sender in (A, B, ("10.0.0.7", 1)):
        events = feed(strict, encode_legacy(payload(100)), sender=sender)
        assert ready(events) == [] and set(reasons(events)) == {"unauthenticated"}
    assert strict.tracked_senders() == 0
    # a camera may opt in, by name, to unauthenticated frames: legacy and untagged ones
    cams["old"]["allow_unauthenticated"] = True
    cams["new"] = {"id": 5, "allow_unauthenticated": True}
    strict = make({"allow_unauthenticated": False}, cameras=cams)
    (old,) = ready(feed(strict, encode_legacy(payload(100)), sender=B))
    (new,) = ready(feed(strict, encode_sequenced(payload(100), camera=5, frame=1)))
    assert (old.camera, new.camera) == ("old", "new")
    assert not (old.authenticated or new.authenticated)
    assert reasons(feed(strict, encode_sequenced(payload(100), camera=6, frame=1))) == [
        "unauthenticated"
    ]


def test_one_spoofed_datagram_far_ahead_costs_a_stream_two_frames_not_a_thousand() -> None:
    r = make()  # unauthenticated mode, the default
    real = [encode_sequenced(payload(3000, i), camera=1, frame=100 + i) for i in range(20)]
    assert ready(feed(r, real[0]))
    # one datagram, from the camera's address, completing frame 1,100
    assert ready(feed(r, encode_sequenced(b"spoof", camera=1, frame=1100)))
    events = feed(r, [d for frame in real[1:] for d in frame])
    got = [f.sequence for f in ready(events)]
    assert got == list(range(100 + 3, 120))
    assert reasons(events) == ["late", "late"] and r.stats.streams_reset == 1


def test_reordered_late_frames_stay_late() -> None:
    r = make()
    frames = [encode_sequenced(payload(3000, i), camera=1, frame=i) for i in range(12)]
    assert ready(feed(r, frames[10]))
    # older frames, every one within what a stream can have in flight: late, never a reset
    events = feed(r, [d for i in (7, 8, 9) for d in frames[i]])
    assert ready(events) == [] and reasons(events) == ["late"] * 3
    assert r.stats.streams_reset == 0


def test_an_unauthenticated_datagram_cannot_move_an_authenticated_camera() -> None:
    r = make(cameras={"gate": {"id": 3, "key": OWN.decode()}})
    first = encode_sequenced(payload(3000, 1), camera=3, frame=10, key=OWN)
    assert ready(feed(r, first))
    for spoof in (encode_sequenced(b"x", camera=3, frame=5000),
                  encode_sequenced(b"x", camera=3, frame=5001, key=b"not-the-key-at-all")):
        assert ready(feed(r, spoof)) == []
    following = [encode_sequenced(payload(3000, i), camera=3, frame=11 + i, key=OWN)
                 for i in range(5)]
    events = feed(r, [d for f in following for d in f])
    assert [f.sequence for f in ready(events)] == list(range(11, 16))
    assert all(f.authenticated for f in ready(events)) and dropped(events) == []


def test_one_source_cannot_make_up_more_than_its_share_of_camera_ids() -> None:
    r = make({"max_streams_per_source": 16, "key": ""}, cameras={"gate": {"id": 3}})
    chunk = payload(3000)
    first = [encode_sequenced(chunk, camera=100 + i, frame=1)[0] for i in range(2000)]
    events = feed(r, first)
    assert r.stats.drops["source_limit"] == 2000 - 16
    assert r.tracked_senders() == 16
    assert {d.camera for d in dropped(events)} >= {"cam-2099"}
    # the configured camera, and other sources, are not held to that share
    assert ready(feed(r, encode_sequenced(chunk, camera=3, frame=1)))
    assert ready(feed(r, encode_sequenced(chunk, camera=100, frame=1), sender=B))
    # the share frees up as the made-up streams are forgotten
    r.expire(0.5)
    r.expire(100.0)
    assert ready(feed(r, encode_sequenced(chunk, camera=5000, frame=1), now=100.0))


def test_share_of_camera_ids_is_given_back_when_streams_are_evicted() -> None:
    r = make({"max_streams_per_source": 4, "max_senders": 4})
    for round_ in range(3):
        for i in range(4):
            sender = A if (i + round_) % 2 else B
            assert ready(feed(r, encode_sequenced(b"x", camera=10 * round_ + i, frame=1),
                              sender=sender))
    assert r.stats.drops["source_limit"] == 0 and r.stats.senders_evicted == 8
