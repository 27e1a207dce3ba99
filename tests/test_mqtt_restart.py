"""Broker restart in the middle of a stream: every event arrives exactly once, in order."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio

from edge_anpr.config import config_from_dict
from edge_anpr.publish.stage import run_event_stage
from edge_anpr.values import Candidate, PlateRead, PlateText

if TYPE_CHECKING:  # fixtures come from conftest.py, however tests/ is imported
    from conftest import Broker, Subscriber

PREFIX = "edge-anpr/restart"
N_EVENTS = 60
RATE_HZ = 50.0
STOP_AFTER = 20
BURST = 5
TOTAL = N_EVENTS + BURST


def plate(i: int) -> str:
    """A different random-looking plate per index (far apart in edit distance)."""
    rng = random.Random(i)
    return "".join(rng.choice("ABCDEFGHKLMNPRSTXYZ0123456789") for _ in range(7))


def read(i: int) -> PlateRead:
    text = plate(i)
    return PlateRead(
        camera="gate",
        text=PlateText(text, 0.9, tuple(0.9 for _ in text), (Candidate(text, 0.9),), "generic"),
        box_px=(40 * (i % 20), 100, 100, 30),
        capture_time_us=1_700_000_000_000_000 + i,
        frame_sequence=i,
        completed_monotonic_s=time.monotonic(),
    )


async def test_broker_restart_mid_stream_loses_and_duplicates_nothing(
    mosquitto_factory: Callable[..., Broker],
    subscriber_factory: Callable[..., Subscriber],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="edge_anpr.publish")
    broker = mosquitto_factory(persistence=True)
    cfg = config_from_dict({
        "device": {"name": "restart"},
        # Each read is its own plate: one start per read; ends follow after the quiet time.
        "tracker": {"quiet_time_s": 0.2, "parked_suppress_s": 0.0},
        "mqtt": {
            "host": broker.host, "port": broker.port, "reconnect_min_s": 0.1,
            "reconnect_max_s": 0.4, "outbox_path": str(tmp_path / "outbox.sqlite"),
            "homeassistant_discovery": False,
        },
    })
    sub = subscriber_factory(broker, [f"{PREFIX}/gate/event"], client_id="restart-sub",
                             clean=False)
    emitted: list[dict[str, Any]] = []
    send, recv = trio.open_memory_channel[PlateRead](N_EVENTS + BURST)

    def received() -> list[tuple[str, str]]:
        return [
            (p["event_id"], p["kind"])
            for p in (json.loads(m.payload) for m in sub.messages)
        ]

    async with trio.open_nursery() as nursery:
        await nursery.start(sub.run)
        await nursery.start(
            lambda task_status: run_event_stage(
                cfg, recv, on_event=emitted.append, task_status=task_status
            )
        )
        stopped_at = restarted_at = -1
        t_stop = 0.0
        for i in range(N_EVENTS):
            await send.send(read(i))
            await trio.sleep(1 / RATE_HZ)
            if stopped_at < 0 and len(received()) >= STOP_AFTER:
                # The subscriber leaves first (cleanly, keeping its session): a QoS 1
                # delivery to a subscriber that is mid-PUBACK when the broker stops is
                # redelivered after the restart, which is the subscriber's leg, not ours.
                await sub.pause()
                # PUBACKs read once the broker has seen it go: mosquitto says "disconnected"
                # after a DISCONNECT packet, "closed its connection" when the socket closes
                # first; up to 15 s (under a full suite's load the 5 s default once ran out).
                await broker.wait_log(
                    ("Client restart-sub disconnected", "Client restart-sub closed its connection"),
                    timeout_s=15.0,
                )
                # Freeze the broker, make a burst of events, then stop it: those messages
                # were sent but never acknowledged and must be sent again after the restart.
                broker.freeze()
                for j in range(BURST):
                    await send.send(read(N_EVENTS + j))
                await trio.sleep(0.1)
                broker.stop()  # SIGTERM; events keep coming
                stopped_at = i
                t_stop = trio.current_time()
            if stopped_at >= 0 and restarted_at < 0 and trio.current_time() - t_stop >= 1.5:
                broker.start()
                sub.resume()
                restarted_at = i
        if restarted_at < 0:
            await trio.sleep_until(t_stop + 1.5)
            broker.start()
            sub.resume()
            restarted_at = N_EVENTS
        await send.aclose()  # the stage ends every open event and flushes
        await sub.wait_for(lambda: len(received()) >= len(emitted) and len(emitted) >= 2 * TOTAL,
                           timeout_s=20)
        await trio.sleep(0.3)  # anything extra (a duplicate) would arrive now
        nursery.cancel_scope.cancel()

    assert 0 < stopped_at < restarted_at, (stopped_at, restarted_at)
    assert stopped_at < N_EVENTS - 10, "the broker was down while events were being produced"
    want = [(p["event_id"], p["kind"]) for p in emitted]
    assert len(want) == 2 * TOTAL
    assert len({e for e, k in want if k == "start"}) == TOTAL
    got = received()
    dups = [(m.dup, m.mid, got[i]) for i, m in enumerate(sub.messages) if got.count(got[i]) > 1]
    assert len(got) == len(set(got)), f"no duplicates: {dups}"
    assert got == want, "every event exactly once, in order"
    assert sub.connects >= 2, "the subscriber really lost the broker"
    connects = [r for r in caplog.records if r.getMessage().startswith("mqtt connected")]
    assert len(connects) == 2, "the publisher reconnected once"
    assert "pending=0" not in connects[1].getMessage(), "events waited in the outbox"
    drops = [r.getMessage() for r in caplog.records if "mqtt disconnected" in r.getMessage()]
    assert drops and "unacked=0" not in drops[0], "messages were in flight when it stopped"
