"""Slots and bytes of frames in progress are shared so that unauthenticated traffic never
evicts an authenticated camera's frame (docs/protocol.md, "Limits"), through plain calls to the
sans-IO reassembler: a keyed camera on a slow link beside spoofed partial frames, and each rule
on its own."""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from typing import Any

from edge_anpr.config import config_from_dict
from edge_anpr.ingest.events import Dropped, Event, FrameReady
from edge_anpr.ingest.protocol import HEADER, encode_legacy, encode_sequenced
from edge_anpr.ingest.reassembly import Reassembler

KEY = b"gate-camera-key-0123"
GATE = ("10.0.0.1", 5000)
T0 = 1_780_000_000_000_000  # wall clock, us since the epoch
FRAME_BYTES = 60_000
LINK_BYTES_PER_S = 5_000_000 / 8  # a 5 Mbit/s link: a 60 kB frame takes ~100 ms


def make(ingest: dict[str, Any] | None = None) -> Reassembler:
    cfg = config_from_dict({
        "ingest": ingest or {},
        "cameras": {"gate": {"id": 1, "key": KEY.decode()}},
    })
    return Reassembler(cfg.ingest, cfg.cameras)


def spoofed_chunk(camera: int, frame: int) -> bytes:
    """A 200-byte first chunk of a frame announced at the largest size, never followed by
    the rest: the most a datagram can make the receiver reserve."""
    body = random.Random(frame).randbytes(168)
    return HEADER.pack(b"EANP", 2, 0, camera, frame, 0, 65535, 4 * 1024 * 1024, 0, 0) + body


def slow_link_reads(
    addresses: int, spoof_per_s: float, frames: int = 30, ids: int = 80,
) -> tuple[int, Reassembler]:
    """Feed a keyed camera's frames, each spread over ~100 ms at 5 Mbit/s, interleaved with
    spoofed partial frames of ``ids`` camera ids from ``addresses`` source addresses at
    ``spoof_per_s`` datagrams a second; expire as the UDP shell does. The camera's frames read,
    and the reassembler."""
    r = make()

    def camera() -> Iterator[tuple[float, bytes, tuple[str, int]]]:
        t = 0.0
        for n in range(frames):
            chunks = encode_sequenced(random.Random(n).randbytes(FRAME_BYTES), camera=1,
                                      frame=n, time_us=T0 + int(t * 1e6), key=KEY)
            for d in chunks:
                yield t, d, GATE
                t += len(d) / LINK_BYTES_PER_S
            t += 0.02  # the camera's next capture

    def spoofer() -> Iterator[tuple[float, bytes, tuple[str, int]]]:
        end = frames * 0.12
        k = 0
        while k / spoof_per_s < end:
            sender = (f"10.1.{k % addresses // 250}.{k % addresses % 250 + 1}", 4000)
            yield k / spoof_per_s, spoofed_chunk(100 + k % ids, 1 + k // ids), sender
            k += 1

    timeline = [camera(), spoofer()]
    read = 0
    next_expire = 0.0
    for t, d, sender in heapq.merge(*timeline, key=lambda e: e[0]):
        for ev in r.feed(d, sender, t, T0 + int(t * 1e6)):
            if isinstance(ev, FrameReady) and ev.frame.camera == "gate":
                read += 1
        if t >= next_expire:
            r.expire(t)
            next_expire = t + 0.25
    return read, r


def test_keyed_camera_on_a_slow_link_beside_spoofed_frames_from_5_addresses() -> None:
    read, r = slow_link_reads(addresses=5, spoof_per_s=5000)
    assert r.stats.drops["memory_limit"] + r.stats.drops["stream_limit"] > 1000  # it was a flood
    assert read >= 0.9 * 30, f"{read} of 30 frames read"


def test_keyed_camera_on_a_slow_link_beside_spoofed_frames_from_200_addresses() -> None:
    read, r = slow_link_reads(addresses=200, spoof_per_s=5000)
    assert r.stats.senders_evicted > 1000
    assert read >= 0.9 * 30, f"{read} of 30 frames read"


def test_unauthenticated_frames_never_evict_an_authenticated_one() -> None:
    r = make({"max_frames_in_flight_total": 4, "max_frames_in_flight_per_stream": 4})
    keyed = [encode_sequenced(random.Random(n).randbytes(3000), camera=1, frame=n,
                              time_us=T0 + n, key=KEY) for n in range(3)]
    out: list[Event] = []
    for chunks in keyed:
        out += r.feed(chunks[0], GATE, 0.0, T0)  # three keyed frames in progress
    for k in range(50):
        out += r.feed(spoofed_chunk(1000 + k, 1), ("10.9.9.9", 1), 0.1, T0)
        out += r.feed(spoofed_chunk(2000 + k, 1), ("10.9.9.10", 1), 0.1, T0)
    assert r.tracked_frames() == 4  # the one slot the keyed frames leave, taken in turn
    for chunks in keyed:
        out += [ev for d in chunks[1:] for ev in r.feed(d, GATE, 0.2, T0)]
    assert [e.frame.sequence for e in out if isinstance(e, FrameReady)] == [0, 1, 2]
    assert not [e for e in out if isinstance(e, Dropped) and e.camera == "gate"]


def test_a_full_table_of_keyed_frames_refuses_unauthenticated_ones() -> None:
    r = make({"max_frames_in_flight_total": 2})
    for n in range(2):
        chunks = encode_sequenced(b"x" * 3000, camera=1, frame=n, time_us=T0, key=KEY)
        r.feed(chunks[0], GATE, 0.0, T0)
    events = list(r.feed(spoofed_chunk(7, 1), ("10.9.9.9", 1), 0.0, T0))
    events += r.feed(encode_legacy(b"y" * 3000)[0], ("10.9.9.9", 2), 0.0, T0)
    assert [(e.reason, e.camera) for e in events if isinstance(e, Dropped)] == [
        ("memory_limit", "cam-7"), ("memory_limit", "legacy-10.9.9.9"),
    ]
    assert r.tracked_frames() == 2


def test_authenticated_frames_take_room_from_unauthenticated_ones_first() -> None:
    r = make({"max_frames_in_flight_total": 3})
    first = encode_sequenced(b"x" * 3000, camera=1, frame=0, time_us=T0, key=KEY)
    r.feed(first[0], GATE, 0.0, T0)
    r.feed(spoofed_chunk(7, 1), ("10.9.9.9", 1), 1.0, T0)
    r.feed(spoofed_chunk(8, 1), ("10.9.9.9", 1), 2.0, T0)
    second = encode_sequenced(b"z" * 3000, camera=1, frame=1, time_us=T0, key=KEY)
    events = r.feed(second[0], GATE, 3.0, T0)
    # the oldest unauthenticated frame made room, not the older keyed one
    assert [(e.reason, e.camera) for e in events if isinstance(e, Dropped)] == [
        ("memory_limit", "cam-7")
    ]


def test_unauthenticated_streams_never_evict_an_authenticated_stream() -> None:
    r = make({"max_senders": 4})
    chunks = encode_sequenced(b"x" * 3000, camera=1, frame=0, time_us=T0, key=KEY)
    r.feed(chunks[0], GATE, 0.0, T0)
    for k in range(100):
        r.feed(spoofed_chunk(100 + k % 16, 1), (f"10.2.0.{k}", 1), 0.1, T0)
    assert r.tracked_senders() == 4
    assert r.stats.senders_evicted > 90
    events = [ev for d in chunks[1:] for ev in r.feed(d, GATE, 0.2, T0)]
    assert [e.frame.camera for e in events if isinstance(e, FrameReady)] == ["gate"]
