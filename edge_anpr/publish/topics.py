"""Topic names and payloads: the published contract, in one place.

Every topic is under ``mqtt.topic_prefix`` (default ``edge-anpr/<device.name>``). A camera name
becomes one topic level, its ``config.safe_id``: every character outside ``[A-Za-z0-9_-]``
(``/ + #``, spaces, dots) is replaced by ``_``, so the level is also a valid Home Assistant id.
The config loader refuses two cameras that would share a level. The payload builders here are
what ``edge_anpr/publish/schemas/*.json`` describe and the tests validate against.

A read is named the same everywhere (MQTT, ``recognize --json``, the schemas): ``plate`` for
its text, ``box_px`` for its box as ``[x, y, width, height]`` in frame pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge_anpr.config import Config, KnownPlateConfig, safe_id
from edge_anpr.plates.known import KnownMatch
from edge_anpr.system.processes import ProcessSlot
from edge_anpr.values import PlateEvent, PlateRead, PlateRegion

SCHEMA_VERSION = 1
EVENT_SCHEMA_VERSION = 2
"""The event payload's ``v``: 2 since ``region`` became the plate's region read from the
plate (``{"code", "score"}``) and the format region moved to ``format_region``."""


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str
    homeassistant_prefix: str
    process: int = 0
    """This process's index among ``processes`` (``system.processes.ProcessSlot``)."""
    processes: int = 1

    @classmethod
    def from_config(cls, cfg: Config, slot: ProcessSlot | None = None) -> Topics:
        """The topic names. The prefixes are valid topic names: the config loader checked them
        (``config.check_topic_name``), and camera names are made safe here. ``slot`` defaults
        to the one the supervisor gave this process (none: a single process)."""
        prefix = cfg.mqtt.topic_prefix.strip("/") or f"edge-anpr/{safe_id(cfg.device.name)}"
        ha = cfg.mqtt.homeassistant_prefix.strip("/") or "homeassistant"
        slot = slot or ProcessSlot.from_environ()
        if slot is None:
            return cls(prefix, ha)
        return cls(prefix, ha, slot.index, slot.count)

    def status_of(self, process: int) -> str:
        """Availability (``online``/``offline``, retained) of one process: ``<prefix>/status``
        with one process, ``<prefix>/status/p<i>`` with several (each has its own last will)."""
        if self.processes == 1:
            return f"{self.prefix}/status"
        return f"{self.prefix}/status/p{process}"

    def stats_of(self, process: int) -> str:
        return f"{self.status_of(process)}/stats"

    @property
    def availability(self) -> list[str]:
        """Every process's availability topic (Home Assistant: available when all are)."""
        return [self.status_of(i) for i in range(self.processes)]

    @property
    def status(self) -> str:
        return self.status_of(self.process)

    @property
    def stats(self) -> str:
        return self.stats_of(self.process)

    @property
    def homeassistant_status(self) -> str:
        return f"{self.homeassistant_prefix}/status"

    def camera(self, camera: str, leaf: str) -> str:
        return f"{self.prefix}/{safe_id(camera)}/{leaf}"

    def event(self, camera: str) -> str:
        return self.camera(camera, "event")

    def plate(self, camera: str) -> str:
        return self.camera(camera, "plate")

    def known(self, camera: str) -> str:
        return self.camera(camera, "known")

    def gate(self, camera: str) -> str:
        return self.camera(camera, "gate")

    def snapshot(self, camera: str) -> str:
        return self.camera(camera, "snapshot")

    def sighting(self, camera: str) -> str:
        return self.camera(camera, "sighting")


def read_payload(read: PlateRead) -> dict[str, Any]:
    """One read (``recognize --json``, ``serve --stdout``), named as in the event payload:
    ``plate``, ``confidence``, ``box_px``, ``region`` (``region_part``), ``format_region``,
    ``candidates`` of ``plate`` and ``confidence``, and the detector's score."""
    return {
        "plate": read.text.text,
        "confidence": round(read.text.confidence, 4),
        "box_px": list(read.box_px),
        "region": region_part(read.text.region),
        "format_region": read.text.format_region,
        "detector_score": round(read.detector_score, 3),
        "candidates": [
            {"plate": c.text, "confidence": round(c.confidence, 4)} for c in read.text.candidates
        ],
    }


def event_payload(device: str, event: PlateEvent, known: KnownMatch | None) -> dict[str, Any]:
    """``<prefix>/<camera>/event``: one step (start/update/end) of a vehicle's event."""
    return {
        "v": EVENT_SCHEMA_VERSION,
        "device": device,
        "event_id": event.event_id,
        "kind": event.kind,
        "camera": event.camera,
        "plate": event.text,
        "confidence": event.confidence,
        "candidates": [{"plate": c.text, "confidence": c.confidence} for c in event.candidates],
        "region": region_part(event.region),
        "format_region": event.format_region,
        "box_px": list(event.box_px),
        "capture_time_us": event.capture_time_us,
        "first_seen_us": event.first_seen_us,
        "last_seen_us": event.last_seen_us,
        "read_count": event.read_count,
        "frame_sequence": event.frame_sequence,
        "known": _known_part(known),
    }


def region_part(region: PlateRegion) -> dict[str, Any]:
    """Where the plate is from: ``code`` (``us-ca``, ``us``, ``br``, ``eu``; empty when not
    read) and its ``score`` in [0, 1]."""
    return {"code": region.code, "score": round(region.score, 4)}


def _known_part(known: KnownMatch | None) -> dict[str, Any] | None:
    if known is None:
        return None
    return {
        "name": known.entry.name,
        "entry": known.entry.plate,
        "matched": known.matched_text,
        "distance": known.distance,
        "gate": known.entry.gate,
    }


def plate_payload(event: PlateEvent) -> dict[str, Any]:
    """``<prefix>/<camera>/plate`` (retained): the camera's last best plate."""
    return {
        "v": SCHEMA_VERSION,
        "plate": event.text,
        "confidence": event.confidence,
        "event_id": event.event_id,
        "camera": event.camera,
        "time_us": event.last_seen_us,
    }


def known_payload(event: PlateEvent, known: KnownMatch) -> dict[str, Any]:
    """``<prefix>/<camera>/known``: an event matched a known-plate entry (once per event)."""
    entry: KnownPlateConfig = known.entry
    return {
        "v": SCHEMA_VERSION,
        "name": entry.name,
        "plate": event.text,
        "matched": known.matched_text,
        "entry": entry.plate,
        "distance": known.distance,
        "camera": event.camera,
        "event_id": event.event_id,
        "gate": entry.gate,
        "time_us": event.last_seen_us,
    }


def gate_payload(event: PlateEvent, known: KnownMatch) -> dict[str, Any]:
    """``<prefix>/<camera>/gate``: open command for a ``gate = true`` entry (once per event)."""
    return {
        "v": SCHEMA_VERSION,
        "command": "open",
        "plate": event.text,
        "name": known.entry.name,
        "camera": event.camera,
        "event_id": event.event_id,
        "time_us": event.last_seen_us,
    }


def sighting_payload(event: PlateEvent, known: KnownMatch | None) -> dict[str, Any]:
    """``<prefix>/<camera>/sighting``: a vehicle was seen (``plate_seen``, at its event's start)
    or its event matched a known plate (``known_plate``, once per event). The shape of a Home
    Assistant MQTT ``event`` entity's message: ``event_type`` and attributes."""
    payload: dict[str, Any] = {
        "event_type": "plate_seen" if known is None else "known_plate",
        "v": SCHEMA_VERSION,
        "plate": event.text,
        "confidence": event.confidence,
        "camera": event.camera,
        "event_id": event.event_id,
        "time_us": event.last_seen_us,
    }
    if known is not None:
        payload["name"] = known.entry.name
    return payload
