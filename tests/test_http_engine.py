"""Plate Recognizer's engine ``config`` (``http.engine``) and what the answer makes of it
(``routes.engine_filter``), with plain calls: every option Plate Recognizer documents is taken
or refused with a 400 naming it; ``region: strict`` answers only readings that fit a format of
the regions read with; the thresholds leave out weak plates."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_anpr.assets import DEMO_DIR
from edge_anpr.config import Config, config_from_dict, config_warnings
from edge_anpr.http.engine import EngineConfig, parse_engine_config
from edge_anpr.http.routes import Job, Reply, answer, engine_filter, prepare
from edge_anpr.http.uploads import BadUpload
from edge_anpr.values import Candidate, PlateRead, PlateText
from edge_anpr.vision.jobs import JobResult

JPEG = (DEMO_DIR / "frame_00.jpg").read_bytes()


def read(*readings: tuple[str, float], box_score: float = 0.99) -> PlateRead:
    text, conf = readings[0]
    return PlateRead(
        PlateText(text, conf, (), tuple(Candidate(t, c) for t, c in readings), "generic"),
        (10, 20, 100, 30), detector_score=box_score,
    )


@pytest.mark.parametrize("value, expected", [
    (None, EngineConfig()),
    ("", EngineConfig()),
    ("{}", EngineConfig()),
    ('{"region": "strict"}', EngineConfig(region_strict=True)),
    ({"detection_mode": "vehicle"}, EngineConfig(vehicle_mode=True)),
    ('{"detection_mode": "plate", "threshold_d": 0.2, "threshold_o": 0.5}',
     EngineConfig(threshold_d=0.2, threshold_o=0.5)),
    ('{"detection_rule": "strict", "mode": "fast"}', EngineConfig()),
])
def test_documented_options_are_taken(value: Any, expected: EngineConfig) -> None:
    assert parse_engine_config(value) == expected


@pytest.mark.parametrize("value, named", [
    ('{"text_formats": ["[a-z]{3}"]}', "config.text_formats"),
    ('{"region": "loose"}', "config.region"),
    ('{"detection_mode": "car"}', "config.detection_mode"),
    ('{"threshold_d": 2}', "config.threshold_d"),
    ('{"threshold_o": true}', "config.threshold_o"),
    ('{"mode": "slow"}', "config.mode"),
    ("[1, 2]", "config"),
    ("{not json", "config"),
])
def test_anything_else_is_a_400_naming_the_option(value: str, named: str) -> None:
    with pytest.raises(BadUpload) as caught:
        parse_engine_config(value)
    assert caught.value.status == 400 and caught.value.detail.startswith(named)


def test_strict_keeps_only_plates_whose_reading_fits_and_their_fitting_candidates() -> None:
    strict = EngineConfig(region_strict=True)
    plates = [
        read(("2FE5568", 1.0), ("ZFE5568", 0.906)),   # the plate's reading fits no uk format
        read(("1234567", 0.98), ("12345678", 0.5)),   # nor this one
        read(("AB12CDE", 0.97), ("AB12CD3", 0.4)),    # fits; its second candidate does not
    ]
    kept = engine_filter(plates, strict, ("uk",))
    assert [(r.text.text, r.text.confidence) for r in kept] == [("AB12CDE", 0.97)]
    assert [c.text for c in kept[0].text.candidates] == ["AB12CDE"]
    # without a region of its own there is nothing to fit: nothing is left out
    assert engine_filter(plates, strict, ("generic",)) == plates
    assert engine_filter(plates, EngineConfig(), ("uk",)) == plates


def test_thresholds_leave_out_weak_plates() -> None:
    # AB12CDG's box is weak: dscore 0.30 under the calibrated map (http.shapes.DSCORE_A, _B)
    plates = [read(("AB12CDE", 0.97)), read(("AB12CDF", 0.4)),
              read(("AB12CDG", 0.97), box_score=-1.0)]
    kept = engine_filter(plates, EngineConfig(threshold_o=0.5, threshold_d=0.5), ("uk",))
    assert [r.text.text for r in kept] == ["AB12CDE"]


def test_a_form_config_field_reaches_the_answer() -> None:
    """The Home Assistant component sends ``config`` as a JSON text in a multipart field."""
    request = httpx.Request("POST", "http://a/v1/plate-reader/", files={"upload": JPEG},
                            data={"regions": "gb", "config": json.dumps({"region": "strict"})})
    cfg = config_from_dict({})
    job = prepare("plate_reader", request.read(), request.headers["content-type"], "", cfg)
    assert isinstance(job, Job) and job.engine.region_strict and job.regions == ("gb",)
    result = JobResult("read", (read(("2FE5568", 1.0)), read(("AB12CDE", 0.97))), 5.0)
    doc = json.loads(answer(job, result, cfg, now_s=0, calls=7).body)
    assert [r["plate"] for r in doc["results"]] == ["ab12cde"]
    assert doc["usage"]["calls"] == 7


def test_an_unsupported_option_is_refused_before_anything_is_read() -> None:
    request = httpx.Request("POST", "http://a/v1/plate-reader/", json={
        "upload": "AAAA", "config": {"text_formats": ["x"]}})
    reply = prepare("plate_reader", request.read(), "application/json", "", Config())
    assert isinstance(reply, Reply) and reply.status == 400
    assert json.loads(reply.body)["detail"].startswith("config.text_formats")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["region", "detection_mode", "threshold_d", "threshold_o", "mode",
                         "detection_rule", "x"]), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES, as_text=st.booleans())
def test_any_config_is_options_or_a_400(value: Any, as_text: bool) -> None:
    try:
        options = parse_engine_config(json.dumps(value) if as_text else value)
    except BadUpload as exc:
        assert exc.status == 400 and exc.detail.startswith("config")
    else:
        assert isinstance(options, EngineConfig)


def test_allowing_every_address_is_warned() -> None:
    cfg = config_from_dict({"http": {"port": 8080, "token": "t" * 20, "allow": ["0.0.0.0/0"]}})
    assert any("every address" in w for w in config_warnings(cfg))
    default = config_from_dict({"http": {"port": 8080, "token": "t" * 20}})
    assert not any("http.allow" in w for w in config_warnings(default))
