"""Known-plate matching: exact, wildcard and regex, each with its edit tolerance."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_anpr.config import KnownPlateConfig
from edge_anpr.errors import ConfigError
from edge_anpr.plates.known import (
    KnownPlates,
    edit_distance,
    normalize_plate,
    wildcard_distance,
)


def entry(plate: str, match: str = "exact", d: int = 0, name: str = "x") -> KnownPlateConfig:
    return KnownPlateConfig(name=name, plate=plate, match=match, max_edit_distance=d)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("known", "texts", "expected"),
    [
        (entry("AB-123 CD"), ["AB123CD"], "AB123CD"),
        (entry("AB123CD"), ["AB123C0"], None),
        (entry("AB123CD", d=1), ["AB123C0"], "AB123C0"),
        (entry("AB123CD", d=1), ["AB12C0"], None),
        (entry("AB123CD"), ["XX999XX", "ab 123 cd"], "AB123CD"),  # via a candidate
        (entry("AB*", "wildcard"), ["AB123CD"], "AB123CD"),
        (entry("AB1??CD", "wildcard"), ["AB123CD"], "AB123CD"),
        (entry("AB1??CD", "wildcard"), ["AB1234CD"], None),
        (entry("AB1??CD", "wildcard", 1), ["AB1234CD"], "AB1234CD"),
        (entry("*CD", "wildcard"), ["AB123CE"], None),
        (entry("*CD", "wildcard", 1), ["AB123CE"], "AB123CE"),
        (entry(r"[A-Z]{2}\d{3}[A-Z]{2}", "regex"), ["AB123CD"], "AB123CD"),
        (entry(r"[A-Z]{2}\d{3}[A-Z]{2}", "regex"), ["AB1234CD"], None),
        (entry(r"[A-Z]{2}\d{3}[A-Z]{2}", "regex", 1), ["AB1234CD"], "AB1234CD"),
        (entry(r"AB\d+", "regex"), ["AB123CD"], None),  # fullmatch, not search
    ],
)
def test_match(known: KnownPlateConfig, texts: list[str], expected: str | None) -> None:
    found = KnownPlates([known]).match(texts)
    assert (found.matched_text if found else None) == expected


def test_first_entry_in_file_order_wins() -> None:
    plates = KnownPlates([entry("ZZ*", "wildcard", name="z"), entry("AB*", "wildcard", name="a"),
                          entry("AB123CD", name="exact")])
    found = plates.match(["AB123CD"])
    assert found is not None
    assert (found.entry.name, found.index, found.distance) == ("a", 1, 0)


def test_best_text_before_candidates() -> None:
    plates = KnownPlates([entry("XY999ZZ", name="cand"), entry("AB123CD", d=1, name="best")])
    found = plates.match(["AB123CE", "XY999ZZ"])
    assert found is not None and found.entry.name == "cand"  # entries first, then texts


def test_regex_tolerance_above_one_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"known_plates\[0\].max_edit_distance"):
        KnownPlates([entry("AB.*", "regex", 2)])


def test_nothing_to_match() -> None:
    assert KnownPlates([entry("AB123CD")]).match([]) is None
    assert KnownPlates([entry("AB123CD")]).match(["", " - "]) is None
    assert KnownPlates([]).match(["AB123CD"]) is None


def test_normalize() -> None:
    assert normalize_plate(" ab-12 3.cd ") == "AB123CD"


words = st.text(alphabet="AB12", max_size=7)


@given(words, words)
def test_edit_distance_properties(a: str, b: str) -> None:
    d = edit_distance(a, b)
    assert d == edit_distance(b, a)
    assert (d == 0) == (a == b)
    assert abs(len(a) - len(b)) <= d <= max(len(a), len(b))
    assert edit_distance(a, b, limit=1) == min(d, 2)


@given(words, words)
def test_wildcard_without_wildcards_is_edit_distance(a: str, b: str) -> None:
    assert wildcard_distance(a, b) == edit_distance(a, b)


@given(words)
def test_star_matches_everything(a: str) -> None:
    assert wildcard_distance(a, "*") == 0
    assert wildcard_distance(a, "?" * len(a)) == 0


def test_a_look_alike_does_not_defeat_a_gate_entry() -> None:
    # the font draws B and 8 (and O and 0) alike: the gate entry still matches at distance 0
    known = KnownPlates([entry("AB12CDE")])
    match = known.match(["A812CDE"])
    assert match is not None and match.distance == 0 and match.matched_text == "A812CDE"
    assert known.match(["AB12CD3"]) is None  # E and 3 are not look-alikes
    assert KnownPlates([entry("1O5AB", "wildcard")]).match(["IO5A8"]) is not None
    strict = KnownPlateConfig(name="x", plate="AB12CDE", lookalikes=False)
    assert KnownPlates([strict]).match(["A812CDE"]) is None
    # a regex is the user's own pattern, matched as written
    assert KnownPlates([entry(r"AB12CDE", "regex")]).match(["A812CDE"]) is None
