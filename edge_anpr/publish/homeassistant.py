"""Home Assistant MQTT discovery: per camera, a last-plate sensor and a known-plate trigger.

Retained config messages under ``<homeassistant_prefix>/<component>/<node>/<object>/config``:

- ``sensor``: state from ``<prefix>/<camera>/plate`` (``value_json.plate``), the rest of that
  payload (confidence, event id, time) as attributes;
- ``device_automation`` trigger of type ``known_plate``, subtype the camera, fired by every
  message on ``<prefix>/<camera>/known``.

Both belong to one device (the appliance) and use ``<prefix>/status`` for availability.
"""

from __future__ import annotations

from typing import Any

from edge_anpr import __version__
from edge_anpr.config import Config
from edge_anpr.publish.topics import Topics, topic_safe


def node_id(cfg: Config) -> str:
    return topic_safe(cfg.device.name)


def device_block(cfg: Config) -> dict[str, Any]:
    return {
        "identifiers": [f"edge-anpr-{node_id(cfg)}"],
        "name": cfg.device.name,
        "manufacturer": "edge-anpr",
        "model": "ANPR appliance",
        "sw_version": __version__,
    }


def discovery_messages(
    cfg: Config, topics: Topics, camera: str
) -> list[tuple[str, dict[str, Any]]]:
    """(topic, payload) of every discovery config for one camera."""
    node = node_id(cfg)
    cam = topic_safe(camera)
    ha = topics.homeassistant_prefix
    sensor = {
        "name": f"{camera} last plate",
        "unique_id": f"{node}_{cam}_plate",
        "object_id": f"{node}_{cam}_plate",
        "state_topic": topics.plate(camera),
        "value_template": "{{ value_json.plate }}",
        "json_attributes_topic": topics.plate(camera),
        "availability_topic": topics.status,
        "payload_available": "online",
        "payload_not_available": "offline",
        "icon": "mdi:car",
        "device": device_block(cfg),
    }
    trigger = {
        "automation_type": "trigger",
        "topic": topics.known(camera),
        "type": "known_plate",
        "subtype": cam,
        "device": device_block(cfg),
    }
    return [
        (f"{ha}/sensor/{node}/{cam}_plate/config", sensor),
        (f"{ha}/device_automation/{node}/{cam}_known/config", trigger),
    ]
