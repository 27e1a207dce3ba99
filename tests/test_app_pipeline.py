"""The whole pipeline in this process: what it sets up for its life, and gives back after."""

from __future__ import annotations

import sys

import pytest

from edge_anpr.app import running_pipeline
from edge_anpr.config import config_from_dict


@pytest.mark.parametrize("interval_ms", [0.1, 2.0])
async def test_gil_switch_interval_is_the_configured_one_while_running_and_restored_after(
    interval_ms: float,
) -> None:
    cfg = config_from_dict({
        "ingest": {"bind": "127.0.0.1", "port": 0},
        "workers": {"count": 1, "gil_switch_interval_ms": interval_ms},
        "mqtt": {"enabled": False},
    })
    before = sys.getswitchinterval()
    assert before != pytest.approx(interval_ms / 1000)
    async with running_pipeline(cfg) as (pipeline, _):
        assert sys.getswitchinterval() == pytest.approx(interval_ms / 1000)
        pipeline.stop()
    assert sys.getswitchinterval() == before
