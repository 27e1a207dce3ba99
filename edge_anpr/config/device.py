"""The ``[device]`` section: the appliance's name, logging and timing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from edge_anpr.config.schema import key_field
from edge_anpr.errors import ConfigError

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


@dataclass(frozen=True)
class DeviceConfig:
    name: str = key_field(
        "edge-anpr", "Device id: used in MQTT topics and the Home Assistant device."
    )
    log_level: LogLevel = key_field(
        "INFO", "Logging level (any case: debug, info, warning, error).", any_case=True
    )
    stats_interval_s: float = key_field(
        5.0, "Seconds between stats lines/status messages.", lo=0.5, hi=3600
    )
    shutdown_timeout_s: float = key_field(
        10.0, "On SIGTERM, time allowed to finish frames in hand and flush MQTT.", lo=1, hi=300
    )


def log_level_name(text: str, key: str = "device.log_level") -> LogLevel:
    """The logging level named by ``text`` in any case (``debug``); ``ConfigError`` otherwise."""
    allowed: tuple[LogLevel, ...] = get_args(LogLevel)
    for name in allowed:
        if text.upper() == name:
            return name
    choices = ", ".join(n.lower() for n in allowed)
    raise ConfigError(f"{key} must be one of {choices} (any case), got {text!r}")
