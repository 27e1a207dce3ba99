"""The wheel as a user gets it: models and licence inside, training outside, and an install
into a fresh venv that reads plates from any working directory.

The fresh venv is made from the base interpreter (not this test venv), and the wheel is
installed with ``--no-index`` from the ``wheelhouse`` fixture: every dependency comes from the
package index as a wheel, nothing from this checkout or its editable install.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "edge_anpr" / "models"
DEMO = REPO / "edge_anpr" / "assets" / "demo"
MAX_WHEEL_BYTES = 2_000_000
"""The wheel is code, three small models and eight demo frames (about 1 MB): a wheel far
larger has picked up something it should not carry (a dataset, a cache, a build folder)."""


def test_wheel_carries_the_models_and_licence_but_not_training(wheel: Path) -> None:
    assert wheel.stat().st_size < MAX_WHEEL_BYTES
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        shipped = sorted(p.name for p in MODELS.iterdir()
                         if p.suffix in {".tflite", ".npz", ".json"})
        assert {"segmenter.tflite", "classifier.tflite", "plate_hog.npz", "region.tflite",
                "region_shapes.json"} <= set(shipped)
        for name in shipped:
            assert zf.read(f"edge_anpr/models/{name}") == (MODELS / name).read_bytes(), name
        assert "edge_anpr/models/README.md" in names
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        assert zf.read(f"{dist_info}/licenses/LICENSE") == (REPO / "LICENSE").read_bytes()
        metadata = zf.read(f"{dist_info}/METADATA").decode()
        assert "License-Expression: Apache-2.0" in metadata.splitlines()
        assert "Requires-Dist: tqdm" in metadata
        assert not [n for n in names if n.startswith("edge_anpr/train/")]
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        assert {f"edge_anpr/assets/demo/{p.name}" for p in DEMO.iterdir()} <= names


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, wheel: Path, wheelhouse: Path) -> Path:
    """A fresh venv with the wheel and its dependencies installed offline; its bin folder."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True, timeout=120)
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-index",
         "--find-links", str(wheelhouse), str(wheel)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return venv / "bin"


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=180, cwd=cwd)


@pytest.mark.slow
def test_installed_wheel_reads_a_demo_frame_from_another_folder(
    installed: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    frame = elsewhere / "gate.jpg"
    shutil.copy(DEMO / "frame_00.jpg", frame)
    expected = json.loads((DEMO / "expected.json").read_text())["frame_00.jpg"]["plates"]

    proc = run([str(installed / "edge-anpr"), "recognize", "--json", frame.name], elsewhere)
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    plates = [p.get("plate", p.get("text")) for p in json.loads(line)["plates"]]
    assert plates == expected
    # The package and its models come from the venv, not from this checkout.
    proc = run([str(installed / "python"), "-c",
                "import edge_anpr.models as m; print(m.bundled_models_dir())"], elsewhere)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).is_relative_to(installed.parent)
    proc = run([str(installed / "python"), "-c", "import edge_anpr.train"], elsewhere)
    assert proc.returncode == 1 and "No module named 'edge_anpr.train'" in proc.stderr


@pytest.mark.slow
def test_installed_wheel_runs_the_demo(installed: Path, tmp_path: Path) -> None:
    proc = run([str(installed / "edge-anpr"), "demo"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == "demo: read 8 of 8 plates in the bundled frames"


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is not None,
                    reason="TensorFlow is installed here: the [train] extra is present")
def test_training_without_its_extra_says_which_extra() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edge_anpr.train", "reader"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("python -m edge_anpr.train: needs the [train] extra")
    assert "Traceback" not in proc.stderr
