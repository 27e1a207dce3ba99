"""The shipped reader on plates of every region it is made for, loaded with the real TFLite
interpreter: rendered plates of every layout of the renderer (one-line and two-line, each read
with its country's regions), and real validation crops of each real set in ``../shared/data``
(skipped, saying so, when the data is absent)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_anpr.config import load_config
from edge_anpr.lab.datasplit import plate_in_split, shared_data_dir
from edge_anpr.lab.eval_crops import crops_of_scenes
from edge_anpr.lab.labels import EU_LABELLED, labelled_rows
from edge_anpr.plates.formats import REGIONS
from edge_anpr.vision.reader import PlateReader

pytest.importorskip("PIL", reason="the plate renderer needs Pillow (test extra)")

from edge_anpr.train.augment import plain_crop
from edge_anpr.train.render import LAYOUTS, render_plate

SEED0 = 2_000_000
"""Rendered test plates use seeds far above the training range (0 .. 10^6)."""
SPECIAL = {"br_old": "br", "br_red": "br", "br_moto": "br", "br_red_moto": "br",
           "br_mercosur": "mercosur", "br_mercosur_moto": "mercosur", "uk_front": "uk",
           "uk_rear": "uk"}


def region_of(layout: str) -> str:
    base = layout.removesuffix("_2l")
    return SPECIAL.get(layout) or (base if base in REGIONS else "generic")


def two_line(layout: str) -> bool:
    return layout.endswith("_2l") or "moto" in layout or layout == "us_two_line"


@pytest.fixture(scope="module")
def reader() -> PlateReader:
    return PlateReader()


def _read_rendered(reader: PlateReader, layouts: list[str], per_layout: int) -> list[str]:
    misses = []
    for k, layout in enumerate(layouts):
        for j in range(per_layout):
            plate = render_plate(np.random.default_rng(SEED0 + 100 * k + j), layout)
            grey, _ = plain_crop(plate)
            got = reader.read(grey, (region_of(layout),))
            if got is None or got.text != plate.text:
                misses.append(f"{layout}:{plate.text}>{got.text if got else None}")
    return misses


@pytest.mark.parametrize("lines", [1, 2])
def test_rendered_plates_of_every_layout(reader: PlateReader, lines: int) -> None:
    layouts = [lay for lay in LAYOUTS if two_line(lay) == (lines == 2)]
    misses = _read_rendered(reader, layouts, per_layout=3)
    total = 3 * len(layouts)
    assert len(misses) <= RENDERED_MISSES_ALLOWED[lines] * total, misses


def _real_sets() -> dict[str, list[tuple[np.ndarray, str, tuple[str, ...]]]]:
    data = shared_data_dir()
    if data is None:
        pytest.skip("../shared/data is absent (the real data is not shipped with the repo)")
    sets: dict[str, list[tuple[np.ndarray, str, tuple[str, ...]]]] = {}
    for name, folder, regions, labels in (
        ("us", "plate-crops", ("generic",), None),
        ("br", "plate-crops-br", ("br",), None),
        ("eu", "plate-crops-eu-unlabelled", ("generic",), EU_LABELLED),
    ):
        rows, _ = labelled_rows(data / folder, labels=labels)
        wanted = [r for r in rows if labels is not None or plate_in_split(r[1], "val")]
        sets[name] = [(cv2.imread(str(data / folder / f)), plate, regions)
                      for f, plate in wanted[:REAL_PER_SET]]
    scene_cfg = load_config(Path(__file__).resolve().parents[1] / "data" / "eval-scenes.toml")
    scenes = [(image, crop.label, scene_cfg.regions_of(crop.group))
              for crop, image in crops_of_scenes(data / "scenes", "val", 0.15)
              if image is not None]
    sets["scenes"] = scenes[:REAL_PER_SET]
    return sets


def test_real_validation_crops_of_each_set(reader: PlateReader) -> None:
    for name, items in _real_sets().items():
        results = [(label, reader.read(image, regions)) for image, label, regions in items]
        correct = sum(1 for label, got in results if got is not None and got.text == label)
        assert correct >= REAL_CORRECT_AT_LEAST * len(items), (
            name, [(label, got.text if got else None) for label, got in results])


RENDERED_MISSES_ALLOWED = {1: 0.3, 2: 0.3}
"""Share of rendered plates that may be misread. The shipped models miss 14% of one-line and
10% of two-line held-out renders in the real plate fonts of ../shared/data's glyph pages, and
21% and 15% where that data is absent and every plate is drawn in TrueType faces."""
REAL_PER_SET = 24
REAL_CORRECT_AT_LEAST = 0.7
"""Share of each real set's first validation crops that must read exactly (the shipped models:
US 18, BR 24, EU 23, scenes 24 of 24)."""
