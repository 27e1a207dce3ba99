"""Fairness the network cannot game, over real UDP into a running pipeline (loopback, the real
recognizer): sources posing as 2,000 camera ids do not starve a configured, authenticated
camera, and the frames waiting stay within ``ingest.queue_frames_total``."""

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
from edge_anpr.ingest.protocol import encode_sequenced
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
