"""The one validated configuration object, and the only validator of it.

The TOML file is parsed once into frozen, typed dataclasses. Defaults live here and nowhere else:
``edge-anpr serve`` with no file runs on them, and the key table of the documentation is checked
against them by a test (``edge-anpr config --markdown`` prints it). Validation is generic over
the dataclass fields, so adding a key is adding a field with a default and a ``doc``; an unknown
key or a value of the wrong type or range is a ``ConfigError`` naming the exact key path.

Invariant: a ``Config`` returned by ``load_config``, ``config_from_dict`` or ``with_overrides``
is one ``serve`` runs with. Every check the stages would otherwise make at start-up (TLS files,
MQTT topic names, the bind address, HMAC key lengths, the model files, known-plate patterns)
is made here, so ``edge-anpr config FILE`` rejects exactly what ``serve`` would, with one line
naming the key (``tests/test_config.py`` runs each case through both commands). The components
trust their section and do not check it again.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import ssl
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from edge_anpr.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on older interpreters
    import tomli as tomllib

T = TypeVar("T")
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

MIN_KEY_BYTES = 16
"""Shortest HMAC key accepted (UTF-8 bytes): a shorter secret can be guessed offline from one
tagged datagram."""
READER_MODEL_FILES = ("segmenter.tflite", "classifier.tflite")
"""The files a models folder must hold (``vision.reader`` loads them; a test keeps the names
equal). The detector's file is optional there: without it the bundled one is used."""
MQTT_TOPIC_MAX_BYTES = 65535
MOVED_KEYS = {
    "detector.min_read_confidence": "reader.min_plate_confidence",
    "detector.min_fitting_read_confidence": "reader.min_fitting_plate_confidence",
    "reader.models_dir": "models.dir",
}
"""Keys renamed before 1.0: naming one is an error that says where it went."""


def _key(
    default: Any, doc: str, *, lo: float | None = None, hi: float | None = None,
    any_case: bool = False,
) -> Any:
    """A config field: its default, the sentence the table shows, and an optional range.

    ``any_case`` (for a choice of upper-case names) accepts the value in any case and stores it
    upper-cased.
    """
    meta = {"doc": doc, "lo": lo, "hi": hi, "any_case": any_case}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class DeviceConfig:
    name: str = _key("edge-anpr", "Device id: used in MQTT topics and the Home Assistant device.")
    log_level: LogLevel = _key(
        "INFO", "Logging level (any case: debug, info, warning, error).", any_case=True
    )
    stats_interval_s: float = _key(
        5.0, "Seconds between stats lines/status messages.", lo=0.5, hi=3600
    )
    shutdown_timeout_s: float = _key(
        10.0, "On SIGTERM, time allowed to finish frames in hand and flush MQTT.", lo=1, hi=300
    )


@dataclass(frozen=True)
class IngestConfig:
    bind: str = _key("0.0.0.0", "Address the UDP socket binds to.")
    port: int = _key(6112, "UDP port for both wire formats.", lo=0, hi=65535)
    recv_buffer_bytes: int = _key(
        4 * 1024 * 1024, "Requested socket receive buffer (SO_RCVBUF).", lo=65536, hi=1 << 30
    )
    udp_gro: bool = _key(
        True, "Let the kernel coalesce datagrams (UDP GRO, Linux >= 5.0): one receive call "
        "for many.",
    )
    max_frame_bytes: int = _key(
        4 * 1024 * 1024, "Largest frame accepted; larger headers are rejected.", lo=1024, hi=1 << 28
    )
    max_frame_pixels: int = _key(
        10_000_000, "Largest image decoded, in pixels (width x height, read from the JPEG "
        "header first); larger frames are refused undecoded. 3840x2160 is 8.3 million.",
        lo=4096, hi=1 << 28,
    )
    frame_timeout_s: float = _key(
        1.0, "An incomplete frame with no datagram for this long is dropped.", lo=0.01, hi=60
    )
    max_frames_in_flight_per_stream: int = _key(
        4, "Incomplete frames kept per sequenced stream.", lo=1, hi=64
    )
    max_frames_in_flight_total: int = _key(
        64, "Incomplete frames kept over all senders.", lo=1, hi=4096
    )
    max_buffered_bytes: int = _key(
        64 * 1024 * 1024, "Bytes of incomplete frames kept over all senders.", lo=1 << 16,
        hi=1 << 32,
    )
    max_senders: int = _key(
        256, "Tracked senders/streams; the least recently active is evicted.", lo=1, hi=65536
    )
    max_streams_per_source: int = _key(
        16, "Unauthenticated streams of unconfigured camera ids one source address may have "
        "at once; more are dropped (source_limit).", lo=1, hi=65536,
    )
    queue_frames_per_camera: int = _key(
        2, "Complete frames waiting per camera; the oldest is dropped when full.", lo=1, hi=64
    )
    queue_frames_total: int = _key(
        32, "Complete frames waiting over all cameras; configured and authenticated cameras "
        "are served first and keep their places.", lo=1, hi=4096,
    )
    allow_unauthenticated: bool = _key(
        True, "Accept frames that carry no valid tag: untagged sequenced datagrams of "
        "cameras with no key, and legacy frames of senders that are not a keyed camera. "
        "They are read but never open a gate.",
    )
    key: str = _key("", "Global HMAC key for sequenced datagrams ('' = none).")
    replay_window_s: float = _key(
        5.0, "Authenticated frames must carry a capture time within this many seconds of the "
        "appliance's clock, newer than the camera's last one; the last is kept across restarts "
        "beside the outbox (0 = off: captured frames can be replayed). Cameras need NTP.",
        lo=0, hi=3600,
    )
    legacy: bool = _key(True, "Accept the legacy length-prefixed format.")


@dataclass(frozen=True)
class CameraConfig:
    id: int = _key(-1, "Camera id of the sequenced format (-1: none).", lo=-1, hi=65535)
    source: str = _key("", "Sender IP address of a legacy camera ('' = none).")
    key: str = _key("", "HMAC key for this camera ('' = the global key).")
    roi: list[int] = _key([], "Region of interest x, y, w, h in pixels ([] = whole frame).")
    min_plate_width_px: int = _key(0, "Override of detector.min_plate_width_px (0 = none).", lo=0)
    max_plate_width_px: int = _key(0, "Override of detector.max_plate_width_px (0 = none).", lo=0)
    regions: list[str] = _key([], "Override of reader.regions for this camera ([] = none).")
    allow_unauthenticated: bool = _key(
        False, "Accept this camera's unauthenticated frames (legacy ones from its source; "
        "untagged ones with its id when it has no key) even with "
        "ingest.allow_unauthenticated = false. Anyone can forge them.",
    )
    allow_gate_unauthenticated: bool = _key(
        False, "RISKY: let unauthenticated frames of this camera open the gate. Anyone on the "
        "network can then open it with a forged frame of a known plate.",
    )


@dataclass(frozen=True)
class DetectorConfig:
    kind: Literal["hog", "cascade"] = _key(
        "cascade", "hog: the HoG scanner alone, its boxes read with variants; cascade: HoG "
        "proposals verified and re-boxed by the plate refiner network ("
        "plate_refiner.tflite in the models folder).",
    )
    min_plate_width_px: int = _key(
        64, "Narrowest plate searched for, in frame pixels (the main cost: halve it, 4x work).",
        lo=16, hi=4096,
    )
    max_plate_width_px: int = _key(640, "Widest plate searched for, in frame pixels.", lo=16,
                                   hi=4096)
    score_threshold: float = _key(-0.25, "SVM margin above which a window is a candidate.")
    motion_gating: bool = _key(False, "Skip detection on frames with no motion.")
    max_candidates: int = _key(8, "Candidates read per frame after NMS.", lo=1, hi=64)
    max_rejected_reads: int = _key(
        2, "Stop reading a frame's candidates (best first) after this many are rejected "
        "(0 = read all).", lo=0, hi=64,
    )
    proposal_threshold: float = _key(
        -0.6, "cascade: SVM margin above which a window is a proposal for the refiner (below "
        "score_threshold: the refiner rejects what the scanner lets through).",
    )
    max_proposals: int = _key(8, "cascade: proposals refined per frame after NMS.", lo=1, hi=64)
    min_refined_score: float = _key(
        0.5, "cascade: the refiner's plate probability a proposal needs to be read.", lo=0, hi=1,
    )


@dataclass(frozen=True)
class ReaderConfig:
    regions: list[str] = _key(["generic"], "Plate-format regions, in order of preference.")
    min_confidence: float = _key(0.3, "Reads below this plate confidence are ignored.", lo=0, hi=1)
    min_plate_confidence: float = _key(
        0.85, "A detector candidate is a plate only when its read is at least this confident.",
        lo=0, hi=1,
    )
    min_fitting_plate_confidence: float = _key(
        0.75, "The same for a read that fits a pattern of the camera's plate regions (only "
        "with specific regions configured; never above min_plate_confidence).", lo=0, hi=1,
    )
    top_n: int = _key(5, "Candidates kept per read.", lo=1, hi=20)


@dataclass(frozen=True)
class ModelsConfig:
    dir: str = _key(
        "", "Folder of the model files: the reader's, and the detector's when it holds one "
        "('' = the bundled models).",
    )


@dataclass(frozen=True)
class WorkersConfig:
    count: int = _key(
        0, "Recognition worker threads per process (0 = the cores over the processes).",
        lo=0, hi=64,
    )
    processes: int = _key(
        0, "Appliance processes sharing the UDP port, one camera in one process (0 = one "
        "per two cores; docs/performance.md).", lo=0, hi=64,
    )
    gil_switch_interval_ms: float = _key(
        0.1, "How long a Python thread may keep the GIL from a waiting one (Python's 5 ms "
        "default costs frames).", lo=0.01, hi=100,
    )


@dataclass(frozen=True)
class TrackerConfig:
    quiet_time_s: float = _key(
        3.0, "An event ends after this long without a matching read.", lo=0.1, hi=3600
    )
    max_edit_distance: int = _key(2, "Reads this close in text join one event.", lo=0, hi=4)
    parked_suppress_s: float = _key(
        600.0, "A plate that just ended at the same spot does not re-trigger for this long.",
        lo=0, hi=86400,
    )
    parked_iou: float = _key(
        0.5, "Box overlap (IoU) that counts as the same spot for parked suppression.", lo=0.01,
        hi=1,
    )
    misread_iou: float = _key(
        0.3, "Box overlap (IoU) that lets a half-right misread join an open event.", lo=0.01,
        hi=1,
    )
    update_min_gain: float = _key(
        0.05, "Confidence rise of the best text that publishes an update.", lo=0, hi=1
    )
    max_reads_per_event: int = _key(
        64, "Most recent reads of an event kept for voting.", lo=1, hi=10000
    )
    max_open_events_per_camera: int = _key(
        16, "Open events per camera; the least recently seen ends early.", lo=1, hi=1024
    )


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = _key(True, "Publish to MQTT.")
    host: str = _key("localhost", "Broker host.")
    port: int = _key(1883, "Broker port.", lo=1, hi=65535)
    protocol: Literal["3.1.1", "5"] = _key("3.1.1", "MQTT protocol version.")
    client_id: str = _key("", "Client id ('' = edge-anpr-<device>).")
    username: str = _key("", "Username ('' = none).")
    password: str = _key("", "Password.")
    tls: bool = _key(False, "Use TLS.")
    ca_file: str = _key("", "CA bundle for TLS ('' = system).")
    cert_file: str = _key("", "Client certificate for TLS.")
    key_file: str = _key("", "Client key for TLS.")
    topic_prefix: str = _key("", "Topic prefix ('' = edge-anpr/<device>).")
    keepalive_s: int = _key(30, "Keepalive interval.", lo=5, hi=3600)
    outbox_path: str = _key(
        "",
        "SQLite outbox ('' = $STATE_DIRECTORY/outbox.sqlite or ./edge-anpr-outbox.sqlite).",
    )
    outbox_max_messages: int = _key(100000, "Outbox bound; oldest evicted first.", lo=10)
    homeassistant_discovery: bool = _key(True, "Publish Home Assistant discovery config.")
    homeassistant_prefix: str = _key("homeassistant", "Home Assistant discovery prefix.")
    snapshot_max_width_px: int = _key(
        640, "Largest width of the JPEG snapshot of each plate event (0 = no snapshots).",
        lo=0, hi=4096,
    )
    max_inflight: int = _key(
        20, "Messages published and not yet acknowledged (order is kept).", lo=1, hi=1000
    )
    reconnect_min_s: float = _key(0.5, "First reconnect delay (doubles, jittered).", lo=0.05)
    reconnect_max_s: float = _key(30.0, "Longest reconnect delay.", lo=0.1, hi=3600)
    connect_timeout_s: float = _key(5.0, "TCP/TLS connect timeout.", lo=0.1, hi=120)
    gate_command_ttl_s: float = _key(
        10.0, "A gate command older than this is dropped, not sent late (0 = never).", lo=0
    )
    flush_timeout_s: float = _key(
        3.0, "At shutdown, time allowed to send the outbox before leaving it for next start.",
        lo=0, hi=60,
    )


@dataclass(frozen=True)
class HttpConfig:
    port: int = _key(
        0, "TCP port of the HTTP API (Plate Recognizer and OpenALPR compatible recognition, "
        "/health, /metrics; docs/http.md); 0 = off.", lo=0, hi=65535,
    )
    bind: str = _key(
        "127.0.0.1", "Address the HTTP API listens on. Loopback by default: to serve other "
        "machines, set this machine's LAN address (or 0.0.0.0) and a token.",
    )
    token: str = _key(
        "", "API token: recognition requests must carry `Authorization: Token <token>` "
        "('' = none; at least 16 characters). /health and /metrics need none.",
    )
    max_body_bytes: int = _key(
        8 * 1024 * 1024, "Largest request body (413 beyond); the image in it must also be "
        "within ingest.max_frame_bytes and ingest.max_frame_pixels.", lo=1024, hi=1 << 28,
    )
    max_pending: int = _key(
        8, "Posted images being recognised or waiting for a worker at once; one more is "
        "answered 429.", lo=1, hi=1024,
    )
    max_connections: int = _key(
        32, "Open HTTP connections; a request on one more is answered 429 and its connection "
        "closed.", lo=1, hi=4096,
    )
    timeout_s: float = _key(
        15.0, "A request must arrive whole (408 otherwise) and be answered (504) within this "
        "many seconds; an idle kept-alive connection is closed after 5 s.", lo=0.5, hi=600,
    )


@dataclass(frozen=True)
class KnownPlateConfig:
    name: str = _key("", "Name published when this entry matches.")
    plate: str = _key("", "Plate text, wildcard (* ?) or regex, per `match`.")
    match: Literal["exact", "wildcard", "regex"] = _key("exact", "How `plate` is compared.")
    max_edit_distance: int = _key(0, "Tolerated character edits.", lo=0, hi=3)
    gate: bool = _key(False, "Send a gate `open` command when this plate is seen.")


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


def _check_camera_ids(cfg: Config, source: str) -> None:
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
    cfg = _build(Config, raw, "", source)
    _check_cross_fields(cfg, source, root)
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


def log_level_name(text: str, key: str = "device.log_level") -> LogLevel:
    """The logging level named by ``text`` in any case (``debug``); ``ConfigError`` otherwise."""
    allowed: tuple[LogLevel, ...] = get_args(LogLevel)
    for name in allowed:
        if text.upper() == name:
            return name
    choices = ", ".join(n.lower() for n in allowed)
    raise ConfigError(f"{key} must be one of {choices} (any case), got {text!r}")


def _check_cross_fields(cfg: Config, source: str, root: str = "/") -> None:
    det = cfg.detector
    if det.min_plate_width_px > det.max_plate_width_px:
        raise ConfigError(
            f"{source}: detector.min_plate_width_px ({det.min_plate_width_px}) is above "
            f"detector.max_plate_width_px ({det.max_plate_width_px})"
        )
    _check_regions(cfg.reader.regions, "reader.regions", source)
    ids: dict[int, str] = {}
    for name, cam in cfg.cameras.items():
        if cam.regions:
            _check_regions(cam.regions, f"cameras.{name}.regions", source)
        if cam.roi and (len(cam.roi) != 4 or min(cam.roi[2:]) <= 0):
            raise ConfigError(f"{source}: cameras.{name}.roi must be [x, y, w, h] with w, h > 0")
        if cam.id >= 0:
            if cam.id in ids:
                raise ConfigError(
                    f"{source}: cameras.{name}.id {cam.id} is already used by camera {ids[cam.id]}"
                )
            ids[cam.id] = name
    for i, known in enumerate(cfg.known_plates):
        if not known.plate:
            raise ConfigError(f"{source}: known_plates[{i}].plate must not be empty")
        if known.match == "regex":
            try:
                re.compile(known.plate)
            except re.error as exc:
                raise ConfigError(
                    f"{source}: known_plates[{i}].plate is not a valid regex: {exc}"
                ) from None
            if known.max_edit_distance > 1:
                # Python's re has no approximate matching: tolerance 1 tries every one-edit
                # variant (hundreds), tolerance 2 tens of thousands per event (plates.known).
                raise ConfigError(
                    f"{source}: known_plates[{i}].max_edit_distance must be at most 1 for "
                    f'match = "regex", got {known.max_edit_distance}'
                )
    _check_camera_ids(cfg, source)
    _check_ingest(cfg, source)
    _check_http(cfg, source)
    _check_mqtt(cfg, source, root)
    _check_outbox(cfg, source, root)
    _check_models(cfg, source, root)


def _check_ingest(cfg: Config, source: str) -> None:
    try:
        ipaddress.ip_address(cfg.ingest.bind)
    except ValueError:
        raise ConfigError(
            f"{source}: ingest.bind must be an IP address such as 0.0.0.0, 127.0.0.1 or ::, "
            f"got {cfg.ingest.bind!r}"
        ) from None
    keys = [("ingest.key", cfg.ingest.key)]
    keys += [(f"cameras.{name}.key", cam.key) for name, cam in cfg.cameras.items()]
    for key, value in keys:
        if value and len(value.encode("utf-8")) < MIN_KEY_BYTES:
            raise ConfigError(
                f"{source}: {key} must be at least {MIN_KEY_BYTES} bytes (or '' for none), "
                f"got {len(value.encode('utf-8'))}"
            )


HTTP_TOKEN_MIN_CHARS = 16
"""Shortest API token accepted: a shorter one can be guessed by trying."""


def _check_http(cfg: Config, source: str) -> None:
    try:
        ipaddress.ip_address(cfg.http.bind)
    except ValueError:
        raise ConfigError(
            f"{source}: http.bind must be an IP address such as 127.0.0.1, 0.0.0.0 or ::, "
            f"got {cfg.http.bind!r}"
        ) from None
    token = cfg.http.token
    if token and (len(token) < HTTP_TOKEN_MIN_CHARS
                  or any(not 0x21 <= ord(c) <= 0x7E for c in token)):
        # never echo the token: the message names its length only
        raise ConfigError(
            f"{source}: http.token must be at least {HTTP_TOKEN_MIN_CHARS} printable ASCII "
            f"characters without spaces (or '' for none), got {len(token)} characters"
        )


def config_warnings(cfg: Config) -> list[str]:
    """Valid but unsafe combinations, one line each (``edge-anpr config`` and ``serve`` show
    them; neither refuses to run)."""
    warnings: list[str] = []
    gate_plates = [k.name or k.plate for k in cfg.known_plates if k.gate]
    keyed = bool(cfg.ingest.key) or any(cam.key for cam in cfg.cameras.values())
    if gate_plates:
        risky = [n for n, cam in cfg.cameras.items() if cam.allow_gate_unauthenticated]
        for name in risky:
            warnings.append(
                f"cameras.{name}.allow_gate_unauthenticated = true: anyone on the network can "
                f"open the gate with a forged frame of a gate plate ({gate_plates[0]}...)"
            )
        if not keyed and not risky:
            warnings.append(
                "known_plates with gate = true but no camera has a key (ingest.key or "
                "cameras.<name>.key): unauthenticated frames never open the gate, so no gate "
                "command will be sent"
            )
    if keyed and cfg.ingest.replay_window_s == 0:
        warnings.append(
            "ingest.replay_window_s = 0: a captured authenticated frame can be sent again at "
            "any later time and is read (and may open the gate) again"
        )
    if not keyed and not ipaddress.ip_address(cfg.ingest.bind).is_loopback:
        warnings.append(
            f"ingest.bind = {cfg.ingest.bind!r} is not a loopback address and no camera has a "
            "key: anyone who can reach the port can send frames (set ingest.key or "
            "cameras.<name>.key)"
        )
    if (cfg.http.port and not cfg.http.token
            and not ipaddress.ip_address(cfg.http.bind).is_loopback):
        warnings.append(
            f"http.bind = {cfg.http.bind!r} is not a loopback address and http.token is "
            "empty: anyone who can reach the port can use the HTTP API (set http.token)"
        )
    return warnings


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


def _check_mqtt(cfg: Config, source: str, root: str) -> None:
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
    ca, cert, key_file = (_rooted(root, p) for p in (m.ca_file, m.cert_file, m.key_file))
    for key, path in (("mqtt.ca_file", ca), ("mqtt.cert_file", cert),
                      ("mqtt.key_file", key_file)):
        if path:
            _check_readable_file(path, key, source)
    try:
        ctx = ssl.create_default_context(cafile=ca or None)
        if cert:
            ctx.load_cert_chain(cert, key_file or None)
    except (OSError, ssl.SSLError) as exc:
        keys = "mqtt.ca_file" if not m.cert_file else "mqtt.ca_file/cert_file/key_file"
        raise ConfigError(f"{source}: {keys}: TLS files unusable: {exc}") from None


def _rooted(root: str, path: str) -> str:
    """``path`` as seen from a system staged under ``root`` ('' stays '')."""
    if not path or root in ("", "/") or not os.path.isabs(path):
        return path
    return os.path.join(root, path.lstrip("/"))


def _check_readable_file(path: str, key: str, source: str) -> None:
    if not os.path.isfile(path):
        raise ConfigError(f"{source}: {key}: no such file {path!r}")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{source}: {key}: {path!r} is not readable by this user")


def _check_outbox(cfg: Config, source: str, root: str) -> None:
    """``mqtt.outbox_path`` names a file the outbox can create or write, in a folder where it
    can also write its journal and the replay state (``serve`` uses the outbox with MQTT off
    too). '' is chosen at start ($STATE_DIRECTORY) and ``:memory:`` is no file: not checked."""
    configured = cfg.mqtt.outbox_path
    if not configured or configured == ":memory:":
        return
    path = os.path.abspath(_rooted(root, configured))
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


def _check_models(cfg: Config, source: str, root: str) -> None:
    folder = _rooted(root, cfg.models.dir)
    if not folder:
        return
    if not os.path.isdir(folder):
        raise ConfigError(f"{source}: models.dir: no such folder {folder!r}")
    for name in READER_MODEL_FILES:
        _check_readable_file(os.path.join(folder, name), "models.dir", source)


def _check_regions(regions: list[str], key: str, source: str) -> None:
    from edge_anpr.plates.formats import check_regions

    try:
        check_regions(regions)
    except ValueError as exc:
        raise ConfigError(f"{source}: {key}: {exc}") from None


def _build(cls: type[T], raw: Any, path: str, source: str) -> T:
    where = path or "top level"
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {where} must be a table, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in raw:
        moved = MOVED_KEYS.get(_join(path, key))
        if moved is not None:
            raise ConfigError(
                f"{source}: {_join(path, key)} moved to {moved}: rename it in the file"
            )
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{source}: unknown key {_join(path, key)!r} (known here: {known})")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        values[name] = _convert(hints[name], value, _join(path, name), source, fields[name])
    return cls(**values)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _convert(tp: Any, value: Any, path: str, source: str, fld: dataclasses.Field[Any]) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path, source)  # type: ignore[arg-type]
    if origin is dict:
        _, val_tp = get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {path} must be a table of tables")
        return {str(k): _build(val_tp, v, f"{path}.{k}", source) for k, v in value.items()}
    if origin is list:
        (item_tp,) = get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {path} must be a list, got {_show(value)}")
        if isinstance(item_tp, type) and dataclasses.is_dataclass(item_tp):
            return [_build(item_tp, v, f"{path}[{i}]", source) for i, v in enumerate(value)]
        return [
            _convert(item_tp, v, f"{path}[{i}]", source, fld) for i, v in enumerate(value)
        ]
    if origin is Literal:
        allowed = get_args(tp)
        if fld.metadata.get("any_case") and isinstance(value, str):
            value = value.upper()
        if value not in allowed:
            choices = ", ".join(map(repr, allowed))
            raise ConfigError(f"{source}: {path} must be one of {choices}, got {_show(value)}")
        return value
    if origin in (typing.Union, types.UnionType):
        raise AssertionError(f"unsupported config type at {path}")  # our bug, not the user's
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {path} must be true or false, got {_show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {path} must be an integer, got {_show(value)}")
        _check_range(value, path, source, fld)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: {path} must be a number, got {_show(value)}")
        _check_range(float(value), path, source, fld)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {path} must be a string, got {_show(value)}")
        return value
    raise AssertionError(f"unsupported config type {tp!r} at {path}")


def _check_range(value: float, path: str, source: str, fld: dataclasses.Field[Any]) -> None:
    lo, hi = fld.metadata.get("lo"), fld.metadata.get("hi")
    if lo is not None and value < lo:
        raise ConfigError(f"{source}: {path} must be at least {lo:g}, got {value!r}")
    if hi is not None and value > hi:
        raise ConfigError(f"{source}: {path} must be at most {hi:g}, got {value!r}")


def _show(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def config_reference_markdown() -> str:
    """The key table of ``docs/configuration.md``, generated from the dataclasses so the two
    cannot drift (``tests/test_config.py`` compares them)."""
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]

    def walk(cls: type[Any], prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            path = _join(prefix, f.name)
            if dataclasses.is_dataclass(tp):
                walk(tp, path)  # type: ignore[arg-type]
            elif get_origin(tp) is dict:
                walk(get_args(tp)[1], f"{path}.<name>")
            elif get_origin(tp) is list and dataclasses.is_dataclass(get_args(tp)[0]):
                walk(get_args(tp)[0], f"[[{path}]]")
            else:
                factory: Any = f.default_factory
                default = f.default if f.default is not dataclasses.MISSING else factory()
                shown = _toml_literal(default)
                rows.append(f"| `{path}` | `{shown}` | {f.metadata.get('doc', '')} |")

    walk(Config, "")
    return "\n".join(rows) + "\n"


def _toml_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_literal(v) for v in value) + "]"
    return repr(value)
