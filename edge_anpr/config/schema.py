"""Building typed config dataclasses from parsed TOML, generic over their fields.

A key is a dataclass field declared with ``key_field`` (its default, the sentence the key table
shows, an optional range); ``build`` turns a TOML table into the dataclass, refusing an unknown
key, a moved key, a value of the wrong type or out of range with a ``ConfigError`` naming the
exact key path. A float key is a finite number: ``nan`` and ``inf`` (TOML has both) are
refused everywhere.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import field
from typing import Any, Literal, TypeVar, get_args, get_origin

from edge_anpr.errors import ConfigError

T = TypeVar("T")

MOVED_KEYS = {
    "detector.min_read_confidence": "reader.min_plate_confidence",
    "detector.min_fitting_read_confidence": "reader.min_fitting_plate_confidence",
    "reader.models_dir": "models.dir",
}
"""Keys renamed before 1.0: naming one is an error that says where it went."""


def key_field(
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

def build(cls: type[T], raw: Any, path: str, source: str) -> T:
    where = path or "top level"
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {where} must be a table, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in raw:
        moved = MOVED_KEYS.get(join_key(path, key))
        if moved is not None:
            raise ConfigError(
                f"{source}: {join_key(path, key)} moved to {moved}: rename it in the file"
            )
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(
                f"{source}: unknown key {join_key(path, key)!r} (known here: {known})"
            )
    values: dict[str, Any] = {}
    for name, value in raw.items():
        values[name] = _convert(hints[name], value, join_key(path, name), source, fields[name])
    return cls(**values)


def join_key(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _convert(tp: Any, value: Any, path: str, source: str, fld: dataclasses.Field[Any]) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path, source)  # type: ignore[arg-type]
    if origin is dict:
        _, val_tp = get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {path} must be a table of tables")
        return {str(k): build(val_tp, v, f"{path}.{k}", source) for k, v in value.items()}
    if origin is list:
        (item_tp,) = get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {path} must be a list, got {_show(value)}")
        if isinstance(item_tp, type) and dataclasses.is_dataclass(item_tp):
            return [build(item_tp, v, f"{path}[{i}]", source) for i, v in enumerate(value)]
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
        if not math.isfinite(value):
            # TOML has nan and inf; no key means either (a sleep of nan seconds crashes)
            raise ConfigError(f"{source}: {path} must be a finite number, got {value!r}")
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
