"""Hostile datagrams by the million through the sans-IO reassembler: nothing escapes, memory stays
within the configured bounds after every datagram, and no frame of the keyed camera is made up.

Two tests: hypothesis for the shapes (every header field over its whole range, tags, lengths),
and a plain seeded loop for volume (10^6 datagrams of a dozen kinds, from 1,000 addresses:
garbage, truncated and wrong-magic headers, huge counts and lengths, made-up camera ids,
valid-looking sequenced headers with garbage payloads and tags, legacy headers announcing up to
4 GiB, genuine chunks of tagged and untagged frames replayed, reordered, duplicated or with one
byte flipped, and coalesced runs of them). The loop is marked ``slow`` (seconds, not minutes).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_anpr.config import config_from_dict
from edge_anpr.ingest.events import Dropped, Event, FrameReady
from edge_anpr.ingest.protocol import (
    DROP_REASONS,
    FLAG_TAG,
    HEADER,
    LEGACY_HEADER,
    MAGIC,
    VERSION,
    encode_legacy,
    encode_sequenced,
)
from edge_anpr.ingest.reassembly import Reassembler

KEY = b"fuzz-camera-key-0123"
T0 = 1_780_000_000_000_000  # the appliance's wall clock at the start, us
BOUNDS: dict[str, Any] = {
    "max_frame_bytes": 256 * 1024,
    "max_frames_in_flight_per_stream": 4,
    "max_frames_in_flight_total": 32,
    "max_buffered_bytes": 1024 * 1024,
    "max_senders": 64,
    "max_streams_per_source": 4,
    "frame_timeout_s": 0.5,
}
CONFIGS: dict[str, dict[str, Any]] = {
    # the defaults' spirit: unauthenticated senders allowed, one keyed camera
    "lenient": {"ingest": dict(BOUNDS), "cameras": {"gate": {"id": 1, "key": KEY.decode()}}},
    # strict: a global key, no legacy, one camera that may send untagged frames
    "strict": {
        "ingest": {**BOUNDS, "legacy": False, "allow_unauthenticated": False,
                   "key": KEY.decode()},
        "cameras": {"gate": {"id": 1}, "open": {"id": 2, "allow_unauthenticated": True}},
    },
}


def make(name: str) -> Reassembler:
    cfg = config_from_dict(CONFIGS[name])
    return Reassembler(cfg.ingest, cfg.cameras)


class Checker:
    """Feeds a reassembler and checks its bounds and its output after every call."""

    def __init__(self, r: Reassembler, originals: set[bytes]) -> None:
        self.r = r
        self.max_bytes = BOUNDS["max_buffered_bytes"]
        self.max_frames = BOUNDS["max_frames_in_flight_total"]
        self.max_senders = BOUNDS["max_senders"]
        self.originals = originals
        self.frames = 0
        self.authenticated = 0

    def check(self, events: Sequence[Event]) -> None:
        r = self.r
        assert r.tracked_bytes() <= self.max_bytes
        assert r.tracked_frames() <= self.max_frames
        assert r.tracked_senders() <= self.max_senders
        for ev in events:
            if isinstance(ev, FrameReady):
                self.frames += 1
                if ev.frame.authenticated:
                    # only the key's holder makes these: never a frame made up by the fuzzer
                    self.authenticated += 1
                    assert ev.frame.jpeg in self.originals
            else:
                assert isinstance(ev, Dropped) and ev.reason in DROP_REASONS

    def held_bytes(self) -> int:
        """Bytes the frames in progress really hold (at most what they are charged)."""
        parts = [p for lru in self.r._frames_lru for p in lru.values()]  # about internals
        return sum(len(p.buf) + sum(map(len, p.pieces)) for p in parts)


# -- shapes: hypothesis ---------------------------------------------------------------------

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
header_fields = st.tuples(
    st.sampled_from([MAGIC, b"EANQ", b"\x00\x00\x00\x00"]),
    st.sampled_from([VERSION, VERSION, 1, 3, 255]),
    st.sampled_from([0, FLAG_TAG, 0x02, 0xFF]),
    st.one_of(st.integers(0, 3), u16),  # camera: the configured ones, or any
    st.one_of(st.integers(0, 8), u32),  # frame
    st.one_of(st.integers(0, 4), u16),  # index
    st.one_of(st.integers(0, 4), u16),  # count
    st.one_of(st.integers(0, 5000), u32),  # length
    st.one_of(st.integers(0, 5000), u32),  # offset
    st.one_of(st.just(0), st.integers(T0 - 10**7, T0 + 10**7), st.integers(0, 2**64 - 1)),
)
datagram = st.one_of(
    st.binary(max_size=80),
    st.builds(lambda f, body: HEADER.pack(*f) + body, header_fields, st.binary(max_size=64)),
    st.builds(lambda n: LEGACY_HEADER.pack(n), u32),
    st.builds(lambda f, cut: (HEADER.pack(*f) + b"x" * 40)[:cut], header_fields,
              st.integers(0, 72)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(CONFIGS)),
    ops=st.lists(st.tuples(datagram, st.integers(0, 5), st.floats(0, 0.3)), max_size=60),
)
def test_any_datagram_shape_keeps_the_bounds(
    name: str, ops: list[tuple[bytes, int, float]]
) -> None:
    r = make(name)
    checker = Checker(r, set())
    now = 100.0
    for data, sender, dt in ops:
        now += dt
        wall_us = T0 + int((now - 100.0) * 1e6)
        checker.check(r.feed(data, (f"10.0.0.{sender}", 4000 + sender), now, wall_us))
        checker.check(r.expire(now))
    assert checker.held_bytes() <= r.tracked_bytes()
    assert checker.authenticated == 0  # no genuine frame was sent


# -- volume: a plain seeded loop ------------------------------------------------------------

FUZZ_DATAGRAMS = 1_000_000


class Hostile:
    """Cheap, seeded hostile datagrams: numpy draws the numbers, slices of one random pool
    are the payloads."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.py = random.Random(seed)
        self.pool = self.rng.bytes(1 << 20)
        # genuine frames to replay, reorder and corrupt: tagged ones of keyed camera 1 with
        # capture times over the run's first 20 s, untagged ones of other cameras
        self.originals = {self.rng.bytes(int(n)) for n in self.rng.integers(1, 9000, 40)}
        self.genuine: list[bytes] = []
        for i, jpeg in enumerate(sorted(self.originals)):
            self.genuine += encode_sequenced(jpeg, camera=1, frame=1000 + i, key=KEY,
                                             time_us=T0 + i * 500_000)
            self.genuine += encode_sequenced(jpeg, camera=2 + i % 3, frame=i)
            self.genuine += encode_legacy(jpeg)
        self.kinds: list[Callable[[], bytes]] = [
            self.garbage, self.legacy_header, self.legacy_data, self.wrong_magic,
            self.truncated, self.sequenced, self.sequenced, self.sequenced, self.huge,
            self.genuine_chunk, self.genuine_chunk, self.flipped,
        ]

    def payload(self, n: int) -> bytes:
        at = self.py.randrange(len(self.pool) - n)
        return self.pool[at : at + n]

    def garbage(self) -> bytes:
        return self.payload(self.py.randrange(0, 64))

    def legacy_header(self) -> bytes:
        n = self.py.choice((self.py.randrange(1, 5000), self.py.randrange(1 << 32)))
        return LEGACY_HEADER.pack(n)

    def legacy_data(self) -> bytes:
        return self.payload(self.py.randrange(1, 1473))

    def wrong_magic(self) -> bytes:
        return self.payload(4) + self.payload(self.py.randrange(28, 200))

    def truncated(self) -> bytes:
        return (self.sequenced())[: self.py.randrange(0, 33)]

    def sequenced(self) -> bytes:
        """A header that passes most checks, with made-up fields and a garbage body/tag."""
        r = self.py
        count = r.choice((1, 2, r.randrange(1, 64), r.randrange(1, 65536)))
        length = r.choice((r.randrange(count, count + 4000), r.randrange(count, 1 << 18)))
        n = r.randrange(1, 1441)
        offset = r.choice((0, r.randrange(0, length), (length - n) if length >= n else 0))
        camera = r.choice((1, 2, 3, r.randrange(0, 16), r.randrange(1 << 16)))
        frame = r.choice((r.randrange(0, 50), r.randrange(1 << 32)))
        time_us = r.choice((0, T0 + r.randrange(-10**7, 3 * 10**7), r.randrange(1 << 64)))
        flags = r.choice((0, 0, FLAG_TAG))
        head = HEADER.pack(MAGIC, VERSION, flags, camera, frame, r.randrange(count), count,
                           length, offset, time_us)
        return head + self.payload(n) + (self.payload(16) if flags else b"")

    def huge(self) -> bytes:
        """Counts and lengths at their limits."""
        r = self.py
        length = r.choice(((1 << 32) - 1, 1 << 18, (1 << 18) + 1, 65535))
        return HEADER.pack(MAGIC, VERSION, 0, r.randrange(1 << 16), r.randrange(1 << 32),
                           r.randrange(65535), 65535, length, r.randrange(length),
                           0) + self.payload(r.randrange(1, 100))

    def genuine_chunk(self) -> bytes:
        return self.py.choice(self.genuine)

    def flipped(self) -> bytes:
        d = bytearray(self.py.choice(self.genuine))
        d[self.py.randrange(len(d))] ^= 1 << self.py.randrange(8)
        return bytes(d)

    def next(self) -> bytes:
        return self.kinds[self.py.randrange(len(self.kinds))]()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_a_million_hostile_datagrams(name: str) -> None:
    """Half of the 10^6 through each configuration."""
    r = make(name)
    gen = Hostile(seed=len(name))
    checker = Checker(r, gen.originals)
    senders = [(f"10.{i // 250}.{i % 250}.1", 1000 + i % 7) for i in range(1000)]
    py = gen.py
    now, wall_us = 100.0, T0
    n = 0
    peak = {"bytes": 0, "frames": 0, "senders": 0, "held": 0}
    while n < FUZZ_DATAGRAMS // len(CONFIGS):
        # a sender's burst: mostly one sender at a time, as on a real network
        sender = senders[py.randrange(16) if py.random() < 0.5 else py.randrange(len(senders))]
        for _ in range(py.randrange(1, 40)):
            first = gen.next()
            if first and py.random() < 0.03:  # a coalesced receive of equal-size datagrams
                same = [first] + [d for d in (gen.next() for _ in range(8))
                                  if len(d) == len(first)]
                events = r.feed_coalesced(b"".join(same), len(first), sender, now, wall_us)
                n += len(same)
            else:
                events = r.feed(first, sender, now, wall_us)
                n += 1
            checker.check(events)
        now += 0.0005
        wall_us += 400  # the run's 500,000 datagrams span about 10 s of the wall clock
        if n % 64 == 0 or py.random() < 0.05:
            checker.check(r.expire(now))
        if py.random() < 0.01:
            peak["bytes"] = max(peak["bytes"], r.tracked_bytes())
            peak["frames"] = max(peak["frames"], r.tracked_frames())
            peak["senders"] = max(peak["senders"], r.tracked_senders())
            held = checker.held_bytes()
            assert held <= r.tracked_bytes()
            peak["held"] = max(peak["held"], held)
    stats = r.stats.snapshot()
    assert stats["datagrams"] == n
    # the bounds were reached, not just respected: the input was hostile enough
    assert peak["senders"] == BOUNDS["max_senders"]
    assert peak["frames"] >= BOUNDS["max_frames_in_flight_total"] // 2
    assert peak["bytes"] >= BOUNDS["max_buffered_bytes"] // 4
    assert checker.frames > 0 and checker.authenticated > 0
    drops = r.stats.drops
    for reason in ("malformed", "bad_length", "memory_limit", "bad_tag", "replayed", "stale"):
        assert drops[reason] > 0, reason
