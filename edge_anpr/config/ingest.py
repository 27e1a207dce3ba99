"""The ``[ingest]`` section: the UDP socket, frame limits and authentication of frames."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edge_anpr.config.schema import key_field
from edge_anpr.errors import ConfigError

if TYPE_CHECKING:
    from edge_anpr.config.root import Config

MIN_KEY_BYTES = 16
"""Shortest HMAC key accepted (UTF-8 bytes): a shorter secret can be guessed offline from one
tagged datagram."""


@dataclass(frozen=True)
class IngestConfig:
    bind: str = key_field("0.0.0.0", "Address the UDP socket binds to.")
    port: int = key_field(6112, "UDP port for both wire formats.", lo=0, hi=65535)
    recv_buffer_bytes: int = key_field(
        4 * 1024 * 1024, "Requested socket receive buffer (SO_RCVBUF).", lo=65536, hi=1 << 30
    )
    udp_gro: bool = key_field(
        True, "Let the kernel coalesce datagrams (UDP GRO, Linux >= 5.0): one receive call "
        "for many.",
    )
    max_frame_bytes: int = key_field(
        4 * 1024 * 1024, "Largest frame accepted; larger headers are rejected.", lo=1024, hi=1 << 28
    )
    max_frame_pixels: int = key_field(
        10_000_000, "Largest image decoded, in pixels (width x height, read from the JPEG "
        "header first); larger frames are refused undecoded. 3840x2160 is 8.3 million.",
        lo=4096, hi=1 << 28,
    )
    frame_timeout_s: float = key_field(
        1.0, "An incomplete frame with no datagram for this long is dropped.", lo=0.01, hi=60
    )
    max_frames_in_flight_per_stream: int = key_field(
        4, "Incomplete frames kept per sequenced stream.", lo=1, hi=64
    )
    max_frames_in_flight_total: int = key_field(
        64, "Incomplete frames kept over all senders.", lo=1, hi=4096
    )
    max_buffered_bytes: int = key_field(
        64 * 1024 * 1024, "Bytes of incomplete frames kept over all senders.", lo=1 << 16,
        hi=1 << 32,
    )
    max_senders: int = key_field(
        256, "Tracked senders/streams; the least recently active is evicted.", lo=1, hi=65536
    )
    max_streams_per_source: int = key_field(
        16, "Unauthenticated streams of unconfigured camera ids one source address may have "
        "at once; more are dropped (source_limit).", lo=1, hi=65536,
    )
    queue_frames_per_camera: int = key_field(
        2, "Complete frames waiting per camera; the oldest is dropped when full.", lo=1, hi=64
    )
    queue_frames_total: int = key_field(
        32, "Complete frames waiting over all cameras; configured and authenticated cameras "
        "are served first and keep their places.", lo=1, hi=4096,
    )
    allow_unauthenticated: bool = key_field(
        True, "Accept frames that carry no valid tag: untagged sequenced datagrams of "
        "cameras with no key, and legacy frames of senders that are not a keyed camera. "
        "They are read but never open a gate.",
    )
    key: str = key_field("", "Global HMAC key for sequenced datagrams ('' = none).")
    replay_window_s: float = key_field(
        5.0, "Authenticated frames must carry a capture time within this many seconds of the "
        "appliance's clock, newer than the camera's last one; the last is kept across restarts "
        "beside the outbox (0 = off: captured frames can be replayed). Cameras need NTP.",
        lo=0, hi=3600,
    )
    legacy: bool = key_field(True, "Accept the legacy length-prefixed format.")


def check_ingest(cfg: Config, source: str) -> None:
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
