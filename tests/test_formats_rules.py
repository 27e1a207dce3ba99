"""Plate-format rules: confusable fixes only where a region's pattern says so."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_anpr.plates.formats import (
    REGION_NOTES,
    REGIONS,
    check_regions,
    fits,
    rank_candidates,
)


def alts(*positions: list[tuple[str, float]]) -> list[list[tuple[str, float]]]:
    return [list(p) for p in positions]


def certain(text: str) -> list[list[tuple[str, float]]]:
    return [[(c, 0.9), ("#" if c.isalpha() else "@", 0.05)] for c in text]


def test_fits_checks_kind_and_length() -> None:
    assert fits("AB12CDE", "@@##@@@")
    assert not fits("AB12CD3", "@@##@@@")
    assert not fits("AB12CD", "@@##@@@")
    assert fits("A1", "**")


def test_generic_ranks_the_classifiers_readings_and_fixes_nothing() -> None:
    a = alts([("O", 0.6), ("0", 0.4)], [("B", 0.9), ("8", 0.1)], [("1", 0.8), ("I", 0.2)])
    ranked = rank_candidates(a, ["generic"], 5)
    assert ranked[0].text == "OB1"
    assert ranked[0].region == "generic"
    assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)
    assert len({r.text for r in ranked}) == len(ranked)
    options = [{c for c, _ in position} for position in a]
    assert all(all(c in o for c, o in zip(r.text, options, strict=True)) for r in ranked)


def test_generic_prefers_a_reading_that_fits_some_regions_pattern() -> None:
    # the classifier's first choice for the sixth character makes a text no region prints;
    # its second choice makes a Brazilian one
    a = [*certain("ABC12"), [("S", 0.6), ("5", 0.4)], *certain("4")]
    assert rank_candidates(a, ["generic"], 3)[0].text == "ABC1254"
    # with no alternative that fits, the reading stands (a vanity plate)
    a = [*certain("ABC12"), [("S", 0.6), ("X", 0.4)], *certain("4")]
    assert rank_candidates(a, ["generic"], 3)[0].text == "ABC12S4"
    # and a fitting alternative the classifier gave little is not taken
    a = [*certain("ABC12"), [("S", 0.98), ("5", 0.02)], *certain("4")]
    assert rank_candidates(a, ["generic"], 3)[0].text == "ABC12S4"


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


def test_off_format_text_keeps_its_confidence_when_nothing_fits() -> None:
    # 5 letters fit no UK pattern and none has a digit twin: the read survives, as generic,
    # with its characters' confidence as its score (a vanity plate is still a plate, and
    # nothing that fits outranks it). (HELLO would be read HEL1O, a suffix-era ABC 1D shape.)
    a = [[(c, 0.9)] for c in "HENRY"]
    plain = rank_candidates(a, ["generic"], 1)[0]
    uk = rank_candidates(a, ["uk"], 1)[0]
    assert uk.text == "HENRY" and uk.region == "generic"
    assert uk.score == pytest.approx(plain.score) == pytest.approx(0.9)
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


# Real-style plates per region, separators removed: (region, plates that fit, plates that don't)
PLATES = [
    ("br", ["ABC1234", "OKS0078"], ["ABC1D23", "AB12345"]),
    ("mercosur", ["BRA2E19", "ABC1D23"], ["ABC1234", "AB1C234"]),
    ("us", ["7ABC123", "ABC1234", "ABC123", "123ABC"], ["AB12CDE", "1A2B3C"]),
    ("de", ["BAB1234", "HHAB123", "KA1", "MAB123E", "SLA123H", "WOBAB123", "Y123456"],
     ["1AB234", "B12AB", "BAB12345", "ABCDE1234", "BAB12E3"]),
    ("nl", ["AB1234", "1234AB", "12AB34", "AB12CD", "ABCD12", "12ABCD", "12ABC3", "1ABC23",
            "AB123C", "A123BC", "ABC12D", "A12BCD", "1AB234", "123AB4"],
     ["ABC123", "123ABC", "AB123CD", "A1B2C3"]),
    ("fr", ["AB123CD", "123ABC45", "1234AB56", "12A75", "123AB2A"],
     ["AB12CD", "1234ABC56", "ABC123", "A123BC"]),
    ("be", ["1ABC123", "ABC123", "123ABC"], ["AB123CD", "1AB123", "ABC1234"]),
    ("it", ["AB123CD", "AB12345"], ["ABC1234", "1234ABC", "AB1234C"]),
    ("es", ["1234BCD", "C1234BCD", "M1234AB", "B1234A", "GC1234AB"],
     ["BCD1234", "12345BC", "AB123CD"]),
    ("pl", ["WA12345", "WA1234A", "WA123AB", "WA1A234", "WA1AB23", "KRA1234", "KRA123A",
            "KRA12AB", "KRA1A23"],
     ["1AB2345", "W123456", "WAB12345"]),
    ("sk", ["BA123AB", "BL999ZZ", "AA001AA"], ["BA12AB", "B123ABC", "BA1234A"]),
    ("cz", ["1A23456", "1AB2345", "AB1234", "ABC1234"], ["A123456", "12A3456", "1A2345"]),
    ("uk", ["AB12CDE", "A123BCD", "ABC123D", "ABZ1234", "ABC123", "1234AB", "A1"],
     ["AB123CD", "1A2B", "ABCD123"]),
    ("at", ["W12345A", "W1234AB", "GU123AB", "FK1ABC", "WNAME1", "BP12345"],
     ["W123456A", "1ABC23", "WAB1C", "W1A2"]),
    ("ch", ["ZH123456", "BE1", "GE12345"], ["ZH1234567", "ZHA123", "Z123456"]),
    ("eu", ["BAB1234", "AB123CD", "12ABC3", "1234BCD", "1ABC123", "WA1A234"],
     ["ABC", "1A2B3C", "A1B2C3D"]),
]


@pytest.mark.parametrize(("region", "good", "bad"), PLATES, ids=[r for r, _, _ in PLATES])
def test_real_plates_fit_their_region_and_others_do_not(
    region: str, good: list[str], bad: list[str]
) -> None:
    for plate in good:
        assert any(fits(plate, p) for p in REGIONS[region]), plate
        best = rank_candidates(certain(plate), [region], 3)[0]
        assert (best.text, best.region) == (plate, region)
    for plate in bad:
        assert not any(fits(plate, p) for p in REGIONS[region]), plate
        # kept as a candidate, but never credited to the region (a confusable may be swapped
        # to make a fitting reading that ranks first)
        ranked = rank_candidates(certain(plate), [region], 20)
        assert [r.region for r in ranked if r.text == plate] == ["generic"]


def test_every_region_is_tested_and_described() -> None:
    assert {r for r, _, _ in PLATES} | {"generic", "gb"} == set(REGIONS)
    assert set(REGION_NOTES) == set(REGIONS)
    assert all(REGION_NOTES.values())


def test_check_regions_accepts_exactly_the_listed_regions() -> None:
    expected = {"generic", "br", "mercosur", "us", "eu", "de", "nl", "fr", "be", "it", "es",
                "pl", "sk", "cz", "uk", "gb", "at", "ch"}
    assert set(REGIONS) == expected
    for region in expected:
        check_regions([region])
    check_regions(sorted(expected))
    for wrong in (["europe"], ["de", "DE"], ["br", "xx"], []):
        with pytest.raises(ValueError, match="unknown plate region"):
            check_regions(wrong)


def test_gb_is_uk_and_eu_holds_every_member_table() -> None:
    assert REGIONS["gb"] == REGIONS["uk"]
    members = ("de", "nl", "fr", "be", "it", "es", "pl", "sk", "cz", "at")
    union = {p for r in members for p in REGIONS[r]}
    assert set(REGIONS["eu"]) == union


def test_tables_are_read_only_and_list_each_pattern_once() -> None:
    # rank_candidates caches its per-region-list work by name: a table must not change
    with pytest.raises(TypeError):
        REGIONS["de"] = ("@",)  # type: ignore[index]
    for patterns in REGIONS.values():
        assert len(set(patterns)) == len(patterns)


def test_every_pattern_is_read_back_as_its_region() -> None:
    # a clean reading in any listed shape comes back unchanged and attributed to the region
    for region, patterns in REGIONS.items():
        for pattern in patterns:
            text = "".join("K" if kind == "@" else "4" for kind in pattern)
            best = rank_candidates(certain(text), [region], 3)[0]
            assert (best.text, best.region) == (text, region), (region, pattern)


def misread(text: str, at: int, wrong: str) -> list[list[tuple[str, float]]]:
    """A confident reading of ``text`` whose classifier put ``wrong`` first at ``at``."""
    reading = certain(text)
    reading[at] = [(wrong, 0.7), ("X" if wrong.isdigit() else "9", 0.2)]
    return reading


@pytest.mark.parametrize(
    ("region", "plate", "at", "wrong"),
    [
        ("de", "BOAB123", 1, "0"),  # B0 AB 123: a recognition letter read as a digit
        ("de", "MAB1254", 5, "S"),  # MABI234 would be a plate too
        ("de", "SAB1234", 0, "5"),
        ("fr", "AB123CD", 2, "I"),  # AB-I23-CD
        ("fr", "AB123DS", 6, "5"),
        ("it", "AB123CD", 3, "Z"),
        ("es", "1234BCD", 0, "I"),
        ("nl", "12ABC3", 0, "I"),
        ("be", "1ABC123", 0, "I"),
        ("sk", "BA123AB", 0, "8"),
        ("cz", "1AB2845", 4, "B"),
        ("uk", "AB12CDE", 2, "I"),
        ("ch", "ZH123456", 7, "G"),
        ("at", "GU123AB", 3, "Z"),
        ("pl", "WA1AB23", 5, "Z"),
        ("eu", "BOAB123", 1, "0"),
    ],
)
def test_confusables_are_fixed_where_the_pattern_demands_the_other_kind(
    region: str, plate: str, at: int, wrong: str
) -> None:
    best = rank_candidates(misread(plate, at, wrong), [region], 3)[0]
    assert (best.text, best.region) == (plate, region)
    # generic swaps nothing: the classifier's first or second choice stands at ``at``
    read = rank_candidates(misread(plate, at, wrong), ["generic"], 3)[0].text
    assert read[:at] + read[at + 1:] == plate[:at] + plate[at + 1:]
    assert read[at] in {wrong, "X" if wrong.isdigit() else "9"}


def test_overlapping_tables_credit_the_first_listed_region() -> None:
    a = misread("BOAB123", 1, "0")
    assert rank_candidates(a, ["de", "eu"], 1)[0].region == "de"
    assert rank_candidates(a, ["eu", "de"], 1)[0].region == "eu"
    assert rank_candidates(a, ["br", "de"], 1)[0].region == "de"  # br has no 4+3 shape


_OPTION = st.tuples(
    st.sampled_from("ABDGILOSTZ0124568X"), st.floats(min_value=0.0, max_value=1.0)
)


@given(
    st.lists(st.lists(_OPTION, min_size=1, max_size=3), min_size=1, max_size=9),
    st.lists(st.sampled_from(sorted(REGIONS)), min_size=1, max_size=3),
    st.integers(min_value=1, max_value=8),
)
def test_a_candidate_credited_to_a_region_fits_it(
    a: list[list[tuple[str, float]]], regions: list[str], top_n: int
) -> None:
    ranked = rank_candidates(a, regions, top_n)
    assert 1 <= len(ranked) <= top_n
    assert len({r.text for r in ranked}) == len(ranked)
    assert all(len(r.text) == len(a) for r in ranked)
    for r in ranked:
        assert r.region == "generic" or any(fits(r.text, p) for p in REGIONS[r.region])
        assert r.region == "generic" or r.region in regions


def test_a_look_alike_takes_the_kind_of_its_group() -> None:
    from edge_anpr.plates.formats import prefer_group_kind

    def alts(*chars: tuple[str, float, str, float]) -> list[list[tuple[str, float]]]:
        return [[(a, p), (b, q)] for a, p, b, q in chars]

    # N0X 218: the unsure 0 between two sure letters becomes O, with the top probability
    nox = alts(("N", 0.9, "M", 0.1), ("0", 0.6, "O", 0.4), ("X", 0.9, "K", 0.1),
               ("2", 0.9, "Z", 0.05), ("1", 0.9, "7", 0.05), ("8", 0.9, "3", 0.05))
    fixed = prefer_group_kind(nox, [0, 0, 0, 1, 1, 1])
    assert [a[0][0] for a in fixed] == list("NOX218")
    assert fixed[1] == [("O", 0.6), ("0", 0.4)]
    # a sure character is never changed, and a group of mixed sure kinds decides nothing
    sure = alts(("2", 0.95, "Z", 0.01), ("U", 0.9, "V", 0.1), ("Q", 0.9, "O", 0.1))
    assert prefer_group_kind(sure, [0, 0, 0]) == sure
    mixed = alts(("5", 0.9, "S", 0.01), ("G", 0.55, "6", 0.45), ("9", 0.9, "8", 0.1),
                 ("A", 0.9, "4", 0.01))
    assert prefer_group_kind(mixed, [0, 0, 0, 0]) == mixed
    # far apart in probability: not a look-alike question
    clear = alts(("A", 0.9, "B", 0.1), ("0", 0.9, "O", 0.1), ("C", 0.9, "G", 0.1))
    assert prefer_group_kind(clear, [0, 0, 0]) == clear
