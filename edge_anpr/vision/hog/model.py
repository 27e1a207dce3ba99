"""The detector model: window SVMs per plate shape, the verifier, and their file format.

The file is a ``numpy.savez_compressed`` archive of plain arrays (no pickles): ``names``,
``threshold``, ``hog`` (``NBINS``, ``CELLS_PER_PLATE``: a file made with other values is
refused), ``info``; per window model ``<name>_win_cells``, ``<name>_plate_cells``,
``<name>_weights`` (block rows, block cols, 4 * NBINS) and ``<name>_bias``; and, when there is
a verifier, ``verifier_weights`` and ``verifier_bias_threshold``. Any file that does not load
is a ``ModelError`` naming the path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from edge_anpr.errors import ModelError
from edge_anpr.vision.hog.features import CELLS_PER_PLATE, NBINS, FloatArray
from edge_anpr.vision.hog.verifier import Verifier, verify_hog


@dataclass(frozen=True)
class WindowModel:
    """One linear SVM over a window of blocks, for one plate shape."""

    name: str
    win_cells: tuple[int, int]
    """Window size in cells (width, height)."""
    plate_cells: tuple[float, float, float, float]
    """The plate box inside the window, in cells: x, y, width, height."""
    weights: FloatArray
    """(block rows, block cols, 4 * NBINS)."""
    bias: float

    @property
    def blocks(self) -> tuple[int, int]:
        return self.win_cells[0] - 1, self.win_cells[1] - 1


@dataclass(frozen=True)
class DetectorModel:
    """Everything a ``PlateDetector`` needs; ``save`` and ``load`` round-trip it exactly
    (``tests/test_detector_unit.py``: ``test_model_file_round_trip``)."""

    models: tuple[WindowModel, ...]
    threshold: float
    """Score above which a window is a candidate (the config may override)."""
    info: str = ""
    verifier: Verifier | None = None

    def save(self, path: Path) -> None:
        arrays: dict[str, NDArray[np.float32] | NDArray[np.int32] | NDArray[np.str_]] = {
            "names": np.array([m.name for m in self.models]),
            "threshold": np.array([self.threshold], np.float32),
            "hog": np.array([NBINS, CELLS_PER_PLATE], np.int32),
            "info": np.array([self.info]),
        }
        for m in self.models:
            arrays[f"{m.name}_win_cells"] = np.array(m.win_cells, np.int32)
            arrays[f"{m.name}_plate_cells"] = np.array(m.plate_cells, np.float32)
            arrays[f"{m.name}_weights"] = m.weights.astype(np.float32)
            arrays[f"{m.name}_bias"] = np.array([m.bias], np.float32)
        if self.verifier is not None:
            arrays["verifier_weights"] = self.verifier.weights.astype(np.float32)
            arrays["verifier_bias_threshold"] = np.array(
                [self.verifier.bias, self.verifier.threshold], np.float32
            )
        np.savez_compressed(path, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path) -> DetectorModel:
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: cannot load the plate detector: {exc}") from None
        with data:
            try:
                hog = tuple(int(v) for v in data["hog"])
                if hog != (NBINS, CELLS_PER_PLATE):
                    raise ModelError(
                        f"{path}: detector HoG layout {hog} does not match this code "
                        f"({NBINS}, {CELLS_PER_PLATE}); retrain with `python -m edge_anpr.train "
                        "detector`"
                    )
                models = []
                for name in [str(n) for n in data["names"]]:
                    wc = data[f"{name}_win_cells"]
                    pc = data[f"{name}_plate_cells"]
                    weights = data[f"{name}_weights"].astype(np.float32)
                    win = (int(wc[0]), int(wc[1]))
                    if weights.shape != (win[1] - 1, win[0] - 1, 4 * NBINS):
                        raise ModelError(f"{path}: {name} weights have shape {weights.shape}")
                    models.append(
                        WindowModel(
                            name=name,
                            win_cells=win,
                            plate_cells=(float(pc[0]), float(pc[1]), float(pc[2]), float(pc[3])),
                            weights=weights,
                            bias=float(data[f"{name}_bias"][0]),
                        )
                    )
                verifier = None
                if "verifier_weights" in data:
                    vw = data["verifier_weights"].astype(np.float32)
                    if vw.shape != (verify_hog().getDescriptorSize(),):
                        raise ModelError(f"{path}: verifier weights have shape {vw.shape}")
                    vb, vt = (float(v) for v in data["verifier_bias_threshold"])
                    verifier = Verifier(vw, vb, vt)
                return cls(
                    tuple(models), float(data["threshold"][0]), str(data["info"][0]), verifier
                )
            except KeyError as exc:
                raise ModelError(f"{path}: detector file lacks {exc}") from None

