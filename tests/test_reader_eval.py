"""eval-crops and bench read: figures computed from a labelled folder, honest failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_anpr.cli import main
from edge_anpr.lab.eval_crops import CropScore
from edge_anpr.plates.known import edit_distance
from edge_anpr.values import Candidate, PlateText


def test_edit_distance() -> None:
    assert edit_distance("ABC123", "ABC123") == 0
    assert edit_distance("ABC123", "ABC12") == 1
    assert edit_distance("ABC123", "XABC123") == 1
    assert edit_distance("", "AB") == 2
    assert edit_distance("AB", "BA") == 2


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
    for i, seed in enumerate(range(1_000_100, 1_000_106)):
        plate = render_plate(np.random.default_rng(seed), "us")
        grey, _ = plain_crop(plate)
        cv2.imwrite(str(tmp_path / f"r{i}.png"), grey)
        rows.append(f"r{i}.png,xx,{plate.text}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    assert main(["eval-crops", str(tmp_path), "--split", "all"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["split"] == "all" and result["images"] == 6
    assert result["exact_accuracy"] >= 0.83, out  # at least 5 of 6


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
