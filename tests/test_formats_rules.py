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
    assert rank_candidates(a, ["br", "mercosur"], 1)[0].region == "mercosur"
    a = [[(c, 0.9)] for c in "BRA2E1S"]  # last must be a digit
    assert rank_candidates(a, ["br", "mercosur"], 1)[0].text == "BRA2E15"
    # the grey-plate region alone reads the fifth character as a digit
    a = [*certain("OKS0"), [("O", 0.6), ("0", 0.4)], *certain("78")]
    assert rank_candidates(a, ["br"], 1)[0].text == "OKS0078"
    assert rank_candidates(a, ["mercosur"], 1)[0].text == "OKS0O78"


def test_off_format_text_is_ranked_lower_but_keeps_its_confidence() -> None:
    # 5 characters fit no UK pattern: the read survives, as generic, ranked lower, but its
    # confidence is still its characters' (a vanity plate is still a plate)
    a = [[(c, 0.9)] for c in "HELLO"]
    plain = rank_candidates(a, ["generic"], 1)[0]
    uk = rank_candidates(a, ["uk"], 1)[0]
    assert uk.text == "HELLO" and uk.region == "generic"
    assert uk.score < plain.score
    assert uk.confidence == pytest.approx(plain.confidence)


def test_a_fitting_reading_outranks_a_more_confident_off_format_one() -> None:
    # BR old format LLLNNNN: the top reading "AB01234" has a digit where a letter belongs;
    # the second choice "ABO1234" fits and must come first although less probable
    a = [*certain("AB"), [("0", 0.6), ("O", 0.4)], *certain("1234")]
    ranked = rank_candidates(a, ["br"], 3)
    assert ranked[0].text == "ABO1234" and ranked[0].region == "br"
    assert ranked[0].confidence < next(r for r in ranked if r.text == "AB01234").confidence
    assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)


@pytest.mark.parametrize(
    ("region", "plate"),
    [("sk", "BA123AB"), ("cz", "1A23456"), ("cz", "1AB2345"), ("pl", "WA12345"),
     ("pl", "KRA1234")],
)
def test_national_formats(region: str, plate: str) -> None:
    assert any(fits(plate, p) for p in REGIONS[region])
    assert rank_candidates(certain(plate), [region], 1)[0].region == region


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
