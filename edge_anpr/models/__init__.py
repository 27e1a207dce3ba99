"""The shipped model files and their one accessor.

Every file in this folder is made by the project's own training code (``make train``), which
writes here; each has a model card (``*.md``) beside it. They are package data, so an installed
wheel carries them: the recognizer finds them through ``importlib.resources``, never through
the source tree, and works from any working directory.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from edge_anpr.errors import ModelError


def bundled_models_dir() -> Path:
    """The folder of the models shipped inside the ``edge_anpr`` package.

    The interpreters open model files by path, so the package must be installed as files
    (pip always does); a package imported from a zip archive is a ``ModelError`` that says so.
    """
    folder = files(__name__)
    if not isinstance(folder, Path):
        raise ModelError(
            f"{__name__}: the bundled models are inside an archive ({folder}); install the "
            "edge-anpr wheel with pip or set models.dir"
        )
    return folder
