"""Plate Recognizer's engine ``config`` (a JSON object, sent as a form field holding JSON or as
an object in a JSON body): what each option does here (pure).

Options Plate Recognizer documents, and their meaning on this appliance:

- ``region: "strict"``: only plates whose reading fits a plate format of the regions the image
  is read with are answered (their candidates too: only those that fit); the others are left
  out. With no region of its own (``generic`` only) nothing is left out: there is no format to
  fit.
- ``detection_mode: "vehicle"`` (or ``"plate"``, the default): the answer takes the
  vehicle-first shape (``plate`` and ``vehicle`` objects with ``props``, docs/http.md); the
  appliance finds plates, not vehicles, so every result is a plate with the empty vehicle and no
  vehicle without a plate is reported.
- ``threshold_d``, ``threshold_o`` (0-1): plates with ``dscore`` or ``score`` under them are
  left out.
- ``detection_rule: "strict"`` (plates outside a vehicle are left out) and ``mode: "fast"``:
  accepted, no effect: there is no vehicle detector and one reading mode.

Any other option, or a value of the wrong kind, is a ``BadUpload`` 400 naming it, never
silently a different answer (``tests/test_http_engine.py``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

from edge_anpr.http.uploads import BadUpload

IGNORED_OPTIONS: dict[str, tuple[str, ...]] = {
    "detection_rule": ("strict",),
    "mode": ("fast", "normal", ""),
}
"""Options accepted without effect, with the values accepted."""


@dataclass(frozen=True, slots=True)
class EngineConfig:
    region_strict: bool = False
    vehicle_mode: bool = False
    threshold_d: float = 0.0
    threshold_o: float = 0.0


def parse_engine_config(value: str | dict[str, Any] | None) -> EngineConfig:
    """The options of ``value`` (a JSON text or an already parsed object; '' or None: none)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return EngineConfig()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise BadUpload(400, "bad_config", "config: not valid JSON") from None
    if not isinstance(value, dict):
        raise BadUpload(400, "bad_config", "config: a JSON object was expected")
    options = EngineConfig()
    for name, option in value.items():
        if name == "region":
            if option != "strict":
                raise BadUpload(400, "bad_config",
                                f"config.region: only \"strict\" is supported, got {_show(option)}")
            options = _replace(options, region_strict=True)
        elif name == "detection_mode":
            if option not in ("plate", "vehicle"):
                raise BadUpload(400, "bad_config", "config.detection_mode: \"plate\" or "
                                f"\"vehicle\", got {_show(option)}")
            options = _replace(options, vehicle_mode=option == "vehicle")
        elif name in ("threshold_d", "threshold_o"):
            if (isinstance(option, bool) or not isinstance(option, (int, float))
                    or not math.isfinite(option) or not 0 <= option <= 1):
                raise BadUpload(400, "bad_config",
                                f"config.{name}: a number from 0 to 1, got {_show(option)}")
            options = _replace(options, **{name: float(option)})
        elif name in IGNORED_OPTIONS:
            if option not in IGNORED_OPTIONS[name]:
                allowed = " or ".join(f'"{v}"' for v in IGNORED_OPTIONS[name] if v)
                raise BadUpload(400, "bad_config",
                                f"config.{name}: {allowed}, got {_show(option)}")
        else:
            raise BadUpload(
                400, "unsupported_option",
                f"config.{str(name)[:40]}: not supported by this appliance (docs/http.md lists "
                "the options it takes)",
            )
    return options


def _replace(options: EngineConfig, **changes: Any) -> EngineConfig:
    return dataclasses.replace(options, **changes)


def _show(value: Any) -> str:
    return json.dumps(value)[:40]
