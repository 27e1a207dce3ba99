"""Gate-safe by default, over real UDP into a running pipeline (loopback, real recognizer).

A known plate with ``gate = true`` is shown in frames that are legacy, untagged or wrongly
tagged, at least 100 tries of each, each try from a sender and camera of its own (so each is an
event of its own, with its own chance to open the gate): none opens the gate. One correctly
tagged frame of the same plate then does, which shows the harness would have seen a gate
command. With ``ingest.allow_unauthenticated = false`` none of those frames is even read.
"""

from __future__ import annotations

import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import cv2
import pytest
import trio

from edge_anpr.app import Pipeline, Sinks, running_pipeline
from edge_anpr.assets import DEMO_DIR
from edge_anpr.config import Config, config_from_dict
from edge_anpr.ingest.protocol import encode_legacy, encode_sequenced
from edge_anpr.values import PlateRead

KEY = "gate-camera-secret-0123"
TRIES = 100
PLATE = "815SVN"


def plate_jpeg() -> bytes:
    """The part of demo frame 0 around its plate (815SVN): small, so 100s of tries are quick."""
    image = cv2.imread(str(DEMO_DIR / "frame_00.jpg"))
    ok, buf = cv2.imencode(".jpg", image[440:640, 380:800])
    assert ok
    return buf.tobytes()


def make_cfg(tmp_path: Path, **ingest: Any) -> Config:
    return config_from_dict({
        # room for every try: this is about the gate, not about queue fairness
        "ingest": {"bind": "127.0.0.1", "port": 0, "queue_frames_total": 1024, **ingest},
        "cameras": {"gate": {"id": 1, "key": KEY}},
        "workers": {"count": 1},
        "tracker": {"quiet_time_s": 0.5, "parked_suppress_s": 0},
        "mqtt": {"enabled": False, "outbox_path": str(tmp_path / "outbox.sqlite")},
        "known_plates": [{"name": "Alice", "plate": PLATE, "gate": True}],
    })


def outbox_topics(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT topic FROM messages ORDER BY id")]


async def send_all(port: int, frames: list[tuple[str, list[bytes]]]) -> int:
    """Each (source address, datagrams) from a socket of its own; returns datagrams sent."""
    sent = 0
    for source, datagrams in frames:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((source, 0))
            for data in datagrams:
                sock.sendto(data, ("127.0.0.1", port))
            sent += len(datagrams)
        await trio.sleep(0.002)  # let the receiver drain: the kernel must not drop any
    return sent


async def settle(pipeline: Pipeline, datagrams: int) -> None:
    """Until every datagram was taken and every complete frame recognised."""
    stats = pipeline.reassembler.stats
    while stats.datagrams < datagrams or (
        pipeline.frames_done() < stats.frames_completed - stats.drops["queue_full"]
    ):
        await trio.sleep(0.05)
    await trio.sleep(0.3)  # the reads reach the event stage


def hostile_tries(jpeg: bytes) -> dict[str, list[tuple[str, list[bytes]]]]:
    wrong = b"not-the-camera-key-0123"
    return {
        # a legacy sender per loopback address: camera legacy-127.0.0.<n> each
        "legacy": [(f"127.0.0.{2 + i}", encode_legacy(jpeg)) for i in range(TRIES)],
        # untagged frames claiming the keyed gate camera
        "untagged_keyed": [
            ("127.0.0.1", encode_sequenced(jpeg, camera=1, frame=i)) for i in range(TRIES)
        ],
        # wrongly tagged frames claiming the keyed gate camera
        "wrong_tag": [
            ("127.0.0.1", encode_sequenced(jpeg, camera=1, frame=TRIES + i, key=wrong))
            for i in range(TRIES)
        ],
        # untagged frames of unconfigured cameras, no key anywhere for them, a source each
        "untagged_unkeyed": [
            (f"127.0.1.{2 + i}", encode_sequenced(jpeg, camera=100 + i, frame=i))
            for i in range(TRIES)
        ],
    }


@pytest.mark.parametrize("allow_unauthenticated", [True, False])
async def test_no_unauthenticated_frame_opens_the_gate(
    tmp_path: Path, allow_unauthenticated: bool
) -> None:
    cfg = make_cfg(tmp_path, allow_unauthenticated=allow_unauthenticated)
    jpeg = plate_jpeg()
    reads: list[PlateRead] = []
    tries = hostile_tries(jpeg)
    with trio.fail_after(90):
        async with running_pipeline(cfg, sinks=Sinks(on_read=reads.append)) as (pipeline, _):
            sent = 0
            for frames in tries.values():
                sent += await send_all(pipeline.port, frames)
            await settle(pipeline, sent)
            hostile_reads = list(reads)
            drops = dict(pipeline.reassembler.stats.drops)
            # the control: one frame tagged with the camera's key
            sent += await send_all(pipeline.port, [
                ("127.0.0.1", encode_sequenced(jpeg, camera=1, frame=5000, key=KEY.encode(),
                                               time_us=time.time_ns() // 1000)),
            ])
            await settle(pipeline, sent)
            pipeline.stop()
    topics = outbox_topics(tmp_path / "outbox.sqlite")
    gates = [t for t in topics if t.endswith("/gate")]
    assert gates == [t for t in topics if t.endswith("/gate/gate")] and len(gates) == 1
    assert reads[-1].camera == "gate" and reads[-1].authenticated
    assert reads[-1].text.text == PLATE
    assert all(not r.authenticated for r in hostile_reads)
    datagrams = {kind: sum(len(d) for _, d in frames) for kind, frames in tries.items()}
    assert drops.get("bad_tag") == datagrams["wrong_tag"]
    if allow_unauthenticated:
        # read (each a camera and an event of its own), known, but never a gate command
        cams = {r.camera for r in hostile_reads if r.text.text == PLATE}
        assert sum(c.startswith("legacy-127.0.0.") for c in cams) >= 0.9 * TRIES
        assert sum(c.startswith("cam-1") for c in cams) >= 0.9 * TRIES
        assert sum(t.endswith("/known") for t in topics) >= 1.8 * TRIES
        assert drops.get("unauthenticated") == datagrams["untagged_keyed"]
    else:
        assert hostile_reads == []
        assert drops.get("unauthenticated") == (
            datagrams["legacy"] + datagrams["untagged_keyed"] + datagrams["untagged_unkeyed"]
        )


async def test_replayed_frames_are_never_read_even_after_a_restart(tmp_path: Path) -> None:
    """Authenticated frames of the gate plate, captured off the wire, sent again >= 100 times
    while the appliance runs and >= 100 times right after it restarted: 0 reads, 0 gate
    commands. The window is wide here so that every replay is fresh: only the last accepted
    capture time, kept across the restart beside the outbox, refuses them."""
    cfg = make_cfg(tmp_path, replay_window_s=60)
    jpeg = plate_jpeg()
    now_us = time.time_ns() // 1000
    captured = [
        encode_sequenced(jpeg, camera=1, frame=7000 + i, key=KEY.encode(),
                         time_us=now_us + i * 40_000)
        for i in range(3)
    ]
    rounds = 40  # x 3 frames: 120 replayed frames in each run
    reads: list[PlateRead] = []
    with trio.fail_after(90):
        async with running_pipeline(cfg, sinks=Sinks(on_read=reads.append)) as (pipeline, _):
            sent = await send_all(pipeline.port, [("127.0.0.1", d) for d in captured])
            await settle(pipeline, sent)
            genuine = len(reads)
            gates_before = sum(t.endswith("/gate") for t in outbox_topics(
                tmp_path / "outbox.sqlite"))
            # replays from the camera's address (its stream takes them for late or duplicate
            # frames) and from addresses of their own (refused as replayed)
            replays = [(f"127.0.0.{1 + (r % 2) * (50 + r)}", d)
                       for r in range(rounds) for d in captured]
            sent += await send_all(pipeline.port, replays)
            await settle(pipeline, sent)
            first_run_reads = reads[genuine:]
            first_run_drops = dict(pipeline.reassembler.stats.drops)
            pipeline.stop()
    gates_first_run = sum(t.endswith("/gate") for t in outbox_topics(tmp_path / "outbox.sqlite"))
    assert (tmp_path / "edge-anpr-replay.json").exists()
    reads.clear()
    with trio.fail_after(90):
        async with running_pipeline(cfg, sinks=Sinks(on_read=reads.append)) as (pipeline, _):
            replays = [(f"127.0.0.{1 + (r % 2) * (50 + r)}", d)
                       for r in range(rounds) for d in captured]
            sent = await send_all(pipeline.port, replays)
            await settle(pipeline, sent)
            second_run_reads = list(reads)
            second_run_drops = dict(pipeline.reassembler.stats.drops)
            gates_second_run = sum(t.endswith("/gate") for t in outbox_topics(
                tmp_path / "outbox.sqlite"))
            # the control: the camera's next frame is read and opens the gate
            sent += await send_all(pipeline.port, [("127.0.0.1", encode_sequenced(
                jpeg, camera=1, frame=7003, key=KEY.encode(), time_us=time.time_ns() // 1000,
            ))])
            await settle(pipeline, sent)
            pipeline.stop()
    gates_after_control = sum(
        t.endswith("/gate") for t in outbox_topics(tmp_path / "outbox.sqlite"))
    # the genuine frames were read and opened the gate once: the harness sees a gate command
    assert genuine >= 1 and gates_before == 1
    replayed_datagrams = rounds * sum(len(d) for d in captured)
    assert first_run_reads == [] and gates_first_run == gates_before
    assert first_run_drops.get("replayed", 0) > 0
    assert second_run_reads == [] and gates_second_run == gates_before
    assert second_run_drops == {"replayed": replayed_datagrams}
    assert [r.frame_sequence for r in reads] == [7003] * len(reads) and reads
    assert gates_after_control == gates_before + 1
