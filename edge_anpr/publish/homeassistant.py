"""Home Assistant MQTT discovery: one device, per camera a plate sensor, a snapshot image, a
plate event entity and a known-plate trigger, and diagnostics of the appliance.

Retained config messages under ``<homeassistant_prefix>/<component>/<node>/<object>/config``,
all on one device (the appliance) with ``<prefix>/status`` as availability:

per camera (``camera_messages``)

- ``sensor`` "<camera> last plate": state from ``<prefix>/<camera>/plate`` (retained;
  ``value_json.plate``), the rest of that payload as attributes;
- ``image`` "<camera> snapshot": the JPEG on ``<prefix>/<camera>/snapshot`` (retained);
- ``event`` "<camera> plate": ``<prefix>/<camera>/sighting``, event types ``plate_seen`` and
  ``known_plate``;
- ``device_automation`` trigger ``known_plate`` (subtype the camera's id), fired by every
  message on ``<prefix>/<camera>/known``;

once per device (``device_messages``), ``entity_category: diagnostic``, from
``<prefix>/status/stats`` (with several processes, process 0's: ``<prefix>/status/p0/stats``)
(``value_json.health``, ``homeassistant.md`` lists them): frames per
second, drops (all reasons), queue depth, outbox pending, and a broker connectivity binary sensor.
They expire after three stats intervals without a report.

Ids. Home Assistant accepts ``[a-zA-Z0-9_-]`` in discovery topics; node and object ids are the
device's and camera's ``config.safe_id`` (the loader refused names that give one id twice).
The entity id is given twice, so it is the same on every supported Home Assistant:
``default_entity_id`` = ``<platform>.<slug>`` (read by Home Assistant 2025.10 and later) and
``object_id`` = ``<slug>`` (read before 2025.10, which otherwise made the id from the names;
ignored from 2025.10 when ``default_entity_id`` is there, and from 2026.4 on), ``<slug>`` a valid
entity id part (``config.entity_slug``). Every config carries an ``origin`` block (name,
version, support URL). ``tests/test_homeassistant_rules.py`` checks all
of them against Home Assistant's own rules, not only against ``schemas/discovery_*.json``.
"""

from __future__ import annotations

from typing import Any

from edge_anpr import __version__
from edge_anpr.config import Config, entity_slug, safe_id
from edge_anpr.publish.topics import Topics

SUPPORT_URL = "https://github.com/edge-anpr/edge-anpr"
EVENT_TYPES = ("plate_seen", "known_plate")
"""The ``event_type`` values of ``<prefix>/<camera>/sighting`` (``topics.sighting_payload``)."""
DIAGNOSTICS_EXPIRE_INTERVALS = 3
"""Diagnostic sensors become unavailable after this many stats intervals without a report."""

Message = tuple[str, dict[str, Any]]


def node_id(cfg: Config) -> str:
    return safe_id(cfg.device.name)


def device_block(cfg: Config) -> dict[str, Any]:
    return {
        "identifiers": [f"edge-anpr-{node_id(cfg)}"],
        "name": cfg.device.name,
        "manufacturer": "edge-anpr",
        "model": "ANPR appliance",
        "sw_version": __version__,
    }


def origin_block() -> dict[str, Any]:
    return {"name": "edge-anpr", "sw_version": __version__, "support_url": SUPPORT_URL}


def _common(cfg: Config, topics: Topics, platform: str, object_id: str, name: str
            ) -> dict[str, Any]:
    """What every entity config has: ids, availability, device and origin."""
    node = node_id(cfg)
    slug = entity_slug(f"{node}_{object_id}")
    return {
        "name": name,
        "unique_id": f"{node}_{object_id}",
        "default_entity_id": f"{platform}.{slug}",
        "object_id": slug,
        **_availability(topics),
        "device": device_block(cfg),
        "origin": origin_block(),
    }


def _availability(topics: Topics) -> dict[str, Any]:
    """One process: its status topic. Several: each one's, available only while all are (the
    supervisor stops them all when one fails), the same payload from every process."""
    if topics.processes == 1:
        return {
            "availability_topic": topics.status,
            "payload_available": "online",
            "payload_not_available": "offline",
        }
    return {
        "availability": [
            {"topic": t, "payload_available": "online", "payload_not_available": "offline"}
            for t in topics.availability
        ],
        "availability_mode": "all",
    }


def _topic(cfg: Config, topics: Topics, platform: str, object_id: str) -> str:
    return f"{topics.homeassistant_prefix}/{platform}/{node_id(cfg)}/{object_id}/config"


def camera_messages(cfg: Config, topics: Topics, camera: str) -> list[Message]:
    """(topic, payload) of every discovery config for one camera."""
    cam = safe_id(camera)
    sensor = {
        **_common(cfg, topics, "sensor", f"{cam}_plate", f"{camera} last plate"),
        "state_topic": topics.plate(camera),
        "value_template": "{{ value_json.plate }}",
        "json_attributes_topic": topics.plate(camera),
        "icon": "mdi:car",
    }
    image = {
        **_common(cfg, topics, "image", f"{cam}_snapshot", f"{camera} snapshot"),
        "image_topic": topics.snapshot(camera),
        "content_type": "image/jpeg",
    }
    event = {
        **_common(cfg, topics, "event", f"{cam}_sighting", f"{camera} plate"),
        "state_topic": topics.sighting(camera),
        "event_types": list(EVENT_TYPES),
        "icon": "mdi:car-info",
    }
    trigger = {
        "automation_type": "trigger",
        "topic": topics.known(camera),
        "type": "known_plate",
        "subtype": cam,
        "device": device_block(cfg),
        "origin": origin_block(),
    }
    return [
        (_topic(cfg, topics, "sensor", f"{cam}_plate"), sensor),
        (_topic(cfg, topics, "image", f"{cam}_snapshot"), image),
        (_topic(cfg, topics, "event", f"{cam}_sighting"), event),
        (_topic(cfg, topics, "device_automation", f"{cam}_known"), trigger),
    ]


DIAGNOSTICS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    # (object id, name, key of the stats' health object, extra config)
    ("frames_per_s", "frames per second", "frames_per_s",
     {"unit_of_measurement": "frames/s", "state_class": "measurement", "icon": "mdi:filmstrip"}),
    ("dropped", "dropped", "dropped",
     {"state_class": "total_increasing", "icon": "mdi:filmstrip-off"}),
    ("queue_depth", "frame queue depth", "queue_depth",
     {"state_class": "measurement", "icon": "mdi:tray-full"}),
    ("outbox_pending", "messages waiting", "outbox_pending",
     {"state_class": "measurement", "icon": "mdi:email-fast-outline"}),
)


def device_messages(cfg: Config, topics: Topics) -> list[Message]:
    """(topic, payload) of the appliance's diagnostic entities (once per device)."""
    expire_after = max(1, round(DIAGNOSTICS_EXPIRE_INTERVALS * cfg.device.stats_interval_s))
    out: list[Message] = []
    for object_id, name, key, extra in DIAGNOSTICS:
        payload = {
            **_common(cfg, topics, "sensor", object_id, name),
            "state_topic": topics.stats_of(0),
            "value_template": f"{{{{ value_json.health.{key} }}}}",
            "entity_category": "diagnostic",
            "expire_after": expire_after,
            **extra,
        }
        out.append((_topic(cfg, topics, "sensor", object_id), payload))
    broker = {
        **_common(cfg, topics, "binary_sensor", "broker", "broker connection"),
        "state_topic": topics.stats_of(0),
        "value_template": "{{ 'ON' if value_json.health.broker_connected else 'OFF' }}",
        "device_class": "connectivity",
        "entity_category": "diagnostic",
        "expire_after": expire_after,
    }
    out.append((_topic(cfg, topics, "binary_sensor", "broker"), broker))
    return out
