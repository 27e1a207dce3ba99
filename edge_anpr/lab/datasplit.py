"""The fixed train/validation split of the real data in ``../shared/data``.

A file belongs to the validation part when the SHA-256 of its file name (not its path, not its
content) falls in the first quarter of the hash space. The rule is stateless, so every tool
(training, eval, tests) agrees on it without a split file, and adding images never moves an
existing image from one side to the other.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

Split = Literal["train", "val"]
VAL_FRACTION = 0.25


def split_of(file_name: str) -> Split:
    digest = hashlib.sha256(Path(file_name).name.encode("utf-8")).digest()
    return "val" if int.from_bytes(digest[:4], "big") < VAL_FRACTION * 2**32 else "train"


def in_split(file_name: str, wanted: Literal["train", "val", "all"]) -> bool:
    return wanted == "all" or split_of(file_name) == wanted


def shared_data_dir(start: Path | None = None) -> Path | None:
    """``../shared/data`` beside the repository, or None when it is not there."""
    here = (start or Path(__file__)).resolve()
    for parent in here.parents:
        candidate = parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None
