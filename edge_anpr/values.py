"""Values that cross stage boundaries: small frozen dataclasses with units in their names.

Stages hand each other these and nothing with behaviour, so a worker thread can never reach
back into the state of the task that produced its input.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from edge_anpr.boxes import BoxPx

WireFormat = Literal["legacy", "sequenced", "http"]
"""How a frame arrived: a UDP wire format, or an upload to the HTTP API."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One complete, still-encoded camera frame as reassembled from UDP, or an image posted to
    the HTTP API (``request`` set)."""

    camera: str
    """Configured camera name, or a derived one (``cam-<id>`` / ``legacy-<addr>``)."""
    sender: tuple[str, int]
    wire_format: WireFormat
    sequence: int | None
    """Frame number of the sequenced format; None for legacy frames."""
    jpeg: bytes
    capture_time_us: int
    """Capture time from the sender, microseconds since the Unix epoch; 0 when unknown."""
    completed_monotonic_s: float
    """``time.monotonic()`` when the last datagram of the frame arrived (latency origin)."""
    authenticated: bool = False
    """Every datagram of the frame carried a valid tag of its camera's key. Only such frames
    may open a gate (unless the camera's config says otherwise); the default is the safe one."""
    request: int | None = None
    """For an image posted to the HTTP API: the id its poster waits on
    (``vision.jobs.JobBoard``); its reads go back there, never to the event stage. None for
    camera frames."""
    regions: tuple[str, ...] = ()
    """Plate-format regions to read this frame with; () = its camera's (``Config.regions_of``)."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """One alternative reading of a plate."""

    text: str
    confidence: float


@dataclass(frozen=True, slots=True)
class PlateRegion:
    """Where a plate is from, as read from the plate (``vision.region``)."""

    code: str
    """Plate Recognizer's code: ``us-ca`` (a US state), ``us`` (state not sure), ``br``,
    ``eu`` (Europe, country not told); empty when no region was read."""
    score: float
    """Probability of ``code`` in [0, 1] (a country's: its classes summed); 0 when empty."""


NO_REGION = PlateRegion("", 0.0)


@dataclass(frozen=True, slots=True)
class PlateText:
    """What the reader makes of one plate crop."""

    text: str
    confidence: float
    """Plate confidence in [0, 1]: product-like score of its characters and format fit."""
    char_confidences: tuple[float, ...]
    candidates: tuple[Candidate, ...]
    """Best first by confidence; the first equals (text, confidence)."""
    format_region: str
    """Name of the plate-format region (``plates.formats``) whose pattern the text fits, or
    ``generic``."""
    region: PlateRegion = NO_REGION
    """Where the plate is from, read from the plate (``vision.region``)."""


@dataclass(frozen=True, slots=True)
class PlateRead:
    """One plate found and read: the one value for a read, from the recognizer to MQTT.

    The recognizer fills what it knows (text, box, detector score); a worker adds the frame's
    context with ``in_frame``. A read of an image outside the appliance (``edge-anpr
    recognize``) keeps the defaults: no camera, no capture time.
    """

    text: PlateText
    box_px: BoxPx
    """x, y, width, height in frame pixels."""
    detector_score: float = 0.0
    """The detector's score of the box the text was read in (higher is surer)."""
    camera: str = ""
    capture_time_us: int = 0
    frame_sequence: int | None = None
    completed_monotonic_s: float = 0.0
    """Copied from the frame, so publish latency can be measured end to end."""
    authenticated: bool = False
    """Copied from the frame (``Frame.authenticated``)."""
    frame_jpeg: bytes = field(default=b"", repr=False, compare=False)
    """The frame's encoded bytes (shared, not copied) when the event stage may want a
    snapshot of this read; empty otherwise. Only the event stage looks at it, and it never
    keeps it beyond making the snapshot."""

    def in_frame(self, frame: Frame, *, with_jpeg: bool = False) -> PlateRead:
        """This read with ``frame``'s camera, capture time, number, completion time and
        authentication (and, ``with_jpeg``, its bytes)."""
        return dataclasses.replace(
            self, camera=frame.camera, capture_time_us=frame.capture_time_us,
            frame_sequence=frame.sequence, completed_monotonic_s=frame.completed_monotonic_s,
            authenticated=frame.authenticated, frame_jpeg=frame.jpeg if with_jpeg else b"",
        )


EventKind = Literal["start", "update", "end"]


@dataclass(frozen=True, slots=True)
class PlateEvent:
    """One step of one vehicle's event, as published."""

    event_id: str
    """Stable over the event's start, updates and end."""
    kind: EventKind
    camera: str
    text: str
    """Best (voted) plate text so far."""
    confidence: float
    candidates: tuple[Candidate, ...]
    """Whole-text votes over the event's reads, best first; the first is (text, confidence)."""
    format_region: str
    """The plate-format region the voted text fits (``PlateText.format_region``)."""
    box_px: BoxPx
    """Box of the most recent read, frame pixels."""
    capture_time_us: int
    """Capture time of the read that triggered this step (0 when unknown)."""
    first_seen_us: int
    """Capture time of the first read, or the wall clock passed in when the camera gave none."""
    last_seen_us: int
    read_count: int
    frame_sequence: int | None
    latency_origin_s: float
    """``completed_monotonic_s`` of the read that triggered this step (monotonic seconds)."""
    authenticated: bool = False
    """Every read of the event so far came from an authenticated frame: only then may the
    event open a gate (unless its camera's config says otherwise)."""
    region: PlateRegion = NO_REGION
    """Where the plate is from, voted over the event's reads (``plates.tracker``)."""
