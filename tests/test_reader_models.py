"""The shipped int8 models, loaded with the real TFLite interpreter, read plates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_anpr.cli import main
from edge_anpr.errors import ConfigError, ModelError
from edge_anpr.lab.datasplit import plate_in_split, shared_data_dir
from edge_anpr.lab.labels import labelled_rows
from edge_anpr.models import bundled_models_dir
from edge_anpr.plates.formats import fits_any
from edge_anpr.vision.reader import (
    CHAR_H,
    CHAR_W,
    CLASSIFIER_FILE,
    SEGMENTER_FILE,
    Letterbox,
    PlateReader,
    char_crops,
    decode_segmentation,
    normalise_chars,
    reading_order,
)
from edge_anpr.vision.tflite import load_interpreter

# Seeds of rendered test plates: far above the range training renders (0 .. 10^6).
HELD_OUT_SEEDS = range(1_000_000, 1_000_012)


@pytest.fixture(scope="module")
def reader() -> PlateReader:
    return PlateReader()


def test_bundled_models_are_small_int8_files() -> None:
    for name in (SEGMENTER_FILE, CLASSIFIER_FILE):
        path = bundled_models_dir() / name
        assert 10_000 < path.stat().st_size < 1_000_000
        it = load_interpreter(path)
        assert it.get_input_details()[0]["dtype"] == np.int8
        assert it.get_output_details()[0]["dtype"] == np.int8


def test_missing_model_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        PlateReader(tmp_path)


def test_corrupt_model_is_a_model_error(tmp_path: Path) -> None:
    (tmp_path / SEGMENTER_FILE).write_bytes(b"this is not a flatbuffer" * 10)
    (tmp_path / CLASSIFIER_FILE).write_bytes((bundled_models_dir() / CLASSIFIER_FILE).read_bytes())
    with pytest.raises(ModelError, match=SEGMENTER_FILE) as info:
        PlateReader(tmp_path)
    assert "\n" not in str(info.value)


def test_swapped_models_are_rejected_by_shape(tmp_path: Path) -> None:
    (tmp_path / SEGMENTER_FILE).write_bytes((bundled_models_dir() / CLASSIFIER_FILE).read_bytes())
    (tmp_path / CLASSIFIER_FILE).write_bytes((bundled_models_dir() / CLASSIFIER_FILE).read_bytes())
    with pytest.raises(ModelError, match="input"):
        PlateReader(tmp_path)


def test_reads_held_out_rendered_plates(reader: PlateReader) -> None:
    pytest.importorskip("PIL", reason="the plate renderer needs Pillow (test extra)")
    from edge_anpr.train.augment import plain_crop
    from edge_anpr.train.render import GlyphLibrary, render_plate

    layouts = ("eu", "de", "nl", "uk_front", "br_old", "br_mercosur", "one_line")
    results = []
    for seed in HELD_OUT_SEEDS:
        # TrueType faces only (an empty glyph library), one-line US and European layouts
        layout = "us" if seed % 2 else layouts[(seed // 2) % len(layouts)]
        plate = render_plate(np.random.default_rng(seed), layout, glyphs=GlyphLibrary())
        grey, _ = plain_crop(plate)
        got = reader.read(grey)
        results.append((plate.text, got.text if got else None))
    correct = sum(text == got for text, got in results)
    assert correct >= 10, results


def test_blank_and_noise_crops_are_not_plates(reader: PlateReader) -> None:
    assert reader.read(np.full((160, 320), 128, np.uint8)) is None
    assert reader.read(np.zeros((4, 4), np.uint8)) is None


def _val_crops(n: int) -> list[tuple[Path, str]]:
    data = shared_data_dir()
    if data is None or not (data / "plate-crops" / "labels.csv").is_file():
        pytest.skip("../shared/data/plate-crops is absent (real data not shipped with the repo)")
    folder = data / "plate-crops"
    rows, _ = labelled_rows(folder)
    return [(folder / f, plate) for f, plate in sorted(rows) if plate_in_split(plate, "val")][:n]


def test_read_cli_prints_one_json_object_per_crop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import cv2

    (path, label), = _val_crops(1)
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((160, 320, 3), 200, np.uint8))
    assert main(["read", str(path), str(blank)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["image"] for x in lines] == [str(path), str(blank)]
    assert lines[0]["plate"] == label
    assert lines[0]["candidates"][0]["plate"] == label
    assert len(lines[0]["char_confidences"]) == len(label)
    assert lines[1]["plate"] is None and lines[1]["candidates"] == []


def test_reading_order_puts_the_top_line_first() -> None:
    # two lines: "AB" on top (small), "123" below, given shuffled
    boxes = np.float32([
        [60, 60, 80, 100, 1], [10, 10, 20, 30, 1], [90, 60, 110, 100, 1],
        [25, 10, 35, 30, 1], [30, 60, 50, 100, 1],
    ])
    ordered = reading_order(boxes)
    assert ordered[:, 0].tolist() == [10, 25, 30, 60, 90]
    one_line = np.float32([[50, 10, 60, 40, 1], [10, 12, 20, 42, 1], [30, 8, 40, 38, 1]])
    assert reading_order(one_line)[:, 0].tolist() == [10, 30, 50]


def _heat_map(peaks: list[tuple[int, int, float]]) -> np.ndarray:
    """A segmenter output with one character peak per (cell x, cell y, height / 64)."""
    maps = np.zeros((16, 32, 5), np.float32)
    for x, y, h in peaks:
        maps[y, x] = (0.9, 0.5, 0.5, 0.2, h)
    return maps


def test_a_raised_smaller_box_among_the_characters_is_not_one() -> None:
    line = [(x, 9, 0.4) for x in (8, 12, 16, 20, 24)]
    identity = Letterbox(1.0, 0.0, 0.0)
    # the top letter of a stacked prefix: above the line, three quarters of its height
    boxes = decode_segmentation(_heat_map([(4, 5, 0.3), *line]), identity)
    assert boxes[:, 0].tolist() == pytest.approx([(x + 0.5) * 4 - 6.4 for x, _, _ in line])
    # a character of full height stays, however high it sits
    assert len(decode_segmentation(_heat_map([(4, 5, 0.4), *line]), identity)) == 6
    # so does the first line of a two-line plate, even when its characters are smaller
    two_line = [(8, 3, 0.3), (12, 3, 0.3), *((x, 11, 0.4) for x in (6, 10, 14, 18))]
    assert len(decode_segmentation(_heat_map(two_line), identity)) == 6
    # and a smaller first box on the line (a narrow plate's first character)
    assert len(decode_segmentation(_heat_map([(4, 9, 0.3), *line]), identity)) == 6
    # a letter of a state name above the serial's gap, between two characters on the line
    gap = [(x, 9, 0.4) for x in (4, 8, 12, 20, 24, 28)]
    boxes = decode_segmentation(_heat_map([*gap, (16, 6, 0.3)]), identity)
    assert boxes[:, 0].tolist() == pytest.approx([(x + 0.5) * 4 - 6.4 for x, _, _ in gap])
    # but not a full-height one, nor a smaller one on the line (a narrow 1)
    assert len(decode_segmentation(_heat_map([*gap, (16, 6, 0.4)]), identity)) == 7
    assert len(decode_segmentation(_heat_map([*gap, (16, 9, 0.3)]), identity)) == 7


def test_character_normalisation_is_numpys_percentile_stretch() -> None:
    # The classifier was trained on this stretch: the one-sort percentiles must not move it.
    crops = np.random.default_rng(4).integers(0, 256, (7, 32, 20), dtype=np.uint8)
    crops[2] = 90  # a flat crop: the 16-level floor of the range applies
    x = crops.astype(np.float32)
    lo = np.percentile(x, 5.0, axis=(1, 2), keepdims=True)
    hi = np.percentile(x, 95.0, axis=(1, 2), keepdims=True)
    expected = np.clip((x - lo) / np.maximum(hi - lo, 16.0), 0, 1)[..., None]
    got = normalise_chars(crops)
    assert got.dtype == np.float32 and got.shape == (7, 32, 20, 1)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def _char_crop_alone(grey: np.ndarray, box: tuple[float, ...]) -> np.ndarray:
    """The reference: one character crop computed box by box in Python floats, as the reader
    did before it batched them (the classifier was trained on these crops)."""
    import cv2

    x0, y0, x1, y1 = (float(v) for v in box[:4])
    bw, bh = max(1.0, x1 - x0), max(1.0, y1 - y0)
    ch = bh * 1.2
    cw = max(bw + 0.2 * bh, ch * CHAR_W / CHAR_H)
    ch = max(ch, cw * CHAR_H / CHAR_W)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    sx, sy = CHAR_W / cw, CHAR_H / ch
    m = np.array([[sx, 0, CHAR_W / 2 - cx * sx], [0, sy, CHAR_H / 2 - cy * sy]], np.float32)
    flags = cv2.INTER_AREA if sx < 1 else cv2.INTER_LINEAR
    return np.asarray(cv2.warpAffine(grey, m, (CHAR_W, CHAR_H), flags=flags,
                                     borderMode=cv2.BORDER_REPLICATE), np.uint8)


def test_batched_character_crops_are_each_boxs_own_bit_for_bit() -> None:
    rng = np.random.default_rng(9)
    greys = [rng.integers(0, 256, (h, w), dtype=np.uint8) for h, w in ((40, 150), (90, 300))]
    boxes = []
    for k in range(600):
        x0, y0 = rng.uniform(-10, 280), rng.uniform(-10, 80)
        # tiny, huge, inverted and off-image boxes too: both interpolations and the borders
        w, h = rng.choice([0.3, 4, 12, 40, 400]) * rng.uniform(0.5, 1.5), rng.uniform(-3, 60)
        boxes.append((greys[k % 2], (x0, y0, x0 + w, y0 + h, 0.9)))
    for k in range(20):  # scale exactly 1 (a 22 x 10 box): the interpolation switches there
        x0, y0 = 30.25 + 3.5 * k, 10.75
        boxes.append((greys[1], (x0, y0, x0 + CHAR_W - 2, y0 + 10, 0.9)))
    got = char_crops([g for g, _ in boxes], np.array([b for _, b in boxes], np.float32))
    expected = [_char_crop_alone(g, tuple(np.float32(v) for v in b)) for g, b in boxes]
    assert got.shape == (620, CHAR_H, CHAR_W) and got.dtype == np.uint8
    for k, crop in enumerate(expected):
        assert np.array_equal(got[k], crop), k
    assert char_crops([], np.zeros((0, 5), np.float32)).shape == (0, CHAR_H, CHAR_W)


def test_unknown_region_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="atlantis"):
        PlateReader(regions=("generic", "atlantis"))


def test_candidates_are_ranked_and_the_first_is_the_read(reader: PlateReader) -> None:
    import cv2

    (path, _label), = _val_crops(1)
    got = reader.read(cv2.imread(str(path)))
    assert got is not None
    assert (got.candidates[0].text, got.candidates[0].confidence) == (got.text, got.confidence)
    confs = [c.confidence for c in got.candidates]
    assert confs == sorted(confs, reverse=True) and len(confs) <= 5
    assert len({c.text for c in got.candidates}) == len(confs)
    assert all(0.0 <= c <= 1.0 for c in got.char_confidences)
    # a US plate is ranked as with generic and says whether it fits a US serial
    assert got.format_region == ("us" if fits_any(got.text, ["us"]) else "generic")


def test_batched_reads_equal_single_reads() -> None:
    """read_many (one interpreter call per model, batch sizes changing between calls, each
    with an interpreter of its own) gives exactly what reading each crop alone gives."""
    pytest.importorskip("PIL", reason="the plate renderer needs Pillow (test extra)")
    from edge_anpr.train.render import render_plate

    reader = PlateReader()
    crops = [render_plate(np.random.default_rng(seed), None).image for seed in HELD_OUT_SEEDS]
    crops.insert(3, np.zeros((4, 4), np.uint8))  # too small to read: None, others unaffected
    single = [reader.read(c) for c in crops]
    assert single[3] is None and sum(r is not None for r in single) >= 8
    for size in (4, 2, 11, 4, 1):
        assert reader.read_many(crops[:size]) == single[:size]


def test_char_groups_split_at_gaps_and_lines() -> None:
    from edge_anpr.vision.reader import char_groups

    h = 20.0
    one_line = [[x, 0, x + 10, h] for x in (0, 12, 24, 44, 56, 68)]  # NOX 218: a 10 px gap
    assert char_groups(one_line) == [0, 0, 0, 1, 1, 1]
    two_lines = [[0, 0, 10, h], [12, 0, 22, h], [0, 30, 10, 30 + h], [12, 30, 22, 30 + h]]
    assert char_groups(two_lines) == [0, 0, 1, 1]
    assert char_groups([]) == []
