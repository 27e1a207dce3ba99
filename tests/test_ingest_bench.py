"""`edge-anpr bench ingest`, small: a second process sends, every frame arrives intact."""

from __future__ import annotations

import json

import pytest

from edge_anpr.cli import main


@pytest.mark.parametrize("wire_format", ["sequenced", "legacy"])
def test_bench_ingest_small_run_reports_every_frame(
    wire_format: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "ingest", "--frames", "60", "--frame-bytes", "20000",
                 "--format", wire_format]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["format"] == wire_format
    assert result["frames_sent"] == result["frames_completed"] == 60
    assert result["frames_corrupt"] == 0 and result["drops"] == {}
    assert result["datagrams_received"] == result["datagrams_sent"]
    assert result["frames_per_s"] > 0 and result["reassembly_latency_ms_median"] >= 0
    assert "throughput" in out  # the readable table precedes the JSON line
