"""``edge-anpr demo``: every plate it does not read is named with its frame and the reason.

The demo waits for each frame's outcome before it sends the next (so a slow box reads 8 of 8:
``tests/test_arm64_root.py`` runs it under arm64 emulation, about 2 s a frame). Here the frames
are refused by a configured pixel limit, so none is read and each must say why.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXPECTED = json.loads((REPO / "edge_anpr" / "assets" / "demo" / "expected.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize(("toml", "why"), [
    # 1280x720 frames over the pixel limit: the workers refuse them undecoded
    ("[ingest]\nmax_frame_pixels = 4096\n", "dropped: too_many_pixels"),
    # plates narrower than the detector looks for: recognized, nothing found
    ("[detector]\nmin_plate_width_px = 600\n", "recognized, no read"),
])
def test_each_plate_not_read_is_named_with_its_frame_and_why(
    tmp_path: Path, toml: str, why: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(toml)
    proc = subprocess.run(
        [sys.executable, "-m", "edge_anpr", "demo", "--config", str(config)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    last = proc.stdout.splitlines()[-1]
    assert last.startswith("demo: read 0 of 8 plates in the bundled frames; not read: "), last
    for name, item in EXPECTED.items():
        for plate in item["plates"]:
            assert f"{plate} ({name}: {why})" in last
        if why.startswith("dropped"):
            assert f"frame  {name} {why}" in proc.stdout.splitlines()
    assert proc.returncode == 1  # nothing read
