"""The plate renderer (training only): determinism, boxes, reading order, country formats, and
the optional glyph pages of ../shared/data."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PIL", reason="the plate renderer needs Pillow (test extra)")

from edge_anpr.lab.datasplit import shared_data_dir
from edge_anpr.train.render import (
    FORMATS,
    LAYOUT_WEIGHTS,
    LAYOUTS,
    GlyphLibrary,
    label_regex,
    load_library,
    render_plate,
    sample_layout,
)
from edge_anpr.train.render.formats import face, label
from edge_anpr.train.render.layouts import LAYOUT_REGISTRY
from edge_anpr.train.render.typefaces import choose

NO_GLYPHS = GlyphLibrary()
OLD_LAYOUTS = ("us", "us_dark", "us_two_line", "eu", "nl", "de", "uk_front", "uk_rear",
               "br_old", "br_mercosur", "one_line")

# Formats written independently of edge_anpr/train/render/formats.py (a typo there fails here).
KNOWN_FORMATS = {
    "de": r"[A-Z]{1,3}[A-Z]{1,2}[1-9][0-9]{0,3}",
    "nl": r"[A-Z0-9]{6}",
    "fr": r"[A-HJ-NP-TV-Z]{2}[0-9]{3}[A-HJ-NP-TV-Z]{2}|[0-9]{2,4}[A-Z]{2,3}[0-9]{2}",
    "be": r"[12][A-Z]{3}[0-9]{3}|[A-Z]{3}[0-9]{3}",
    "it": r"[A-Z]{2}[0-9]{3}[A-Z]{2}|[A-Z]{2}[0-9]{5}",
    "es": r"[0-9]{4}[B-DF-HJ-NP-TV-Z]{3}",
    "cz": r"[0-9][A-Z][A-Z0-9]?[0-9]{4}",
    "sk": r"[A-Z]{2}[0-9]{3}[A-Z]{2}",
    "uk_front": r"[A-Z]{2}[0-9]{2}[A-Z]{3}|[A-Z][0-9]{3}[A-Z]{3}|[A-Z]{3}[0-9]{3}[A-Z]?",
    "ch": r"[A-Z]{2}[1-9][0-9]{0,5}",
    "br_old": r"[A-Z]{3}[0-9]{4}",
    "br_red": r"[A-Z]{3}[0-9]{4}",
    "br_moto": r"[A-Z]{3}[0-9]{4}",
    "br_mercosur": r"[A-Z]{3}[0-9][A-Z][0-9]{2}",
    "br_mercosur_moto": r"[A-Z]{3}[0-9][A-Z][0-9]{2}",
}


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _check_boxes(plate_boxes: np.ndarray, shape: tuple[int, ...], two_line: bool) -> None:
    h, w = shape[:2]
    b = plate_boxes
    assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all()
    assert (b[:, 2] <= w).all() and (b[:, 3] <= h).all()
    assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
    cy = (b[:, 1] + b[:, 3]) / 2
    heights = b[:, 3] - b[:, 1]
    # lines: a new line starts where the centre drops by more than half a character height
    starts = [0] + [i for i in range(1, len(b)) if cy[i] - cy[i - 1] > 0.5 * heights[i]]
    for i in range(1, len(b)):
        assert cy[i] - cy[i - 1] > -0.5 * heights[i], "a later box sits on an earlier line"
    assert len(starts) <= 2
    if two_line:
        assert len(starts) == 2, "a two-line plate has boxes on two lines"
        assert b[starts[1]:, 1].min() >= b[: starts[1], 3].max() - 1, "lines overlap"
    for lo, hi in zip(starts, [*starts[1:], len(b)], strict=True):
        line = b[lo:hi]
        assert (np.diff(line[:, 0]) > 0).all(), "each line reads left to right"
        assert (line[1:, 0] >= line[:-1, 2] - 1).all(), "boxes of one line do not overlap"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_renders_tight_boxes_in_reading_order(layout: str) -> None:
    spec = LAYOUT_REGISTRY[layout]
    for seed in range(3):
        p = render_plate(_rng(seed), layout, NO_GLYPHS)
        assert p.layout == layout and p.image.dtype == np.uint8 and p.image.ndim == 3
        assert len(p.text) == len(p.boxes) >= 2
        assert re.fullmatch(r"[0-9A-Z]+", p.text), p.text
        _check_boxes(p.boxes, p.image.shape, spec.two_line and layout != "us_two_line")
        # the box holds ink: its pixels differ from the plate's median colour
        x0, y0, x1, y1 = (int(v) for v in np.round(p.boxes[0]))
        inside = p.image[y0:y1, x0:x1].astype(int)
        assert np.abs(inside - np.median(p.image.reshape(-1, 3), axis=0)).max() > 60


def test_the_first_renderers_layout_names_stay() -> None:
    assert set(OLD_LAYOUTS) <= set(LAYOUTS)
    assert abs(sum(LAYOUT_WEIGHTS.values()) - 1) < 1e-9


def test_same_seed_same_plate_and_different_seeds_differ() -> None:
    for layout in (None, "us", "de_2l", "br_mercosur"):
        a, b = render_plate(_rng(5), layout, NO_GLYPHS), render_plate(_rng(5), layout, NO_GLYPHS)
        assert a.text == b.text and a.layout == b.layout
        assert np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes)
    texts = {render_plate(_rng(s), "de", NO_GLYPHS).text for s in range(10)}
    assert len(texts) >= 8


@pytest.mark.parametrize("layout", sorted(KNOWN_FORMATS))
def test_text_follows_the_countrys_format(layout: str) -> None:
    for seed in range(15):
        text = render_plate(_rng(seed), layout, NO_GLYPHS).text
        assert re.fullmatch(KNOWN_FORMATS[layout], text), (layout, text)


def test_every_country_format_matches_its_own_description() -> None:
    for country in FORMATS:
        pattern = label_regex(country)
        for seed in range(30):
            for two_line in (False, True):
                f = face(_rng(seed), country, two_line)
                assert pattern.match(label(f)), (country, f)
                assert f.count("/") == int(two_line), (country, f)


def test_dutch_plates_use_no_vowels_and_german_ones_hold_at_most_eight() -> None:
    for seed in range(20):
        nl = render_plate(_rng(seed), "nl", NO_GLYPHS).text
        assert not set(nl) & set("AEIOU"), nl
        assert len(render_plate(_rng(seed), "de", NO_GLYPHS).text) <= 8


def test_two_line_plates_put_the_first_group_on_top() -> None:
    p = render_plate(_rng(3), "br_moto", NO_GLYPHS)
    assert p.text[:3].isalpha() and p.text[3:].isdigit()
    top = p.boxes[:3, 3].max()
    assert (p.boxes[3:, 1] >= top - 1).all()


def test_sampling_follows_the_weights() -> None:
    rng = _rng(0)
    names = [sample_layout(rng) for _ in range(3000)]
    us_share = sum(n.startswith("us") for n in names) / len(names)
    expected = sum(w for n, w in LAYOUT_WEIGHTS.items() if n.startswith("us"))
    assert abs(us_share - expected) < 0.04
    assert sample_layout(_rng(1), {"nl_2l": 1.0}) == "nl_2l"
    with pytest.raises(ValueError, match="unknown plate layout"):
        render_plate(_rng(0), "atlantis")


def _pages() -> Path:
    data = shared_data_dir()
    pages = data / "chars" / "glyph-pages" if data else None
    if pages is None or not pages.is_dir():
        pytest.skip("../shared/data/chars/glyph-pages is absent (real data not in the repo)")
    return pages


def test_missing_glyph_pages_give_an_empty_library(tmp_path: Path) -> None:
    assert load_library(tmp_path / "absent", tmp_path).names() == ()
    assert load_library(None).names() == ()


def test_glyph_pages_give_real_plate_fonts_cached_outside_the_repo(tmp_path: Path) -> None:
    pages = tmp_path / "pages"  # three of the pages keep the test fast
    pages.mkdir()
    for name in ("leu.germany.exp0", "leu.netherlands.exp0", "leu.belgium.exp0"):
        for ext in (".tif", ".box"):
            (pages / (name + ext)).write_bytes((_pages() / (name + ext)).read_bytes())
    cache = tmp_path / "cache"
    lib = load_library(pages, cache)
    assert lib.names() == ("belgium", "germany", "netherlands")
    assert lib.covers("germany", "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    assert lib.covers("netherlands", "0123456789BDFGHJKLNPRSTVXZ")
    assert all(m.shape[0] == 64 for ms in lib.fonts["germany"].values() for m in ms)
    assert len(list(cache.glob("glyphs_*.npz"))) == 3
    again = load_library(pages, cache)  # from the cache: the same masks
    assert np.array_equal(again.fonts["belgium"]["A"][0], lib.fonts["belgium"]["A"][0])
    # a country's plates are drawn with its own glyphs most of the time
    pairs = (("de", "page:germany"), ("nl", "page:netherlands"), ("be", "page:belgium"))
    for family, font in pairs:
        names = [choose(_rng(s), family, "BDF123", lib).name for s in range(200)]
        assert 0.65 < names.count(font) / len(names) < 0.95, family
    assert all(choose(_rng(s), "uk", "ABC", NO_GLYPHS).name.endswith((".ttf", ".otf"))
               for s in range(10))
    for seed in range(6):
        p = render_plate(_rng(seed), "de", lib)
        assert re.fullmatch(KNOWN_FORMATS["de"], p.text)
        _check_boxes(p.boxes, p.image.shape, False)
    for layout in ("nl_2l", "uk_rear", "br_old", "br_mercosur_moto", "be", "fr_2l", "de_2l"):
        p = render_plate(_rng(1), layout, lib)
        _check_boxes(p.boxes, p.image.shape, layout.endswith(("_2l", "_moto")))
