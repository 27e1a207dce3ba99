"""Training entry point: ``python -m edge_anpr.train SUBCOMMAND`` (training venv only).

Each sub-command is one line in ``COMMANDS``: a module under ``edge_anpr.train`` whose
``main(argv)`` does the work. Nothing here is imported by the appliance at run time.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "reader": "edge_anpr.train.reader",  # segmenter + character classifier -> models/*.tflite
    "mine": "edge_anpr.train.mine",  # real character/junk boxes from the training split
    "detector": "edge_anpr.train.detector",  # HoG + linear SVMs -> models/plate_hog.npz
    "demo_frames": "edge_anpr.train.demo_frames",  # edge_anpr/demo/*.jpg + expected.json
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in COMMANDS:
        print(f"usage: python -m edge_anpr.train {{{','.join(COMMANDS)}}} [options]",
              file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[args[0]])
    return int(module.main(args[1:]))


if __name__ == "__main__":
    raise SystemExit(main())
