"""Plate-format rules per region: rank candidate texts and fix confusable characters.

A pattern is a string over ``@`` (a letter), ``#`` (a digit) and ``*`` (either). A region is an
ordered tuple of patterns. The reader hands over, per character, its classifier alternatives
(best first, with probabilities); ``rank_candidates`` builds texts from them by beam search and,
for each configured region, the best text that fits one of the region's patterns. A confusable
character (O/0, I/1, B/8, S/5, Z/2, G/6, D/0, A/4, T/7) is swapped ONLY at a position where the
pattern demands the other kind. ``generic`` fixes nothing and ranks by confidence alone.

The format prior changes the *ranking* only: a text that fits no configured pattern keeps its
own confidence (the geometric mean of its character probabilities), so a vanity plate is still
reported as a plate, but any reading that does fit a pattern is ranked above it.

Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter

REGIONS: dict[str, tuple[str, ...]] = {
    "generic": (),
    # Brazil's grey plates (LLL NNNN, issued until 2018) and its Mercosur plates (LLL NLNN),
    # as two regions: the two patterns differ only where a digit and a letter look alike
    # (OKS0078 / OKS0O78), so one region holding both cannot tell them apart; a camera that
    # sees both lists both, the likelier first.
    "br": ("@@@####",),
    "mercosur": ("@@@#@##",),
    # UK current format: two letters, two digits, three letters
    "uk": ("@@##@@@",),
    # Netherlands sidecodes (dashes removed)
    "nl": (
        "##@@@#", "#@@@##", "@@###@", "@###@@", "@@@##@", "#@@###", "###@@#",
        "@@##@@", "@@@@##", "##@@@@", "@@####", "##@@##",
    ),
    # Germany: 1-3 letter district, 1-2 letters, 1-4 digits (spaces removed)
    "de": tuple(
        "@" * d + "@" * s + "#" * n
        for d in (1, 2, 3) for s in (1, 2) for n in (1, 2, 3, 4) if 3 <= d + s + n <= 8
    ),
    # Slovakia: district, three digits, two letters (BA123AB)
    "sk": ("@@###@@",),
    # Czechia: digit, letter, letter or digit, four digits (1A2 3456, 1AB 2345)
    "cz": ("#@#####", "#@@####"),
    # Poland: two- or three-letter district and a 4-5 character serial (WA12345, KR1234A)
    "pl": ("@@#####", "@@####@", "@@###@@", "@@#@###", "@@#@@##", "@@@####", "@@@###@",
           "@@@##@@", "@@@#@##"),
    # US: common state serial formats (vanity plates fall back to generic)
    "us": ("@@@###", "###@@@", "@@@####", "#@@@###", "###@###", "##@@###", "#@@####",
           "@@####", "@##@@@", "@@@@###", "######", "#####"),
}

TO_DIGIT = {"O": "0", "D": "0", "Q": "0", "U": "0", "I": "1", "L": "1", "J": "1", "Z": "2",
            "S": "5", "B": "8", "G": "6", "A": "4", "T": "7"}
TO_LETTER = {"0": "O", "1": "I", "2": "Z", "5": "S", "8": "B", "6": "G", "4": "A", "7": "T"}
FIX_PENALTY = 0.5
"""A swapped character keeps this share of its original probability."""
OFF_FORMAT_PENALTY = 0.6
"""With specific regions configured, a text that fits none of them is ranked as if each of its
characters were this much less likely (its reported confidence is not lowered)."""

Alternatives = Sequence[Sequence[tuple[str, float]]]


@dataclass(frozen=True, slots=True)
class Ranked:
    text: str
    confidence: float
    """Geometric mean of the chosen characters' probabilities (swaps penalised)."""
    region: str
    """The region whose pattern the text fits, or ``generic``."""
    score: float
    """What candidates are ranked by: the confidence with the format prior applied."""


def check_regions(regions: Sequence[str]) -> None:
    """ValueError naming the unknown regions, if any (and for an empty list)."""
    unknown = [r for r in regions if r not in REGIONS]
    if unknown or not regions:
        raise ValueError(f"unknown plate region(s) {unknown}; known: {', '.join(sorted(REGIONS))}")


def fits(text: str, pattern: str) -> bool:
    if len(text) != len(pattern):
        return False
    return all(
        p == "*" or (p == "@" and c.isalpha()) or (p == "#" and c.isdigit())
        for c, p in zip(text, pattern, strict=True)
    )


def _best_for_pattern(alts: Alternatives, pattern: str) -> tuple[str, float] | None:
    """Best text fitting ``pattern``: the most probable fitting alternative per position, or
    the top alternative swapped to its confusable twin (penalised); None when impossible."""
    text = []
    log_p = 0.0
    for options, kind in zip(alts, pattern, strict=True):
        chosen: tuple[str, float] | None = None
        for ch, p in options:
            if kind == "*" or (kind == "@" and ch.isalpha()) or (kind == "#" and ch.isdigit()):
                chosen = (ch, p)
                break
        top_ch, top_p = options[0]
        swap: str | None = None
        if kind == "#":
            swap = TO_DIGIT.get(top_ch)
        elif kind == "@":
            swap = TO_LETTER.get(top_ch)
        if swap is not None and (chosen is None or top_p * FIX_PENALTY > chosen[1]):
            chosen = (swap, top_p * FIX_PENALTY)
        if chosen is None:
            return None
        text.append(chosen[0])
        log_p += math.log(max(chosen[1], 1e-9))
    return "".join(text), log_p


def _beam(alts: Alternatives, width: int) -> list[tuple[str, float]]:
    # itemgetter and reverse=True (stable, like a key of -log_p) keep the sort in C: this runs
    # for every read, holding the GIL the other recognition workers wait for.
    by_log_p = itemgetter(1)
    beams: list[tuple[str, float]] = [("", 0.0)]
    for options in alts:
        logs = [(ch, math.log(max(p, 1e-9))) for ch, p in options]
        beams = sorted(
            [(t + ch, lp + lq) for t, lp in beams for ch, lq in logs], key=by_log_p, reverse=True
        )[:width]
    return beams


def _confidence(log_p: float, n: int) -> float:
    """Geometric mean of the character probabilities: comparable across lengths."""
    return math.exp(log_p / max(1, n))


def rank_candidates(alts: Alternatives, regions: Sequence[str], top_n: int) -> list[Ranked]:
    """Ranked distinct candidate texts, best first (at least one when ``alts`` is non-empty)."""
    if not alts:
        return []
    check_regions(regions)
    n = len(alts)
    specific = [r for r in regions if REGIONS[r]]
    scored: dict[str, Ranked] = {}

    def offer(text: str, log_p: float, log_prior: float, region: str) -> None:
        score = _confidence(log_p + log_prior, n)
        old = scored.get(text)
        if old is None or score > old.score:
            scored[text] = Ranked(text, _confidence(log_p, n), region, score)

    for rank, name in enumerate(specific):
        for pattern in REGIONS[name]:
            if len(pattern) != n:
                continue
            best = _best_for_pattern(alts, pattern)
            if best is not None:
                # earlier regions in the list are preferred a little
                offer(best[0], best[1], -0.01 * rank * n, name)
    for text, log_p in _beam(alts, max(top_n * 4, 16)):
        region = next(
            (r for r in specific if any(fits(text, p) for p in REGIONS[r])), None
        )
        if region is not None:
            offer(text, log_p, -0.01 * specific.index(region) * n, region)
        elif specific:
            offer(text, log_p, n * math.log(OFF_FORMAT_PENALTY), "generic")
        else:
            offer(text, log_p, 0.0, "generic")
    ranked = sorted(scored.values(), key=lambda r: -r.score)
    return ranked[:top_n]
