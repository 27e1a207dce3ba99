"""The key table of the documentation, generated from the dataclasses."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, get_args, get_origin

from edge_anpr.config.root import Config
from edge_anpr.config.schema import join_key


def config_reference_markdown() -> str:
    """The key table of ``docs/configuration.md``, generated from the dataclasses so the two
    cannot drift (``tests/test_config.py`` compares them)."""
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]

    def walk(cls: type[Any], prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            path = join_key(prefix, f.name)
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
