"""End to end for Home Assistant: the whole appliance in this process (real models, real UDP,
real mosquitto), two cars in front of one camera.

A subscriber must get a JPEG snapshot of each car that shows its plate (read back by the
recognizer itself), bounded in size; the retained last plate must never go back to the first
car once the second was seen, although the first car's event ends after the second started
(that end used to re-publish the first plate); a late subscriber (Home Assistant starting
later) finds the second car's plate and snapshot retained.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pytest
import trio

from edge_anpr.app import running_pipeline
from edge_anpr.assets import DEMO_DIR
from edge_anpr.config import config_from_dict
from edge_anpr.ingest.protocol import encode_sequenced
from edge_anpr.vision.recognize import FrameRecognizer

if TYPE_CHECKING:
    from conftest import Broker, Subscriber

pytestmark = pytest.mark.slow

PREFIX = "edge-anpr/e2e"
CAMERA_ID = 7
FIRST, SECOND = "frame_00.jpg", "frame_02.jpg"


def expected(name: str) -> str:
    raw: dict[str, Any] = json.loads((DEMO_DIR / "expected.json").read_text())
    return str(raw[name]["plates"][0])


def jpeg_size(data: bytes) -> tuple[int, int]:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "the snapshot does not decode"
    return int(image.shape[1]), int(image.shape[0])


async def test_snapshots_and_a_last_plate_that_never_goes_back(
    mosquitto: Broker, subscriber_factory: Callable[..., Subscriber], tmp_path: Path
) -> None:
    cfg = config_from_dict({
        "device": {"name": "e2e", "stats_interval_s": 0.5},
        "ingest": {"bind": "127.0.0.1", "port": 0, "allow_unauthenticated": True},
        "cameras": {"gate": {"id": CAMERA_ID}},
        "workers": {"count": 1},
        "tracker": {"quiet_time_s": 1.5},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "reconnect_min_s": 0.1,
                 "outbox_path": str(tmp_path / "outbox.sqlite")},
    })
    sub = subscriber_factory(mosquitto, [f"{PREFIX}/#"])
    first, second = (DEMO_DIR / FIRST).read_bytes(), (DEMO_DIR / SECOND).read_bytes()
    plate_a, plate_b = expected(FIRST), expected(SECOND)

    def ended() -> int:
        return sum(json.loads(m.payload)["kind"] == "end" for m in sub.messages
                   if m.topic == f"{PREFIX}/gate/event")

    async with trio.open_nursery() as nursery:
        await nursery.start(sub.run)
        async with running_pipeline(cfg) as (pipeline, _):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                # car A three times, then car B three times while A's event is still open
                for n, jpeg in enumerate([first] * 3 + [second] * 3):
                    for packet in encode_sequenced(jpeg, camera=CAMERA_ID, frame=n + 1,
                                                   time_us=time.time_ns() // 1000):
                        sock.sendto(packet, ("127.0.0.1", pipeline.port))
                    await trio.sleep(0.25)
            await sub.wait_for(lambda: ended() == 2, timeout_s=20)
            pipeline.stop()
        nursery.cancel_scope.cancel()

    plates = [(p["event_id"], p["plate"]) for p in sub.on(f"{PREFIX}/gate/plate")]  # type: ignore[index]
    events = [e for e in sub.on(f"{PREFIX}/gate/event")]
    starts = [e["event_id"] for e in events if e["kind"] == "start"]  # type: ignore[index]
    assert len(starts) == 2, events
    event_a, event_b = starts
    assert plates[0] == (event_a, plate_a)
    assert plates[-1] == (event_b, plate_b)
    first_b = next(i for i, (eid, _) in enumerate(plates) if eid == event_b)
    assert all(eid == event_b for eid, _ in plates[first_b:]), plates  # never back to car A

    snapshots = [m.payload for m in sub.messages if m.topic == f"{PREFIX}/gate/snapshot"]
    assert len(snapshots) >= 2
    reader = FrameRecognizer(cfg)
    shown = []
    for jpeg in snapshots:
        assert jpeg[:3] == b"\xff\xd8\xff" and jpeg[-2:] == b"\xff\xd9"
        assert 2_000 < len(jpeg) <= 96 * 1024
        width, height = jpeg_size(jpeg)
        assert 200 <= width <= 640 and 150 <= height <= 480
        found = reader.recognize_jpeg(jpeg)
        assert found is not None
        shown.append({read.text.text for read in found})
    assert plate_a in shown[0], shown  # the car that started the first event
    assert plate_b in shown[-1], shown

    # Home Assistant starting now finds the second car, its plate and its picture
    late = subscriber_factory(mosquitto, [f"{PREFIX}/gate/plate", f"{PREFIX}/gate/snapshot"],
                              client_id="late-ha")
    async with trio.open_nursery() as nursery:
        await nursery.start(late.run)
        await late.wait_for(lambda: len(late.messages) == 2)
        nursery.cancel_scope.cancel()
    retained = {m.topic.rsplit("/", 1)[1]: m.payload for m in late.messages}
    assert json.loads(retained["plate"])["plate"] == plate_b
    assert retained["snapshot"] == snapshots[-1]


def _step(event_id: str, kind: str, text: str) -> Any:
    from edge_anpr.values import Candidate, PlateEvent

    return PlateEvent(event_id, kind, "gate", text, 0.9, (Candidate(text, 0.9),),  # type: ignore[arg-type]
                      "generic", (1, 2, 3, 4), 0, 0, 0, 1, None, 0.0)


def test_the_last_plate_is_held_by_the_newest_event_only() -> None:
    """Sans-IO: interleaved steps of two events; only the newest one moves the plate and wants
    snapshots, an older one's update or end never does."""
    from edge_anpr.publish.outbox import Outbox
    from edge_anpr.publish.stage import EventSink
    from edge_anpr.publish.topics import Topics

    cfg = config_from_dict({"device": {"name": "e2e"}})
    box = Outbox(":memory:", 1000)
    sink = EventSink(cfg, box, Topics.from_config(cfg))
    steps = [("a", "start", "AB12CD"), ("b", "start", "XY98ZW"), ("a", "update", "AB12CE"),
             ("b", "update", "XY98ZV"), ("a", "end", "AB12CE"), ("b", "end", "XY98ZV")]
    wanted = []
    for event_id, kind, text in steps:
        event = _step(event_id, kind, text)
        sink.handle(event)
        wanted.append(sink.wants_snapshot(event))
        sink.snapshot(event, b"\xff\xd8\xff" + event_id.encode())
    plates = [json.loads(m.payload)["plate"] for m in box.pending(0, 1000)
              if m.topic.endswith("/plate")]
    assert plates == ["AB12CD", "XY98ZW", "XY98ZV"]
    assert wanted == [True, True, False, True, False, False]
    snapshots = [m.payload for m in box.pending(0, 1000) if m.topic.endswith("/snapshot")]
    assert snapshots == [b"\xff\xd8\xffb"]  # one row per camera: the newest event's
    sightings = [json.loads(m.payload)["event_type"] for m in box.pending(0, 1000)
                 if m.topic.endswith("/sighting")]
    assert sightings == ["plate_seen", "plate_seen"]
    box.close()
