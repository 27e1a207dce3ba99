"""Fairness the network cannot game, over real UDP (loopback): sources posing as 2,000 camera
ids do not starve a configured, authenticated camera in a running pipeline with the real
recognizer, and the frames waiting stay within ``ingest.queue_frames_total``; spoofed partial
frames do not take the slots of a keyed camera whose frames arrive slowly."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import cv2
import numpy as np
import trio

from edge_anpr.app import Sinks, running_pipeline
from edge_anpr.assets import DEMO_DIR
from edge_anpr.config import config_from_dict
from edge_anpr.ingest.protocol import HEADER, encode_sequenced
from edge_anpr.ingest.queue import FrameQueue
from edge_anpr.ingest.reassembly import IngestStats, Reassembler
from edge_anpr.ingest.udp import run_udp_ingest
from edge_anpr.values import PlateRead

KEY = "gate-camera-secret-0123"
REAL_FRAMES = 20
FLOOD_IDS = 2000


def jpeg(image: object) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.asarray(image, np.uint8))
    assert ok
    return buf.tobytes()


async def test_a_2000_id_flood_does_not_starve_the_real_camera(tmp_path: Path) -> None:
    cfg = config_from_dict({
        "ingest": {"bind": "127.0.0.1", "port": 0},
        "cameras": {"gate": {"id": 1, "key": KEY}},
        "workers": {"count": 1},
        "mqtt": {"enabled": False, "outbox_path": str(tmp_path / "outbox.sqlite")},
    })
    scene = np.asarray(cv2.imread(str(DEMO_DIR / "frame_00.jpg")), np.uint8)
    plate = jpeg(scene[440:640, 380:800])
    noise = jpeg(scene[0:96, 0:128])  # no plate; one datagram
    reads: list[PlateRead] = []
    depth = 0
    flood_socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(125)]
    real = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for i, s in enumerate(flood_socks):
            s.bind((f"127.0.0.{2 + i}", 0))
        with trio.fail_after(60):
            async with running_pipeline(cfg, sinks=Sinks(on_read=reads.append)) as (p, _):
                dest = ("127.0.0.1", p.port)
                per_real = FLOOD_IDS // REAL_FRAMES
                for n in range(REAL_FRAMES):
                    # a capture time of now: authenticated frames must be fresh
                    for d in encode_sequenced(plate, camera=1, frame=n, key=KEY.encode(),
                                              time_us=time.time_ns() // 1000):
                        real.sendto(d, dest)
                    for k in range(per_real):
                        cam = 100 + n * per_real + k  # 2,000 ids over 125 addresses
                        (d,) = encode_sequenced(noise, camera=cam, frame=1)
                        flood_socks[cam % len(flood_socks)].sendto(d, dest)
                        if k % 20 == 0:
                            depth = max(depth, len(p.queue))
                            await trio.sleep(0.001)
                    await trio.sleep(0.01)
                stats = p.reassembler.stats
                while stats.datagrams < REAL_FRAMES * len(
                    encode_sequenced(plate, camera=1, frame=0, key=KEY.encode())
                ) + FLOOD_IDS:
                    await trio.sleep(0.05)
                while len(p.queue):
                    await trio.sleep(0.05)
                await trio.sleep(0.2)
                p.stop()
    finally:
        real.close()
        for s in flood_socks:
            s.close()
    gate_reads = {r.frame_sequence for r in reads if r.camera == "gate"}
    assert len(gate_reads) >= 0.9 * REAL_FRAMES
    assert depth <= cfg.ingest.queue_frames_total


SLOW_FRAMES = 30
SLOW_FRAME_BYTES = 60_000
SLOW_LINK_BYTES_PER_S = 5_000_000 / 8


def _slow_link_round(port: int, addresses: int, spoof_per_s: float) -> None:
    """Send (blocking, paced on the monotonic clock) ``SLOW_FRAMES`` keyed frames of 60 kB, each
    datagram when a 5 Mbit/s link would deliver it, and beside them, at ``spoof_per_s``
    datagrams a second from ``addresses`` loopback addresses over 80 camera ids, 200-byte
    first chunks of frames announced at the largest size and never completed."""
    dest = ("127.0.0.1", port)
    camera = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    spoofs = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(addresses)]
    try:
        for i, s in enumerate(spoofs):
            s.bind((f"127.0.0.{2 + i}", 0))
        start = time.monotonic()
        sent = 0  # spoofed datagrams so far
        due = 0.0  # when the camera's next datagram leaves
        for n in range(SLOW_FRAMES):
            data = np.random.default_rng(n).bytes(SLOW_FRAME_BYTES)
            chunks = encode_sequenced(data, camera=1, frame=n, key=KEY.encode(),
                                      time_us=time.time_ns() // 1000)
            for d in chunks:
                while True:
                    now = time.monotonic() - start
                    while sent < now * spoof_per_s:
                        k = sent
                        spoofs[k % addresses].sendto(HEADER.pack(
                            b"EANP", 2, 0, 100 + k % 80, 1 + k // 80, 0, 65535, 4 << 20, 0, 0,
                        ) + bytes(168), dest)
                        sent += 1
                    if now >= due:
                        break
                    time.sleep(min(due - now, 0.0005))
                camera.sendto(d, dest)
                due += len(d) / SLOW_LINK_BYTES_PER_S
            due += 0.02  # the next capture
    finally:
        camera.close()
        for s in spoofs:
            s.close()


async def _slow_link_reads(addresses: int, spoof_per_s: float) -> tuple[int, IngestStats]:
    cfg = config_from_dict({
        "ingest": {"bind": "127.0.0.1", "port": 0},
        "cameras": {"gate": {"id": 1, "key": KEY}},
    })
    reassembler = Reassembler(cfg.ingest, cfg.cameras)
    queue = FrameQueue(cfg.ingest.queue_frames_per_camera, reassembler.stats,
                       total_frames=cfg.ingest.queue_frames_total, trusted_cameras=["gate"])
    read: set[int] = set()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(run_udp_ingest, cfg, queue, reassembler)

            async def consume() -> None:
                async for frame in queue:
                    if frame.camera == "gate" and frame.sequence is not None:
                        read.add(frame.sequence)

            nursery.start_soon(consume)
            await trio.to_thread.run_sync(_slow_link_round, port, addresses, spoof_per_s)
            await trio.sleep(0.3)
            nursery.cancel_scope.cancel()
    return len(read), reassembler.stats


async def test_a_keyed_camera_on_a_slow_link_is_read_beside_spoofed_streams() -> None:
    """Spoofed partial frames of 80 ids, about 1 MB/s, from 5 and from 200 addresses: none
    of them takes the slot of a keyed camera's frame still arriving (docs/protocol.md,
    "Limits")."""
    for addresses in (5, 200):
        read, stats = await _slow_link_reads(addresses, 5000)
        print(f"slow link, spoofed from {addresses} addresses: {read} of {SLOW_FRAMES} read, "
              f"dropped {dict(stats.drops)}, kernel drops {stats.kernel_drops}")
        assert stats.drops["memory_limit"] > 1000  # it was a flood
        assert read >= 0.9 * SLOW_FRAMES, f"{addresses} addresses: {read} of {SLOW_FRAMES}"
