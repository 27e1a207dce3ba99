"""The discovery payloads against Home Assistant's own rules, not only against our schemas.

The rules are Home Assistant's MQTT integration's (``homeassistant/components/mqtt``:
``discovery.py``'s topic pattern, the platforms' discovery schemas, ``schemas.py``'s device
and origin schemas, the entity id format of ``helpers/config_validation.py``), written out here
independently of ``edge_anpr/publish/schemas``. The value templates are rendered with Jinja2
(as Home Assistant does) against payloads the appliance really builds.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jinja2
import pytest

from edge_anpr.config import ConfigError, config_from_dict, entity_slug, safe_id
from edge_anpr.plates.known import KnownPlates
from edge_anpr.publish.homeassistant import EVENT_TYPES, camera_messages, device_messages
from edge_anpr.publish.stage import StatsReport
from edge_anpr.publish.topics import Topics, plate_payload, sighting_payload
from edge_anpr.values import Candidate, PlateEvent

# discovery.py: TOPIC_MATCHER, after the discovery prefix
DISCOVERY_TOPIC = re.compile(
    r"(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?(?P<object_id>[a-zA-Z0-9_-]+)/config"
)
# helpers/config_validation.py: valid_entity_id (core.py's VALID_ENTITY_ID)
ENTITY_ID = re.compile(r"^(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)$")
COMMON = {
    "name", "unique_id", "default_entity_id", "availability_topic", "payload_available",
    "payload_not_available", "device", "origin", "icon", "entity_category",
    "json_attributes_topic", "json_attributes_template", "qos", "encoding", "enabled_by_default",
    # known up to 2026.3 (the id before 2025.10); from 2026.4 ignored, the discovery unbroken
    # (home-assistant/core PR 164460)
    "object_id",
}
# The keys each platform's discovery schema knows (anything else is silently removed by
# vol.REMOVE_EXTRA: a typo would be lost without a word) and the ones it requires.
PLATFORMS: dict[str, tuple[set[str], set[str]]] = {
    "sensor": (COMMON | {"state_topic", "value_template", "unit_of_measurement", "state_class",
                         "device_class", "expire_after", "force_update",
                         "suggested_display_precision"}, {"state_topic"}),
    "binary_sensor": (COMMON | {"state_topic", "value_template", "payload_on", "payload_off",
                                "device_class", "expire_after", "force_update", "off_delay"},
                      {"state_topic"}),
    "image": (COMMON | {"image_topic", "url_topic", "content_type", "image_encoding",
                        "url_template"}, set()),
    "event": (COMMON | {"state_topic", "value_template", "event_types", "device_class"},
              {"state_topic", "event_types"}),
    "device_automation": ({"automation_type", "topic", "type", "subtype", "payload",
                           "value_template", "qos", "device", "origin"},
                          {"automation_type", "topic", "type", "subtype", "device"}),
}
ENTITY_CATEGORIES = {"config", "diagnostic"}
STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}


def cfg_with_awkward_names() -> Any:
    return config_from_dict({
        "device": {"name": "Gate House.1"},
        "cameras": {"back yard": {"id": 2}, "Front-Gate": {"id": 3}},
        "known_plates": [{"name": "Alice", "plate": "AB123CD"}],
    })


def all_messages() -> list[tuple[str, dict[str, Any]]]:
    cfg = cfg_with_awkward_names()
    topics = Topics.from_config(cfg)
    out = device_messages(cfg, topics)
    for camera in [*cfg.cameras, "legacy-127.0.0.1", "legacy-fe80::1", "cam-7"]:
        out += camera_messages(cfg, topics, camera)
    return out


def check_home_assistant_rules(topic: str, payload: dict[str, Any], prefix: str) -> str:
    """Every rule Home Assistant applies to one discovery message; returns the platform."""
    assert topic.startswith(prefix + "/"), topic
    match = DISCOVERY_TOPIC.fullmatch(topic[len(prefix) + 1:])
    assert match is not None, f"Home Assistant ignores the discovery topic {topic!r}"
    platform = match["component"]
    assert platform in PLATFORMS, platform
    known, required = PLATFORMS[platform]
    assert set(payload) <= known, f"{topic}: keys Home Assistant drops: {set(payload) - known}"
    assert required <= set(payload), f"{topic}: missing {required - set(payload)}"
    device = payload["device"]
    assert device.get("identifiers") or device.get("connections")
    assert all(isinstance(i, str) for i in device.get("identifiers", []))
    origin = payload["origin"]
    assert isinstance(origin.get("name"), str) and origin["name"]
    assert re.match(r"^https?://[^/\s]+", origin.get("support_url", "https://x"))
    for key, value in payload.items():
        if key.endswith("topic"):
            assert value and "+" not in value and "#" not in value and "\0" not in value, key
    if platform == "device_automation":
        assert payload["automation_type"] == "trigger"
        return platform
    assert re.fullmatch(r"[A-Za-z0-9_-]+", payload["unique_id"]), payload["unique_id"]
    entity_id = payload["default_entity_id"]
    assert ENTITY_ID.match(entity_id), entity_id
    assert entity_id.split(".")[0] == platform
    # before 2025.10 the id is <platform>.<object_id>: the same id on every supported release
    assert f"{platform}.{payload['object_id']}" == entity_id
    if "entity_category" in payload:
        assert payload["entity_category"] in ENTITY_CATEGORIES
    if "state_class" in payload:
        assert payload["state_class"] in STATE_CLASSES
    if "expire_after" in payload:
        assert isinstance(payload["expire_after"], int) and payload["expire_after"] > 0
    if platform == "image":
        # vol.Exclusive(image_topic, url_topic), one of them required
        assert ("image_topic" in payload) != ("url_topic" in payload)
        assert payload.get("content_type", "image/jpeg").startswith("image/")
    if platform == "event":
        assert payload["event_types"] and all(isinstance(t, str) for t in payload["event_types"])
    if platform == "binary_sensor":
        assert payload.get("device_class") in (None, "connectivity")
    return platform


def test_every_discovery_message_follows_home_assistants_rules() -> None:
    messages = all_messages()
    platforms = [check_home_assistant_rules(t, p, "homeassistant") for t, p in messages]
    assert set(platforms) == set(PLATFORMS)
    unique_ids = [p["unique_id"] for _, p in messages if "unique_id" in p]
    assert len(unique_ids) == len(set(unique_ids))
    entity_ids = [p["default_entity_id"] for _, p in messages if "default_entity_id" in p]
    assert len(entity_ids) == len(set(entity_ids))
    topics = [t for t, _ in messages]
    assert len(topics) == len(set(topics))
    # the names that leaked '.', ':' and spaces before
    assert "homeassistant/sensor/Gate_House_1/legacy-127_0_0_1_plate/config" in topics
    assert "homeassistant/image/Gate_House_1/back_yard_snapshot/config" in topics
    diagnostics = [p for _, p in messages if p.get("entity_category") == "diagnostic"]
    assert len(diagnostics) == 5


def test_a_broken_rule_is_caught() -> None:
    """The checker is not a rubber stamp: each mutation of a good message fails it."""
    topic, good = next((t, p) for t, p in all_messages() if "/image/" in t)
    mutations = [
        ("homeassistant/image/Gate House/x_snapshot/config", good),
        (topic, {**good, "object_id": "x"}),
        (topic, {**good, "default_entity_id": "sensor.x"}),
        (topic, {**good, "default_entity_id": "image.Gate_house"}),
        (topic, {**good, "url_topic": "a/b"}),
        (topic, {**good, "imagetopic": "a/b"}),
        (topic, {**good, "origin": {"sw_version": "1"}}),
        (topic, {**good, "device": {"name": "x"}}),
    ]
    for bad_topic, bad in mutations:
        with pytest.raises(AssertionError):
            check_home_assistant_rules(bad_topic, bad, "homeassistant")


def event(kind: str = "start") -> PlateEvent:
    return PlateEvent("e1", kind, "back yard", "AB123CD", 0.9,  # type: ignore[arg-type]
                      (Candidate("AB123CD", 0.9),), "generic", (1, 2, 3, 4), 5, 5, 6, 2, 3, 1.0)


def render(template: str, payload: bytes) -> str:
    """Home Assistant's rendering of a value template: ``value`` and ``value_json``."""
    text = payload.decode()
    return jinja2.Environment().from_string(template).render(
        value=text, value_json=json.loads(text)
    )


def test_value_templates_give_the_values_from_real_payloads() -> None:
    cfg = cfg_with_awkward_names()
    topics = Topics.from_config(cfg)
    by_topic = dict(camera_messages(cfg, topics, "back yard"))
    sensor = by_topic["homeassistant/sensor/Gate_House_1/back_yard_plate/config"]
    plate = json.dumps(plate_payload(event())).encode()
    assert render(sensor["value_template"], plate) == "AB123CD"
    report = StatsReport("dev", clock=iter([0.0, 2.0]).__next__)
    counters = {"outbox": {"pending": 4}, "mqtt": {"connected": True}}
    report.attach(lambda: counters, None)
    report.build({"frames_recognized": 10})
    stats = json.dumps(report.build({
        "frames_recognized": 30, "queue_depth": 2, "dropped": {"timeout": 1, "queue_full": 2},
        "frames_undecodable": 1,
    })).encode()
    got = {p["unique_id"]: render(p["value_template"], stats)
           for _, p in device_messages(cfg, topics)}
    assert got == {
        "Gate_House_1_frames_per_s": "10.0", "Gate_House_1_dropped": "4",
        "Gate_House_1_queue_depth": "2", "Gate_House_1_outbox_pending": "4",
        "Gate_House_1_broker": "ON",
    }


def test_sighting_messages_are_events_home_assistant_accepts() -> None:
    """The event entity takes ``event_type`` from the JSON and refuses types it was not told."""
    cfg = config_from_dict({"known_plates": [{"name": "Alice", "plate": "AB123CD"}]})
    match = KnownPlates(cfg.known_plates).match(["AB123CD"])
    for known in (None, match):
        payload = sighting_payload(event(), known)
        assert payload["event_type"] in EVENT_TYPES
    assert sighting_payload(event(), match)["name"] == "Alice"


def test_ids_keep_only_letters_digits_underscore_and_dash() -> None:
    assert safe_id("legacy-127.0.0.1") == "legacy-127_0_0_1"
    assert safe_id("back yard") == "back_yard"
    assert safe_id("a/b+#") == "a_b__"
    assert entity_slug("Back-Yard") == "back_yard"
    assert entity_slug("legacy-fe80::1") == "legacy_fe80_1"
    assert ENTITY_ID.match("sensor." + entity_slug("__x..Y__"))


@pytest.mark.parametrize(("cameras", "why"), [
    ({"back yard": {}, "back_yard": {}},
     r"cameras\.back_yard and cameras\.back yard .*'back_yard'"),
    ({"Gate": {}, "gate": {}}, r"cameras\.gate and cameras\.Gate"),
    ({"a.b": {}, "a-b": {}}, r"map to the same id 'a_b'"),
    ({"cam-7": {"id": 3}}, r"cameras\.cam-7: names like cam-<id>"),
    ({"legacy-10.0.0.9": {"source": "10.0.0.8"}}, r"cameras\.legacy-10\.0\.0\.9"),
])
def test_cameras_that_would_share_an_id_are_refused(cameras: dict[str, Any], why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        config_from_dict({"cameras": cameras})


def test_names_that_are_their_own_derived_names_are_fine() -> None:
    cfg = config_from_dict({"cameras": {"cam-7": {"id": 7}, "legacy-10.0.0.9": {
        "source": "10.0.0.9"}}})
    assert set(cfg.cameras) == {"cam-7", "legacy-10.0.0.9"}


def test_polling_the_report_does_not_reset_the_frame_rate() -> None:
    """/health and /metrics build the report at any rate; the stats loop's report (``tick``)
    still gives the frames per second of its whole interval (5 fps here, polled at 10 Hz)."""
    now = [0.0]
    report = StatsReport("dev", clock=lambda: now[0])
    assert report.build({"frames_recognized": 0}, tick=True)["health"]["frames_per_s"] == 0
    polled = []
    for step in range(1, 51):  # 5 s of polling at 10 Hz while 5 frames a second are read
        now[0] = step / 10
        polled.append(report.build({"frames_recognized": step // 2})["health"]["frames_per_s"])
    assert report.build({"frames_recognized": 25}, tick=True)["health"]["frames_per_s"] == 5.0
    assert polled[-1] == 5.0 and min(polled[9:]) >= 4.5  # a reader sees the period so far
    now[0] = 10.0
    assert report.build({"frames_recognized": 75}, tick=True)["health"]["frames_per_s"] == 10.0


def test_announced_cameras_are_the_configured_and_a_bounded_few_that_expire() -> None:
    from edge_anpr.publish.unconfigured import AnnouncedCameras

    cams = AnnouncedCameras(["gate"], cap=2, expire_s=10)
    assert [cams.seen(c, 0) for c in ("cam-1", "cam-2", "cam-3", "gate")] == [
        True, True, False, True]
    assert cams.refused == 1 and cams.announced_unconfigured() == ["cam-1", "cam-2"]
    assert cams.seen("cam-1", 5) and cams.expire(12) == ["cam-2"]  # cam-1 was seen since
    assert cams.seen("cam-3", 12) and cams.expire(100) == ["cam-1", "cam-3"]
    assert cams.announced("gate") and not cams.announced("cam-1")
    for n in range(10_000):  # refused names are not remembered
        cams.seen(f"legacy-10.0.{n // 256}.{n % 256}", 200)
    assert len(cams.announced_unconfigured()) == 2
