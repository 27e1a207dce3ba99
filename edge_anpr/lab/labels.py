"""Labelled crop folders: their ``labels.csv`` and the project's review of those labels.

A ``labels.csv`` has a header row naming at least ``file`` and ``plate`` columns (any order,
any case, more columns allowed, as in ``../shared/data/plate-crops-br``), or headerless
``file,state,PLATE`` rows (``../shared/data/plate-crops``).

Labels taken from file names can be wrong. What the project found wrong, by looking at each
suspect (``python -m edge_anpr.lab.suspects``), is in ``data/label-review/<folder>.csv`` at the
repository's top: ``file,label,reviewed,reason``, where ``reviewed`` is the plate as the image
shows it, or empty when no one can read it (the crop is then left out). Training and
evaluation read labels through ``labelled_rows``, which applies the review; ``raw=True`` gives
the labels as shipped, to measure what the review changes.

``data/labels/plate-crops-eu-unlabelled.csv`` holds the project's own labels of 94 crops of
``plate-crops-eu-unlabelled`` (48 two-line), read by a person from the images: a validation
set of European plates of many countries, never trained on (``EU_LABELLED``).
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from edge_anpr.errors import ConfigError

REVIEW_DIR = Path(__file__).resolve().parents[2] / "data" / "label-review"
"""Where the reviews live in a checkout (absent from an installed package: no review)."""
EU_LABELLED = REVIEW_DIR.parent / "labels" / "plate-crops-eu-unlabelled.csv"
"""The project's labels of part of ``plate-crops-eu-unlabelled`` (validation only)."""


def read_label_rows(labels: Path) -> list[tuple[str, str]]:
    """``(file, plate)`` of every row of a ``labels.csv`` (see the module docstring)."""
    with labels.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r]
    if not rows:
        return []
    header = [c.strip().lower() for c in rows[0]]
    if "file" in header:
        if "plate" not in header:
            raise ConfigError(f"{labels}: the header has no 'plate' column: {rows[0]}")
        fi, pi = header.index("file"), header.index("plate")
        return [(r[fi], r[pi].strip().upper()) for r in rows[1:] if len(r) > max(fi, pi)]
    if all(len(r) >= 3 for r in rows):
        return [(r[0], r[2].strip().upper()) for r in rows]
    raise ConfigError(f"{labels}: expected a header with 'file' and 'plate' columns")


def read_label_column(labels: Path, column: str) -> dict[str, str]:
    """file -> the value of ``column`` in a ``labels.csv`` with a header (empty without)."""
    if not labels.is_file():
        return {}
    with labels.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = {(n or "").strip().lower(): n for n in reader.fieldnames or ()}
        if "file" not in fields or column not in fields:
            return {}
        return {row[fields["file"]]: row[fields[column]] for row in reader
                if row.get(fields[column])}


@dataclass(frozen=True, slots=True)
class Review:
    """What looking at the images changed in one folder's labels."""

    corrected: dict[str, str]
    """file -> the plate the image shows."""
    excluded: frozenset[str]
    """Files no one can read: left out."""
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    """file -> the label the review found wrong (to find it among several in one file)."""

    def apply(self, rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(f, self.corrected.get(f, p)) for f, p in rows if f not in self.excluded]


def read_review(folder_name: str, review_dir: Path = REVIEW_DIR) -> Review:
    """The review of the folder named ``folder_name`` (empty when there is none)."""
    path = review_dir / f"{folder_name}.csv"
    corrected: dict[str, str] = {}
    excluded: set[str] = set()
    labels: dict[str, str] = {}
    if path.is_file():
        with path.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                labels[row["file"]] = (row.get("label") or "").strip().upper()
                fixed = (row.get("reviewed") or "").strip().upper()
                if fixed:
                    corrected[row["file"]] = fixed
                else:
                    excluded.add(row["file"])
    return Review(corrected, frozenset(excluded), labels)


def labelled_rows(
    directory: Path, *, raw: bool = False, review_dir: Path = REVIEW_DIR,
    labels: Path | None = None,
) -> tuple[list[tuple[str, str]], Review]:
    """``(file, plate)`` of a labelled folder with its review applied (unless ``raw``), and
    the review itself (to report what it changed). ``labels`` names a labels file kept
    elsewhere (the project's own labels of an unlabelled folder, ``data/labels/``); the
    default is the folder's ``labels.csv``."""
    labels = labels or directory / "labels.csv"
    if not labels.is_file():
        raise ConfigError(f"{labels}: not found (a labels.csv with file and plate columns)")
    rows = read_label_rows(labels)
    review = Review({}, frozenset()) if raw else read_review(directory.name, review_dir)
    return review.apply(rows), review
