"""Training entry point: ``python -m edge_anpr.train SUBCOMMAND`` (training venv only).

Each sub-command is one line in ``COMMANDS``: a module under ``edge_anpr.train`` whose
``main(argv)`` does the work. ``all`` runs the steps of ``ALL_STEPS`` in order (what
``make train`` calls). Nothing here is imported by the appliance at run time, and none of it
is in the wheel: training runs in a checkout with the ``[train]`` extra installed, and a missing
extra is one line that names it (``TRAIN_EXTRA``), not a traceback.
"""

from __future__ import annotations

import importlib
import sys

from edge_anpr.train.cache import CACHE as _CACHE

COMMANDS = {
    "reader": "edge_anpr.train.reader",  # segmenter + character classifier -> *.tflite
    "mine": "edge_anpr.train.mine",  # real character/junk boxes from the training split
    "detector": "edge_anpr.train.detector",  # HoG + linear SVMs -> plate_hog.npz
    "refiner": "edge_anpr.train.refiner",  # proposal verifier + box refiner -> plate_refiner.tflite
    "finder": "edge_anpr.train.finder",  # full-frame plate proposals -> plate_finder.tflite
    "region": "edge_anpr.train.region",  # plate region (country, US state) -> region.tflite
    "demo_frames": "edge_anpr.train.demo_frames",  # edge_anpr/assets/demo/*.jpg + expected.json
}

ALL_STEPS: list[tuple[str, list[str]]] = [
    # reader, round 1: segmenter from scratch on rendered plates, classifier on rendered plates
    # and the real crops whose segment count equals their label's length
    ("reader", ["--seg-epochs", "6", "--cls-epochs", "6", "--finetune-epochs", "3"]),
    # real character and junk boxes of every labelled training crop, with the round-1 models
    ("mine", []),
    # reader, round 2: the round-1 segmenter fine-tuned on the mined boxes, the classifier
    # trained again on rendered plates and the mined real characters, each source balanced
    ("reader", ["--init-segmenter", f"{_CACHE}/seg_final.keras", "--seg-epochs", "0",
                "--cls-epochs", "6", "--finetune-epochs", "3"]),
    # detector: HoG + linear SVMs on the training split of the scenes
    ("detector", []),
    # refiner, round 1: verifies and re-boxes the detector's proposals (needs the detector)
    ("refiner", []),
    # finder: full-frame plate proposals (its ignore boxes come from the cascade above), 16
    # epochs, then 12 more from the checkpoint (a warm restart of the cosine schedule)
    ("finder", []),
    ("finder", ["--resume", "--epochs", "28"]),
    # refiner, round 2: the HoG scanner's and the finder's proposals
    ("refiner", ["--finder", "edge_anpr/models/plate_finder.tflite"]),
    # refiner, round 3: hard negatives mined with round 2 and the finder, twice the jittered
    # windows per scenes-ro plate
    ("refiner", ["--finder", "edge_anpr/models/plate_finder.tflite", "--ro-jitters", "48",
                 "--mine", "edge_anpr/models/plate_refiner.tflite"]),
    # refiner, round 4 (shipped): one more epoch of round 3 at a low rate with 3,000 rendered
    # plates pasted in, so plate styles the real crops lack stay plates
    ("refiner", ["--finder", "edge_anpr/models/plate_finder.tflite", "--ro-jitters", "48",
                 "--rendered", "3000", "--resume", "--resume-lr", "1e-4", "--epochs", "1"]),
    # the plate's region (country, US state) from the crop
    ("region", []),
    # demo frames drawn last, so they are checked against the models just trained
    ("demo_frames", []),
]


TRAIN_EXTRA = ("tensorflow", "keras", "PIL")
"""Top-level modules that only the ``[train]`` extra installs (TensorFlow, Pillow)."""


def main(argv: list[str] | None = None) -> int:
    try:
        return _dispatch(sys.argv[1:] if argv is None else argv)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in TRAIN_EXTRA:
            raise
        print(f"python -m edge_anpr.train: needs the [train] extra ({exc.name} is missing): "
              "make train, or pip install -e '.[train]' in the checkout", file=sys.stderr)
        return 2


def _dispatch(args: list[str]) -> int:
    if args and args[0] == "all":
        for name, step_args in ALL_STEPS:
            print(f"== {name} {' '.join(step_args)}", file=sys.stderr, flush=True)
            code = int(importlib.import_module(COMMANDS[name]).main(step_args))
            if code:
                return code
        return 0
    if not args or args[0] not in COMMANDS:
        print(f"usage: python -m edge_anpr.train {{{','.join([*COMMANDS, 'all'])}}} [options]",
              file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[args[0]])
    return int(module.main(args[1:]))


if __name__ == "__main__":
    raise SystemExit(main())
