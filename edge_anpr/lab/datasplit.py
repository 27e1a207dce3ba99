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
* Video frames (``NAME_tSECONDS.jpg``, as in ``scenes-ro``) are split by TIME BLOCK
  (``frame_part``): consecutive frames of a video are near copies, so a frame-by-frame split
  would put the same car on both sides. Each video is cut into ``BLOCK_S``-second blocks; a
  block is validation, training holdout (kept for choosing settings) or training by the hash of
  ``video:block``, and a training frame within ``GUARD_S`` seconds of another part's block is
  ``guard``: used by no side.
"""

from __future__ import annotations

import hashlib
import re
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


BLOCK_S = 60
"""Length of a time block of a video, in seconds (a car stays in a dashcam's view for seconds,
so a minute's frames are one scene seen again and again)."""
GUARD_S = 5
"""A training or holdout frame this close to a block of another part is used by neither."""
HOLDOUT_FRACTION = 0.2
"""The share of the training blocks kept out of training for choosing settings."""

FramePart = Literal["val", "holdout", "train", "guard"]
_VIDEO_FRAME = re.compile(r"^(?P<video>.+)_t(?P<second>\d+)$")


def video_frame(file_name: str) -> tuple[str, int] | None:
    """(video, second) of a frame named ``VIDEO_tSECONDS.ext``, else None."""
    m = _VIDEO_FRAME.match(Path(file_name).stem)
    return (m["video"], int(m["second"])) if m else None


def _block_part(video: str, block: int) -> FramePart:
    if _split_of_key(f"block:{video}:{block}") == "val":
        return "val"
    digest = hashlib.sha256(f"holdout-block:{video}:{block}".encode()).digest()
    return "holdout" if int.from_bytes(digest[:4], "big") < HOLDOUT_FRACTION * 2**32 else "train"


def frame_part(file_name: str) -> FramePart:
    """The part of a video frame by its time block (module docstring); a file not named like a
    video frame falls back to the scene rule (``split_of``, ``in_holdout``)."""
    vf = video_frame(file_name)
    if vf is None:
        if split_of(file_name) == "val":
            return "val"
        return "holdout" if in_holdout(file_name) else "train"
    video, second = vf
    part = _block_part(video, second // BLOCK_S)
    if part == "val":
        return part
    near = {_block_part(video, (second + d) // BLOCK_S)
            for d in (-GUARD_S, GUARD_S) if second + d >= 0}
    return "guard" if any(p != part for p in near) else part


def frame_in_split(file_name: str, wanted: Literal["train", "val", "all", "holdout"]) -> bool:
    """Whether a video frame is in ``wanted``: "train" is every non-validation frame but the
    guard ones (holdout included, as ``in_split`` does for scenes); "holdout" only the holdout."""
    if wanted == "all":
        return True
    part = frame_part(file_name)
    if wanted == "train":
        return part in ("train", "holdout")
    return part == wanted


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
