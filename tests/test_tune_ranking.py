"""The ranking-constants tool: a setting changes the re-ranked reads as its constants say."""

from __future__ import annotations

import edge_anpr.plates.formats as formats
from edge_anpr.lab.tune_ranking import Item, score


def test_each_setting_reranks_with_its_own_constants() -> None:
    # a Brazilian plate whose second character the classifier is sure (0.97) is a 0: only a
    # setting without the swap bound makes it the O the br format demands
    sure_zero = [[(c, 0.99)] for c in "A"] + [[("0", 0.97), ("O", 0.02)]] + [
        [(c, 0.99)] for c in "M1631"]
    items: list[Item] = [("br/configured", "AOM1631", sure_zero, ("br",))]
    shipped = (formats.SWAP_MAX_P, formats.OFF_FORMAT_PENALTY, formats.GENERIC_FORMAT_PRIOR)
    try:
        assert score(items, 1.0, 0.8, 0.9) == {"br/configured": 1.0}
        assert score(items, 0.95, 0.8, 0.9) == {"br/configured": 0.0}
    finally:
        formats.SWAP_MAX_P, formats.OFF_FORMAT_PENALTY, formats.GENERIC_FORMAT_PRIOR = shipped
