"""Whole-frame recognition: decode, find plate candidates, read them, keep the real plates.

``FrameRecognizer`` is what a worker thread owns (one each: it holds a detector and a
``PlateReader``, neither thread-safe). Per frame:

1. detection on the grayscale frame (optionally inside the camera's ROI, with the camera's
   plate-width overrides), NMS, at most ``detector.max_candidates`` boxes. A frame above
   ``detector.max_scan_pixels`` is scanned scaled down to that size (``scan_image``) and its
   boxes scaled back: the scan's buffers grow with the pixels scanned (tens of bytes each,
   kept per worker for the next frame), so this bounds a worker's memory whatever frame size
   arrives; the plate widths searched stay those configured, in the scaled image. With
   ``detector.kind = "cascade"`` (the default) the HoG scanner's proposals (a lower margin,
   ``detector.proposal_threshold``, at most ``detector.max_proposals``) and the plate finder's
   (``vision/finder.py``: one look at the whole frame, ``detector.min_finder_score``) go
   through the plate refiner (``vision/refine.py``), which keeps those it takes for plates
   (``detector.min_refined_score``) with the box it finds around the whole plate;
   ``"dnn"`` does the same with the finder's proposals alone;
2. every candidate is cut out of the full-size frame with a margin like the crops the reader
   was trained on and read; candidates the reader rejects (None, or confidence under
   ``reader.min_confidence``) are dropped: this verification is what removes most detector
   false alarms;
3. among reads whose boxes overlap, the most confident is kept.

Motion gating is optional and its state (the previous small frame of each camera) belongs to
the caller, because any worker may process any camera's next frame.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from numpy.typing import NDArray

from edge_anpr.boxes import BoxPx, crop_bounds, iou, nms
from edge_anpr.config import Config
from edge_anpr.models import bundled_models_dir
from edge_anpr.plates.formats import OFF_FORMAT_PENALTY, REGIONS
from edge_anpr.plates.origin import us_plate
from edge_anpr.values import PlateRead, PlateText
from edge_anpr.vision.finder import MODEL_FILE as FINDER_FILE
from edge_anpr.vision.finder import PlateFinder, heat_at
from edge_anpr.vision.hog import (
    Detection,
    DetectorModel,
    PlateDetector,
    default_model_path,
    load_detector,
)
from edge_anpr.vision.imagesize import check_pixels
from edge_anpr.vision.refine import MODEL_FILE as REFINER_FILE
from edge_anpr.vision.refine import PlateRefiner

if TYPE_CHECKING:
    from edge_anpr.vision.reader import PlateReader

log = logging.getLogger(__name__)

CROP_MARGIN_X = 0.06
"""Crop margin on each side, as a fraction of the plate box width (reader trained on 0-12%)."""
CROP_MARGIN_Y = 0.12
"""Crop margin on each side, as a fraction of the plate box height (reader trained on 0-20%)."""
GROUP_IOU = 0.1
"""Reads whose boxes overlap more than this are the same plate; the best one is kept."""


def decode_jpeg(
    data: bytes, *, grey: bool = False, max_pixels: int | None = None
) -> NDArray[np.uint8] | None:
    """The BGR (or with ``grey``, single-channel) image of a JPEG or any format OpenCV reads;
    None when it does not decode. Grey decoding skips the colour conversion (~25% faster) and
    is all detection and reading need.

    With ``max_pixels`` (any input from outside: frames, the command line) the size is read
    from the header first (``vision.imagesize``): above the limit raises ``ImageTooLarge``
    before any pixel is allocated, and an image whose size the header does not tell is None.
    """
    if not data:
        return None
    if max_pixels is not None and check_pixels(data, max_pixels) is None:
        return None
    flags = cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error:
        return None
    if image is None or image.size == 0:
        return None
    return np.asarray(image, np.uint8)


def scan_image(
    gray: NDArray[np.uint8], max_pixels: int
) -> tuple[NDArray[np.uint8], float, float]:
    """``gray`` scaled down (area averaging) to at most ``max_pixels`` pixels, and the scale
    of its width and height (1.0 and ``gray`` itself when it is small enough)."""
    h, w = gray.shape[:2]
    if h * w <= max_pixels:
        return gray, 1.0, 1.0
    s = (max_pixels / (h * w)) ** 0.5
    sw, sh = max(1, int(w * s)), max(1, int(h * s))
    small = cv2.resize(gray, (sw, sh), interpolation=cv2.INTER_AREA)
    return np.asarray(small, np.uint8), sw / w, sh / h


def _unscaled(box: BoxPx, sx: float, sy: float) -> BoxPx:
    x, y, w, h = box
    return (round(x / sx), round(y / sy), round(w / sx), round(h / sy))


@dataclass(frozen=True, slots=True)
class StageTiming:
    decode_ms: float
    detect_ms: float
    read_ms: float
    total_ms: float
    candidates: int
    """Detector candidates read in this frame."""


class MotionGate:
    """Frame differencing for one camera: has anything moved since the last frame?

    The caller keeps one per camera. Frames are compared at 1/8 size after a blur, so sensor
    noise and JPEG artefacts do not count as motion.
    """

    def __init__(self, threshold: float = 12.0, min_fraction: float = 0.002) -> None:
        self.threshold = threshold
        self.min_fraction = min_fraction
        self._previous: NDArray[np.uint8] | None = None

    def moved(self, gray: NDArray[np.uint8]) -> bool:
        h, w = gray.shape[:2]
        reduced = cv2.resize(gray, (max(1, w // 8), max(1, h // 8)),
                             interpolation=cv2.INTER_AREA)
        small = np.asarray(cv2.GaussianBlur(reduced, (3, 3), 0), np.uint8)
        previous, self._previous = self._previous, small
        if previous is None or previous.shape != small.shape:
            return True
        changed = cv2.absdiff(previous, small) > self.threshold
        return bool(changed.mean() >= self.min_fraction)


def detector_path(cfg: Config) -> Path:
    """``plate_hog.npz`` in ``models.dir`` when it is there (a deployment keeps all
    model files in one folder), else the bundled one."""
    if cfg.models.dir:
        candidate = Path(cfg.models.dir) / default_model_path().name
        if candidate.exists():
            return candidate
    return default_model_path()


def model_path(cfg: Config, name: str) -> Path:
    """The model file ``name`` in ``models.dir`` when it is there, else the bundled one."""
    if cfg.models.dir:
        candidate = Path(cfg.models.dir) / name
        if candidate.exists():
            return candidate
    return bundled_models_dir() / name


def refiner_path(cfg: Config) -> Path:
    """``plate_refiner.tflite`` in ``models.dir`` when it is there, else the bundled one."""
    return model_path(cfg, REFINER_FILE)


FINDER_WIDTH_SLACK = 1.25
"""A finder proposal is kept when its width is within this factor of the plate widths searched
(``min_plate_width_px`` / slack to ``max_plate_width_px`` * slack): its width is an estimate
that the refiner corrects."""


def plate_crop(image: NDArray[np.uint8], box: BoxPx) -> NDArray[np.uint8]:
    """The plate box with the reader's margin, clipped to the image."""
    img_h, img_w = image.shape[:2]
    x0, y0, x1, y1 = crop_bounds(box, CROP_MARGIN_X, CROP_MARGIN_Y, img_w, img_h)
    return image[y0:y1, x0:x1]


class FrameRecognizer:
    """Finds and reads every plate in a frame. Not thread-safe: one per worker thread."""

    def __init__(
        self,
        cfg: Config,
        *,
        detector_model: DetectorModel | None = None,
        reader: PlateReader | None = None,
        with_reader: bool = True,
    ) -> None:
        self.cfg = cfg
        det = cfg.detector
        model = detector_model or load_detector(detector_path(cfg))
        self.detector = PlateDetector(
            model,
            min_plate_width_px=det.min_plate_width_px,
            max_plate_width_px=det.max_plate_width_px,
            score_threshold=det.score_threshold,
            verify=det.kind == "hog",
        )
        self.refiner = PlateRefiner(refiner_path(cfg)) if det.kind != "hog" else None
        self.finder = (
            PlateFinder(model_path(cfg, FINDER_FILE)) if det.kind in ("cascade", "dnn") else None
        )
        if reader is None and with_reader:
            from edge_anpr.vision.reader import make_reader

            reader = make_reader(cfg)
        self.reader: PlateReader | None = reader
        self.last_timing = StageTiming(0.0, 0.0, 0.0, 0.0, 0)
        self.last_reads = 0
        """Reader calls made for the last frame."""
        self.last_candidates: list[Detection] = []
        """The detector candidates of the last frame (for evaluation)."""

    def candidates(
        self, gray: NDArray[np.uint8], camera: str | None = None
    ) -> list[Detection]:
        """Detector candidates for one frame with the camera's ROI and plate widths, boxes in
        ``gray``'s pixels; scanned scaled down when above ``detector.max_scan_pixels``."""
        scan, sx, sy = scan_image(gray, self.cfg.detector.max_scan_pixels)
        if scan is gray:
            return self._candidates(gray, camera)
        return [
            replace(d, box_px=_unscaled(d.box_px, sx, sy))
            for d in self._candidates(scan, camera, sx, sy)
        ]

    def _candidates(
        self, gray: NDArray[np.uint8], camera: str | None = None, sx: float = 1.0,
        sy: float = 1.0,
    ) -> list[Detection]:
        """``candidates`` in an image scaled by ``sx``, ``sy`` from the frame: the ROI is
        scaled, the narrowest plate width is not (the scan's cost is that of an image of this
        size), the widest is scaled but never below the narrowest."""
        det = self.cfg.detector
        cam = self.cfg.cameras.get(camera) if camera else None
        roi = None
        lo, hi = det.min_plate_width_px, det.max_plate_width_px
        if cam is not None:
            if cam.roi:
                roi = (round(cam.roi[0] * sx), round(cam.roi[1] * sy),
                       round(cam.roi[2] * sx), round(cam.roi[3] * sy))
            lo = cam.min_plate_width_px or lo
            hi = cam.max_plate_width_px or hi
        hi = max(round(hi * sx), lo)
        scan_lo = max(lo, scan_floor(det.kind, det.scan_min_plate_width_px))
        if self.refiner is None:
            return self.detector.detect(
                gray, min_plate_width_px=scan_lo, max_plate_width_px=max(hi, scan_lo), roi=roi,
                limit=det.max_candidates,
            )
        proposals: list[Detection] = []
        if det.kind == "cascade" and scan_lo <= hi:
            proposals = self.detector.detect(
                gray, min_plate_width_px=scan_lo, max_plate_width_px=hi, roi=roi,
                limit=det.max_proposals, threshold=det.proposal_threshold,
            )
        if self.finder is not None:
            proposals += self.finder_proposals(gray, roi, lo, hi)
        refined = self.refiner.refine(gray, [p.box_px for p in proposals])
        plates = [
            Detection(r.box_px, r.score, p.shape, finder_score=self._finder_heat(r.box_px, roi))
            for p, r in zip(proposals, refined, strict=True)
            if r.score >= det.min_refined_score
        ]
        return nms(plates, self.detector.nms_iou, det.max_candidates)

    def _finder_heat(
        self, box: BoxPx, roi: tuple[int, int, int, int] | None
    ) -> float | None:
        """The finder's heat at a refined box of this frame (None without the finder, or when
        it did not look at this frame)."""
        if self.finder is None or self.finder.last_answer is None:
            return None
        answer, scale = self.finder.last_answer
        x0, y0 = _roi_origin(roi)
        return heat_at(answer, scale, (box[0] - x0, box[1] - y0, box[2], box[3]))

    def finder_proposals(
        self, gray: NDArray[np.uint8], roi: tuple[int, int, int, int] | None, lo: int, hi: int
    ) -> list[Detection]:
        """The finder's proposals (inside the ROI, which is then what it looks at, so a small
        ROI is seen at a finer scale), those of a plausible width (``FINDER_WIDTH_SLACK``)."""
        assert self.finder is not None
        det = self.cfg.detector
        self.finder.last_answer = None  # an earlier frame's answer never scores this one
        x0, y0 = _roi_origin(roi)
        area = gray
        if roi is not None:
            area = gray[y0 : y0 + max(1, roi[3]), x0 : x0 + max(1, roi[2])]
            if area.size == 0:
                return []
        out = []
        for p in self.finder.propose(area, min_score=det.min_finder_score,
                                     limit=det.max_proposals):
            x, y, w, h = p.box_px
            if lo / FINDER_WIDTH_SLACK <= w <= hi * FINDER_WIDTH_SLACK:
                out.append(Detection((x + x0, y + y0, w, h), p.score, "finder"))
        return out

    def recognize(
        self,
        image_bgr: NDArray[np.uint8],
        *,
        camera: str | None = None,
        gate: MotionGate | None = None,
        decode_ms: float = 0.0,
        regions: Sequence[str] = (),
    ) -> list[PlateRead]:
        """Every plate read in the frame (BGR or grey), most confident first; read with
        ``regions``, or with the camera's when () (``Config.regions_of``)."""
        t0 = time.perf_counter()
        gray = (
            image_bgr if image_bgr.ndim == 2
            else np.asarray(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY), np.uint8)
        )
        if self.cfg.detector.motion_gating and gate is not None and not gate.moved(gray):
            self.last_timing = StageTiming(decode_ms, 0.0, 0.0, decode_ms, 0)
            self.last_candidates = []
            return []
        cands = self.candidates(gray, camera)
        self.last_candidates = cands
        t1 = time.perf_counter()
        found = self.read_candidates(image_bgr, cands, camera, regions)
        t2 = time.perf_counter()
        detect_ms, read_ms = (t1 - t0) * 1000, (t2 - t1) * 1000
        self.last_timing = StageTiming(
            decode_ms, detect_ms, read_ms, decode_ms + detect_ms + read_ms, len(cands)
        )
        return found

    def recognize_jpeg(
        self, data: bytes, *, camera: str | None = None, gate: MotionGate | None = None,
        regions: Sequence[str] = (),
    ) -> list[PlateRead] | None:
        """Decode (grey) then recognise (``recognize``); None when the bytes are not an image.
        An image above ``ingest.max_frame_pixels`` raises ``ImageTooLarge`` undecoded."""
        t0 = time.perf_counter()
        image = decode_jpeg(data, grey=True, max_pixels=self.cfg.ingest.max_frame_pixels)
        decode_ms = (time.perf_counter() - t0) * 1000
        if image is None:
            self.last_timing = StageTiming(decode_ms, 0.0, 0.0, decode_ms, 0)
            return None
        return self.recognize(
            image, camera=camera, gate=gate, decode_ms=decode_ms, regions=regions
        )

    def regions(self, camera: str | None) -> tuple[str, ...]:
        """The plate-format regions for a camera (``Config.regions_of``)."""
        return self.cfg.regions_of(camera)

    def read_candidates(
        self, image: NDArray[np.uint8], cands: Sequence[Detection], camera: str | None = None,
        regions: Sequence[str] = (),
    ) -> list[PlateRead]:
        """Read candidates best score first; keep what the reader accepts as a plate.

        A candidate is a plate when its read has ``MIN_PLATE_CHARS`` to ``MAX_PLATE_CHARS``
        characters and at least ``reader.min_plate_confidence`` (with specific regions: a
        digit, and a little less confidence when it fits one of their formats). An accepted
        candidate is read again from ``_variants`` of its box, unless its read is sure
        (``SURE_READ_CONFIDENCE``): the scanner's box is quantised to an eighth of the plate
        width and a third of an octave and often cuts off the first or last character; the
        refiner's box holds the whole plate, and its variants still vote (training holdout with
        the cascade: 0.930 -> 0.953 exact). The best read is kept: with specific regions
        configured, a read that fits one of the region's patterns beats one that does not, then
        the more confident wins. Reading stops after ``detector.max_rejected_reads``
        rejections: true plates rank first (on the training
        holdout the plate was the top candidate 41 times of 43, second once).
        """
        if self.reader is None:
            return []
        det_cfg = self.cfg.detector
        min_conf = max(self.cfg.reader.min_confidence, self.cfg.reader.min_plate_confidence)
        regions = tuple(regions) or self.regions(camera)
        specific = any(REGIONS[r] for r in regions)

        fit_conf = min(min_conf, self.cfg.reader.min_fitting_plate_confidence)

        def fits_format(text: PlateText) -> bool:
            """Fits a pattern of the camera's specific regions, or, for a plate written as a
            US one (``plates.origin.us_plate``) on any camera, a US serial: a US plate is
            ranked as with ``generic`` whatever is configured, so a ``generic`` and a ``us``
            camera judge its reads alike (a read of a box cut to part of the plate, 5TGN55 of
            5TGN556, fits no serial)."""
            if us_plate(regions, text.region):
                return text.format_region != "generic"
            return specific and text.format_region != "generic"

        def in_format(text: PlateText) -> bool:
            """``fits_format``, or any read of another plate on a camera with no specific
            region."""
            if fits_format(text):
                return True
            return not specific and not us_plate(regions, text.region)

        def rank(text: PlateText) -> tuple[bool, float]:
            return (in_format(text), text.confidence)

        sure_conf = min(min_conf, self.cfg.reader.min_sure_plate_confidence)

        def accepted(text: PlateText | None, sure: bool = False) -> bool:
            return text is not None and read_is_plate(
                text.text, text.confidence, min_conf=min_conf, fit_conf=fit_conf,
                sure_conf=sure_conf, specific=specific, fitting=fits_format(text), sure=sure,
            )

        reads: list[PlateRead] = []
        ranked = sorted(cands, key=lambda c: -c.score)
        # The candidates that will almost surely be read (the best ones, up to the rejection
        # limit) are read in one batch: the same reads as one by one, for less GIL-holding
        # Python around the interpreter calls.
        ahead = len(ranked) if not det_cfg.max_rejected_reads else det_cfg.max_rejected_reads + 1
        first_reads = self._read_boxes(image, [c.box_px for c in ranked[:ahead]], regions)
        calls = len(first_reads)
        rejected = 0
        for index, cand in enumerate(ranked):
            if det_cfg.max_rejected_reads and rejected >= det_cfg.max_rejected_reads:
                break
            if any(iou(cand.box_px, r.box_px) > GROUP_IOU for r in reads):
                continue  # this plate has been read already
            if index < len(first_reads):
                text = first_reads[index]
            else:
                text = self._read_box(image, cand.box_px, regions)
                calls += 1
            sure = self.is_sure(cand)
            if not accepted(text, sure):
                rejected += 1
                continue
            assert text is not None
            # Every accepted read of the plate's box variants votes for its text with its
            # confidence; a text several crops agree on beats a single confident outlier
            # (training split: 78.1% -> 79.7% exact).
            votes = [(text, cand.box_px)]
            boxes = _variants(cand.box_px, image.shape[1], image.shape[0])
            sure = text.confidence >= SURE_READ_CONFIDENCE and in_format(text)
            for extension in () if sure else (None, *WIDER_READ_EXTENSIONS):
                if extension is not None:
                    if any(in_format(t) for t, _ in votes):
                        break
                    boxes = _extended(cand.box_px, extension, image.shape[1], image.shape[0])
                calls += len(boxes)
                for alt, box in zip(self._read_boxes(image, boxes, regions), boxes, strict=True):
                    if alt is not None and accepted(alt, sure):
                        votes.append((alt, box))
            support: dict[str, float] = defaultdict(float)
            for t, _ in votes:
                support[t.text] += t.confidence
            # a format is a guide here too: a text that fits wins over one with more support
            # only within OFF_FORMAT_PENALTY of it (a variant box cut to a part of the plate
            # that happens to fit, FE55 of 2FE5568, does not beat the whole plate read alike)
            best, best_box = max(votes, key=lambda v: (
                support[v[0].text] * (1.0 if in_format(v[0]) else OFF_FORMAT_PENALTY),
                v[0].confidence,
            ))
            x, y, w, h = best_box
            if w >= EU_BAND_MIN_ASPECT * h:
                # Wide plates carry a country band on the left whose letter the reader tends
                # to read as a character: when the plate without it reads, at least as
                # confidently, as the same text minus its first character, that was the band.
                trim = round(EU_BAND_FRACTION * w)
                alt = self._read_box(image, (x + trim, y, w - trim, h), regions)
                calls += 1
                if (alt is not None and accepted(alt, sure) and alt.text == best.text[1:]
                        and rank(alt) >= rank(best)):
                    best = alt
            reads.append(PlateRead(best, cand.box_px, cand.score))
        self.last_reads = calls
        reads.sort(key=lambda f: (-f.text.confidence, -f.detector_score))
        return reads

    def is_sure(self, cand: Detection) -> bool:
        """The detector is sure this candidate is a plate: the refiner's probability reaches
        ``detector.sure_plate_score`` and the finder's heat ``detector.sure_finder_score``
        (never with ``kind = "hog"``: the scanner's margin is no probability)."""
        det = self.cfg.detector
        return (self.refiner is not None and det.sure_plate_score < 1.0
                and cand.score >= det.sure_plate_score
                and (cand.finder_score or 0.0) >= det.sure_finder_score)

    def _read_box(
        self, image: NDArray[np.uint8], box: BoxPx, regions: Sequence[str] | None = None
    ) -> PlateText | None:
        return self._read_boxes(image, [box], regions)[0]

    def _read_boxes(
        self, image: NDArray[np.uint8], boxes: Sequence[BoxPx], regions: Sequence[str] | None
    ) -> list[PlateText | None]:
        """Reads of several boxes in one batch (the reader skips crops too small to read)."""
        assert self.reader is not None
        return self.reader.read_many([plate_crop(image, box) for box in boxes], regions)


SCAN_FLOOR_PX = {"hog": 64, "cascade": 80, "dnn": 80}
"""The HoG scanner's narrowest plate when ``detector.scan_min_plate_width_px`` is 0. Alone it
must find every plate it can (64 px). Beside the finder, which proposes the narrower plates,
80 px keeps a 1280x720 frame within 25 ms on one core: on the training holdout of scenes-ro,
found 0.885 at 64 px, 0.875 at 80, 0.769 at 96 (the finder's first model); the scenes' holdout
the same at 64 and 80."""


def scan_floor(kind: str, configured: int) -> int:
    """The HoG scanner's narrowest plate width for a detector kind (``SCAN_FLOOR_PX``)."""
    return configured or SCAN_FLOOR_PX[kind]


def _roi_origin(roi: tuple[int, int, int, int] | None) -> tuple[int, int]:
    """The top-left corner of the part of the frame the finder looks at (0, 0 without ROI)."""
    return (max(0, roi[0]), max(0, roi[1])) if roi is not None else (0, 0)


def read_is_plate(
    text: str, confidence: float, *, min_conf: float, fit_conf: float, sure_conf: float,
    specific: bool, fitting: bool, sure: bool,
) -> bool:
    """Whether a read of a detector candidate is a plate (``read_candidates``).

    A plate has ``MIN_PLATE_CHARS`` to ``MAX_PLATE_CHARS`` characters and is confident enough:
    ``min_conf``, or ``fit_conf`` when it ``fitting`` a pattern of the camera's ``specific``
    regions (junk rarely reads as a whole plate number of the configured format), or, for a
    candidate the detector is ``sure`` of (``FrameRecognizer.is_sure``), letters and digits at
    ``sure_conf``. With specific regions a read that fits none and has no digit is never a
    plate (every format of the tables has digits); without a digit a read needs
    ``NO_DIGIT_MIN_CONFIDENCE`` whatever else holds."""
    if not MIN_PLATE_CHARS <= len(text) <= MAX_PLATE_CHARS:
        return False
    has_digit = any(c.isdigit() for c in text)
    if not has_digit:
        return (fitting or not specific) and confidence >= NO_DIGIT_MIN_CONFIDENCE
    if confidence >= (fit_conf if fitting else min_conf):
        return True
    return sure and confidence >= sure_conf and any(c.isalpha() for c in text)


MIN_PLATE_CHARS = 4
"""Reads with fewer characters are not plates (on the training holdout every false read of
2-3 characters was junk)."""
NO_DIGIT_MIN_CONFIDENCE = 0.97
"""A read without a digit is a plate only at this confidence. Such reads of the training scenes
were all false plates (COLLJ 0.958, RFERRA 0.915, RESDET 0.887: a dealer's frame, a sign),
while 3 of the 296 scene labels have no digit; of the 46 US training crops read without a
digit (vanity plates), 4 read under 0.97."""
SURE_READ_CONFIDENCE = 0.99
"""A first read at least this confident that fits the camera's formats (any read, without
specific regions) is not read again from box variants: the same exact reads on the training
holdout and on validation, about 40% less reading time on the holdout."""
MAX_PLATE_CHARS = 8
"""Reads with more characters are not plates: no format in ``plates/formats.py`` is longer, no
scene label is (296 labels, at most 8), and every such read of the training scenes was a
dealer's sticker or a line of text (BASALVADOR, ESVITORIA, REPRESEWATON, DADM923479CH). Cost:
US vanity plates of 9-10 letters (4 of the 751 US crops) are not read."""
EU_BAND_MIN_ASPECT = 3.6
EU_BAND_FRACTION = 0.09
"""Boxes at least this wide for their height get a second read without their left 9%
(training EU plates: 15 -> 22 of 58 exact)."""
READ_ASPECTS: tuple[float, ...] = (4.4, 3.1, 2.0)
"""An accepted candidate is also read as a box of each of these plate aspects (same centre and
width) unless its own aspect is within 15%."""


READ_EXTENSION = 0.25
"""An accepted candidate is also read with its box extended by this share of its width to the
left, and to the right: the scanner's box often cuts off a first or last character (training
split, ``data/eval-scenes.toml``: 0.15 -> 70.0%, 0.25 -> 71.7%, 0.15 and 0.3 -> 71.7%
exact, so the cheaper single step)."""
WIDER_READ_EXTENSIONS: tuple[float, ...] = (0.4, 0.6)
"""With specific regions configured, while the best read still fits none of their patterns,
the box is extended further, step by step (training split: 75.5% -> 78.1% exact)."""


def _variants(box: BoxPx, img_w: int, img_h: int) -> list[BoxPx]:
    w, h = box[2], box[3]
    out = []
    for aspect in READ_ASPECTS:
        if abs(w / h / aspect - 1.0) > 0.15:
            out.append(_scaled_box(box, 1.0, w / aspect / h, img_w, img_h))
    return out + _extended(box, READ_EXTENSION, img_w, img_h)


def _extended(box: BoxPx, share: float, img_w: int, img_h: int) -> list[BoxPx]:
    """The box widened by ``share`` of its width on the left, and on the right."""
    return [_shifted_box(box, -share, 1.0 + share, img_w, img_h),
            _shifted_box(box, 0.0, 1.0 + share, img_w, img_h)]


def _shifted_box(box: BoxPx, dx: float, fw: float, img_w: int, img_h: int) -> BoxPx:
    """The box moved by ``dx`` and widened to ``fw`` times its width (shares of its width)."""
    x, y, w, h = box
    x0 = max(0, round(x + dx * w))
    x1 = min(img_w, round(x + dx * w + fw * w))
    return x0, y, max(1, x1 - x0), h


def _scaled_box(box: BoxPx, fw: float, fh: float, img_w: int, img_h: int) -> BoxPx:
    x, y, w, h = box
    nw, nh = w * fw, h * fh
    x0, y0 = max(0, round(x + w / 2 - nw / 2)), max(0, round(y + h / 2 - nh / 2))
    x1, y1 = min(img_w, round(x + w / 2 + nw / 2)), min(img_h, round(y + h / 2 + nh / 2))
    return x0, y0, max(1, x1 - x0), max(1, y1 - y0)


__all__ = [
    "FrameRecognizer",
    "MotionGate",
    "StageTiming",
    "decode_jpeg",
    "plate_crop",
    "read_is_plate",
]
