"""A recognizer that costs what the real one costs but holds no GIL: the pipeline's ceiling.

``edge-anpr bench serve --stand-in`` runs the whole pipeline with ``GilFreeLoad`` in place of
``FrameRecognizer``, to split the workers' shortfall from 2x (or Nx) in two:

- what the pipeline itself takes (the event loop, the benchmark's sender, the machine): the
  stand-in spends the real recognizer's CPU per frame, measured on the demo frames just
  before, inside OpenCV calls, which let the GIL go; and it answers each demo frame with the
  reads the real recognizer gave it, so the UDP task, the tracker and MQTT do the same work;
- what the real recognizer's own Python costs: with it the workers wait for the GIL, and the
  stand-in's scaling minus the real one's is that wait.

Only the benchmark uses it; ``serve`` never does.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge_anpr.config import Config
from edge_anpr.values import PlateRead
from edge_anpr.vision.recognize import FrameRecognizer, MotionGate, decode_jpeg
from edge_anpr.vision.workers import Recognizer, RecognizerFactory

CHUNK_SHAPE = (360, 640)
"""The image one unit of load blurs: 0.7-0.8 ms of one core here, in one OpenCV call."""
CHUNK_KERNEL = (31, 31)
CALIBRATION_PASSES = 3
"""Passes over the demo frames when timing the real recognizer (after one warm-up pass)."""
KEY_TAIL = 64

FrameKey = tuple[int, bytes]


def frame_key(jpeg: bytes) -> FrameKey:
    """Which demo frame this is: its length and last bytes (hashing all of it would cost the
    stand-in tens of microseconds of GIL a frame, which the real recognizer does not spend)."""
    return len(jpeg), jpeg[-KEY_TAIL:]


class GilFreeLoad:
    """Decodes the frame, blurs ``chunks`` times, answers with the recorded reads."""

    def __init__(self, chunks: int, answers: Mapping[FrameKey, Sequence[PlateRead]]) -> None:
        self.chunks = chunks
        self._answers = answers
        self._image = np.random.default_rng(0).random(CHUNK_SHAPE, dtype=np.float32)
        self._blurred = np.empty_like(self._image)

    def recognize_jpeg(
        self, data: bytes, *, camera: str | None = None, gate: MotionGate | None = None,
        regions: Sequence[str] = (),
    ) -> list[PlateRead] | None:
        """As ``FrameRecognizer.recognize_jpeg``: None when the bytes are not an image, and
        no reads for a frame that is not one of the calibration's."""
        if decode_jpeg(data, grey=True) is None:
            return None
        for _ in range(self.chunks):
            cv2.GaussianBlur(self._image, CHUNK_KERNEL, 0, dst=self._blurred)
        return list(self._answers.get(frame_key(data), ()))


def cpu_ms_per_frame(recognizer: Recognizer, jpegs: Sequence[bytes], passes: int) -> float:
    """This thread's CPU per frame over ``passes`` passes of ``jpegs``."""
    start = time.thread_time()
    for _ in range(passes):
        for jpeg in jpegs:
            recognizer.recognize_jpeg(jpeg)
    return (time.thread_time() - start) * 1000 / max(1, passes * len(jpegs))


@dataclass(frozen=True)
class Calibration:
    """The real recognizer's cost on the demo frames and the stand-in that matches it."""

    real_ms: float
    """The real recognizer's CPU per frame, one thread, nothing else running."""
    stand_in_ms: float
    """The stand-in's, measured the same way with ``chunks`` units of load."""
    chunks: int
    answers: Mapping[FrameKey, Sequence[PlateRead]]

    def factory(self) -> RecognizerFactory:
        def build() -> Recognizer:
            cv2.setNumThreads(1)
            return GilFreeLoad(self.chunks, self.answers)

        return build


def calibrate(cfg: Config, jpegs: Sequence[bytes]) -> Calibration:
    """Time the real recognizer on ``jpegs`` and size the stand-in's load to match it.

    Both are timed in this thread with OpenCV on one thread, as a worker runs them. The reads
    recorded are the real recognizer's last pass's.
    """
    cv2.setNumThreads(1)
    real = FrameRecognizer(cfg)
    answers: dict[FrameKey, list[PlateRead]] = {}
    for jpeg in jpegs:  # warm-up: the first frame of a size builds the detector's plans
        answers[frame_key(jpeg)] = list(real.recognize_jpeg(jpeg) or [])
    if len(answers) != len(jpegs):
        raise ValueError("two calibration frames share a length and last bytes")
    real_ms = cpu_ms_per_frame(real, jpegs, CALIBRATION_PASSES)
    base_ms = cpu_ms_per_frame(GilFreeLoad(0, answers), jpegs, CALIBRATION_PASSES)
    unit = GilFreeLoad(10, answers)
    chunk_ms = (cpu_ms_per_frame(unit, jpegs, 1) - base_ms) / unit.chunks
    chunks = max(0, round((real_ms - base_ms) / max(chunk_ms, 1e-3)))
    stand_in_ms = cpu_ms_per_frame(GilFreeLoad(chunks, answers), jpegs, CALIBRATION_PASSES)
    if chunks and stand_in_ms > base_ms:
        # The unit's cost came from one short pass; the full load, timed as the real one
        # was, corrects it once (a unit timed off by a quarter missed the real cost by as much).
        chunks = max(1, round(chunks * (real_ms - base_ms) / (stand_in_ms - base_ms)))
        stand_in_ms = cpu_ms_per_frame(GilFreeLoad(chunks, answers), jpegs, CALIBRATION_PASSES)
    return Calibration(real_ms, stand_in_ms, chunks, answers)
