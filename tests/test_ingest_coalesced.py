"""A coalesced receive (UDP GRO) fed whole gives exactly what its datagrams fed one by one give."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_ingest_property import BOUNDS, KEY, SENDERS, operations

from edge_anpr.config import config_from_dict
from edge_anpr.ingest.events import Event, FrameReady
from edge_anpr.ingest.protocol import HEADER, MAGIC, VERSION, encode_legacy, encode_sequenced
from edge_anpr.ingest.reassembly import Reassembler

SENDER = ("10.0.0.9", 5000)


def _reassembler(legacy: bool = True, allow_unauth: bool = True) -> Reassembler:
    cfg = config_from_dict({
        # frames here carry no capture time, so replay protection would refuse camera 1's
        "ingest": {**BOUNDS, "legacy": legacy, "allow_unauthenticated": allow_unauth,
                   "replay_window_s": 0},
        "cameras": {"one": {"id": 1, "key": KEY.decode()}},
    })
    return Reassembler(cfg.ingest, cfg.cameras)


def _state(r: Reassembler) -> tuple[object, ...]:
    return (r.stats.snapshot(), r.tracked_bytes(), r.tracked_frames(), r.tracked_senders())


def _buffers(
    ops: list[tuple[str, int, bytes, float]], merge: list[bool]
) -> list[tuple[int, bytes, int, float]]:
    """The ops' datagrams grouped as GRO would: runs of one sender's equal-size datagrams with
    no time between them, closed by at most one shorter one. ``merge[i]`` says whether op
    ``i`` may join the buffer before it (GRO also leaves runs uncoalesced)."""
    out: list[tuple[int, bytes, int, float]] = []
    i = 0
    while i < len(ops):
        _, sender, first, dt = ops[i]
        parts, j = [first], i + 1
        while j < len(ops) and merge[j] and ops[j][1] == sender and ops[j][3] == 0.0:
            size = len(ops[j][2])
            if size == len(first) and len(parts[-1]) == len(first):
                parts.append(ops[j][2])
            elif 0 < size < len(first) and len(parts[-1]) == len(first):
                parts.append(ops[j][2])
                j += 1
                break
            else:
                break
            j += 1
        size = len(first) if len(parts) > 1 else 0
        out.append((sender, b"".join(parts), size, dt))
        i = j
    return out


@st.composite
def crafted_runs(draw: st.DrawFn) -> list[tuple[str, int, bytes, float]]:
    """Untagged chunks of equal size, mostly in order, with the header faults a run must
    notice: a chunk that skips, repeats or overlaps, a frame whose chunks do not cover its
    length, a stray time, count or frame number. Random mutation rarely makes these."""
    ops: list[tuple[str, int, bytes, float]] = []
    for _ in range(draw(st.integers(1, 4))):
        sender = draw(st.integers(0, 1))
        camera = draw(st.sampled_from([0, 2]))
        seq = draw(st.integers(0, 3))
        count = draw(st.integers(2, 12))
        payload = draw(st.integers(1, 60))
        length = count * payload + draw(st.sampled_from([0, 0, 0, 1, payload, -1, -payload]))
        fields = [[camera, seq, i, count, length, i * payload, 5] for i in range(count)]
        for _ in range(draw(st.integers(0, 2))):
            chunk = draw(st.integers(0, count - 1))
            field = draw(st.sampled_from([1, 2, 3, 4, 5, 6]))  # seq .. time
            fields[chunk][field] += draw(st.sampled_from([-1, 1, payload // 2 or 1]))
        order = list(range(count))
        if draw(st.booleans()):
            i, j = draw(st.integers(0, count - 1)), draw(st.integers(0, count - 1))
            order[i], order[j] = order[j], order[i]
        if draw(st.booleans()):
            order.insert(draw(st.integers(0, count)), draw(st.integers(0, count - 1)))
        for i in order:
            cam, sq, index, cnt, ln, off, t = fields[i]
            if min(sq, index, cnt, ln, off) < 0 or max(index, cnt) > 0xFFFF:
                continue
            header = HEADER.pack(MAGIC, VERSION, 0, cam, sq, index, cnt, ln, off, t)
            ops.append(("dg", sender, header + bytes([i % 256]) * payload, 0.0))
    return ops


def _check_coalesced(
    ops: list[tuple[str, int, bytes, float]], legacy: bool, allow_unauth: bool, merge_seed: int
) -> None:
    """Feed ``ops`` grouped into coalesced receives to one reassembler and one datagram at a
    time to another: every receive must give the same events, counters and bounds."""
    rng = random.Random(merge_seed)
    merge = [rng.random() < 0.9 for _ in ops]
    one_by_one, whole = _reassembler(legacy, allow_unauth), _reassembler(legacy, allow_unauth)
    now = 100.0
    for sender, data, size, dt in _buffers(ops, merge):
        now += dt
        addr = SENDERS[sender]
        expected: list[Event] = []
        step = size or len(data) or 1  # an empty datagram is one datagram too
        for start in range(0, max(len(data), 1), step):
            expected.extend(one_by_one.feed(data[start : start + step], addr, now))
        assert list(whole.feed_coalesced(data, size, addr, now)) == expected
        assert _state(whole) == _state(one_by_one)
        if dt:
            assert whole.expire(now) == one_by_one.expire(now)
    assert whole.expire(now + 60.0) == one_by_one.expire(now + 60.0)
    assert _state(whole) == _state(one_by_one)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=operations(), legacy=st.booleans(), allow_unauth=st.booleans(),
    merge_seed=st.integers(0, 2**32 - 1),
)
def test_a_coalesced_receive_is_its_datagrams_one_by_one(
    ops: list[tuple[str, int, bytes, float]], legacy: bool, allow_unauth: bool, merge_seed: int
) -> None:
    _check_coalesced(ops, legacy, allow_unauth, merge_seed)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=crafted_runs(), merge_seed=st.integers(0, 2**32 - 1))
def test_a_coalesced_receive_of_crafted_chunks_is_its_datagrams_one_by_one(
    ops: list[tuple[str, int, bytes, float]], merge_seed: int
) -> None:
    _check_coalesced(ops, True, True, merge_seed)


def test_an_in_order_run_is_taken_in_bulk_and_the_frame_comes_out_whole() -> None:
    jpeg = random.Random(1).randbytes(29_000)
    datagrams = encode_sequenced(jpeg, camera=2, frame=7, time_us=123)
    assert len(datagrams) == 21 and len({len(d) for d in datagrams[:-1]}) == 1
    r = _reassembler()
    head = b"".join(datagrams[:15])
    assert r.feed_coalesced(head, len(datagrams[0]), SENDER, 1.0) == []
    (part,) = r._frames_lru[False].values()  # untagged: not authenticated
    # One byte range for the first datagram (fed alone: it starts the frame), one for the
    # other 14 as a run; fed one by one they would be 15.
    assert (part.received, len(part.starts)) == (15, 2)
    rest = b"".join(datagrams[15:])
    (ready,) = r.feed_coalesced(rest, len(datagrams[0]), SENDER, 1.0)
    assert isinstance(ready, FrameReady)
    assert (ready.frame.jpeg, ready.frame.sequence, ready.frame.capture_time_us) == (jpeg, 7, 123)
    assert r.stats.datagrams == 21 and r.stats.duplicates == 0


def test_a_legacy_run_is_appended_in_bulk_but_never_past_a_magic_datagram() -> None:
    jpeg = bytearray(random.Random(2).randbytes(20_000))
    jpeg[1472 * 5 : 1472 * 5 + 4] = MAGIC  # the sixth data datagram starts like a sequenced one
    datagrams = encode_legacy(bytes(jpeg))
    r, one_by_one = _reassembler(), _reassembler()
    assert list(r.feed_coalesced(datagrams[0], 0, SENDER, 1.0)) == []  # the header
    body = b"".join(datagrams[1:])
    events = r.feed_coalesced(body, 1472, SENDER, 1.0)
    expected = [e for d in datagrams for e in one_by_one.feed(d, SENDER, 1.0)]
    assert events == expected
    assert _state(r) == _state(one_by_one)
    # That datagram is not legacy data: the frame comes out short and is dropped, as ever.
    assert not any(isinstance(e, FrameReady) for e in events)
