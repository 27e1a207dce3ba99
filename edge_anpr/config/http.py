"""The ``[http]`` section: the HTTP API's socket, token and limits."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edge_anpr.config.schema import key_field
from edge_anpr.errors import ConfigError

if TYPE_CHECKING:
    from edge_anpr.config.root import Config


@dataclass(frozen=True)
class HttpConfig:
    port: int = key_field(
        0, "TCP port of the HTTP API (Plate Recognizer and OpenALPR compatible recognition, "
        "/health, /metrics; docs/http.md); 0 = off.", lo=0, hi=65535,
    )
    bind: str = key_field(
        "127.0.0.1", "Address the HTTP API listens on. Loopback by default: to serve other "
        "machines, set this machine's LAN address (or 0.0.0.0) and a token.",
    )
    token: str = key_field(
        "", "API token: recognition requests must carry `Authorization: Token <token>` "
        "('' = none; at least 16 characters). /health and /metrics need none.",
    )
    max_body_bytes: int = key_field(
        8 * 1024 * 1024, "Largest request body (413 beyond); the image in it must also be "
        "within ingest.max_frame_bytes and ingest.max_frame_pixels.", lo=1024, hi=1 << 28,
    )
    max_pending: int = key_field(
        8, "Posted images being recognised or waiting for a worker at once; one more is "
        "answered 429.", lo=1, hi=1024,
    )
    max_connections: int = key_field(
        32, "Open HTTP connections. One more closes the oldest idle one (no request sent yet; "
        "from the address with the most first), or is answered 429 and closed when every one "
        "is serving a request. Lowered to the open-files limit less 128 (LimitNOFILE).",
        lo=1, hi=4096,
    )
    timeout_s: float = key_field(
        15.0, "A request must arrive whole (408 and closed otherwise, the head too) and be "
        "answered (504) within this many seconds; an idle kept-alive connection is closed "
        "after 5 s.", lo=0.5, hi=600,
    )
    allow: list[str] = key_field(
        ["127.0.0.0/8", "::1/128"], "Networks (CIDR) whose clients need no token, as clients "
        "of Plate Recognizer's on-premise SDK send none; every other client needs http.token. "
        "[] = every client needs it.",
    )


HTTP_TOKEN_MIN_CHARS = 16
"""Shortest API token accepted: a shorter one can be guessed by trying."""


def check_http(cfg: Config, source: str) -> None:
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
    for i, network in enumerate(cfg.http.allow):
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigError(
                f"{source}: http.allow[{i}] must be a network such as 192.168.1.0/24 or an "
                f"address, got {network!r}"
            ) from None
