"""Plate-format rules per region: rank candidate texts and fix confusable characters.

A pattern is a string over ``@`` (a letter), ``#`` (a digit) and ``*`` (either), in reading
order with separators removed (the reader outputs characters only); a two-line plate is read
top line then bottom line. A region is an ordered tuple of patterns; ``REGIONS`` holds them
and ``REGION_NOTES`` says, per region, which plates its patterns are (a table a user can
read). The reader hands over, per character, its classifier alternatives (best first, with
probabilities); ``rank_candidates`` builds texts from them by beam search and, for each
configured region, the best text that fits one of the region's patterns. A confusable
character (O/0, I/1, B/8, S/5, Z/2, G/6, D/0, A/4, T/7) is swapped ONLY at a position where the
pattern demands the other kind. ``generic`` fixes nothing: among the classifier's own readings
it prefers one that fits any region's pattern (``GENERIC_FORMAT_PRIOR``).

The format prior changes the *ranking* only: a text that fits no configured pattern keeps its
own confidence (the geometric mean of its character probabilities), so a vanity plate is still
reported as a plate, but any reading that does fit a pattern is ranked above it.

Invariant: ``REGIONS`` is read-only (a mapping proxy over tuples), so what is worked out once
per list of regions (``_compiled``) never goes stale. Pure functions, no I/O.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from types import MappingProxyType
from typing import cast

from edge_anpr.plates.us import US_SERIALS


def _unique(patterns: Iterable[str]) -> tuple[str, ...]:
    """The patterns in first-seen order, each once."""
    return tuple(dict.fromkeys(patterns))


# Germany: a district of 1-3 letters, 1-2 recognition letters and 1-4 digits, at most 8
# characters; an electric (E) or historic (H) plate appends its letter within those 8. The
# Bundeswehr's plates are Y and six digits.
_DE_PLAIN = [
    "@" * (d + s) + "#" * n
    for d in (1, 2, 3) for s in (1, 2) for n in (1, 2, 3, 4) if d + s + n <= 8
]
_DE = _unique([*_DE_PLAIN, *(p + "@" for p in _DE_PLAIN if len(p) < 8), "@######"])

# Netherlands: the sidecodes 1-14 (dashes removed), oldest first: 1 XX-99-99, 2 99-99-XX,
# 3 99-XX-99, 4 XX-99-XX, 5 XX-XX-99, 6 99-XX-XX, 7 99-XXX-9, 8 9-XXX-99, 9 XX-999-X,
# 10 X-999-XX, 11 XXX-99-X, 12 X-99-XXX, 13 9-XX-999, 14 999-XX-9.
_NL = (
    "@@####", "####@@", "##@@##", "@@##@@", "@@@@##", "##@@@@", "##@@@#", "#@@@##",
    "@@###@", "@###@@", "@@@##@", "@##@@@", "#@@###", "###@@#",
)

# France: SIV since 2009, AA-123-AA; the older FNI, a number of 1-4 digits, a series of 1-3
# letters (three letters only with at most three digits) and the two-character departement
# (01-95, Corsica 2A/2B). Overseas departements (971-976) would need 9 characters: left out.
_FR = _unique([
    "@@###@@",
    *(
        "#" * n + "@" * m + dept
        for n in (1, 2, 3, 4) for m in (1, 2, 3) if n + m <= 6 for dept in ("##", "#@")
    ),
])

# Belgium: 1-ABC-123 since 2010, 123-ABC from 2008 to 2010, ABC-123 from 1973 to 2008.
_BE = ("#@@@###", "###@@@", "@@@###")

# Italy: AB 123 CD since 1994; motorcycles AB 12345 since 1999 (letters over digits on the
# two-line plate, so read in the same order).
_IT = ("@@###@@", "@@#####")

# Spain: 1234 BCD since 2000 (mopeds, historic and trailer plates add a leading letter:
# C 1234 BCD, H ..., R ...); the provincial plates 1971-2000: a 1-2 letter province code,
# four digits and 1-2 letters (M-1234-AB, B-1234-A, GC-1234-AB).
_ES = ("####@@@", "@####@@@", "@####@", "@####@@", "@@####@", "@@####@@")

# Poland (since 2000): a two-letter district and a five-character serial 12345, 1234A, 123AB,
# 1A234, 1AB23; a three-letter district and a four-character serial 1234, 123A, 12AB, 1A23.
_PL = (
    "@@#####", "@@####@", "@@###@@", "@@#@###", "@@#@@##",
    "@@@####", "@@@###@", "@@@##@@", "@@@#@##",
)

# Slovakia: BA-123AB (a two-letter district, 1997-2022) and, since 2023, the same layout with
# two state-wide letters instead of the district (AA-001AA onwards).
_SK = ("@@###@@",)

# Czechia: since 2001 a digit, the region's letter, a letter or digit, four digits (1A2 3456,
# 1AB 2345); the older Czechoslovak plates, still valid, AB 12-34 and ABC 12-34.
_CZ = ("#@#####", "#@@####", "@@####", "@@@####")

# United Kingdom: current AB12 CDE (since 2001); prefix A123 BCD (1983-2001); suffix ABC 123D
# (1963-1983); dateless 1-3 letters and 1-4 digits either way round (ABC 123, 1234 AB);
# Northern Ireland three letters (with I or Z) and 1-4 digits (ABZ 1234), within dateless.
_UK = _unique([
    "@@##@@@",
    *("@" + "#" * n + "@@@" for n in (1, 2, 3)),
    *("@@@" + "#" * n + "@" for n in (1, 2, 3)),
    *("@" * a + "#" * d for a in (1, 2, 3) for d in (1, 2, 3, 4)),
    *("#" * d + "@" * a for d in (1, 2, 3, 4) for a in (1, 2, 3)),
])

# Austria (since 1990): a district of 1 letter (the state capitals) or 2 letters, then the
# serial, at most 7 characters in all: issued serials are digits then letters (W 12345 A,
# W 1234 AB, GU 123 AB, FK 1 ABC); chosen ones are letters then digits (W NAME 1, 3-6
# characters); authorities' plates are digits only (BP 12345).
_AT = _unique([
    *(
        "@" * d + "#" * n + "@" * m
        for d in (1, 2) for n in (1, 2, 3, 4, 5) for m in (1, 2, 3) if d + n + m <= 7
    ),
    *(
        "@" * (d + m) + "#" * n
        for d in (1, 2) for m in range(1, 6) for n in range(1, 6) if 3 <= m + n <= 7 - d
    ),
    *("@@" + "#" * n for n in (1, 2, 3, 4, 5)),
])

# Switzerland: the canton's two letters and a number of 1-6 digits (ZH 123456).
_CH = tuple("@@" + "#" * n for n in range(1, 7))

# Europe for a user who knows no more: every pattern of the EU member states above.
_EU = _unique([*_DE, *_NL, *_FR, *_BE, *_IT, *_ES, *_PL, *_SK, *_CZ, *_AT])

REGIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "generic": (),
    # Brazil's grey plates (LLL NNNN, issued until 2018) and its Mercosur plates (LLL NLNN),
    # as two regions: the two patterns differ only where a digit and a letter look alike
    # (OKS0078 / OKS0O78), so one region holding both cannot tell them apart; a camera that
    # sees both lists both, the likelier first.
    "br": ("@@@####",),
    "mercosur": ("@@@#@##",),
    # US: every state serial of plates.us (a vanity plate fits none and reads as read)
    "us": US_SERIALS,
    "eu": _EU,
    "de": _DE,
    "nl": _NL,
    "fr": _FR,
    "be": _BE,
    "it": _IT,
    "es": _ES,
    "pl": _PL,
    "sk": _SK,
    "cz": _CZ,
    "uk": _UK,
    "gb": _UK,
    "at": _AT,
    "ch": _CH,
})

ALL_SPECIFIC: tuple[str, ...] = tuple(name for name, patterns in REGIONS.items() if patterns)
"""Every region with patterns: what ``generic`` checks a reading against."""

REGION_NOTES: Mapping[str, str] = MappingProxyType({
    "generic": "No region's rules: nothing swapped; of the classifier's own readings, one "
               "that fits any region's pattern ranks first.",
    "br": "Brazil, grey plates issued until 2018: ABC 1234.",
    "mercosur": "Brazil, Mercosur plates since 2018: ABC 1D23.",
    "us": "United States, every state serial of plates/us.py (ABC 1234, 1ABC234, 123 ABC, "
          "AB1 C2D, ...).",
    "eu": "Europe, any of the EU member tables below (de nl fr be it es pl sk cz at).",
    "de": "Germany: district 1-3 letters, 1-2 letters, 1-4 digits, at most 8 "
          "(B AB 1234), E or H suffix (M AB 123E), Bundeswehr Y 123456.",
    "nl": "Netherlands: sidecodes 1-14 (AB-12-34 ... 99-XXX-9, X-999-XX, XXX-99-X).",
    "fr": "France: SIV AB-123-CD; FNI 1234 AB 56, 123 ABC 45, Corsica 2A/2B.",
    "be": "Belgium: 1-ABC-123 (2010-), 123-ABC (2008-2010), ABC-123 (1973-2008).",
    "it": "Italy: AB 123 CD (1994-); motorcycles AB 12345.",
    "es": "Spain: 1234 BCD (2000-), C 1234 BCD (mopeds); provincial M-1234-AB.",
    "pl": "Poland: WA 12345, WA 1234A, WA 123AB, WA 1A234, WA 1AB23; KRA 1234, "
          "KRA 123A, KRA 12AB, KRA 1A23.",
    "sk": "Slovakia: BA-123AB (district, 1997-2022) and AA-123AA (state-wide, 2023-).",
    "cz": "Czechia: 1A2 3456, 1AB 2345 (2001-); Czechoslovak AB 12-34, ABC 12-34.",
    "uk": "United Kingdom: AB12 CDE (2001-), A123 BCD, ABC 123D, dateless, "
          "Northern Ireland ABZ 1234.",
    "gb": "Same as uk.",
    "at": "Austria: W 12345 A, GU 123 AB, chosen W NAME 1, authorities BP 12345; "
          "at most 7 characters.",
    "ch": "Switzerland: canton and 1-6 digits (ZH 123456).",
})

TO_DIGIT = {"O": "0", "D": "0", "Q": "0", "U": "0", "I": "1", "L": "1", "J": "1", "Z": "2",
            "S": "5", "B": "8", "G": "6", "A": "4", "T": "7"}
TO_LETTER = {"0": "O", "1": "I", "2": "Z", "5": "S", "8": "B", "6": "G", "4": "A", "7": "T"}
FIX_PENALTY = 0.5
"""A swapped character keeps this share of its original probability."""
SWAP_MAX_P = 0.95
"""A character is swapped to its look-alike only when the classifier gave it less than this:
a character the classifier is sure of stays as read (``_pick``)."""
OFF_FORMAT_PENALTY = 0.8
"""With specific regions configured, when some reading fits one of them, a reading that fits
none scores this share of its confidence (``rank_candidates``): a fitting reading is ranked
above a more confident one only when its confidence is within this share of it."""

GENERIC_FORMAT_PRIOR = 0.9
"""With ``generic`` alone (no region configured), when some reading fits a pattern of any
region, a reading that fits none scores this share of its confidence; nothing is swapped, so
only the classifier's own alternatives compete. A vanity plate that fits nothing still reads
as read when no alternative fits. The reading put first must itself be confident enough to
count as a plate (``vision.recognize``): deciding on the reader's most confident reading instead
reported two more validation plates, both misread, and more false plates (whole frames,
generic: 0.051 -> 0.068 per image)."""

# SWAP_MAX_P, OFF_FORMAT_PENALTY and GENERIC_FORMAT_PRIOR were chosen together on the training
# split (docs/performance.md, "Ranking"): exact reads of the US crops (us and generic), the
# Brazilian crops (br and generic) and the training scenes' plates (each folder's regions and
# generic), the shipped classifier's alternatives re-ranked for each setting.

Alternatives = Sequence[Sequence[tuple[str, float]]]


@dataclass(frozen=True, slots=True)
class Ranked:
    text: str
    confidence: float
    """Geometric mean of the chosen characters' probabilities (swaps penalised)."""
    region: str
    """The region whose pattern the text fits, or ``generic``."""
    score: float
    """What candidates are ranked by and what a read reports: the confidence with the format
    prior applied (``rank_candidates``)."""


GROUP_KIND_RATIO = 0.2
"""A character is unsure between look-alikes of the two kinds when its best alternative of the
other kind has at least this share of its top probability (``prefer_group_kind``)."""


def _kind(ch: str) -> bool:
    return ch.isdigit()


def prefer_group_kind(
    alts: Alternatives, groups: Sequence[int], ratio: float = GROUP_KIND_RATIO
) -> list[list[tuple[str, float]]]:
    """Look-alikes decided by their group: the characters of one printed group (``groups``:
    one id per character, equal within a group of characters set apart by a gap or a line)
    are, on nearly every plate, all letters or all digits (NOX 218, WH0 515 -> WHO 515,
    HIV 2I20 -> HIV 2120).

    A character whose top alternative and a look-alike of the other kind (``TO_DIGIT`` /
    ``TO_LETTER``) are close (the look-alike has at least ``ratio`` of the top probability)
    takes the kind of the group's sure characters when those all agree: the two exchange
    probabilities, so the beam and the region patterns after it see the swap with the
    probability the classifier gave the winner. A sure character is never changed, so mixed
    groups of sure characters (2UQ, 5G93) read as the classifier saw them.

    Invariant: the result has the same characters and probabilities per position as ``alts``,
    only possibly exchanged between a character and its look-alike.
    """
    out = [list(a) for a in alts]
    unsure: dict[int, int] = {}
    for i, options in enumerate(out):
        if not options:
            continue
        top, p = options[0]
        twin = TO_LETTER.get(top) if _kind(top) else TO_DIGIT.get(top)
        for k, (ch, q) in enumerate(options[1:], 1):
            if ch == twin and q >= ratio * p:
                unsure[i] = k
                break
    for i, k in unsure.items():
        sure = {_kind(out[j][0][0]) for j in range(len(out))
                if j != i and groups[j] == groups[i] and j not in unsure and out[j]}
        if len(sure) == 1 and sure != {_kind(out[i][0][0])}:
            (a, pa), (b, pb) = out[i][0], out[i][k]
            out[i][0], out[i][k] = (b, pa), (a, pb)
    return out


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


@dataclass(frozen=True, slots=True)
class _Compiled:
    """What ``rank_candidates`` needs of one list of specific regions, worked out once."""

    shapes: dict[str, int] | None
    """Pattern -> index of the first region (in the given order) that lists it; None when a
    pattern has characters other than ``@`` and ``#`` (``fits`` is then asked per text)."""
    by_length: dict[int, tuple[tuple[str, ...], tuple[int, ...]]]
    """Length -> its distinct patterns and, for each, the index of the first region listing
    it. A pattern listed again (by that region or a later one) would offer the same text
    with a score no higher, which ``offer`` ignores, so it is left out: the tables share many
    patterns (``eu`` with every country in it, ``de`` with ``at``)."""


@functools.lru_cache(maxsize=64)
def _compiled(specific: tuple[str, ...]) -> _Compiled:
    """The ``_Compiled`` of ``specific`` (names of regions with patterns), keyed by the names:
    sound because ``REGIONS`` is read-only."""
    first: dict[str, int] = {}
    for index, name in enumerate(specific):
        for pattern in REGIONS[name]:
            first.setdefault(pattern, index)
    shapes = None if any(pattern.strip("@#") for pattern in first) else first
    grouped: dict[int, list[tuple[str, int]]] = {}
    for pattern, index in first.items():
        grouped.setdefault(len(pattern), []).append((pattern, index))
    by_length = {
        length: (tuple(p for p, _ in items), tuple(i for _, i in items))
        for length, items in grouped.items()
    }
    return _Compiled(shapes, by_length)


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
    if swap is not None and top_p < SWAP_MAX_P and (
        chosen is None or top_p * FIX_PENALTY > chosen[1]
    ):
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
    kinds = set("".join(patterns))
    # per position, kind -> that position's choice; a pattern's choices are then one map()
    choices = [{kind: _pick(options, kind) for kind in kinds} for options in alts]
    getitem = operator.getitem
    add = operator.add
    first = itemgetter(0)
    second = itemgetter(1)
    out: list[tuple[str, float] | None] = []
    for pattern in patterns:
        picks = list(map(getitem, choices, pattern))
        if None in picks:
            out.append(None)
            continue
        chosen = cast("list[tuple[str, float]]", picks)
        # a left-to-right sum from 0.0, as _best_for_pattern adds (sum() may compensate)
        out.append(("".join(map(first, chosen)), functools.reduce(add, map(second, chosen), 0.0)))
    return out


def rank_candidates(alts: Alternatives, regions: Sequence[str], top_n: int) -> list[Ranked]:
    """Ranked distinct candidate texts, best first by ``score`` (at least one when ``alts`` is
    non-empty).

    A reading's ``score`` is its confidence times its format factor: 1 when it fits a pattern
    (``exp(-0.01 * rank)`` for the configured region of that rank), and, when some reading
    fits, ``OFF_FORMAT_PENALTY`` (``GENERIC_FORMAT_PRIOR`` with ``generic``) for one that
    fits none. So a reading is ranked above a more confident one only when their confidences
    are within that factor, and when no reading fits, the confidences alone rank (a vanity
    plate keeps its confidence). Callers report ``score``: the order and the numbers agree.

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
    # text -> (-key, log_p, off_format, region, text) of its best offer, where key is the
    # log-score before any off-format penalty; the dict keeps first-offer order, which the
    # stable sort below keeps for equal scores
    scored: dict[str, tuple[float, float, bool, str, str]] = {}

    def offer(text: str, log_p: float, key: float, off_format: bool, region: str) -> None:
        old = scored.get(text)
        if old is None or key - (penalty if off_format else 0.0) > (
            -old[0] - (penalty if old[2] else 0.0)
        ):
            scored[text] = (-key, log_p, off_format, region, text)

    compiled = _compiled(tuple(specific)) if specific else None
    penalty = -n * math.log(OFF_FORMAT_PENALTY if compiled is not None
                            else GENERIC_FORMAT_PRIOR)
    if compiled is not None:
        patterns, ranks = compiled.by_length.get(n, ((), ()))
        if patterns:
            bests = _best_for_patterns(alts, patterns)
            for rank, best in zip(ranks, bests, strict=True):
                if best is not None:
                    text, log_p = best
                    # earlier regions in the list are preferred a little
                    offer(text, log_p, log_p + -0.01 * rank * n, False, specific[rank])

    width = max(top_n * 4, 16)
    texts, log_ps, _ = _beam_lists(alts, width)
    if compiled is None:
        # generic: nothing swapped; of the classifier's own readings, one that fits some
        # region's pattern ranks above one that fits none
        fitting = _fitting_regions(texts, _compiled(ALL_SPECIFIC), list(ALL_SPECIFIC))
        for text, log_p, index in zip(texts, log_ps, fitting, strict=True):
            offer(text, log_p, log_p, index is None, "generic")
    else:
        indexes = _fitting_regions(texts, compiled, specific)
        for text, log_p, index in zip(texts, log_ps, indexes, strict=True):
            if index is None:
                offer(text, log_p, log_p, True, "generic")
            else:
                offer(text, log_p, log_p + -0.01 * index * n, False, specific[index])
    if all(off for _, _, off, _, _ in scored.values()):
        penalty = 0.0  # nothing fits: the confidences alone rank
    ranked = sorted(
        ((-(-neg_key - (penalty if off else 0.0)), log_p, region, text)
         for neg_key, log_p, off, region, text in scored.values()),
        # equal up to rounding (two patterns, one swap each): first offered first
        key=lambda item: round(item[0], 9),
    )[:top_n]
    return [
        Ranked(text, exp(log_p / n), region, exp(-neg_score / n))
        for neg_score, log_p, region, text in ranked
    ]


def _fitting_regions(
    texts: Sequence[str], compiled: _Compiled, specific: list[str]
) -> list[int | None]:
    """For each text, the index in ``specific`` (the regions ``compiled`` was made of) of the
    first region with a pattern it fits, or None: one dict look-up of its letter/digit shape
    per text when the patterns allow it, ``_first_fitting`` otherwise."""
    table = compiled.shapes
    if table is not None:
        return list(map(table.get, map(str.translate, texts, repeat(_KINDS))))
    return [_first_fitting(text, specific) for text in texts]


def fits_any(text: str, regions: Sequence[str]) -> bool:
    """``text`` fits a pattern of one of ``regions`` (``generic`` has none): one look-up of
    its letter/digit shape when the patterns allow it (the reader asks this of every US
    read)."""
    specific = tuple(r for r in regions if r != "generic")
    if not specific:
        return False
    shapes = _compiled(specific).shapes
    if shapes is not None:
        return text.translate(_KINDS) in shapes
    return _first_fitting(text, list(specific)) is not None


def _first_fitting(text: str, specific: list[str]) -> int | None:
    """Index in ``specific`` of the first region with a pattern ``text`` fits, or None."""
    region = next((r for r in specific if any(fits(text, p) for p in REGIONS[r])), None)
    return None if region is None else specific.index(region)
