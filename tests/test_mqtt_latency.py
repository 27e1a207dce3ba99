"""End-to-end latency of the event stage: a read handed in -> its `start` at a subscriber."""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from edge_anpr.config import config_from_dict
from edge_anpr.publish.stage import run_event_stage
from edge_anpr.values import Candidate, PlateRead, PlateText

if TYPE_CHECKING:  # fixtures come from conftest.py, however tests/ is imported
    from conftest import Broker, Subscriber

N = 100


def read(i: int) -> PlateRead:
    rng = random.Random(i)
    text = "".join(rng.choice("ABCDEFGHKLMNPRSTXYZ0123456789") for _ in range(7))
    return PlateRead(
        camera="gate",
        text=PlateText(text, 0.9, tuple(0.9 for _ in text), (Candidate(text, 0.9),), "generic"),
        box_px=(40 * (i % 20), 100, 100, 30), capture_time_us=0, frame_sequence=i,
        completed_monotonic_s=time.monotonic(),
    )


async def test_read_to_subscriber_latency(
    mosquitto: Broker, subscriber_factory: Callable[..., Subscriber], tmp_path: Path
) -> None:
    cfg = config_from_dict({
        "device": {"name": "lat"},
        "tracker": {"quiet_time_s": 0.2, "parked_suppress_s": 0.0},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port,
                 "outbox_path": str(tmp_path / "o.sqlite"), "homeassistant_discovery": False},
    })
    sub = subscriber_factory(mosquitto, ["edge-anpr/lat/gate/event"])
    arrivals: dict[str, float] = {}

    def on_message(client: object, userdata: object, msg: object) -> None:
        payload = json.loads(msg.payload)  # type: ignore[attr-defined]
        if payload["kind"] == "start":
            arrivals[payload["plate"]] = time.monotonic()

    sub.client.on_message = on_message
    sent: dict[str, float] = {}
    send, recv = trio.open_memory_channel[PlateRead](N)
    async with trio.open_nursery() as nursery:
        await nursery.start(sub.run)
        await nursery.start(lambda task_status: run_event_stage(cfg, recv,
                                                                task_status=task_status))
        for i in range(N):
            r = read(i)
            sent[r.text.text] = r.completed_monotonic_s
            await send.send(r)
            await trio.sleep(0.02)
        await sub.wait_for(lambda: len(arrivals) == N)
        nursery.cancel_scope.cancel()
    latencies_ms = sorted((arrivals[t] - sent[t]) * 1000 for t in sent)
    median = statistics.median(latencies_ms)
    p95 = latencies_ms[int(0.95 * N) - 1]
    print(f"read->subscriber latency over {N} events: median {median:.2f} ms, p95 {p95:.2f} ms")
    assert median < 50, latencies_ms
