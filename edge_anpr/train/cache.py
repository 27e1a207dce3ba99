"""Where training keeps prepared data, checkpoints and intermediate models: the folder named by
``$EDGE_ANPR_TRAIN_CACHE``, else ``~/.cache/edge-anpr-train``. Always outside the repository,
and kept across runs so that a killed run resumes from it (each step names its own files and
versions them in their names)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE = Path(
    os.environ.get("EDGE_ANPR_TRAIN_CACHE", str(Path.home() / ".cache" / "edge-anpr-train"))
)
