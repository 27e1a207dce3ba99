"""Choose the ranking constants on the training split: ``python -m edge_anpr.lab.tune_ranking``.

Every TRAINING crop of the US and Brazilian folders and every plate of the training scenes (cut
at its labelled box with a 15% margin, as ``eval-crops --scenes`` cuts) is read once with the
shipped models, with the camera's regions (``data/eval-scenes.toml``; the US crops with ``us``,
the Brazilian with ``br``) and with ``generic``; the reader's per-character alternatives are
kept, and ``plates.formats.rank_candidates`` ranks them again for each setting of
``SWAP_MAX_P``, ``OFF_FORMAT_PENALTY`` and ``GENERIC_FORMAT_PRIOR`` (module constants, set for
the run). Printed: exact reads per set and mode for each setting, and their summed rates (what
``docs/performance.md`` "Ranking" quotes). Validation items are never opened.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

import edge_anpr.plates.formats as formats
from edge_anpr.config import load_config
from edge_anpr.errors import ConfigError
from edge_anpr.lab.datasplit import plate_in_split, shared_data_dir
from edge_anpr.lab.eval_crops import crops_of_scenes
from edge_anpr.lab.labels import labelled_rows
from edge_anpr.lab.progress import show_progress
from edge_anpr.values import NO_REGION, PlateRegion, PlateText
from edge_anpr.vision.reader import PlateReader

Item = tuple[str, str, list[list[tuple[str, float]]], tuple[str, ...]]
"""(set and mode, label, the reader's alternatives, the regions they were ranked with)."""
REPO = Path(__file__).resolve().parents[2]


class _Recording(PlateReader):
    """A reader that keeps the alternatives and regions of its last ranking."""

    last: tuple[list[list[tuple[str, float]]], tuple[str, ...]] | None = None

    def _text(
        self, alternatives: list[list[tuple[str, float]]], rows: list[list[float]],
        regions: Sequence[str], origin: PlateRegion = NO_REGION,
        us: tuple[str, ...] | None = None, us_ranked: bool = False,
    ) -> PlateText:
        self.last = (alternatives, tuple(regions))
        return super()._text(alternatives, rows, regions, origin, us, us_ranked)


def collect(data: Path) -> list[Item]:
    """The training items' alternatives (see the module docstring)."""
    cfg = load_config(REPO / "data" / "eval-scenes.toml")
    reader = _Recording()
    sources: list[tuple[str, NDArray[np.uint8] | None, str, tuple[str, ...]]] = []
    folders: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("plate-crops", ("us",)), ("plate-crops-br", ("br",)),
    )
    for folder, regions in folders:
        rows, _ = labelled_rows(data / folder)
        sources += [(folder, _image(data / folder / name), plate, regions)
                    for name, plate in rows if plate_in_split(plate, "train")]
    sources += [(f"scenes-{crop.group}", image, crop.label, cfg.regions_of(crop.group))
                for crop, image in crops_of_scenes(data / "scenes", "train", 0.15)]
    items: list[Item] = []
    for done, (name, image, label, regions) in enumerate(sources, 1):
        show_progress(done, len(sources), "training plates", final=done == len(sources))
        if image is None:
            continue
        modes: tuple[tuple[str, tuple[str, ...]], ...] = (
            ("configured", regions), ("generic", ("generic",)),
        )
        for mode, asked in modes:
            reader.last = None
            reader.read(image, asked)
            if reader.last is None:  # nothing read: a miss
                items.append((f"{name}/{mode}", label, [], asked))
            else:
                items.append((f"{name}/{mode}", label, *reader.last))
    return items


def _image(path: Path) -> NDArray[np.uint8] | None:
    image = cv2.imread(str(path))
    return None if image is None else np.asarray(image, np.uint8)


def score(items: list[Item], swap: float, off: float, prior: float) -> dict[str, float]:
    """Exact-read rate per set and mode with the given constants."""
    formats.SWAP_MAX_P, formats.OFF_FORMAT_PENALTY = swap, off
    formats.GENERIC_FORMAT_PRIOR = prior
    tally: dict[str, list[int]] = {}
    for key, label, alternatives, regions in items:
        counts = tally.setdefault(key, [0, 0])
        counts[1] += 1
        if alternatives:
            counts[0] += formats.rank_candidates(alternatives, regions, 5)[0].text == label
    return {key: right / n for key, (right, n) in sorted(tally.items())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_anpr.lab.tune_ranking")
    ap.add_argument("--swap", type=float, nargs="+", default=[1.0, 0.99, 0.95, 0.9])
    ap.add_argument("--off", type=float, nargs="+", default=[0.6, 0.8, 0.9, 0.95])
    ap.add_argument("--prior", type=float, nargs="+", default=[0.7, 0.8, 0.9])
    args = ap.parse_args(argv)
    data = shared_data_dir(REPO)
    if data is None:
        raise ConfigError("no ../shared/data beside the repository")
    items = collect(data)
    shipped = (formats.SWAP_MAX_P, formats.OFF_FORMAT_PENALTY, formats.GENERIC_FORMAT_PRIOR)
    try:
        for swap, off, prior in itertools.product(args.swap, args.off, args.prior):
            rates = score(items, swap, off, prior)
            print(f"swap {swap} off {off} prior {prior}: sum {sum(rates.values()):.3f}  "
                  + " ".join(f"{key} {rate:.3f}" for key, rate in rates.items()), flush=True)
    finally:
        formats.SWAP_MAX_P, formats.OFF_FORMAT_PENALTY, formats.GENERIC_FORMAT_PRIOR = shipped
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
