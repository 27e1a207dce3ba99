"""The fixed train/validation split of the real data in ``../shared/data``.

Two keys, one rule: an item is in the validation part when the SHA-256 of its key falls in the
first quarter of the hash space. The rule is stateless, so every tool (training, eval, tests)
agrees on it without a split file, and adding images never moves an existing one across.

* Plate crops (``plate-crops``, ``plate-crops-br``, any folder with a ``labels.csv``) are split
  by their PLATE TEXT (``split_of_plate``): the same plate photographed twice is on one side
  only, so a validation figure never rewards remembering a plate seen in training
  (``plate-crops-br`` holds 1,920 distinct plates in 2,362 crops, some twelve times).
* Scene photographs are split by FILE NAME (``split_of``), as the detector was trained on. A
  plate text that also appears in a validation scene is left out of the reader's training
  data (``val_scene_plates``), which keeps the rule "one plate never on both sides" there too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

Split = Literal["train", "val"]
VAL_FRACTION = 0.25


def _split_of_key(key: str) -> Split:
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return "val" if int.from_bytes(digest[:4], "big") < VAL_FRACTION * 2**32 else "train"


def split_of(file_name: str) -> Split:
    """The side of a scene photograph, by its file name (not its path, not its content)."""
    return _split_of_key(Path(file_name).name)


def split_of_plate(text: str) -> Split:
    """The side of a plate crop, by its plate text (upper case, spaces and dashes removed)."""
    return _split_of_key("plate:" + "".join(c for c in text.upper() if c.isalnum()))


def in_split(file_name: str, wanted: Literal["train", "val", "all"]) -> bool:
    return wanted == "all" or split_of(file_name) == wanted


def in_holdout(file_name: str) -> bool:
    """A fixed fifth of the TRAINING scene photographs that the plate refiner never trains on,
    kept for choosing the detector's settings (the validation side stays untouched)."""
    digest = hashlib.sha256(("holdout:" + Path(file_name).name).encode()).digest()
    return digest[0] < 51


def plate_in_split(text: str, wanted: Literal["train", "val", "all"]) -> bool:
    return wanted == "all" or split_of_plate(text) == wanted


def shared_data_dir(start: Path | None = None) -> Path | None:
    """``../shared/data`` beside the repository, or None when it is not there."""
    here = (start or Path(__file__)).resolve()
    for parent in here.parents:
        candidate = parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None
