"""Valid but unsafe combinations of keys: warned about, never refused."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge_anpr.config.root import Config


def config_warnings(cfg: Config) -> list[str]:
    """Valid but unsafe combinations, one line each (``edge-anpr config`` and ``serve`` show
    them; neither refuses to run)."""
    warnings: list[str] = []
    gate_plates = [k.name or k.plate for k in cfg.known_plates if k.gate]
    keyed = bool(cfg.ingest.key) or any(cam.key for cam in cfg.cameras.values())
    risky = [n for n, cam in cfg.cameras.items() if cam.allow_gate_unauthenticated]
    for name in risky:
        # warned whenever set: a gate plate added later must not make it silently live
        what = (f"a gate plate ({gate_plates[0]}...)" if gate_plates
                else "any plate once a known_plates entry has gate = true")
        warnings.append(
            f"cameras.{name}.allow_gate_unauthenticated = true: anyone on the network can "
            f"open the gate with a forged frame of {what}"
        )
    if gate_plates and not keyed and not risky:
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
    everyone = [n for n in cfg.http.allow
                if ipaddress.ip_network(n, strict=False).prefixlen == 0]
    if cfg.http.port and cfg.http.token and everyone:
        warnings.append(
            f"http.allow holds {everyone[0]!r}, every address: no client is asked for "
            "http.token (list only the networks of the clients that send none)"
        )
    return warnings
