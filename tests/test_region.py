"""The plate's region read from the plate: the shipped region model on real crops (real TFLite
interpreter, real files), the formats it picks, and the vote of an event's reads."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from edge_anpr.errors import ModelError
from edge_anpr.lab.datasplit import plate_in_split, shared_data_dir
from edge_anpr.lab.eval_crops import state_column
from edge_anpr.lab.labels import EU_LABELLED, labelled_rows, read_label_rows
from edge_anpr.models import bundled_models_dir
from edge_anpr.plates.origin import REGION_MIN_SCORE, formats_for
from edge_anpr.plates.tracker import region_vote
from edge_anpr.values import NO_REGION, PlateRegion
from edge_anpr.vision.reader import PlateReader
from edge_anpr.vision.region import (
    REGION_CLASSES,
    REGION_FILE,
    SHAPES_FILE,
    RegionReader,
    ShapeTable,
    country_of,
    given_read,
    summarise,
    text_shape,
)

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


def _row(us_ca: float, br: float, eu: float) -> list[float]:
    probs = [0.0] * len(REGION_CLASSES)
    probs[REGION_CLASSES.index("us-ca")] = us_ca
    probs[REGION_CLASSES.index("br")] = br
    probs[REGION_CLASSES.index("eu")] = eu
    return probs


def test_a_shape_read_in_one_country_only_weighs_for_it() -> None:
    table = ShapeTable({"us": {"LLNLNL": 30, "LLLNNNN": 10}, "br": {"LLLNNNN": 100},
                        "eu": {"LLNNNLL": 50, "LLLNNNN": 5}}, 20.0)
    assert text_shape("AB1C2D") == "LLNLNL"
    us, br, eu = table.likelihoods("AB1C2D")
    assert us > 10 * br and us > 10 * eu
    us, br, eu = table.likelihoods("ABC1234")
    assert br > us > eu
    # a shape nobody was read with weighs no country much against another
    us, br, eu = table.likelihoods("1")
    assert min(us, br, eu) > 0
    assert max(us, br, eu) < 5 * min(us, br, eu)


def test_the_read_turns_an_unsure_region_and_leaves_a_sure_one() -> None:
    shipped = RegionReader(bundled_models_dir() / REGION_FILE)
    assert shipped.shapes is not None  # the table ships beside the model
    unsure, sure = _row(0.75, 0.25, 0.0), _row(0.999, 0.001, 0.0)
    assert summarise(unsure).region.code == "us-ca"
    # ABC1234: nearly every Brazilian plate, about one US plate in ten
    assert shipped.region_given(unsure, "ABC1234").code == "br"
    assert shipped.region_given(sure, "ABC1234").code == "us-ca"
    # and a read Brazilian plates never have weighs against Brazil
    assert shipped.region_given(_row(0.3, 0.7, 0.0), "1ABC234").code.startswith("us")
    posterior = given_read(unsure, shipped.shapes.likelihoods("ABC1234"))
    assert sum(posterior) == pytest.approx(1.0)


def test_a_models_folder_without_a_shape_table_weighs_nothing_by_the_read(
    tmp_path: Path,
) -> None:
    (tmp_path / REGION_FILE).write_bytes((bundled_models_dir() / REGION_FILE).read_bytes())
    alone = RegionReader(tmp_path / REGION_FILE)
    assert alone.shapes is None
    assert alone.region_given(_row(0.75, 0.25, 0.0), "ABC1234").code == "us-ca"


@pytest.mark.parametrize("content", [
    "not json", json.dumps({"prior_weight": 20}),
    json.dumps({"prior_weight": 0, "counts": {"us": {}, "br": {}, "eu": {}}}),
    json.dumps({"prior_weight": 20, "counts": {"us": {}, "br": {}}}),
    json.dumps({"prior_weight": 20, "counts": {"us": {"LL": -1}, "br": {}, "eu": {}}}),
])
def test_a_bad_shape_table_is_a_model_error_naming_the_file(
    tmp_path: Path, content: str
) -> None:
    (tmp_path / REGION_FILE).write_bytes((bundled_models_dir() / REGION_FILE).read_bytes())
    (tmp_path / SHAPES_FILE).write_text(content)
    with pytest.raises(ModelError, match=SHAPES_FILE):
        RegionReader(tmp_path / REGION_FILE)
