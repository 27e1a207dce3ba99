"""`edge-anpr bench serve --stand-in`'s recognizer: it must answer as the real one does and cost
what it costs, or the ceiling it measures is that of another pipeline."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_anpr.assets import demo_jpegs
from edge_anpr.cli import main
from edge_anpr.config import Config
from edge_anpr.lab.standin import (
    CALIBRATION_PASSES,
    Calibration,
    calibrate,
    cpu_ms_per_frame,
)
from edge_anpr.vision.recognize import FrameRecognizer


@pytest.fixture(scope="module")
def calibration() -> Calibration:
    return calibrate(Config(), demo_jpegs())


def test_the_stand_in_answers_each_demo_frame_with_the_real_recognizers_reads(
    calibration: Calibration,
) -> None:
    jpegs = demo_jpegs()
    real = FrameRecognizer(Config())
    stand_in = calibration.factory()()
    found_any = False
    for jpeg in jpegs:
        expected = real.recognize_jpeg(jpeg)
        assert stand_in.recognize_jpeg(jpeg) == expected
        found_any = found_any or bool(expected)
    assert found_any, "the demo frames gave no reads: the comparison above proved nothing"
    # A frame the calibration never saw gets no reads; bytes that are no image get None, as
    # from FrameRecognizer.
    noise = np.random.default_rng(1).integers(0, 256, (720, 1280), dtype=np.uint8)
    ok, other = cv2.imencode(".jpg", noise)
    assert ok
    assert stand_in.recognize_jpeg(other.tobytes()) == []
    assert stand_in.recognize_jpeg(b"not a jpeg") is None
    assert real.recognize_jpeg(b"not a jpeg") is None


def test_the_stand_in_costs_the_real_recognizers_cpu_per_frame(
    calibration: Calibration,
) -> None:
    assert calibration.chunks > 0
    assert calibration.stand_in_ms == pytest.approx(calibration.real_ms, rel=0.25)
    # Measured again, apart from the calibration, each against the real recognizer measured
    # right after it: the two then run under the same load from the other tests (a fixed
    # figure from earlier drifts with it), and the median of three pairs is compared.
    stand_in, real = calibration.factory()(), FrameRecognizer(Config())
    ratios = sorted(
        cpu_ms_per_frame(stand_in, demo_jpegs(), CALIBRATION_PASSES)
        / cpu_ms_per_frame(real, demo_jpegs(), CALIBRATION_PASSES)
        for _ in range(3)
    )
    assert ratios[1] == pytest.approx(1.0, rel=0.25), ratios


def test_stand_in_is_refused_for_other_benches(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["bench", "scaling", "--stand-in"])
    assert stopped.value.code == 2
    assert "--stand-in is for `bench serve` only" in capsys.readouterr().err
