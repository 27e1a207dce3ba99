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

import functools
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import cast

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
        picked = _pick(options, kind)
        if picked is None:
            return None
        text.append(picked[0])
        log_p += picked[1]
    return "".join(text), log_p


def _beam_lists(alts: Alternatives, width: int) -> tuple[list[str], list[float], bool]:
    """The beam as parallel lists (texts, log-probabilities), best first, and whether every
    log-probability was a number (no NaN).

    The order is that of a stable descending sort of all extensions listed beam-major (every
    beam text with each option in turn), cut to ``width``: only the log-probabilities are
    sorted (as indices, in C) and only the survivors' texts are built. This runs for every
    read, holding the GIL the other recognition workers wait for.
    """
    log = math.log
    texts = [""]
    log_ps = [0.0]
    total = 0.0
    for options in alts:
        logs = [log(max(p, 1e-9)) for _, p in options]
        total += sum(logs)
        m = len(logs)
        sums = [lp + lq for lp in log_ps for lq in logs]
        order = sorted(range(len(sums)), key=sums.__getitem__, reverse=True)[:width]
        texts = [texts[k // m] + options[k % m][0] for k in order]
        log_ps = [sums[k] for k in order]
    # no log is -inf (p is floored at 1e-9), so the total is NaN only when a log is
    return texts, log_ps, total == total


class _Kinds(dict[int, str]):
    """``str.translate`` table: a character -> ``@`` (letter), ``#`` (digit) or ``?``.

    No character is both (``isalpha`` is the L* categories, ``isdigit`` only N* ones), so a
    text fits a pattern over ``@`` and ``#`` exactly when its translation equals the pattern.
    """

    def __missing__(self, code: int) -> str:
        c = chr(code)
        kind = "@" if c.isalpha() else "#" if c.isdigit() else "?"
        self[code] = kind
        return kind


_KINDS = _Kinds()


@functools.lru_cache(maxsize=64)
def _pattern_table(region_patterns: tuple[tuple[str, ...], ...]) -> dict[str, int] | None:
    """Pattern -> index of the first region (in the given order) that lists it; None when a
    pattern has characters other than ``@`` and ``#`` (``fits`` is then asked per text)."""
    table: dict[str, int] = {}
    for index, patterns in enumerate(region_patterns):
        for pattern in patterns:
            if pattern.strip("@#"):
                return None
            table.setdefault(pattern, index)
    return table


def _pick(options: Sequence[tuple[str, float]], kind: str) -> tuple[str, float] | None:
    """One position of ``_best_for_pattern``: the chosen character and its log-probability."""
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
    return chosen[0], math.log(max(chosen[1], 1e-9))


def _best_for_patterns(
    alts: Alternatives, patterns: Sequence[str]
) -> list[tuple[str, float] | None]:
    """``_best_for_pattern`` for each of ``patterns`` (all of ``len(alts)``), with each
    position's choice for a kind worked out once instead of once per pattern."""
    if not all(alts):
        # an empty position: keep _best_for_pattern's exact behaviour (IndexError or None)
        return [_best_for_pattern(alts, pattern) for pattern in patterns]
    columns = {
        kind: [_pick(options, kind) for options in alts] for kind in set("".join(patterns))
    }
    add = operator.add
    out: list[tuple[str, float] | None] = []
    for pattern in patterns:
        picks = [columns[kind][i] for i, kind in enumerate(pattern)]
        if None in picks:
            out.append(None)
            continue
        chosen = cast("list[tuple[str, float]]", picks)
        # a left-to-right sum from 0.0, as _best_for_pattern adds (sum() may compensate)
        out.append((
            "".join([ch for ch, _ in chosen]),
            functools.reduce(add, [lq for _, lq in chosen], 0.0),
        ))
    return out


def rank_candidates(alts: Alternatives, regions: Sequence[str], top_n: int) -> list[Ranked]:
    """Ranked distinct candidate texts, best first (at least one when ``alts`` is non-empty).

    Every read runs this while holding the GIL, so it does the least Python it can: the beam
    sorts only numbers, a text's region is one dict look-up of its letter/digit shape, and
    the confidences (one ``exp`` each) are worked out only for the candidates returned.
    """
    if not alts:
        return []
    check_regions(regions)
    n = len(alts)
    specific = [r for r in regions if REGIONS[r]]
    exp = math.exp
    # text -> (-score, score, log_p, region, text) of its best offer; the dict keeps
    # first-offer order, which the stable sort below keeps for equal scores
    scored: dict[str, tuple[float, float, float, str, str]] = {}

    def offer(text: str, log_p: float, score: float, region: str) -> None:
        old = scored.get(text)
        if old is None or score > old[1]:
            scored[text] = (-score, score, log_p, region, text)

    if specific:
        wanted = [
            (rank, name, pattern)
            for rank, name in enumerate(specific)
            for pattern in REGIONS[name]
            if len(pattern) == n
        ]
        if wanted:
            bests = _best_for_patterns(alts, [pattern for _, _, pattern in wanted])
            for (rank, name, _), best in zip(wanted, bests, strict=True):
                if best is not None:
                    text, log_p = best
                    # earlier regions in the list are preferred a little
                    offer(text, log_p, exp((log_p + -0.01 * rank * n) / n), name)

    width = max(top_n * 4, 16)
    if not specific and 0 < top_n < width:
        # Ranked by confidence alone, the answer is the beam's first top_n distinct texts. A
        # beam's first k texts do not depend on its width (adding a number keeps the order,
        # so each of the best k texts extends one of the best k shorter ones, in the same
        # order), so a beam of width top_n gives them, unless two are equal (then more of
        # the wide beam is needed) or a probability is NaN (then nothing is ordered).
        texts, log_ps, numbers = _beam_lists(alts, top_n)
        if numbers and len(set(texts)) == len(texts):
            ranked_generic = []
            for text, log_p in zip(texts, log_ps, strict=True):
                # the score is exp((log_p + 0.0) / n): the same number
                confidence = exp(log_p / n)
                ranked_generic.append(Ranked(text, confidence, "generic", confidence))
            return ranked_generic
    texts, log_ps, _ = _beam_lists(alts, width)
    if not specific:
        for text, log_p in zip(texts, log_ps, strict=True):
            offer(text, log_p, exp((log_p + 0.0) / n), "generic")
    else:
        off_format = n * math.log(OFF_FORMAT_PENALTY)
        table = _pattern_table(tuple(REGIONS[r] for r in specific))
        if table is not None:
            indexes = list(map(table.get, map(str.translate, texts, repeat(_KINDS))))
        else:
            indexes = [_first_fitting(text, specific) for text in texts]
        for text, log_p, index in zip(texts, log_ps, indexes, strict=True):
            if index is None:
                offer(text, log_p, exp((log_p + off_format) / n), "generic")
            else:
                offer(text, log_p, exp((log_p + -0.01 * index * n) / n), specific[index])
    ranked = sorted(scored.values(), key=itemgetter(0))[:top_n]
    return [
        Ranked(text, exp(log_p / n), region, score) for _, score, log_p, region, text in ranked
    ]


def _first_fitting(text: str, specific: list[str]) -> int | None:
    """Index in ``specific`` of the first region with a pattern ``text`` fits, or None."""
    region = next((r for r in specific if any(fits(text, p) for p in REGIONS[r])), None)
    return None if region is None else specific.index(region)
