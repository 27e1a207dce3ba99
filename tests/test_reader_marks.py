"""Marks at either end of a plate's line are not characters (``vision.marks``): the pure rule
on box geometry, and the shipped reader (real TFLite interpreters) on real US training crops
whose county numbers, stacked prefixes and emblems it read as characters before the rule
(skipped when ``../shared/data`` is absent)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_anpr.lab.datasplit import plate_in_split, shared_data_dir
from edge_anpr.vision.marks import drop_end_marks
from edge_anpr.vision.reader import PlateReader

DATA = shared_data_dir()


def _line(n: int, width: float = 10.0) -> list[list[float]]:
    """``n`` characters 20 px high on one line, ``width`` wide, 4 px apart."""
    return [[i * (width + 4), 0.0, i * (width + 4) + width, 20.0] for i in range(n)]


def test_a_short_box_off_the_line_at_either_end_is_dropped() -> None:
    boxes = [[-20.0, 8.0, -10.0, 20.0], *_line(5)]  # a county number low beside the serial
    assert drop_end_marks(boxes, [0.99] * 6) == [1, 2, 3, 4, 5]
    boxes = [*_line(5), [80.0, 0.0, 90.0, 11.0]]  # a raised small letter after it
    assert drop_end_marks(boxes, [0.99] * 6) == [0, 1, 2, 3, 4]


def test_a_short_box_on_the_line_or_inside_it_is_kept() -> None:
    on_line = [[-20.0, 4.0, -10.0, 16.0], *_line(5)]  # short but centred: a hyphen-like mark
    assert drop_end_marks(on_line, [0.99] * 6) == list(range(6))
    inner = _line(6)
    inner[2] = [28.0, 8.0, 38.0, 20.0]  # only the ends are judged
    assert drop_end_marks(inner, [0.99] * 6) == list(range(6))


def test_a_wide_box_at_an_end_is_dropped_only_when_the_classifier_is_unsure() -> None:
    boxes = [[-30.0, 0.0, -4.0, 20.0], *_line(5)]  # an emblem 2.6 characters wide
    assert drop_end_marks(boxes, [0.5, *[0.99] * 5]) == [1, 2, 3, 4, 5]
    assert drop_end_marks(boxes, [0.95, *[0.99] * 5]) == list(range(6))  # a sure W stays


def test_two_lines_and_short_plates_are_left_alone() -> None:
    top = [[i * 14.0, 0.0, i * 14.0 + 10, 14.0] for i in range(3)]  # smaller top line
    bottom = [[i * 14.0, 20.0, i * 14.0 + 10, 40.0] for i in range(4)]
    assert drop_end_marks([*top, *bottom], [0.99] * 7) == list(range(7))
    three = [[-20.0, 8.0, -10.0, 20.0], *_line(2)]
    assert drop_end_marks(three, [0.99] * 3) == [0, 1, 2]


@pytest.fixture(scope="module")
def reader() -> PlateReader:
    return PlateReader()


@pytest.mark.skipif(DATA is None, reason="no ../shared/data")
@pytest.mark.parametrize(("name", "plate"), [
    ("wy369.png", "874J"),    # Wyoming's county number 9, small and low, read 9874J
    ("wy1235.png", "248"),    # the stacked county number 2 2, read 2248
    ("id688.png", "71227"),   # Idaho's stacked 1B, read 871227
    ("nd916.png", "BB63"),    # North Dakota's seal, read CBB63
    ("vt792.png", "19012"),   # Vermont's seal, read M19012
])
def test_the_shipped_reader_leaves_end_marks_of_real_crops_out(
    reader: PlateReader, name: str, plate: str
) -> None:
    assert DATA is not None and plate_in_split(plate, "train")
    image = cv2.imread(str(DATA / "plate-crops" / name))
    assert image is not None
    got = reader.read(np.asarray(image, np.uint8))
    assert got is not None and got.text == plate
