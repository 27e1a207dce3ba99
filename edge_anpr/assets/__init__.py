"""Package data and its one accessor: the bundled demo frames.

The frames in ``assets/demo/`` are rendered by ``edge_anpr/train/demo_frames.py`` (never real
photographs); ``expected.json`` maps each file to the plates it shows. ``edge-anpr demo``, the
benches and the tests all reach them through this module, so their location is said once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DEMO_DIR = Path(__file__).resolve().parent / "demo"
"""The folder of demo frames (``frame_NN.jpg``) and ``expected.json``."""


def demo_jpegs() -> list[bytes]:
    """The bundled 1280x720 demo frames, in name order (empty when the folder has none)."""
    return [p.read_bytes() for p in sorted(DEMO_DIR.glob("*.jpg"))]


def required_demo_jpegs() -> list[bytes]:
    """``demo_jpegs``, for the benches that time them: none is an error, not a pass over
    nothing that measures nothing."""
    jpegs = demo_jpegs()
    if not jpegs:
        raise FileNotFoundError(f"no demo frames in {DEMO_DIR}")
    return jpegs


def expected_plates(demo_dir: Path = DEMO_DIR) -> set[str]:
    """Plate texts the bundled frames show, from ``expected.json`` (file -> texts)."""
    path = demo_dir / "expected.json"
    if not path.exists():
        return set()
    raw: Any = json.loads(path.read_text(encoding="utf-8"))
    texts: set[str] = set()
    items = raw.values() if isinstance(raw, dict) else raw
    for item in items:
        if isinstance(item, str):
            texts.add(item)
        elif isinstance(item, list):
            texts.update(t for t in item if isinstance(t, str))
        elif isinstance(item, dict):
            texts.update(t for t in item.get("plates", []) if isinstance(t, str))
    return texts
