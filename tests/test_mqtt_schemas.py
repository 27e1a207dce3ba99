"""docs/mqtt.md's payload examples and the payload builders agree with the JSON Schemas."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from edge_anpr.config import config_from_dict
from edge_anpr.plates.known import KnownPlates
from edge_anpr.publish.homeassistant import camera_messages, device_messages
from edge_anpr.publish.topics import (
    Topics,
    event_payload,
    gate_payload,
    known_payload,
    plate_payload,
    sighting_payload,
)
from edge_anpr.values import Candidate, PlateEvent

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "edge_anpr" / "publish" / "schemas"


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def doc_examples() -> list[tuple[str, object]]:
    section = (ROOT / "docs" / "mqtt.md").read_text()
    out = []
    previous_end = 0
    for block in re.finditer(r"```json\n(.*?)```", section, re.S):
        # the schema named last in the prose between the previous block and this one
        names = re.findall(r"schemas/(\w+)\.json", section[previous_end : block.start()])
        assert names, f"no schema named before example {block.group(1)[:40]!r}"
        out.append((names[-1], json.loads(block.group(1))))
        previous_end = block.end()
    return out


def test_the_mqtt_doc_has_an_example_per_payload() -> None:
    names = sorted(name for name, _ in doc_examples())
    assert names == sorted(
        ["event", "plate", "known", "gate", "sighting", "discovery_sensor", "discovery_sensor",
         "discovery_image", "discovery_event", "discovery_trigger", "discovery_binary_sensor"]
    )


@pytest.mark.parametrize(("name", "example"), doc_examples())
def test_doc_examples_are_valid(name: str, example: object) -> None:
    validator(name).validate(example)


def event(kind: str = "start", frame_sequence: int | None = 3) -> PlateEvent:
    return PlateEvent(
        "e1", kind, "back yard", "AB123CD", 0.8,  # type: ignore[arg-type]
        (Candidate("AB123CD", 0.8), Candidate("AB128CD", 0.1)), "generic", (1, 2, 3, 4),
        0, 5, 6, 2, frame_sequence, 1.0,
    )


def test_builders_match_schemas_and_schemas_reject_garbage() -> None:
    cfg = config_from_dict({"known_plates": [{"name": "A", "plate": "AB*", "match": "wildcard",
                                              "gate": True}]})
    match = KnownPlates(cfg.known_plates).match(["AB123CD"])
    assert match is not None
    for ev in (event(), event("end", None)):
        validator("event").validate(event_payload("dev", ev, match))
        validator("event").validate(event_payload("dev", ev, None))
    validator("plate").validate(plate_payload(event()))
    validator("known").validate(known_payload(event(), match))
    validator("gate").validate(gate_payload(event(), match))
    validator("sighting").validate(sighting_payload(event(), None))
    validator("sighting").validate(sighting_payload(event(), match))
    unnamed = sighting_payload(event(), match)
    del unnamed["name"]
    assert not validator("sighting").is_valid(unnamed)
    bad = event_payload("dev", event(), None)
    bad["kind"] = "stop"
    assert not validator("event").is_valid(bad)
    bad = gate_payload(event(), match)
    bad["command"] = "close"
    assert not validator("gate").is_valid(bad)


def test_topics_and_discovery_ids_are_safe() -> None:
    cfg = config_from_dict({"device": {"name": "my box/1"}})
    topics = Topics.from_config(cfg)
    assert topics.prefix == "edge-anpr/my_box_1"
    assert topics.event("back yard+#") == "edge-anpr/my_box_1/back_yard__/event"
    assert topics.snapshot("legacy-127.0.0.1") == "edge-anpr/my_box_1/legacy-127_0_0_1/snapshot"
    kinds = {"sensor": "discovery_sensor", "image": "discovery_image", "event": "discovery_event",
             "device_automation": "discovery_trigger", "binary_sensor": "discovery_binary_sensor"}
    messages = camera_messages(cfg, topics, "back yard") + device_messages(cfg, topics)
    for topic, payload in messages:
        assert "+" not in topic and "#" not in topic and " " not in topic
        validator(kinds[topic.split("/")[1]]).validate(payload)
    assert {topic.split("/")[1] for topic, _ in messages} == set(kinds)
    custom = Topics.from_config(config_from_dict({"mqtt": {"topic_prefix": "site/a/"}}))
    assert custom.status == "site/a/status"


def test_wildcards_in_prefixes_are_config_errors() -> None:
    # The loader is the only validator: Topics trusts the prefixes it is given.
    from edge_anpr.errors import ConfigError

    with pytest.raises(ConfigError, match=r"mqtt\.topic_prefix"):
        config_from_dict({"mqtt": {"topic_prefix": "site/+/x"}})
    with pytest.raises(ConfigError, match=r"mqtt\.homeassistant_prefix"):
        config_from_dict({"mqtt": {"homeassistant_prefix": "ha/#"}})


def test_the_stats_report_with_pipeline_counters_fits_its_schema() -> None:
    from edge_anpr.ingest.events import IngestStats
    from edge_anpr.publish.stage import StatsReport

    ingest = IngestStats(datagrams=10, kernel_drops=3)
    ingest.drops["malformed"] = 2
    report = StatsReport("dev")
    report.attach(lambda: {
        "tracker": {"open_events": 0, "suppressed_reads": 0, "events": 0, "known_matches": 0,
                    "gate_commands": 0, "gate_refused_unauthenticated": 0},
        "outbox": {"pending": 0, "written": 0, "acked": 0, "evicted": 0, "expired": 0},
    }, None)
    full = report.build(ingest.snapshot())
    validator("stats").validate(full)
    assert full["pipeline"]["kernel_drops"] == 3
    full["pipeline"]["kernel_drops"] = -1
    assert not validator("stats").is_valid(full)
