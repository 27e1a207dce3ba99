"""The Platt fit behind ``dscore`` (``lab.calibrate_dscore.fit_platt``), with plain calls: it
recovers a known map from a sample drawn from it, stays finite on a separable sample, and the
shipped constants are the fit of docs/performance.md's command (the figure is reproduced by
``edge-anpr calibrate-dscore``, not here: it needs ../shared/data)."""

from __future__ import annotations

import math
import random

import pytest

from edge_anpr.http.shapes import DSCORE_A, DSCORE_B, detector_score
from edge_anpr.lab.calibrate_dscore import fit_platt, probability


def test_recovers_a_known_map() -> None:
    rng = random.Random(7)
    a, b = 5.0, -2.0
    scores = [rng.random() for _ in range(20000)]
    labels = [rng.random() < probability(s, a, b) for s in scores]
    fa, fb = fit_platt(scores, labels, ridge=0.0)
    assert fa == pytest.approx(a, abs=0.3) and fb == pytest.approx(b, abs=0.2)


def test_a_separable_sample_gives_a_finite_increasing_map() -> None:
    scores = [0.5, 0.6, 0.9, 0.95, 0.99]
    a, b = fit_platt(scores, [False, False, True, True, True])
    assert math.isfinite(a) and math.isfinite(b) and a > 0
    with pytest.raises(ValueError):
        fit_platt([], [])


def test_the_answer_uses_the_shipped_map() -> None:
    for s in (0.0, 0.5, 0.9, 1.0):
        assert detector_score(s) == pytest.approx(probability(s, DSCORE_A, DSCORE_B))
