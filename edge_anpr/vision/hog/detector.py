"""The plate detector: scan, non-maximum suppression and verification of one grayscale image.

Nothing here starts threads; the caller sets ``cv2.setNumThreads``. A ``PlateDetector`` holds
no frame state, but its scan's buffers are per thread (``scratch``), so one detector per worker
thread.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from edge_anpr.boxes import BoxPx, nms
from edge_anpr.errors import ModelError
from edge_anpr.models import bundled_models_dir
from edge_anpr.vision.hog.blas import single_threaded_blas
from edge_anpr.vision.hog.features import CELLS_PER_PLATE, orientation_table
from edge_anpr.vision.hog.layout import PackedLayout
from edge_anpr.vision.hog.model import DetectorModel
from edge_anpr.vision.hog.pyramid import FeaturePyramid, plate_widths
from edge_anpr.vision.hog.scoring import WindowScorer


@dataclass(frozen=True, slots=True)
class Detection:
    """One plate candidate: its box in the scanned image's pixels and its score (the scanner's
    margin; after the refiner, the refiner's plate probability)."""

    box_px: BoxPx
    score: float
    shape: str
    """Name of the window model that fired (eu, us, br...), or "finder" for a proposal of the
    plate finder network."""
    verify_score: float | None = None
    """Second-stage score (None when the model has no verifier)."""
    finder_score: float | None = None
    """The plate finder's heat at the candidate's centre (``vision.finder.heat_at``), when the
    finder looked at the frame."""


def default_model_path() -> Path:
    """The shipped model file, ``plate_hog.npz`` in the package's ``edge_anpr/models/``."""
    return bundled_models_dir() / "plate_hog.npz"


class PlateDetector:
    """Finds plate candidates in grayscale images. One per worker thread (holds no frame state)."""

    def __init__(
        self,
        model: DetectorModel,
        *,
        min_plate_width_px: int = 60,
        max_plate_width_px: int = 320,
        score_threshold: float | None = None,
        nms_iou: float = 0.3,
        verify: bool = True,
    ) -> None:
        single_threaded_blas()
        orientation_table()  # now, not in the first frame's latency
        self.verify = verify
        self.model = model
        self.min_plate_width_px = min_plate_width_px
        self.max_plate_width_px = max_plate_width_px
        self.threshold = model.threshold if score_threshold is None else score_threshold
        self.nms_iou = nms_iou
        self._scorer = WindowScorer(model.models)
        self._layouts: dict[tuple[int, int, float, float], PackedLayout] = {}

    def detect(
        self,
        gray: NDArray[np.uint8],
        *,
        min_plate_width_px: int | None = None,
        max_plate_width_px: int | None = None,
        roi: BoxPx | None = None,
        limit: int | None = None,
        threshold: float | None = None,
    ) -> list[Detection]:
        """Candidate plate boxes (image pixels), best score first, after NMS (``nms_iou``)
        and, when the model has a verifier and ``verify`` is set, only those it passes.

        ``roi`` (clipped to the image) limits the search; boxes are still in ``gray``'s
        pixels. ``limit`` caps the result; NMS keeps twice that for the verifier to choose
        from."""
        lo = min_plate_width_px or self.min_plate_width_px
        hi = max_plate_width_px or self.max_plate_width_px
        ox = oy = 0
        full = gray
        if roi is not None:
            x, y, w, h = roi
            x, y = max(0, x), max(0, y)
            gray = gray[y : y + h, x : x + w]
            ox, oy = x, y
        if gray.size == 0:
            return []
        raw = self.scan(gray, lo, hi, self.threshold if threshold is None else threshold)
        if ox or oy:
            raw = [
                Detection((d.box_px[0] + ox, d.box_px[1] + oy, *d.box_px[2:]), d.score, d.shape)
                for d in raw
            ]
        kept = nms(raw, self.nms_iou, None if limit is None else 2 * limit)
        verifier = self.model.verifier if self.verify else None
        if verifier is not None:
            scores = verifier.scores(full, [d.box_px for d in kept])
            kept = [
                replace(d, verify_score=vs)
                for d, vs in zip(kept, scores, strict=True)
                if vs >= verifier.threshold
            ]
        return kept if limit is None else kept[:limit]

    def scan(
        self, gray: NDArray[np.uint8], min_px: float, max_px: float, threshold: float
    ) -> list[Detection]:
        """Every window above ``threshold`` at every allowed plate width (before NMS).

        All plate widths' grids are packed into one canvas (``PackedLayout``), so the whole
        frame is scored with a couple of dozen large numpy calls, which release the GIL,
        instead of that many per plate width. The windows and their order are those of
        scanning each ``FeaturePyramid.grid`` with ``score_maps`` in turn, and the scores
        equal theirs to float32 rounding (``test_scan_finds_what_scanning_each_grid_finds``).
        """
        widths = plate_widths(min_px, max_px)
        pyramid = FeaturePyramid(gray, widths[0] / CELLS_PER_PLATE)
        scorer = self._scorer
        if scorer.models is not self.model.models:
            scorer = self._scorer = WindowScorer(self.model.models)
            self._layouts.clear()
        key = (gray.shape[0], gray.shape[1], min_px, max_px)
        layout = self._layouts.get(key)
        if layout is None:
            grids = []
            for pw in widths:
                geo = pyramid.geometry(pw)
                if geo is None:
                    break
                grids.append(geo)
            if not grids:
                return []
            layout = PackedLayout.build(grids, scorer.models, gray.shape[1], gray.shape[0])
            if len(self._layouts) >= 16:  # ROI sizes could vary without end
                self._layouts.clear()
            self._layouts[key] = layout
        flat, _ = scorer.score(pyramid.packed_blocks(layout))
        scores = flat[layout.valid]
        hits = np.flatnonzero(scores > threshold)
        if hits.size == 0:
            return []
        boxes, shapes = layout.boxes_of(hits)
        x0, y0, w, h = boxes.tolist()
        names = [m.name for m in self.model.models]
        shape = [names[i] for i in shapes.tolist()]
        score = scores[hits].tolist()
        return [
            Detection((x, y, bw, bh), s, n)
            for x, y, bw, bh, s, n in zip(x0, y0, w, h, score, shape, strict=True)
        ]


def load_detector(path: Path | None = None) -> DetectorModel:
    """The model at ``path`` (``default_model_path()`` when None); ``ModelError`` when it is
    missing or unreadable."""
    p = path or default_model_path()
    if not p.exists():
        raise ModelError(
            f"{p}: plate detector model not found; reinstall edge-anpr (its wheel ships the "
            "model) or, in a checkout, run `make train`"
        )
    return DetectorModel.load(p)
