"""Plate-format rules: confusable fixes only where a region's pattern says so."""

from __future__ import annotations

import pytest

from edge_anpr.plates.formats import REGIONS, fits, rank_candidates


def alts(*positions: list[tuple[str, float]]) -> list[list[tuple[str, float]]]:
    return [list(p) for p in positions]


def certain(text: str) -> list[list[tuple[str, float]]]:
    return [[(c, 0.9), ("#" if c.isalpha() else "@", 0.05)] for c in text]


def test_fits_checks_kind_and_length() -> None:
    assert fits("AB12CDE", "@@##@@@")
    assert not fits("AB12CD3", "@@##@@@")
    assert not fits("AB12CD", "@@##@@@")
    assert fits("A1", "**")


def test_generic_ranks_by_confidence_and_fixes_nothing() -> None:
    a = alts([("O", 0.6), ("0", 0.4)], [("B", 0.9), ("8", 0.1)], [("1", 0.8), ("I", 0.2)])
    ranked = rank_candidates(a, ["generic"], 5)
    assert ranked[0].text == "OB1"
    assert ranked[0].region == "generic"
    assert [r.confidence for r in ranked] == sorted((r.confidence for r in ranked), reverse=True)
    assert len({r.text for r in ranked}) == len(ranked)


def test_uk_pattern_swaps_confusables_by_position() -> None:
    # read as "AB1ZCDE": position 3 must be a digit (Z -> 2), and O at position 1 must be a
    # letter: the classifier's top choice "0" there is swapped to "O"
    text = "0B1ZCDE"
    a = [[(c, 0.9)] for c in text]
    ranked = rank_candidates(a, ["uk"], 3)
    assert ranked[0].text == "OB12CDE"
    assert ranked[0].region == "uk"


def test_uk_prefers_an_alternative_of_the_right_kind_over_a_swap() -> None:
    a = [*certain("AB1"), [("S", 0.55), ("3", 0.45)], *certain("CDE")]
    ranked = rank_candidates(a, ["uk"], 3)
    assert ranked[0].text == "AB13CDE"


def test_generic_keeps_a_letter_where_a_digit_would_fit_elsewhere() -> None:
    a = [[(c, 0.9)] for c in "0B1ZCDE"]
    ranked = rank_candidates(a, ["generic"], 3)
    assert ranked[0].text == "0B1ZCDE"


def test_mercosur_pattern() -> None:
    a = [[(c, 0.9)] for c in "BRA2E19"]
    assert rank_candidates(a, ["br"], 1)[0].region == "br"
    a = [[(c, 0.9)] for c in "BRA2E1S"]  # last must be a digit
    assert rank_candidates(a, ["br"], 1)[0].text == "BRA2E15"


def test_off_format_text_is_ranked_lower_but_kept() -> None:
    # 5 characters fit no UK pattern: the read survives, as generic, with lower confidence
    a = [[(c, 0.9)] for c in "HELLO"]
    plain = rank_candidates(a, ["generic"], 1)[0]
    uk = rank_candidates(a, ["uk"], 1)[0]
    assert uk.text == "HELLO" and uk.region == "generic"
    assert uk.confidence < plain.confidence


def test_region_order_prefers_the_first_region() -> None:
    a = [[(c, 0.9)] for c in "ABC1234"]  # fits both br (old) and us
    assert rank_candidates(a, ["br", "us"], 1)[0].region == "br"
    assert rank_candidates(a, ["us", "br"], 1)[0].region == "us"


def test_unknown_region_is_an_error_and_empty_input_gives_nothing() -> None:
    with pytest.raises(ValueError, match="unknown plate region"):
        rank_candidates([[("A", 1.0)]], ["atlantis"], 1)
    assert rank_candidates([], ["generic"], 3) == []


def test_every_pattern_uses_only_pattern_symbols() -> None:
    for patterns in REGIONS.values():
        for p in patterns:
            assert set(p) <= set("@#*") and 1 <= len(p) <= 8
