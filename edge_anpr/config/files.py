"""Files a config names, as seen from the root a system is staged under."""

from __future__ import annotations

import os

from edge_anpr.errors import ConfigError


def rooted(root: str, path: str) -> str:
    """``path`` as seen from a system staged under ``root`` ('' stays '')."""
    if not path or root in ("", "/") or not os.path.isabs(path):
        return path
    return os.path.join(root, path.lstrip("/"))


def check_readable_file(path: str, key: str, source: str) -> None:
    if not os.path.isfile(path):
        raise ConfigError(f"{source}: {key}: no such file {path!r}")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{source}: {key}: {path!r} is not readable by this user")
