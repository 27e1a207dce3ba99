"""The ``[tracker]`` section and the ``[[known_plates]]`` list."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from edge_anpr.config.schema import key_field
from edge_anpr.errors import ConfigError

if TYPE_CHECKING:
    from edge_anpr.config.root import Config


@dataclass(frozen=True)
class TrackerConfig:
    quiet_time_s: float = key_field(
        3.0, "An event ends after this long without a matching read.", lo=0.1, hi=3600
    )
    max_edit_distance: int = key_field(2, "Reads this close in text join one event.", lo=0, hi=4)
    parked_suppress_s: float = key_field(
        600.0, "A plate that just ended at the same spot does not re-trigger for this long.",
        lo=0, hi=86400,
    )
    parked_iou: float = key_field(
        0.5, "Box overlap (IoU) that counts as the same spot for parked suppression.", lo=0.01,
        hi=1,
    )
    misread_iou: float = key_field(
        0.3, "Box overlap (IoU) that lets a half-right misread join an open event.", lo=0.01,
        hi=1,
    )
    update_min_gain: float = key_field(
        0.05, "Confidence rise of the best text that publishes an update.", lo=0, hi=1
    )
    max_reads_per_event: int = key_field(
        64, "Most recent reads of an event kept for voting.", lo=1, hi=10000
    )
    max_open_events_per_camera: int = key_field(
        16, "Open events per camera; the least recently seen ends early.", lo=1, hi=1024
    )


@dataclass(frozen=True)
class KnownPlateConfig:
    name: str = key_field("", "Name published when this entry matches.")
    plate: str = key_field("", "Plate text, wildcard (* ?) or regex, per `match`.")
    match: Literal["exact", "wildcard", "regex"] = key_field("exact", "How `plate` is compared.")
    max_edit_distance: int = key_field(0, "Tolerated character edits.", lo=0, hi=3)
    gate: bool = key_field(False, "Send a gate `open` command when this plate is seen.")
    lookalikes: bool = key_field(
        True, "Count look-alike characters (O/0, I/1, B/8, S/5, Z/2) as equal when matching."
    )


def check_known_plates(cfg: Config, source: str) -> None:
    for i, known in enumerate(cfg.known_plates):
        if not known.plate:
            raise ConfigError(f"{source}: known_plates[{i}].plate must not be empty")
        if known.match == "regex":
            try:
                re.compile(known.plate)
            except re.error as exc:
                raise ConfigError(
                    f"{source}: known_plates[{i}].plate is not a valid regex: {exc}"
                ) from None
            if known.max_edit_distance > 1:
                # Python's re has no approximate matching: tolerance 1 tries every one-edit
                # variant (hundreds), tolerance 2 tens of thousands per event (plates.known).
                raise ConfigError(
                    f"{source}: known_plates[{i}].max_edit_distance must be at most 1 for "
                    f'match = "regex", got {known.max_edit_distance}'
                )
