"""The one validated configuration object, and the only validator of it.

The TOML file is parsed once into frozen, typed dataclasses, one module a section (``device``,
``ingest``, ``cameras``, ``vision`` for the detector, reader, models and workers, ``plates`` for
the tracker and known plates, ``mqtt``, ``http``) and ``root`` for the whole. Defaults live in
those dataclasses and nowhere else: ``edge-anpr serve`` with no file runs on them, and the key
table of the documentation is checked against them by a test (``edge-anpr config --markdown``
prints it, ``reference``). Validation is generic over the dataclass fields (``schema``), so
adding a key is adding a field with a default and a ``doc``; an unknown key or a value of the
wrong type or range is a ``ConfigError`` naming the exact key path.

Invariant: a ``Config`` returned by ``load_config``, ``config_from_dict`` or ``with_overrides``
is one ``serve`` runs with. Every check the stages would otherwise make at start-up (TLS files,
MQTT topic names, the bind address, HMAC key lengths, the model files, known-plate patterns)
is made here, so ``edge-anpr config FILE`` rejects exactly what ``serve`` would, with one line
naming the key (``tests/test_config.py`` runs each case through both commands). The components
trust their section and do not check it again.

This package's public names are imported from ``edge_anpr.config`` itself; its modules are
its own layout.
"""

from edge_anpr.config.cameras import CameraConfig, entity_slug, safe_id
from edge_anpr.config.device import DeviceConfig, LogLevel, log_level_name
from edge_anpr.config.http import HTTP_TOKEN_MIN_CHARS, HttpConfig
from edge_anpr.config.ingest import MIN_KEY_BYTES, IngestConfig
from edge_anpr.config.mqtt import MQTT_TOPIC_MAX_BYTES, MqttConfig, check_topic_name
from edge_anpr.config.plates import KnownPlateConfig, TrackerConfig
from edge_anpr.config.reference import config_reference_markdown
from edge_anpr.config.risks import config_warnings
from edge_anpr.config.root import Config, config_from_dict, load_config, with_overrides
from edge_anpr.config.schema import MOVED_KEYS
from edge_anpr.config.vision import (
    READER_MODEL_FILES,
    DetectorConfig,
    ModelsConfig,
    ReaderConfig,
    WorkersConfig,
)
from edge_anpr.errors import ConfigError

__all__ = [
    "HTTP_TOKEN_MIN_CHARS",
    "MIN_KEY_BYTES",
    "MOVED_KEYS",
    "MQTT_TOPIC_MAX_BYTES",
    "READER_MODEL_FILES",
    "CameraConfig",
    "Config",
    "ConfigError",
    "DetectorConfig",
    "DeviceConfig",
    "HttpConfig",
    "IngestConfig",
    "KnownPlateConfig",
    "LogLevel",
    "ModelsConfig",
    "MqttConfig",
    "ReaderConfig",
    "TrackerConfig",
    "WorkersConfig",
    "check_topic_name",
    "config_from_dict",
    "config_reference_markdown",
    "config_warnings",
    "entity_slug",
    "load_config",
    "log_level_name",
    "safe_id",
    "with_overrides",
]
