"""US plates: each state's standard passenger serials, and how a US read is written (pure).

``STATE_SERIALS`` holds, for the states whose standard passenger serial is public knowledge,
its formats (``@`` a letter, ``#`` a digit, separators removed, as in ``plates.formats``) and
the one-line fact they come from; each was checked against the states of the project's
labelled US crops (training part). A state left out (county-coded plates such as Idaho's or
Montana's, states with many concurrent series) is read with every US format (``US_SERIALS``).

``write_us`` is the convention a US read is written in (docs/configuration.md, "US plates"):
the letter O and the digit 0 are one character on US plates, and so are I and 1. A read that
fits one of the state's serials takes a letter in each letter slot and a digit in each digit
slot (O -> 0 and I -> 1 in a digit slot, 0 -> O and 1 -> I in a letter slot); a read that fits
none (a vanity plate) writes every O as 0 and keeps I as read. I and 1 are drawn apart on US
plates (1 has a flag), so an I or a 1 the classifier is sure of (``SWAP_MAX_P``) is never
rewritten: a read that needs it rewritten fits no serial.

Invariant: ``write_us`` changes only O, 0, I and 1, never the length, and is idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType

SWAP_MAX_P = 0.95
"""An I or 1 with at least this probability is kept as read (``plates.formats.SWAP_MAX_P``,
the look-alike rule of the ranking)."""

STATE_SERIALS: Mapping[str, tuple[tuple[str, ...], str]] = MappingProxyType({
    "ak": (("@@@###",), "Alaska: ABC 123."),
    "az": (("@@@####", "###@@@"), "Arizona: ABC1234 since 2008; 123 ABC before."),
    "ar": (("###@@@",), "Arkansas: 123 ABC."),
    "ca": (("#@@@###",), "California: 1ABC234 since 1980 (the first digit is the series)."),
    "co": (("###@@@",), "Colorado: 123-ABC."),
    "ct": (("###@@@",), "Connecticut: 123-ABC."),
    "dc": (("@@####",), "District of Columbia: AB-1234."),
    "de": (("######", "#####", "####"), "Delaware: a number of up to six digits."),
    "ga": (("@@@####", "@@@###"), "Georgia: ABC1234 since 2006; ABC123 before."),
    "hi": (("@@@###",), "Hawaii: ABC 123 (the first letter tells the island)."),
    "ia": (("###@@@",), "Iowa: 123 ABC."),
    "il": (("@######", "#######"), "Illinois: A12 3456 and 123 4567."),
    "in": (("###@@@",), "Indiana: 123ABC."),
    "ks": (("###@@@",), "Kansas: 123 ABC."),
    "ky": (("###@@@",), "Kentucky: 123-ABC."),
    "la": (("@@@###",), "Louisiana: ABC 123."),
    "md": (("#@@####", "@@@###"), "Maryland: 1AB2345 since 2004; ABC 123 before."),
    "me": (("####@@",), "Maine: 1234 AB."),
    "mi": (("@@@####",), "Michigan: ABC 1234."),
    "mn": (("###@@@", "@@@###"), "Minnesota: 123-ABC, then ABC-123."),
    "mo": (("@@#@#@",), "Missouri: AB1 C2D since 1997."),
    "ms": (("@@@###",), "Mississippi: ABC 123."),
    "nc": (("@@@####", "@@@###"), "North Carolina: ABC-1234; ABC-123 before."),
    "nd": (("@@@###", "###@@@"), "North Dakota: ABC 123; 123 ABC before."),
    "nh": (("#######", "######"), "New Hampshire: 123 4567 (digits only)."),
    "nj": (("@##@@@", "@@@##@"), "New Jersey: A12-BCD since 1999; ABC-12D before."),
    "nm": (("@@@###", "###@@@"), "New Mexico: ABC-123; 123-ABC before."),
    "nv": (("###@@@",), "Nevada: 123-ABC."),
    "ny": (("@@@####",), "New York: ABC-1234 since 2001."),
    "oh": (("@@@####",), "Ohio: ABC 1234."),
    "ok": (("###@@@", "@@@###"), "Oklahoma: 123-ABC, then ABC-123."),
    "or": (("###@@@", "@@@###"), "Oregon: 123 ABC, then ABC 123."),
    "pa": (("@@@####",), "Pennsylvania: ABC-1234."),
    "ri": (("@@###", "######"), "Rhode Island: AB-123 and 123-456."),
    "sc": (("@@@###",), "South Carolina: ABC 123."),
    "tn": (("###@@@",), "Tennessee: 123-ABC."),
    "tx": (("@@@####", "@@#@###", "###@@@"), "Texas: ABC-1234 since 2009; AB1-C234 and 123-ABC "
                                             "before."),
    "ut": (("###@@@", "@###@@"), "Utah: 123 ABC, then A123BC."),
    "va": (("@@@####",), "Virginia: ABC-1234."),
    "vt": (("@@@###",), "Vermont: ABC 123."),
    "wa": (("###@@@", "@@@####"), "Washington: 123-ABC, then ABC1234 since 2011."),
    "wi": (("###@@@", "@@@####"), "Wisconsin: 123-ABC, then ABC-1234."),
})
"""State (Plate Recognizer's code without ``us-``) -> (serial formats, the public fact)."""

_COMMON = (
    "@@@###", "###@@@", "@@@####", "#@@@###", "###@###", "##@@###", "#@@####",
    "@@####", "@##@@@", "@@@@###", "######", "#####",
)
"""Serials common to many states, kept from before the per-state table (``formats.REGIONS``'s
``us`` held these alone)."""


def _unique(patterns: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(patterns))


US_SERIALS: tuple[str, ...] = _unique(
    [*_COMMON, *(p for patterns, _ in STATE_SERIALS.values() for p in patterns)]
)
"""Every US format: what a US plate whose state is not known is read with (region ``us``)."""

_TO_DIGIT = {"O": "0", "I": "1"}
_TO_LETTER = {"0": "O", "1": "I"}
LOOKALIKES = frozenset("O0I1")
"""The characters ``write_us`` may change: a read without any is written as read."""


def serials_of(state: str) -> tuple[str, ...]:
    """The formats of ``state`` (``ca``), or every US format for a state not in the table."""
    entry = STATE_SERIALS.get(state)
    return entry[0] if entry is not None else US_SERIALS


def _slot_changes(text: str, probs: Sequence[float], pattern: str) -> int | None:
    """How many characters ``write_us`` changes to fit ``text`` to ``pattern``, or None when
    it cannot (a character of the wrong kind that is not O/0/I/1, or a sure I or 1)."""
    if len(text) != len(pattern):
        return None
    changes = 0
    for ch, p, slot in zip(text, probs, pattern, strict=True):
        if (slot == "@" and ch.isdigit()) or (slot == "#" and ch.isalpha()):
            twin = _TO_LETTER.get(ch) if slot == "@" else _TO_DIGIT.get(ch)
            if twin is None or (ch in "1I" and p >= SWAP_MAX_P):
                return None
            changes += 1
    return changes


def write_us(text: str, probs: Sequence[float], patterns: Sequence[str]) -> str:
    """``text`` written by the US convention (module docstring), with ``probs`` the
    classifier's probability of each of its characters and ``patterns`` the serials it may be
    (``serials_of``): fitted to the serial needing the fewest changes (the first listed on a
    tie), else every O written 0."""
    if LOOKALIKES.isdisjoint(text):
        return text  # nothing to write: every read runs this, holding the GIL
    best: tuple[int, str] | None = None
    for pattern in patterns:
        changes = _slot_changes(text, probs, pattern)
        if changes is not None and (best is None or changes < best[0]):
            best = (changes, pattern)
    if best is None:
        return text.replace("O", "0")
    return "".join(
        _TO_LETTER.get(ch, ch) if slot == "@" else _TO_DIGIT.get(ch, ch) if slot == "#" else ch
        for ch, slot in zip(text, best[1], strict=True)
    )
