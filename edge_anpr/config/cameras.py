"""The ``[cameras.<name>]`` tables, and the ids a camera's name gives in MQTT and Home Assistant."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edge_anpr.config.schema import key_field
from edge_anpr.config.vision import check_regions
from edge_anpr.errors import ConfigError

if TYPE_CHECKING:
    from edge_anpr.config.root import Config


@dataclass(frozen=True)
class CameraConfig:
    id: int = key_field(-1, "Camera id of the sequenced format (-1: none).", lo=-1, hi=65535)
    source: str = key_field(
        "", "Sender IP address of a legacy camera ('' = none; written as the kernel reports it: "
        "192.168.1.30, fd00::30).",
    )
    key: str = key_field("", "HMAC key for this camera ('' = the global key).")
    roi: list[int] = key_field([], "Region of interest x, y, w, h in pixels ([] = whole frame).")
    min_plate_width_px: int = key_field(
        0, "Override of detector.min_plate_width_px (0 = none).", lo=0
    )
    max_plate_width_px: int = key_field(
        0, "Override of detector.max_plate_width_px (0 = none).", lo=0
    )
    regions: list[str] = key_field([], "Override of reader.regions for this camera ([] = none).")
    allow_unauthenticated: bool = key_field(
        False, "Accept this camera's unauthenticated frames (legacy ones from its source; "
        "untagged ones with its id when it has no key) even with "
        "ingest.allow_unauthenticated = false. Anyone can forge them.",
    )
    allow_gate_unauthenticated: bool = key_field(
        False, "RISKY: let unauthenticated frames of this camera open the gate. Anyone on the "
        "network can then open it with a forged frame of a known plate.",
    )


_NOT_ID = re.compile(r"[^A-Za-z0-9_-]")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def safe_id(name: str) -> str:
    """``name`` as an id MQTT and Home Assistant accept everywhere: every character outside
    ``[A-Za-z0-9_-]`` becomes ``_`` (``legacy-127.0.0.1`` -> ``legacy-127_0_0_1``, ``back yard``
    -> ``back_yard``). A camera's topic level, discovery topic and unique ids are made of it."""
    return _NOT_ID.sub("_", name) or "_"


def entity_slug(name: str) -> str:
    """``name`` as the object part of a Home Assistant entity id: lower case letters, digits
    and single inner underscores (``Back-Yard`` -> ``back_yard``). The strictest form of a
    name, so two cameras with one slug would also clash in Home Assistant's entity ids."""
    return _NOT_SLUG.sub("_", name.lower()).strip("_") or "unnamed"


_DERIVED_NAME = re.compile(r"^(?:cam_(\d+)|legacy_.+)$")


def check_camera_ids(cfg: Config, source: str) -> None:
    """Cameras whose names give one id would share topics, unique ids and entities; a
    configured name that looks like another sender's derived name (``cam-<id>``,
    ``legacy-<address>``) would share them with that sender. Both are refused, naming both."""
    seen: dict[str, str] = {}
    for name, cam in cfg.cameras.items():
        slug = entity_slug(name)
        if slug in seen:
            raise ConfigError(
                f"{source}: cameras.{name} and cameras.{seen[slug]} map to the same id "
                f"{slug!r} (MQTT topics and Home Assistant ids keep only letters, digits, "
                "'_' and '-', in any case): rename one"
            )
        seen[slug] = name
        derived = _DERIVED_NAME.match(slug)
        if derived is None:
            continue
        number = derived.group(1)
        own = number is not None and cam.id == int(number)
        own = own or (number is None and bool(cam.source) and slug == entity_slug(
            f"legacy-{cam.source}"))
        if not own:
            raise ConfigError(
                f"{source}: cameras.{name}: names like cam-<id> and legacy-<address> are "
                "given to unconfigured senders and would share their topics: rename it"
            )


def check_cameras(cfg: Config, source: str) -> None:
    """Each camera's regions, region of interest, and an id used by one camera only."""
    ids: dict[int, str] = {}
    for name, cam in cfg.cameras.items():
        if cam.regions:
            check_regions(cam.regions, f"cameras.{name}.regions", source)
        if cam.source:
            check_source(cam.source, f"cameras.{name}.source", source)
        if cam.roi and (len(cam.roi) != 4 or min(cam.roi[2:]) <= 0):
            raise ConfigError(f"{source}: cameras.{name}.roi must be [x, y, w, h] with w, h > 0")
        if cam.id >= 0:
            if cam.id in ids:
                raise ConfigError(
                    f"{source}: cameras.{name}.id {cam.id} is already used by camera {ids[cam.id]}"
                )
            ids[cam.id] = name


def check_source(address: str, key: str, source: str) -> None:
    """A legacy camera's sender address: one IP address (``ipaddress``, strict: four decimal
    octets without leading zeros, or IPv6), written as the kernel reports senders (lower case,
    compressed), since frames are matched to the camera by that text. A typo would otherwise
    leave the camera without its source protection."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        raise ConfigError(
            f"{source}: {key} must be an IP address such as 192.168.1.30 or fd00::30, "
            f"got {address!r}"
        ) from None
    if str(parsed) != address:
        raise ConfigError(f"{source}: {key} must be written {str(parsed)!r}, got {address!r}")
