"""The SQLite outbox: order, acknowledgement, bound, expiry, durability, and an appliance restart
with a broker that was down the whole time of the first run."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_anpr.config import config_from_dict
from edge_anpr.publish.outbox import DEFAULT_FILE, Outbox, default_outbox_path
from edge_anpr.publish.stage import run_event_stage
from edge_anpr.values import Candidate, PlateRead, PlateText

if TYPE_CHECKING:  # fixtures come from conftest.py, however tests/ is imported
    from conftest import Broker, Subscriber


class FakeWall:
    def __init__(self) -> None:
        self.us = 1_000_000_000

    def __call__(self) -> int:
        return self.us


def test_pending_in_order_and_ack_removes(tmp_path: Path) -> None:
    box = Outbox(str(tmp_path / "o.sqlite"), 100)
    ids = [box.put(f"t/{i}", f"p{i}".encode()) for i in range(5)]
    assert ids == sorted(ids)
    assert [m.topic for m in box.pending()] == [f"t/{i}" for i in range(5)]
    box.ack(ids[1])
    box.ack(ids[1])  # a second PUBACK for the same row changes nothing
    assert [m.payload for m in box.pending()] == [b"p0", b"p2", b"p3", b"p4"]
    assert [m.topic for m in box.pending(after_id=ids[2], limit=1)] == ["t/3"]
    assert len(box) == 4
    assert box.stats() == {"pending": 4, "written": 5, "acked": 1, "evicted": 0, "expired": 0}


def test_survives_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "o.sqlite")
    box = Outbox(path, 100)
    box.put("a", b"1", retain=True)
    box.put("b", b"2", qos=1)
    box.close()
    again = Outbox(path, 100)
    got = again.pending()
    assert [(m.topic, m.payload, m.retain, m.qos) for m in got] == [
        ("a", b"1", True, 1), ("b", b"2", False, 1),
    ]
    assert len(again) == 2


def test_bounded_oldest_first_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(str(tmp_path / "o.sqlite"), 10)
    for i in range(25):
        box.put("t", str(i).encode())
    assert len(box) == 10
    assert [int(m.payload) for m in box.pending()] == list(range(15, 25))
    assert box.evicted == 15
    assert sum("outbox full" in r.getMessage() for r in caplog.records) == 1
    # after it drains below the bound, a new overflow is logged again
    for m in box.pending():
        box.ack(m.id)
    for _ in range(11):
        box.put("t", b"x")
    assert sum("outbox full" in r.getMessage() for r in caplog.records) == 2


def test_a_full_outbox_warns_once_however_often_a_snapshot_replaces_its_row(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(str(tmp_path / "o.sqlite"), 10)
    for i in range(150):  # a broker away: events, and the camera's snapshot replaced each time
        box.put("cam/event", str(i).encode())
        box.put("cam/snapshot", b"jpeg", retain=True, replace=True)
    assert len(box) == 10 and box.evicted == 141  # 150 events and one snapshot, 10 kept
    assert sum("outbox full" in r.getMessage() for r in caplog.records) == 1
    for m in box.pending()[:1]:  # the broker takes one: still about full
        box.ack(m.id)
    for i in range(5):
        box.put("cam/event", str(i).encode())
    assert sum("outbox full" in r.getMessage() for r in caplog.records) == 1


def test_expired_messages_are_dropped_not_sent(tmp_path: Path) -> None:
    wall = FakeWall()
    box = Outbox(":memory:", 100, wall_us=wall)
    box.put("gate", b"open", ttl_s=10)
    box.put("event", b"e")
    wall.us += 11_000_000
    assert [m.topic for m in box.pending()] == ["event"]
    assert box.expired == 1
    assert len(box) == 1


def test_default_path() -> None:
    assert default_outbox_path("/x/y.sqlite", {}) == "/x/y.sqlite"
    assert default_outbox_path("", {"STATE_DIRECTORY": "/var/lib/edge-anpr:/other"}) == (
        "/var/lib/edge-anpr/outbox.sqlite"
    )
    assert default_outbox_path("", {}) == str(Path.cwd() / DEFAULT_FILE)


def test_unwritable_path_is_a_readable_error(tmp_path: Path) -> None:
    from edge_anpr.errors import PublishError

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(PublishError, match=r"mqtt\.outbox_path"):
        Outbox(str(blocker / "sub" / "o.sqlite"), 10)


def test_put_is_fast_enough_for_the_event_rate(tmp_path: Path) -> None:
    box = Outbox(str(tmp_path / "o.sqlite"), 100_000)
    t0 = time.perf_counter()
    for i in range(500):
        box.put("edge-anpr/x/gate/event", json.dumps({"i": i}).encode())
    per_put_ms = (time.perf_counter() - t0) / 500 * 1000
    assert per_put_ms < 5.0, per_put_ms


def read(text: str) -> PlateRead:
    return PlateRead(
        camera="gate",
        text=PlateText(text, 0.9, tuple(0.9 for _ in text), (Candidate(text, 0.9),), "generic"),
        box_px=(10, 10, 100, 30), capture_time_us=1_700_000_000_000_000, frame_sequence=1,
        completed_monotonic_s=time.monotonic(),
    )


async def test_appliance_restart_sends_what_the_first_run_could_not(
    mosquitto_factory: Callable[..., Broker],
    subscriber_factory: Callable[..., Subscriber],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    broker = mosquitto_factory()
    broker.stop()  # down during the whole first run
    raw = {
        "device": {"name": "rs"},
        "tracker": {"quiet_time_s": 0.1, "parked_suppress_s": 0.0},
        "mqtt": {"host": broker.host, "port": broker.port, "reconnect_min_s": 0.1,
                 "flush_timeout_s": 0.3, "outbox_path": str(tmp_path / "o.sqlite"),
                 "homeassistant_discovery": False},
    }
    cfg = config_from_dict(raw)
    plates = ["AB123CD", "XY987ZW", "KL456MN"]
    emitted: list[dict[str, object]] = []

    async def one_run(texts: list[str]) -> None:
        send, recv = trio.open_memory_channel[PlateRead](10)
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: run_event_stage(
                cfg, recv, on_event=emitted.append, task_status=task_status))
            for text in texts:
                await send.send(read(text))
                await trio.sleep(0.2)
            await send.aclose()

    await one_run(plates)
    assert len(emitted) == 6
    assert "unsent=12" in caplog.text  # 3 x (start, plate, sighting, end) stayed on disk

    broker.start()
    sub = subscriber_factory(broker, ["edge-anpr/rs/#"])
    async with trio.open_nursery() as nursery:
        await nursery.start(sub.run)
        await one_run(["MN000PQ"])
        await sub.wait_for(lambda: len(sub.on("edge-anpr/rs/gate/event")) == 8)
        nursery.cancel_scope.cancel()
    got = [(e["event_id"], e["kind"]) for e in sub.on("edge-anpr/rs/gate/event")]  # type: ignore[index]
    assert got == [(e["event_id"], e["kind"]) for e in emitted]


async def test_a_message_the_broker_always_hangs_up_on_is_dropped_after_strikes(
    mosquitto_factory: Callable[..., Broker],
    subscriber_factory: Callable[..., Subscriber],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # mosquitto disconnects a client that sends a packet above max_packet_size
    broker = mosquitto_factory(extra=("max_packet_size 3000",))
    path = str(tmp_path / "o.sqlite")
    box = Outbox(path, 100)
    box.put("edge-anpr/p/gate/event", json.dumps({"ok": 1}).encode())
    box.put("edge-anpr/p/gate/event", b"x" * 5000)  # poison
    box.put("edge-anpr/p/gate/event", json.dumps({"ok": 2}).encode())
    box.close()
    cfg = config_from_dict({
        "device": {"name": "p"},
        "mqtt": {"host": broker.host, "port": broker.port, "reconnect_min_s": 0.05,
                 "reconnect_max_s": 0.1, "outbox_path": path, "homeassistant_discovery": False,
                 # one at a time: the broker resets the connection with our next message
                 # unread, which can destroy the PUBACK of the previous one (a legitimate
                 # QoS 1 duplicate this test is not about)
                 "max_inflight": 1},
    })
    sub = subscriber_factory(broker, ["edge-anpr/p/gate/event"])
    send, recv = trio.open_memory_channel[PlateRead](1)
    async with trio.open_nursery() as nursery:
        await nursery.start(sub.run)
        async with trio.open_nursery() as stage:
            await stage.start(lambda task_status: run_event_stage(cfg, recv,
                                                                  task_status=task_status))
            await sub.wait_for(lambda: len(sub.messages) == 2, timeout_s=10)
            await send.aclose()
        nursery.cancel_scope.cancel()
    assert [json.loads(m.payload) for m in sub.messages] == [{"ok": 1}, {"ok": 2}]
    assert "dropping a message the broker keeps refusing" in caplog.text
    assert len(Outbox(path, 100)) == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["put", "ack", "ack_first"]), st.integers(0, 50)),
                max_size=80),
       st.integers(3, 12))
def test_outbox_behaves_like_a_bounded_ordered_list(
    ops: list[tuple[str, int]], bound: int
) -> None:
    box = Outbox(":memory:", bound)
    model: list[tuple[int, bytes]] = []
    evicted = 0
    for op, n in ops:
        if op == "put":
            payload = str(n).encode()
            model.append((box.put("t", payload), payload))
            if len(model) > bound:
                evicted += len(model) - bound
                model = model[-bound:]
        elif model:
            i = 0 if op == "ack_first" else n % len(model)
            box.ack(model.pop(i)[0])
        assert [(m.id, m.payload) for m in box.pending(limit=1000)] == model
        assert len(box) == len(model)
    assert box.evicted == evicted


def test_replace_keeps_one_pending_message_per_topic(tmp_path: Path) -> None:
    """Snapshots are written with ``replace``: an outage of any length leaves one per camera,
    and the messages of other topics keep their order."""
    box = Outbox(str(tmp_path / "o.sqlite"), 100)
    box.put("p/gate/event", b"e1")
    for n in range(50):
        box.put("p/gate/snapshot", b"jpeg%d" % n, retain=True, replace=True)
        box.put("p/exit/snapshot", b"exit%d" % n, retain=True, replace=True)
    box.put("p/gate/event", b"e2")
    assert len(box) == 4
    assert [(m.topic, m.payload) for m in box.pending()] == [
        ("p/gate/event", b"e1"), ("p/gate/snapshot", b"jpeg49"), ("p/exit/snapshot", b"exit49"),
        ("p/gate/event", b"e2"),
    ]
    assert all(m.retain for m in box.pending() if m.topic.endswith("snapshot"))
    box.close()


def test_adopt_appends_another_outbox_in_order_and_removes_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wall = FakeWall()
    orphan_path = str(tmp_path / "o-3.sqlite")
    orphan = Outbox(orphan_path, 100, wall_us=wall)
    for i in range(4):
        orphan.put(f"gone/{i}", f"g{i}".encode(), retain=i == 0, ttl_s=60 if i == 1 else 0)
    orphan.close()
    box = Outbox(str(tmp_path / "o-1.sqlite"), 100, wall_us=wall)
    box.put("own/0", b"o0")
    with caplog.at_level(logging.INFO, logger="edge_anpr.publish.outbox"):
        assert box.adopt(orphan_path) == 4
    got = box.pending()
    assert [m.topic for m in got] == ["own/0", *(f"gone/{i}" for i in range(4))]
    assert [m.payload for m in got[1:]] == [b"g0", b"g1", b"g2", b"g3"]
    assert got[1].retain and not got[2].retain
    assert got[2].expires_us == wall.us + 60_000_000  # the expiry travels with the message
    assert len(box) == 5
    assert not list(tmp_path.glob("o-3.sqlite*")), "the adopted file and its WAL are gone"
    lines = [r.getMessage() for r in caplog.records if "outbox_adopted" in r.getMessage()]
    assert len(lines) == 1 and "messages=4" in lines[0] and orphan_path in lines[0]
    assert box.adopt(orphan_path) == 0, "a file already taken over is not there any more"
    assert not (tmp_path / "o-3.sqlite").exists(), "adopting a missing file creates none"
    # survives a restart: the adopted rows are committed in this file
    box.close()
    again = Outbox(str(tmp_path / "o-1.sqlite"), 100, wall_us=wall)
    assert [m.topic for m in again.pending()] == [m.topic for m in got]


def test_adopt_keeps_the_bound_and_leaves_an_unreadable_file(tmp_path: Path) -> None:
    orphan_path = str(tmp_path / "o-2.sqlite")
    orphan = Outbox(orphan_path, 100)
    for i in range(5):
        orphan.put(f"gone/{i}", b"x")
    orphan.close()
    box = Outbox(str(tmp_path / "o.sqlite"), 3)
    box.put("own/0", b"x")
    assert box.adopt(orphan_path) == 5
    assert [m.topic for m in box.pending()] == ["gone/2", "gone/3", "gone/4"]  # oldest evicted
    assert box.evicted == 3
    junk = tmp_path / "o-4.sqlite"
    junk.write_bytes(b"not a database" * 100)
    assert box.adopt(str(junk)) == 0
    assert junk.exists(), "what cannot be read stays for a later try"
    assert len(box) == 3


def test_a_full_disk_makes_health_degraded_and_is_in_the_stats_line(tmp_path: Path) -> None:
    """SQLite's own "database or disk is full" (its page limit set to the file's size): every
    event is lost, so /health must not say ok; once a write goes through again, it does."""
    from edge_anpr.http.metrics import Observed, health_json
    from edge_anpr.publish.stage import EventSink, StatsReport, report_log_fields
    from edge_anpr.publish.topics import Topics
    from edge_anpr.values import PlateEvent
    from edge_anpr.vision.workers import LatencyHistogram

    cfg = config_from_dict({})
    box = Outbox(str(tmp_path / "o.sqlite"), 1000)
    sink = EventSink(cfg, box, Topics.from_config(cfg))
    report = StatsReport("dev")
    report.attach(lambda: {"tracker": {"open_events": 0, "suppressed_reads": 0, **sink.stats()},
                           "outbox": box.stats()}, None)

    def health() -> tuple[int, dict[str, object]]:
        return health_json(Observed(report=report.build({}), recognition=LatencyHistogram(),
                                    silence_s={"events": 0.1}, max_silence_s=30))

    def plate_event(n: int) -> PlateEvent:
        return PlateEvent(f"e{n}", "start", "gate", "AB123CD", 0.9,
                          (Candidate("AB123CD", 0.9),), "generic", (1, 2, 3, 4), 5, 5, 6, 2, 3,
                          1.0)

    sink.handle(plate_event(0))
    assert health()[0] == 200 and health()[1]["status"] == "ok"
    pages = box._db.execute("PRAGMA page_count").fetchone()[0]
    box._db.execute(f"PRAGMA max_page_count = {pages}")
    for n in range(1, 200):
        sink.handle(plate_event(n))
    status, body = health()
    assert (status, body["status"], body["degraded"]) == (503, "degraded",
                                                          ["outbox_write_failing"])
    assert sink.outbox_errors > 0
    line = report_log_fields(report.build({}, tick=True))
    assert line["outbox_errors"] == sink.outbox_errors
    box._db.execute("PRAGMA max_page_count = 1000000")  # room again
    sink.handle(plate_event(200))
    assert health()[1]["status"] == "ok"
