"""eval-crops and bench read: figures computed from a labelled folder, honest failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_anpr.cli import main
from edge_anpr.errors import ConfigError
from edge_anpr.lab.eval_crops import CropScore, cut_with_margin, edit_ops
from edge_anpr.lab.labels import labelled_rows, read_label_rows
from edge_anpr.plates.known import edit_distance
from edge_anpr.values import Candidate, PlateText


def test_edit_distance() -> None:
    assert edit_distance("ABC123", "ABC123") == 0
    assert edit_distance("ABC123", "ABC12") == 1
    assert edit_distance("ABC123", "XABC123") == 1
    assert edit_distance("", "AB") == 2
    assert edit_distance("AB", "BA") == 2


PLATES = st.text(alphabet="AB01", max_size=8)


@given(PLATES, PLATES)
def test_edit_ops_are_a_shortest_edit_script(label: str, read: str) -> None:
    ops = edit_ops(label, read)
    assert len(ops) == edit_distance(label, read)
    assert all((a or b) and a != b for a, b in ops)
    # the label's dropped and substituted characters, and the read's added ones, in order
    assert sum(1 for a, _ in ops if a) <= len(label)
    assert sum(1 for _, b in ops if b) <= len(read)


def test_edit_ops_name_the_costly_confusions() -> None:
    assert edit_ops("ABC6", "ABC5") == [("6", "5")]
    assert edit_ops("HTC5822", "MTC5822") == [("H", "M")]
    assert edit_ops("AWZ6498", "AIWZ6498") == [("", "I")]
    assert edit_ops("L781601", "781601") == [("L", "")]
    s = CropScore()
    s.add("a.png", "ABC6", _text("ABC5"), 1.0)
    s.add("b.png", "XYZ6", _text("XYZ5"), 1.0)
    s.add("c.png", "Q1", _text("Q"), 1.0)
    assert s.top_confusions()[:2] == [("6>5", 2), ("1>-", 1)]


def test_labels_csv_with_a_header_or_the_us_layout(tmp_path: Path) -> None:
    with_header = tmp_path / "h.csv"
    with_header.write_text("source,Plate,FILE\nx,abc1234,a.jpg\ny,QQQ0000,b.jpg\n")
    assert read_label_rows(with_header) == [("a.jpg", "ABC1234"), ("b.jpg", "QQQ0000")]
    us = tmp_path / "us.csv"
    us.write_text("ak1165.png,ak,FUW999\n")
    assert read_label_rows(us) == [("ak1165.png", "FUW999")]
    no_plate = tmp_path / "bad.csv"
    no_plate.write_text("file,text\na.jpg,ABC\n")
    with pytest.raises(ConfigError, match="plate"):
        read_label_rows(no_plate)


def test_the_label_review_corrects_and_leaves_out(tmp_path: Path) -> None:
    folder = tmp_path / "crops"
    folder.mkdir()
    (folder / "labels.csv").write_text(
        "file,plate\na.jpg,HIV2D20\nb.jpg,ABC1234\nc.jpg,XYZ9999\n"
    )
    reviews = tmp_path / "review"
    reviews.mkdir()
    (reviews / "crops.csv").write_text(
        "file,label,reviewed,reason\na.jpg,HIV2D20,HIV2120,the plate shows 1\n"
        "c.jpg,XYZ9999,,unreadable\n"
    )
    rows, review = labelled_rows(folder, review_dir=reviews)
    assert rows == [("a.jpg", "HIV2120"), ("b.jpg", "ABC1234")]
    assert review.corrected == {"a.jpg": "HIV2120"} and review.excluded == {"c.jpg"}
    raw, _ = labelled_rows(folder, raw=True, review_dir=reviews)
    assert raw == [("a.jpg", "HIV2D20"), ("b.jpg", "ABC1234"), ("c.jpg", "XYZ9999")]


def test_the_review_corrects_one_plate_of_a_scene(tmp_path: Path) -> None:
    from edge_anpr.lab.scenes import find_scenes

    scenes = tmp_path / "scenes"
    (scenes / "eu").mkdir(parents=True)
    (scenes / "eu" / "a.jpg").write_bytes(b"")
    (scenes / "eu" / "a.txt").write_text("a.jpg 1 2 30 10 RKO26AJ\na.jpg 50 2 30 10 BA123CD\n")
    reviews = tmp_path / "review"
    reviews.mkdir()
    (reviews / "scenes.csv").write_text("file,label,reviewed,reason\neu/a.jpg,RKO26AJ,RK026AJ,x\n")
    (found,) = find_scenes(scenes, review_dir=reviews)
    assert [p.text for p in found.plates] == ["RK026AJ", "BA123CD"]
    (raw,) = find_scenes(scenes, raw=True, review_dir=reviews)
    assert [p.text for p in raw.plates] == ["RKO26AJ", "BA123CD"]


def test_cut_with_margin_grows_the_box_and_clips_to_the_image() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    crop = cut_with_margin(image, (50, 40, 100, 20), 0.1)
    assert crop is not None and crop.shape[:2] == (24, 120)
    edge = cut_with_margin(image, (0, 90, 40, 20), 0.5)
    assert edge is not None and edge.shape[:2] == (20, 60)
    assert cut_with_margin(image, (300, 300, 10, 10), 0.1) is None


def test_eval_crops_cuts_scene_boxes_and_reads_them_per_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("PIL", reason="the plate renderer needs Pillow (test extra)")
    import cv2

    from edge_anpr.train.augment import plain_crop
    from edge_anpr.train.render import render_plate

    folder = tmp_path / "us"
    folder.mkdir()
    texts = []
    for i, seed in enumerate(range(1_000_200, 1_000_204)):
        plate = render_plate(np.random.default_rng(seed), "us")
        grey, _ = plain_crop(plate)
        scene = np.full((400, 640), 90, np.uint8)
        h, w = grey.shape
        scene[150 : 150 + h, 200 : 200 + w] = grey
        cv2.imwrite(str(folder / f"s{i}.jpg"), scene, [cv2.IMWRITE_JPEG_QUALITY, 95])
        (folder / f"s{i}.txt").write_text(f"s{i}.jpg 200 150 {w} {h} {plate.text}\n")
        texts.append(plate.text)
    assert main(["eval-crops", str(tmp_path), "--scenes", "--split", "all"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert set(result["groups"]) == {"us"} and result["images"] == 4
    assert result["exact_accuracy"] >= 0.75, out  # at least 3 of 4
    assert "confusions that cost most" in out
    # every plate is binned once (a scene's by its labelled box's width)
    bins = result["exact_by_width"]
    assert sum(b["crops"] for b in bins.values()) == 4


def _text(text: str, *alts: str) -> PlateText:
    cands = tuple(Candidate(t, 0.5) for t in (text, *alts))
    return PlateText(text, 0.5, (0.5,) * len(text), cands, "generic")


def test_crop_score_counts_exact_top_n_and_characters() -> None:
    s = CropScore()
    s.add("a.png", "ABC123", _text("ABC123"), 1.0)
    s.add("b.png", "ABC123", _text("ABC128", "ABC123"), 2.0)  # right in the top-N only
    s.add("c.png", "XYZ9", _text("XYZ99"), 3.0)  # one extra character
    s.add("d.png", "Q1", None, 4.0)
    out = s.summary()
    assert out["images"] == 4
    assert out["exact_accuracy"] == 0.25
    assert out["top_n_accuracy"] == 0.5
    assert out["same_length_reads"] == 2
    assert out["char_accuracy_aligned"] == round(11 / 12, 4)
    assert out["char_accuracy_edit"] == round(1 - (0 + 1 + 1 + 2) / 18, 4)
    assert out["no_read"] == 1
    assert out["median_ms"] == 2.5
    assert [f[0] for f in s.failures] == ["b.png", "c.png", "d.png"]


def test_eval_crops_on_a_rendered_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("PIL", reason="the plate renderer needs Pillow (test extra)")
    import cv2

    from edge_anpr.train.augment import plain_crop
    from edge_anpr.train.render import render_plate

    rows = []
    for i, seed in enumerate(range(1_000_100, 1_000_112)):
        plate = render_plate(np.random.default_rng(seed), "us")
        grey, _ = plain_crop(plate)
        cv2.imwrite(str(tmp_path / f"r{i}.png"), grey)
        rows.append(f"r{i}.png,xx,{plate.text}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    assert main(["eval-crops", str(tmp_path), "--split", "all"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["split"] == "all" and result["images"] == 12
    assert result["exact_accuracy"] >= 0.75, out  # at least 9 of 12 (the reader reads 10)
    # every crop lands in the bin of its width, and the bins add up to the whole
    widths = [cv2.imread(str(tmp_path / f"r{i}.png")).shape[1] for i in range(12)]
    bins = result["exact_by_width"]
    assert sum(b["crops"] for b in bins.values()) == 12
    assert sum(b["exact"] for b in bins.values()) == round(result["exact_accuracy"] * 12)
    assert bins[">160"]["crops"] == sum(w >= 160 for w in widths)
    assert "exact by plate width (px): " in out


def test_eval_crops_shrink_to_reads_each_plate_at_that_width(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import cv2

    from edge_anpr.lab.eval_crops import shrunk

    image = np.random.default_rng(1).integers(0, 256, (100, 400, 3), dtype=np.uint8)
    small = shrunk(image, 0.2)
    assert small.shape == (20, 80, 3) and small.dtype == np.uint8
    (tmp_path / "a.png").write_bytes(cv2.imencode(".png", image)[1].tobytes())
    (tmp_path / "b.png").write_bytes(cv2.imencode(".png", image[:, :60])[1].tobytes())
    (tmp_path / "labels.csv").write_text("a.png,xx,ABC123\nb.png,xx,XYZ987\n")
    assert main(["eval-crops", str(tmp_path), "--split", "all", "--shrink-to", "70"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # the wide crop is read 70 px wide, the narrower one as it is
    assert result["shrink_to"] == 70
    assert result["exact_by_width"]["64-100"]["crops"] == 1
    assert result["exact_by_width"]["<64"]["crops"] == 1
    assert main(["eval-crops", str(tmp_path), "--shrink-to", "8"]) == 2


def test_eval_crops_without_labels_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval-crops", str(tmp_path)]) == 2
    assert "labels.csv" in capsys.readouterr().err


def test_bench_read_reports_stage_medians(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "read", "--frames", "20"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["reads"] == 20
    assert 0 < result["segment_median_ms"] < result["total_median_ms"]
    assert 0 < result["classify_median_ms"] < result["total_median_ms"]
    assert 0 < result["segmenter_bytes"] < 1_000_000
