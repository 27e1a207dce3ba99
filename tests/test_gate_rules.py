"""The gate rules as plain calls: an event is authenticated only while every read of it is;
only an authenticated event (or a camera that takes the risk by name) opens the gate; and
``edge-anpr config`` names the unsafe combinations, exit 0."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge_anpr.cli import main
from edge_anpr.config import Config, config_from_dict, config_warnings, load_config
from edge_anpr.plates.tracker import Tracker
from edge_anpr.publish.outbox import Outbox
from edge_anpr.publish.stage import EventSink
from edge_anpr.publish.topics import Topics
from edge_anpr.values import Candidate, PlateEvent, PlateRead, PlateText

KEY = "a-camera-key-of-16+"


def read(camera: str, authenticated: bool, text: str = "AB123CD") -> PlateRead:
    return PlateRead(
        PlateText(text, 0.9, (0.9,) * len(text), (Candidate(text, 0.9),), "generic"),
        (100, 200, 120, 30), camera=camera, authenticated=authenticated,
    )


def gate_cfg(**camera: Any) -> Config:
    return config_from_dict({
        "cameras": {"gate": {"id": 1, **camera}},
        "known_plates": [{"name": "Alice", "plate": "AB123CD", "gate": True}],
    })


def test_one_unauthenticated_read_taints_its_event_for_good() -> None:
    tracker = Tracker(Config().tracker)
    (start,) = tracker.push(read("gate", True), 0.0)
    assert start.authenticated
    events = tracker.push(read("gate", False, "AB123C0"), 0.1)
    events += tracker.push(read("gate", True), 0.2) + tracker.close(0.3)
    assert events and not any(e.authenticated for e in events)
    (other,) = tracker.push(read("lane", True), 0.4)  # another camera: its own event
    assert other.authenticated


def sink_for(cfg: Config, tmp_path: Path) -> tuple[EventSink, Outbox]:
    outbox = Outbox(str(tmp_path / "outbox.sqlite"), 1000)
    return EventSink(cfg, outbox, Topics.from_config(cfg)), outbox


def event(authenticated: bool, event_id: str = "e1", confidence: float = 0.9,
          kind: str = "start") -> PlateEvent:
    return PlateEvent(
        event_id, kind, "gate", "AB123CD", confidence, (Candidate("AB123CD", confidence),),  # type: ignore[arg-type]
        "generic", (100, 200, 120, 30), 0, 0, 0, 1, None, 0.0, authenticated=authenticated,
    )


def test_a_less_sure_read_never_opens_the_gate_until_the_event_is_read_surely(
    tmp_path: Path,
) -> None:
    """A plate the detector is sure of is reported with a less sure read (down to
    reader.min_sure_plate_confidence); the gate keeps its own threshold."""
    sink, outbox = sink_for(gate_cfg(key=KEY), tmp_path)
    low = Config().mqtt.gate_min_confidence - 0.2
    sink.handle(event(True, "e1", low))
    assert (sink.known_matches, sink.gate_commands, sink.gate_withheld_low_confidence) == (1, 0, 1)
    sink.handle(event(True, "e1", 0.95, "update"))
    assert sink.gate_commands == 1
    assert sum(m.topic.endswith("/gate/gate") for m in outbox.pending()) == 1
    outbox.close()


def test_only_authenticated_events_open_the_gate(tmp_path: Path) -> None:
    sink, outbox = sink_for(gate_cfg(key=KEY), tmp_path)
    sink.handle(event(False, "e1"))
    assert (sink.known_matches, sink.gate_commands, sink.gate_refused_unauthenticated) == (1, 0, 1)
    sink.handle(event(True, "e2"))
    assert (sink.gate_commands, sink.stats()["gate_refused_unauthenticated"]) == (1, 1)
    topics = [m.topic for m in outbox.pending()]
    assert sum(t.endswith("/gate/gate") for t in topics) == 1
    outbox.close()


def test_a_camera_may_take_the_risk_by_name(tmp_path: Path) -> None:
    sink, outbox = sink_for(gate_cfg(allow_gate_unauthenticated=True), tmp_path)
    sink.handle(event(False))
    assert (sink.gate_commands, sink.gate_refused_unauthenticated) == (1, 0)
    outbox.close()


LOOPBACK = '[ingest]\nbind = "127.0.0.1"\n'
GATE_PLATE = '[[known_plates]]\nplate = "AB123CD"\ngate = true\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (LOOPBACK, []),
        (f'[ingest]\nkey = "{KEY}"\n', []),
        ("", ["ingest.bind = '0.0.0.0' is not a loopback address and no camera has a key"]),
        (f'[ingest]\nbind = "::1"\n[cameras.gate]\nid = 1\nkey = "{KEY}"\n' + GATE_PLATE, []),
        ('[ingest]\nbind = "::1"\n' + GATE_PLATE,
         ["known_plates with gate = true but no camera has a key"]),
        (LOOPBACK + '[cameras.yard]\nsource = "10.0.0.5"\nallow_gate_unauthenticated = true\n'
         + GATE_PLATE,
         ["cameras.yard.allow_gate_unauthenticated = true: anyone on the network"]),
        # warned whenever set, not only once a known plate has gate = true
        (LOOPBACK + '[cameras.yard]\nsource = "10.0.0.5"\nallow_gate_unauthenticated = true\n',
         ["cameras.yard.allow_gate_unauthenticated = true: anyone on the network"]),
    ],
)
def test_config_warns_about_unsafe_combinations(
    text: str, expected: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    warnings = config_warnings(load_config(path))
    assert len(warnings) == len(expected)
    for got, start in zip(warnings, expected, strict=True):
        assert got.startswith(start)
    # `edge-anpr config` prints each as one line and still says ok (exit 0)
    assert main(["config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == f"{path}: ok"
    assert err.splitlines() == [f"edge-anpr: warning: {w}" for w in warnings]
