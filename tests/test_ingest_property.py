"""Random and adversarial datagrams: nothing escapes, memory stays within the configured bounds."""

from __future__ import annotations

import random
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_anpr.config import config_from_dict
from edge_anpr.ingest.protocol import DROP_REASONS, encode_legacy, encode_sequenced
from edge_anpr.ingest.reassembly import Dropped, FrameReady, Reassembler

BOUNDS = {
    "max_frame_bytes": 30000,
    "max_buffered_bytes": 65536,
    "max_frames_in_flight_total": 5,
    "max_frames_in_flight_per_stream": 2,
    "max_senders": 4,
    "frame_timeout_s": 0.5,
}
KEY = b"cam1-key-16-bytes"
SENDERS = [(f"10.0.0.{i}", 4000 + i % 2) for i in range(8)]
# Frames the senders may legitimately send; keyed camera 1 can only ever yield these bytes.
ORIGINALS = {n: random.Random(n).randbytes(n) for n in (1, 4, 1472, 1476, 5000, 20000, 29999)}


def _datagrams_for(kind: str, size: int, camera: int, seq: int) -> list[bytes]:
    jpeg = ORIGINALS[size]
    if kind == "legacy":
        return encode_legacy(jpeg)
    return encode_sequenced(jpeg, camera=camera, frame=seq, key=KEY if camera == 1 else None)


@st.composite
def operations(draw: st.DrawFn) -> list[tuple[str, int, bytes, float]]:
    ops: list[tuple[str, int, bytes, float]] = []
    for _ in range(draw(st.integers(1, 40))):
        sender = draw(st.integers(0, len(SENDERS) - 1))
        dt = draw(st.sampled_from([0.0, 0.0, 0.001, 0.1, 0.6]))
        kind = draw(st.sampled_from(["legacy", "sequenced", "random", "mutated", "header"]))
        if kind == "random":
            ops.append(("dg", sender, draw(st.binary(max_size=1500)), dt))
        elif kind == "header":
            n = draw(st.integers(0, 2**32 - 1) | st.sampled_from([0, 4, 29999, 30001]))
            ops.append(("dg", sender, struct.pack("<I", n), dt))
        else:
            fmt = "legacy" if kind == "legacy" else "sequenced"
            size = draw(st.sampled_from(sorted(ORIGINALS)))
            camera = draw(st.integers(0, 3))
            seq = draw(st.sampled_from([0, 1, 2, 3, 2**32 - 1, 2**31, 7777]))
            dgs = _datagrams_for(fmt, size, camera, seq)
            picked = draw(st.lists(st.integers(0, len(dgs) - 1), max_size=len(dgs) + 3))
            if not picked or draw(st.booleans()):
                picked = list(range(len(dgs)))
            for i in picked:
                d = dgs[i]
                if kind == "mutated" and d:
                    pos = draw(st.integers(0, len(d) - 1))
                    d = d[:pos] + bytes([d[pos] ^ draw(st.integers(1, 255))]) + d[pos + 1 :]
                    if draw(st.booleans()):
                        d = d[: draw(st.integers(0, len(d)))]
                ops.append(("dg", sender, d, dt))
                dt = 0.0
    return ops


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations(), legacy=st.booleans(), allow_unauth=st.booleans())
def test_no_exception_and_bounded_memory(
    ops: list[tuple[str, int, bytes, float]], legacy: bool, allow_unauth: bool
) -> None:
    cfg = config_from_dict({
        # frames here carry no capture time, so replay protection would refuse camera 1's
        "ingest": {**BOUNDS, "legacy": legacy, "allow_unauthenticated": allow_unauth,
                   "replay_window_s": 0},
        "cameras": {"one": {"id": 1, "key": KEY.decode()}},
    })
    r = Reassembler(cfg.ingest, cfg.cameras)
    now = 100.0
    for _, sender, data, dt in ops:
        now += dt
        events = list(r.feed(data, SENDERS[sender], now))
        if dt:
            events += r.expire(now)
        for ev in events:
            if isinstance(ev, Dropped):
                assert ev.reason in DROP_REASONS
                assert ev.missing_chunks >= 0
            else:
                assert isinstance(ev, FrameReady)
                assert 0 < len(ev.frame.jpeg) <= BOUNDS["max_frame_bytes"]
                if ev.frame.camera == "one":
                    # Authenticated: a mutated datagram can never have made it in.
                    assert ev.frame.jpeg in ORIGINALS.values()
        assert r.tracked_bytes() <= BOUNDS["max_buffered_bytes"]
        assert r.tracked_frames() <= BOUNDS["max_frames_in_flight_total"]
        assert r.tracked_senders() <= BOUNDS["max_senders"]
    assert r.stats.datagrams == len(ops)
    # After every timeout has passed, nothing is held.
    r.expire(now + 60.0)
    assert r.tracked_frames() == 0 and r.tracked_bytes() == 0 and r.tracked_senders() == 0
