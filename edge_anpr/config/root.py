"""The whole ``Config``, and the only ways to get one: from a file, a dict or overrides."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_anpr.config.cameras import CameraConfig, check_camera_ids, check_cameras
from edge_anpr.config.device import DeviceConfig
from edge_anpr.config.http import HttpConfig, check_http
from edge_anpr.config.ingest import IngestConfig, check_ingest
from edge_anpr.config.mqtt import MqttConfig, check_mqtt, check_outbox
from edge_anpr.config.plates import KnownPlateConfig, TrackerConfig, check_known_plates
from edge_anpr.config.schema import build
from edge_anpr.config.vision import (
    DetectorConfig,
    ModelsConfig,
    ReaderConfig,
    WorkersConfig,
    check_detector,
    check_models,
)
from edge_anpr.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on older interpreters
    import tomli as tomllib


@dataclass(frozen=True)
class Config:
    device: DeviceConfig = field(default_factory=DeviceConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    cameras: dict[str, CameraConfig] = field(default_factory=dict)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    reader: ReaderConfig = field(default_factory=ReaderConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    known_plates: list[KnownPlateConfig] = field(default_factory=list)

    def regions_of(self, camera: str | None) -> tuple[str, ...]:
        """The plate-format regions a camera's plates are read with: its own list, else
        ``reader.regions``."""
        cam = self.cameras.get(camera) if camera else None
        return tuple(cam.regions if cam is not None and cam.regions else self.reader.regions)


def load_config(path: Path | None, *, root: str = "/") -> Config:
    """Read and validate a TOML file; None gives the embedded defaults.

    ``root`` is where the files the config names (TLS files, models) are looked for: ``/``,
    or the folder a system is staged in before it is installed (``edge-anpr config --root``).
    """
    if path is None:
        return Config()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start}): save the config file as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return config_from_dict(raw, source=str(path), root=root)


def config_from_dict(raw: dict[str, Any], source: str = "config", root: str = "/") -> Config:
    """Build and check a ``Config`` from parsed TOML; ``source`` prefixes every error."""
    cfg = build(Config, raw, "", source)
    check_cross_fields(cfg, source, root)
    return cfg


def with_overrides(
    cfg: Config, *, port: int | None = None, mqtt: bool = True, processes: int | None = None,
    source: str = "command line",
) -> Config:
    """``cfg`` with command-line overrides (``serve --port``, ``--no-mqtt``, ``--processes``),
    checked by the same code as the file: an out-of-range ``--port`` is the ``ConfigError`` of
    ``ingest.port``, a bad ``--processes`` that of ``workers.processes``.
    """
    raw = dataclasses.asdict(cfg)
    if port is not None:
        raw["ingest"]["port"] = port
    if processes is not None:
        raw["workers"]["processes"] = processes
    if not mqtt:
        raw["mqtt"]["enabled"] = False
    return config_from_dict(raw, source=source)


def check_cross_fields(cfg: Config, source: str, root: str = "/") -> None:
    """The checks across keys and against the system, in the order of the sections."""
    check_detector(cfg, source)
    check_cameras(cfg, source)
    check_known_plates(cfg, source)
    check_camera_ids(cfg, source)
    check_ingest(cfg, source)
    check_http(cfg, source)
    check_mqtt(cfg, source, root)
    check_outbox(cfg, source, root)
    check_models(cfg, source, root)
