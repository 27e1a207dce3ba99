"""The plate's region read from the plate: the shipped region model on real crops (real TFLite
interpreter, real files), the formats it picks, and the vote of an event's reads."""

from __future__ import annotations

import cv2
import pytest

from edge_anpr.lab.datasplit import plate_in_split, shared_data_dir
from edge_anpr.lab.eval_crops import state_column
from edge_anpr.lab.labels import EU_LABELLED, labelled_rows, read_label_rows
from edge_anpr.plates.origin import REGION_MIN_SCORE, formats_for
from edge_anpr.plates.tracker import region_vote
from edge_anpr.values import NO_REGION, PlateRegion
from edge_anpr.vision.reader import PlateReader
from edge_anpr.vision.region import REGION_CLASSES, country_of, summarise

DATA = shared_data_dir()


@pytest.fixture(scope="module")
def reader() -> PlateReader:
    return PlateReader()


def _val_crops(folder: str, limit: int) -> list[tuple[str, str]]:
    assert DATA is not None
    if folder == "plate-crops-eu-unlabelled":
        return [(f, "eu") for f, _ in read_label_rows(EU_LABELLED)][:limit]
    rows, _ = labelled_rows(DATA / folder)
    states = state_column(DATA / folder / "labels.csv")
    out = [(f, f"us-{states[f]}" if folder == "plate-crops" else "br")
           for f, plate in rows if plate_in_split(plate, "val")]
    return out[:limit]


@pytest.mark.skipif(DATA is None, reason="no ../shared/data")
@pytest.mark.parametrize("folder", ["plate-crops", "plate-crops-br", "plate-crops-eu-unlabelled"])
def test_every_read_says_which_country_the_plate_is_from(
    reader: PlateReader, folder: str
) -> None:
    assert DATA is not None
    crops = _val_crops(folder, 40)
    right = states_right = 0
    for name, region in crops:
        read = reader.read(cv2.imread(str(DATA / folder / name)))
        assert read is not None
        assert 0 < read.region.score <= 1
        right += country_of(read.region.code) == country_of(region)
        states_right += read.region.code == region
    assert right >= 0.9 * len(crops), (folder, right, len(crops))
    if folder == "plate-crops":  # and, for a US plate, most often the state
        assert states_right >= 0.6 * len(crops), states_right


def test_a_region_names_a_state_only_when_the_state_alone_is_likely() -> None:
    probs = [0.0] * len(REGION_CLASSES)
    probs[REGION_CLASSES.index("us-ca")] = 0.4
    probs[REGION_CLASSES.index("us-nv")] = 0.35
    probs[REGION_CLASSES.index("br")] = 0.25
    assert summarise(probs).region == PlateRegion("us", pytest.approx(0.75))
    probs[REGION_CLASSES.index("us-ca")], probs[REGION_CLASSES.index("us-nv")] = 0.7, 0.05
    assert summarise(probs).region == PlateRegion("us-ca", pytest.approx(0.7))


def test_a_confident_region_picks_formats_only_for_a_camera_with_none() -> None:
    sure, unsure = PlateRegion("br", REGION_MIN_SCORE), PlateRegion("br", 0.45)
    assert formats_for(["generic"], sure) == ("br", "mercosur")
    assert formats_for(["generic"], unsure) == ("generic",)
    assert formats_for(["generic"], NO_REGION) == ("generic",)
    # the US and Europe have no formats to pick here (docs/configuration.md says why): a US
    # plate is ranked as generic and written by the US convention (tests/test_us_plates.py)
    assert formats_for(["generic"], PlateRegion("us-ca", 0.99)) == ("generic",)
    assert formats_for(["generic"], PlateRegion("eu", 0.99)) == ("generic",)


def test_a_configured_camera_keeps_its_list_and_the_region_orders_it() -> None:
    assert formats_for(["sk", "br"], PlateRegion("br", 0.6)) == ("br", "sk")
    assert formats_for(["uk", "br"], PlateRegion("br", 0.9)) == ("br", "uk")
    assert formats_for(["sk", "cz"], PlateRegion("br", 0.99)) == ("sk", "cz")
    assert formats_for(["uk", "us"], NO_REGION) == ("uk", "us")


def test_an_events_region_is_the_one_its_reads_give_most_weight() -> None:
    reads = [PlateRegion("us-ca", 0.6), PlateRegion("us-nv", 0.9), PlateRegion("us-ca", 0.7),
             NO_REGION]
    assert region_vote(reads) == PlateRegion("us-ca", pytest.approx(1.3 / 4))
    assert region_vote([NO_REGION, NO_REGION]) == NO_REGION
    assert region_vote([]) == NO_REGION
