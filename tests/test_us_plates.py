"""US plates: the state serial table, the writing convention for O/0 and I/1 (pure), which
plates it applies to (``plates.origin``), and the shipped reader writing real US crops by it
(real TFLite interpreters on the shipped models; skipped when ``../shared/data`` is absent)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_anpr.config import Config, KnownPlateConfig, ReaderConfig
from edge_anpr.lab.datasplit import plate_in_split, shared_data_dir, split_of
from edge_anpr.lab.scenes import normalise
from edge_anpr.plates.formats import REGIONS, fits
from edge_anpr.plates.known import KnownPlates
from edge_anpr.plates.origin import formats_for, us_serials
from edge_anpr.plates.us import STATE_SERIALS, US_SERIALS, serials_of, write_us
from edge_anpr.values import NO_REGION, PlateRegion
from edge_anpr.vision.reader import PlateReader
from edge_anpr.vision.recognize import FrameRecognizer
from edge_anpr.vision.region import US_STATES

DATA = shared_data_dir()


def unsure(text: str) -> list[float]:
    """Character probabilities below the look-alike limit: every I/1 may be rewritten."""
    return [0.6] * len(text)


def test_every_state_of_the_table_is_a_state_the_region_model_names() -> None:
    assert set(STATE_SERIALS) <= set(US_STATES)
    for state, (patterns, fact) in STATE_SERIALS.items():
        assert patterns and all(set(p) <= {"@", "#"} for p in patterns), state
        assert fact.strip(), state
        assert set(patterns) <= set(US_SERIALS)
    assert REGIONS["us"] == US_SERIALS
    assert serials_of("ca") == ("#@@@###",)
    assert serials_of("mt") == US_SERIALS  # not in the table: every US serial


def test_a_serial_takes_letters_in_letter_slots_and_digits_in_digit_slots() -> None:
    ca = serials_of("ca")
    assert write_us("5A0J230", unsure("5A0J230"), ca) == "5AOJ230"
    assert write_us("5AOJ23O", unsure("5AOJ23O"), ca) == "5AOJ230"
    assert write_us("6L1K274", unsure("6L1K274"), ca) == "6LIK274"
    assert write_us("5SIR4S9", unsure("5SIR4S9"), ca) == "5SIR4S9"  # S/5: the ranking's
    assert write_us("IABC234", unsure("IABC234"), ca) == "1ABC234"
    assert write_us("778A0S", unsure("778A0S"), serials_of("ia")) == "778AOS"
    assert write_us("HK0E7C", unsure("HK0E7C"), serials_of("mo")) == "HK0E7C"
    assert write_us("HKOE7C", unsure("HKOE7C"), serials_of("mo")) == "HK0E7C"


def test_a_read_that_fits_no_serial_writes_o_as_0_and_keeps_i() -> None:
    assert write_us("CUSTOM", unsure("CUSTOM"), serials_of("fl")) == "CUST0M"
    assert write_us("IDAHOHI", unsure("IDAHOHI"), serials_of("ca")) == "IDAH0HI"
    assert write_us("IM4REAL", unsure("IM4REAL"), serials_of("az")) == "IM4REAL"
    # no serials (a state not known): every read is written as a vanity plate
    assert write_us("OSG719", unsure("OSG719"), ()) == "0SG719"


def test_a_sure_i_or_1_is_never_rewritten() -> None:
    sure = [0.99] * 7
    assert write_us("6L1K274", sure, serials_of("ca")) == "6L1K274"
    assert write_us("5A0J230", sure, serials_of("ca")) == "5AOJ230"  # O and 0: one character
    assert write_us("1AB2I45", [0.6, 0.6, 0.6, 0.6, 0.97, 0.6, 0.6], ("#@@####",)) == "1AB2I45"


def test_the_serial_needing_fewest_changes_wins() -> None:
    # 0SG719 fits #@@### as read, @@@### with one change: kept as read
    assert write_us("0SG719", unsure("0SG719"), ("@@@###", "#@@###")) == "0SG719"
    assert write_us("0SG719", unsure("0SG719"), ("@@@###",)) == "OSG719"


@given(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", max_size=9),
       st.sampled_from(sorted(STATE_SERIALS)), st.floats(0.0, 1.0))
def test_writing_changes_only_look_alikes_and_is_idempotent(
    text: str, state: str, p: float
) -> None:
    probs = [p] * len(text)
    once = write_us(text, probs, serials_of(state))
    assert len(once) == len(text)
    pairs = ({"O", "0"}, {"I", "1"})
    assert all(a == b or {a, b} in pairs for a, b in zip(text, once, strict=True))
    assert write_us(once, probs, serials_of(state)) == once
    if any(fits(once, pattern) for pattern in serials_of(state)):
        return
    assert "O" not in once


def test_which_plates_are_written_as_us_ones() -> None:
    ca = PlateRegion("us-ca", 0.9)
    assert us_serials(["generic"], ca) == ("#@@@###",)
    assert us_serials(["us"], ca) == ("#@@@###",)
    assert us_serials(["generic"], PlateRegion("us", 0.9)) == ()
    assert us_serials(["generic"], PlateRegion("us-mt", 0.9)) == ()
    assert us_serials(["generic"], PlateRegion("us", 0.4)) is None
    # a Brazilian scene plate the region model took for a US one at 0.65 (OVK3653)
    assert us_serials(["generic"], PlateRegion("us", 0.65)) is None
    assert us_serials(["generic"], NO_REGION) is None
    # a US camera writes every plate it is not told is another country's
    assert us_serials(["us"], NO_REGION) == ()
    assert us_serials(["us"], PlateRegion("eu", 0.4)) == ()
    assert us_serials(["us"], PlateRegion("eu", 0.9)) is None
    # a camera configured without US regions never writes a US plate
    assert us_serials(["br"], ca) is None
    assert us_serials(["br", "us"], ca) == ("#@@@###",)


def test_a_us_plate_is_ranked_as_generic_whatever_us_regions_are_configured() -> None:
    ca = PlateRegion("us-ca", 0.9)
    assert formats_for(["us"], ca) == ("generic",)
    assert formats_for(["uk", "us"], ca) == ("generic",)
    assert formats_for(["us"], NO_REGION) == ("generic",)
    assert formats_for(["br"], ca) == ("br",)
    assert formats_for(["uk", "us"], PlateRegion("eu", 0.9)) == ("uk", "us")


def test_a_gate_entry_written_either_way_matches_the_written_read() -> None:
    for entry in ("5AOJ230", "5A0J230"):
        known = KnownPlates([KnownPlateConfig(plate=entry, max_edit_distance=0)])
        assert known.match(["5AOJ230"]) is not None
        assert known.match(["CUST0M"]) is None
    known = KnownPlates([KnownPlateConfig(plate="CUSTOM", max_edit_distance=0)])
    assert known.match([write_us("CUSTOM", unsure("CUSTOM"), serials_of("fl"))]) is not None


@pytest.fixture(scope="module")
def reader() -> PlateReader:
    return PlateReader()


def _training_crop(name: str, plate: str) -> np.ndarray:
    if DATA is None:
        pytest.skip("../shared/data is absent (the real data is not shipped with the repo)")
    assert plate_in_split(plate, "train")
    image = cv2.imread(str(DATA / "plate-crops" / name))
    assert image is not None
    return np.asarray(image, np.uint8)


@pytest.mark.parametrize(("name", "plate", "regions"), [
    ("ca1564.png", "5AOJ230", ("generic",)),  # the classifier reads 5A0J230: O in a letter slot
    ("ia842.png", "778AOS", ("us",)),         # 778A0S: Iowa's 123 ABC
    ("fl512.png", "CUST0M", ("generic",)),     # CUSTOM: a vanity plate writes O as 0
    ("tn14.png", "0UTFR0NT", ("us",)),         # 0UTFRONT
])
def test_the_shipped_reader_writes_real_us_crops_by_the_convention(
    reader: PlateReader, name: str, plate: str, regions: tuple[str, ...]
) -> None:
    got = reader.read(_training_crop(name, plate), regions)
    assert got is not None
    assert got.region.code.startswith("us")
    assert got.text == plate
    assert got.candidates[0].text == plate
    # ranked as with generic, but a plate that fits a US serial says so
    assert got.format_region == ("generic" if name in ("fl512.png", "tn14.png") else "us")
    assert len({c.text for c in got.candidates}) == len(got.candidates)


@pytest.mark.skipif(DATA is None, reason="no ../shared/data")
@pytest.mark.parametrize(("name", "plate"), [
    ("wts-lg-000142.jpg", "5TGN556"),  # generic: a variant box cut to 5TGN55 outvoted it
])
@pytest.mark.parametrize("regions", [["generic"], ["us"]])
def test_a_whole_us_scene_reads_the_whole_serial_on_a_generic_and_a_us_camera(
    name: str, plate: str, regions: list[str]
) -> None:
    assert DATA is not None and split_of(name) == "train"
    image = cv2.imread(str(DATA / "scenes" / "us" / name))
    assert image is not None
    frame, _ = normalise(np.asarray(image, np.uint8))
    cfg = Config(reader=ReaderConfig(regions=regions))
    found = FrameRecognizer(cfg).recognize(frame)
    assert [f.text.text for f in found][:1] == [plate]
