"""Known-plate matching: is the plate of an event on the configured list, and which entry.

Each ``[[known_plates]]`` entry compares its ``plate`` with the event's best text and then with
the event's candidates (best first), so a plate the reader got one character wrong but listed
as its second choice still matches. Comparison is on normalised text (upper case, spaces and
dashes removed), because readers and people disagree on separators, not on characters.

- ``exact``: edit distance (Levenshtein) at most ``max_edit_distance``.
- ``wildcard``: ``?`` is any one character, ``*`` any run of characters (possibly empty); the
  tolerance is the same edit distance, computed against the pattern directly (a wildcard costs
  nothing), so ``AB1??C`` with tolerance 1 matches ``AB12XD``.
With ``lookalikes`` (the default), the look-alike characters a plate font draws nearly alike
and a reader confuses (``LOOKALIKES``: O/0, I/1, B/8, S/5, Z/2) count as one character for
``exact`` and ``wildcard``: both sides are folded to one of each pair first, so ``AB12CDE``
with ``max_edit_distance = 0`` matches a read ``A812CDE``. The pairs are the same for every
region: the US labels write O and 0 (and I and 1) interchangeably on plates whose serials
never hold the letter, the Brazilian font draws O and 0 alike, and the UK font B and 8; a
per-country table would need the fonts of every state and country. A ``regex`` entry is the
user's own pattern and is matched as written. ``distance`` is counted on the folded texts.

- ``regex``: ``re.fullmatch`` of the normalised text. Python's ``re`` has no approximate
  matching, so a tolerance of 1 is done by trying every one-edit variant over the plate
  alphabet (a few hundred tries per text); a tolerance above 1 for a regex would be tens of
  thousands of tries per event and is refused with a ``ConfigError``.

The first entry (in file order) that matches any of the texts, best text first, wins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from edge_anpr.config import KnownPlateConfig
from edge_anpr.errors import ConfigError

PLATE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
LOOKALIKES = ("O0", "I1", "B8", "S5", "Z2")
"""Look-alike pairs (letter, digit) that matching counts as one character (``lookalikes``)."""
_FOLD = str.maketrans({pair[0]: pair[1] for pair in LOOKALIKES})


def fold_lookalikes(text: str) -> str:
    """``text`` with the letter of every ``LOOKALIKES`` pair replaced by its digit."""
    return text.translate(_FOLD)
_SEPARATORS = re.compile(r"[\s\-_.·]+")


def normalize_plate(text: str) -> str:
    """Upper case without spaces, dashes, dots or underscores."""
    return _SEPARATORS.sub("", text).upper()


def edit_distance(a: str, b: str, limit: int | None = None) -> int:
    """Levenshtein distance; with ``limit``, any value above it may be returned as ``limit + 1``."""
    if a == b:
        return 0
    if len(a) < len(b):
        a, b = b, a
    if limit is not None and len(a) - len(b) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
            )
        if limit is not None and min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


def wildcard_distance(text: str, pattern: str) -> int:
    """Fewest character edits that make ``text`` match ``pattern`` (``?`` one, ``*`` any run)."""
    # prev[j]: cost of matching text[:i] with pattern[:j]
    n = len(pattern)
    prev = [0] * (n + 1)
    for j, p in enumerate(pattern, 1):
        prev[j] = prev[j - 1] + (0 if p == "*" else 1)
    for i in range(1, len(text) + 1):
        cur = [i] + [0] * n
        c = text[i - 1]
        for j in range(1, n + 1):
            p = pattern[j - 1]
            if p == "*":
                # '*' absorbs text[i-1] (stay on j) or matches nothing (move from j-1).
                cur[j] = min(prev[j], cur[j - 1])
            else:
                sub = prev[j - 1] + (0 if p in ("?", c) else 1)
                cur[j] = min(sub, prev[j] + 1, cur[j - 1] + 1)
        prev = cur
    return prev[n]


def one_edit_variants(text: str, alphabet: str = PLATE_ALPHABET) -> Iterable[str]:
    """Every string one deletion, substitution or insertion away from ``text``."""
    for i in range(len(text)):
        yield text[:i] + text[i + 1 :]
        for c in alphabet:
            if c != text[i]:
                yield text[:i] + c + text[i + 1 :]
    for i in range(len(text) + 1):
        for c in alphabet:
            yield text[:i] + c + text[i:]


@dataclass(frozen=True, slots=True)
class KnownMatch:
    """An entry that matched, the text that made it match, and how many edits it took."""

    entry: KnownPlateConfig
    index: int
    """Position of the entry in ``known_plates``."""
    matched_text: str
    distance: int


class KnownPlates:
    """The configured list, compiled once."""

    def __init__(self, entries: Sequence[KnownPlateConfig]) -> None:
        self._entries = list(entries)
        self._regex: dict[int, re.Pattern[str]] = {}
        for i, entry in enumerate(self._entries):
            if entry.match == "regex":
                if entry.max_edit_distance > 1:
                    raise ConfigError(
                        f"known_plates[{i}].max_edit_distance must be at most 1 for "
                        f'match = "regex", got {entry.max_edit_distance}'
                    )
                try:
                    self._regex[i] = re.compile(entry.plate)
                except re.error as exc:
                    raise ConfigError(
                        f"known_plates[{i}].plate is not a valid regex: {exc}"
                    ) from None

    def __len__(self) -> int:
        return len(self._entries)

    def match(self, texts: Iterable[str]) -> KnownMatch | None:
        """The first entry matching any of ``texts`` (best text first), or None."""
        normalized = []
        for text in texts:
            norm = normalize_plate(text)
            if norm and norm not in normalized:
                normalized.append(norm)
        if not normalized:
            return None
        for i, entry in enumerate(self._entries):
            for text in normalized:
                distance = self._distance(i, entry, text)
                if distance is not None:
                    return KnownMatch(entry, i, text, distance)
        return None

    def _distance(self, i: int, entry: KnownPlateConfig, text: str) -> int | None:
        tolerance = entry.max_edit_distance
        fold = fold_lookalikes if entry.lookalikes else str
        if entry.match == "exact":
            d = edit_distance(fold(text), fold(normalize_plate(entry.plate)), tolerance)
        elif entry.match == "wildcard":
            pattern = "".join(
                c if c in "*?" else normalize_plate(c) for c in entry.plate
            )
            d = wildcard_distance(fold(text), fold(pattern))
        else:
            rx = self._regex[i]
            if rx.fullmatch(text):
                return 0
            if tolerance >= 1 and any(rx.fullmatch(v) for v in one_edit_variants(text)):
                return 1
            return None
        return d if d <= tolerance else None
