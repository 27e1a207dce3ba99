"""The ``[mqtt]`` section: the broker, topics, Home Assistant discovery and the outbox."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from edge_anpr.config.files import check_readable_file, rooted
from edge_anpr.config.schema import key_field
from edge_anpr.errors import ConfigError

if TYPE_CHECKING:
    from edge_anpr.config.root import Config

MQTT_TOPIC_MAX_BYTES = 65535


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = key_field(True, "Publish to MQTT.")
    host: str = key_field("localhost", "Broker host.")
    port: int = key_field(1883, "Broker port.", lo=1, hi=65535)
    protocol: Literal["3.1.1", "5"] = key_field("3.1.1", "MQTT protocol version.")
    client_id: str = key_field("", "Client id ('' = edge-anpr-<device>).")
    username: str = key_field("", "Username ('' = none).")
    password: str = key_field("", "Password.")
    tls: bool = key_field(False, "Use TLS.")
    ca_file: str = key_field("", "CA bundle for TLS ('' = system).")
    cert_file: str = key_field("", "Client certificate for TLS.")
    key_file: str = key_field("", "Client key for TLS.")
    topic_prefix: str = key_field("", "Topic prefix ('' = edge-anpr/<device>).")
    keepalive_s: int = key_field(30, "Keepalive interval.", lo=5, hi=3600)
    outbox_path: str = key_field(
        "",
        "SQLite outbox ('' = $STATE_DIRECTORY/outbox.sqlite or ./edge-anpr-outbox.sqlite).",
    )
    outbox_max_messages: int = key_field(100000, "Outbox bound; oldest evicted first.", lo=10)
    homeassistant_discovery: bool = key_field(True, "Publish Home Assistant discovery config.")
    homeassistant_prefix: str = key_field("homeassistant", "Home Assistant discovery prefix.")
    max_unconfigured_cameras: int = key_field(
        4, "Cameras not in [cameras] (cam-<id>, legacy-<address>: any sender can make them up) "
        "announced to Home Assistant at once, with retained plate and snapshot topics; more "
        "are published without either (per process).", lo=0, hi=1024,
    )
    unconfigured_expire_s: float = key_field(
        86400.0, "An announced camera not in [cameras] with no event for this long is removed: "
        "its discovery configs and retained plate and snapshot are cleared.", lo=1,
        hi=30 * 86400,
    )
    snapshot_max_width_px: int = key_field(
        640, "Largest width of the JPEG snapshot of each plate event (0 = no snapshots).",
        lo=0, hi=4096,
    )
    max_inflight: int = key_field(
        20, "Messages published and not yet acknowledged (order is kept).", lo=1, hi=1000
    )
    reconnect_min_s: float = key_field(0.5, "First reconnect delay (doubles, jittered).", lo=0.05)
    reconnect_max_s: float = key_field(30.0, "Longest reconnect delay.", lo=0.1, hi=3600)
    connect_timeout_s: float = key_field(5.0, "TCP/TLS connect timeout.", lo=0.1, hi=120)
    gate_command_ttl_s: float = key_field(
        10.0, "A gate command older than this is dropped, not sent late (0 = never).", lo=0
    )
    gate_min_confidence: float = key_field(
        0.85, "A gate command is sent only for an event read at least this confidently (a plate "
        "reported with a less sure read is published, never opens the gate).", lo=0, hi=1,
    )
    flush_timeout_s: float = key_field(
        3.0, "At shutdown, time allowed to send the outbox before leaving it for next start.",
        lo=0, hi=60,
    )


def check_topic_name(value: str, key: str) -> None:
    """An MQTT topic name (or prefix of one) we may publish to; ``ValueError`` naming ``key``.

    No wildcards (``+``, ``#``), no NUL, not a broker's ``$`` topic, at most 65535 UTF-8 bytes.
    """
    bad = sorted({c for c in value if c in "+#\0"})
    if bad:
        shown = ", ".join("NUL" if c == "\0" else repr(c) for c in bad)
        raise ValueError(f"{key} must not contain MQTT wildcards or NUL ({shown}), got {value!r}")
    if value.startswith("$"):
        raise ValueError(f"{key} must not start with '$' (broker topics), got {value!r}")
    if len(value.encode("utf-8")) > MQTT_TOPIC_MAX_BYTES:
        raise ValueError(f"{key} is longer than {MQTT_TOPIC_MAX_BYTES} bytes")


def check_mqtt(cfg: Config, source: str, root: str) -> None:
    m = cfg.mqtt
    names = [
        ("device.name", cfg.device.name),
        ("mqtt.topic_prefix", m.topic_prefix),
        ("mqtt.homeassistant_prefix", m.homeassistant_prefix),
    ]
    if not cfg.device.name.strip():
        raise ConfigError(f"{source}: device.name must not be empty")
    for key, value in names:
        try:
            check_topic_name(value, key)
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    if not (m.enabled and m.tls):
        return
    ca, cert, key_file = (rooted(root, p) for p in (m.ca_file, m.cert_file, m.key_file))
    for key, path in (("mqtt.ca_file", ca), ("mqtt.cert_file", cert),
                      ("mqtt.key_file", key_file)):
        if path:
            check_readable_file(path, key, source)
    try:
        ctx = ssl.create_default_context(cafile=ca or None)
        if cert:
            ctx.load_cert_chain(cert, key_file or None)
    except (OSError, ssl.SSLError) as exc:
        keys = "mqtt.ca_file" if not m.cert_file else "mqtt.ca_file/cert_file/key_file"
        raise ConfigError(f"{source}: {keys}: TLS files unusable: {exc}") from None


def check_outbox(cfg: Config, source: str, root: str) -> None:
    """``mqtt.outbox_path`` names a file the outbox can create or write, in a folder where it
    can also write its journal and the replay state (``serve`` uses the outbox with MQTT off
    too). '' is chosen at start ($STATE_DIRECTORY) and ``:memory:`` is no file: not checked."""
    configured = cfg.mqtt.outbox_path
    if not configured or configured == ":memory:":
        return
    path = os.path.abspath(rooted(root, configured))
    if os.path.isdir(path):
        raise ConfigError(f"{source}: mqtt.outbox_path: {path!r} is a folder, not a file")
    if os.path.lexists(path) and not os.access(path, os.W_OK):
        raise ConfigError(f"{source}: mqtt.outbox_path: {path!r} is not writable by this user")
    # the nearest folder that exists: the outbox creates the missing ones below it
    folder = os.path.dirname(path)
    while not os.path.lexists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise ConfigError(f"{source}: mqtt.outbox_path: {folder!r} is not a folder")
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        raise ConfigError(f"{source}: mqtt.outbox_path: {folder!r} is on a read-only file system")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{source}: mqtt.outbox_path: folder {folder!r} is not writable by this user"
        )
