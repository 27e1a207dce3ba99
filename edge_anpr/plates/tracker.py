"""Tracking: plate reads of one vehicle on one camera grouped into one event (sans-IO).

The tracker takes ``PlateRead`` values and a clock value in and gives ``PlateEvent`` values out;
it never reads the time or touches I/O, so every behaviour below is tested with plain calls.

Grouping. A read joins an open event of the same camera that saw a read less than
``tracker.quiet_time_s`` ago when

- its text, or one of its candidates, is within ``tracker.max_edit_distance`` edits of the
  event's best text or of a recent read of it (ties broken by box overlap), or
- it is a *misread frame*: its box overlaps the event's last box (IoU at least
  ``tracker.misread_iou``) and its text is at most half the plate length away. Such a read
  joins and votes (with its own, usually low, confidence) instead of starting a bogus event.

Otherwise it starts a new event. Two cars in one frame keep their own events because their
texts differ; a car following another to the same spot starts its own event because its text
is far from the first (a misread needs to be at least half right).

Best read. Over the reads of an event (the last ``tracker.max_reads_per_event``), the modal
length is chosen by summed confidence, then each position's character by votes weighted by the
character confidences of the reads of that length. The confidence of the voted text is the mean
confidence of the reads that say exactly that text, or, when the vote composed a text no single
read gave, the geometric mean of the per-position support. Candidates are whole-text votes over
every read's candidate list.

Events. ``start`` on the first read of a new vehicle; ``update`` only when the voted text changes
(and two reads in a row voted for the new text: hysteresis against flip-flopping) or its
confidence rises by at least ``tracker.update_min_gain`` over the last published one (not for
every frame); ``end`` once no read joined for ``quiet_time_s`` (from ``tick``/``push``) or
at shutdown (``close``).

Parked cars. Choice: *suppress*, not keep open. When an event ends, its plate, camera and box are
remembered for ``tracker.parked_suppress_s``. A later read of the same plate (within the edit
tolerance) at the same spot (IoU at least ``tracker.parked_iou``) opens a silent track that
absorbs reads and emits nothing; when it goes quiet the memory is refreshed, so a car parked
for hours in front of a camera (read now and then, for example with motion gating) produces one
start and one end, not one pair per passer-by. The same plate at a different spot (the car
drove off and came back through the gate) is a new event. Keeping the event open instead would
have held an event open for hours and delayed its ``end``, which gate logic and Home Assistant
treat as "the car has gone".

Memory is bounded: at most ``tracker.max_open_events_per_camera`` open events per camera (the
least recently seen is ended early) and at most that many parked memories per camera.
"""

from __future__ import annotations

import math
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from edge_anpr.config import TrackerConfig
from edge_anpr.plates.known import edit_distance
from edge_anpr.values import Candidate, PlateRead

EventKind = Literal["start", "update", "end"]
Box = tuple[int, int, int, int]

MAX_EVENT_CANDIDATES = 5
RECENT_TEXTS = 8
"""Distinct recent read texts of an event that a new read is compared with."""


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
    region: str
    box_px: Box
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


@dataclass(frozen=True, slots=True)
class Vote:
    text: str
    confidence: float
    candidates: tuple[Candidate, ...]
    region: str


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two x, y, w, h boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def vote(reads: Iterable[PlateRead]) -> Vote:
    """The best text of a group of reads of one plate (see the module docstring)."""
    reads = [r for r in reads if r.text.text]
    if not reads:
        return Vote("", 0.0, (), "generic")
    by_length: dict[int, float] = {}
    for r in reads:
        by_length[len(r.text.text)] = by_length.get(len(r.text.text), 0.0) + _weight(r)
    length = max(sorted(by_length), key=lambda n: by_length[n])
    same = [r for r in reads if len(r.text.text) == length]
    chars: list[str] = []
    support: list[float] = []
    for i in range(length):
        weights: dict[str, float] = {}
        for r in same:
            c = r.text.text[i]
            weights[c] = weights.get(c, 0.0) + _char_weight(r, i)
        best = max(sorted(weights), key=lambda c: weights[c])
        chars.append(best)
        support.append(weights[best] / len(same))
    text = "".join(chars)
    exact = [r for r in reads if r.text.text == text]
    if exact:
        confidence = sum(r.text.confidence for r in exact) / len(exact)
        region = max(exact, key=lambda r: r.text.confidence).text.region
    else:
        confidence = math.exp(sum(math.log(max(s, 1e-9)) for s in support) / len(support))
        region = max(reads, key=lambda r: r.text.confidence).text.region
    scores: dict[str, float] = {}
    for r in reads:
        alternatives = r.text.candidates or (Candidate(r.text.text, r.text.confidence),)
        for cand in alternatives:
            if cand.text:
                scores[cand.text] = scores.get(cand.text, 0.0) + cand.confidence
    scores.pop(text, None)
    others = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[: MAX_EVENT_CANDIDATES - 1]
    candidates = (
        Candidate(text, round(confidence, 4)),
        *(Candidate(t, round(min(s / len(reads), 1.0), 4)) for t, s in others),
    )
    return Vote(text, min(max(confidence, 0.0), 1.0), candidates, region)


def _weight(r: PlateRead) -> float:
    return max(r.text.confidence, 1e-6)


def _char_weight(r: PlateRead, i: int) -> float:
    cc = r.text.char_confidences
    if len(cc) == len(r.text.text):
        return max(cc[i], 1e-6)
    return _weight(r)


class _Track:
    __slots__ = (
        "box", "camera", "event_id", "first_seen_us", "last_now_s", "last_read",
        "last_seen_us", "last_vote_text", "published", "read_count", "reads", "suppressed",
    )

    def __init__(
        self, event_id: str, read: PlateRead, now_s: float, seen_us: int, max_reads: int,
        suppressed: bool,
    ) -> None:
        self.event_id = event_id
        self.camera = read.camera
        self.reads: deque[PlateRead] = deque([read], maxlen=max_reads)
        self.read_count = 1
        self.first_seen_us = seen_us
        self.last_seen_us = seen_us
        self.last_now_s = now_s
        self.box: Box = read.box_px
        self.last_read = read
        self.suppressed = suppressed
        self.published: Vote | None = None
        self.last_vote_text = read.text.text

    def add(self, read: PlateRead, now_s: float, seen_us: int) -> None:
        self.reads.append(read)
        self.read_count += 1
        self.last_seen_us = max(self.last_seen_us, seen_us)
        self.last_now_s = now_s
        self.box = read.box_px
        self.last_read = read

    def recent_texts(self) -> list[str]:
        texts: list[str] = []
        if self.published is not None:
            texts.append(self.published.text)
        for r in reversed(self.reads):
            if r.text.text not in texts:
                texts.append(r.text.text)
            if len(texts) >= RECENT_TEXTS:
                break
        return texts


@dataclass(slots=True)
class _Parked:
    text: str
    box: Box
    ended_s: float


class Tracker:
    """Per-camera grouping of plate reads into events. Not thread-safe; one owner task."""

    def __init__(
        self, cfg: TrackerConfig, id_source: Callable[[], str] | None = None
    ) -> None:
        self._cfg = cfg
        self._new_id = id_source or (lambda: uuid.uuid4().hex)
        self._tracks: dict[str, list[_Track]] = {}
        self._parked: dict[str, deque[_Parked]] = {}
        self.suppressed_reads = 0
        """Reads absorbed by parked-car suppression (for stats)."""

    def open_events(self) -> int:
        return sum(1 for ts in self._tracks.values() for t in ts if not t.suppressed)

    def push(self, read: PlateRead, now_s: float, wall_us: int = 0) -> list[PlateEvent]:
        """Feed one read; ``now_s`` is a monotonic clock, ``wall_us`` the wall clock (µs).

        ``wall_us`` stands in for the capture time of reads whose camera sent none.
        """
        out = self.tick(now_s)
        if not read.text.text:
            return out
        seen_us = read.capture_time_us or wall_us
        tracks = self._tracks.setdefault(read.camera, [])
        track = self._match(tracks, read, now_s)
        if track is not None:
            track.add(read, now_s, seen_us)
            if not track.suppressed:
                current = vote(track.reads)
                if self._worth_update(track.published, current, track.last_vote_text):
                    track.published = current
                    out.append(self._event(track, "update", current))
                track.last_vote_text = current.text
            else:
                self.suppressed_reads += 1
            return out
        suppressed = self._take_parked(read, now_s)
        track = _Track(
            self._new_id(), read, now_s, seen_us, self._cfg.max_reads_per_event, suppressed
        )
        if len(tracks) >= self._cfg.max_open_events_per_camera:
            oldest = min(tracks, key=lambda t: t.last_now_s)
            out.extend(self._finish(oldest, now_s))
        tracks.append(track)
        if suppressed:
            self.suppressed_reads += 1
        else:
            track.published = vote(track.reads)
            out.append(self._event(track, "start", track.published))
        return out

    def tick(self, now_s: float) -> list[PlateEvent]:
        """End every event that has been quiet for ``quiet_time_s``; forget old parked spots."""
        out: list[PlateEvent] = []
        for camera in list(self._tracks):
            for track in [
                t for t in self._tracks[camera]
                if now_s - t.last_now_s >= self._cfg.quiet_time_s
            ]:
                out.extend(self._finish(track, now_s))
            if not self._tracks[camera]:
                del self._tracks[camera]
        for camera in list(self._parked):
            parked = self._parked[camera]
            while parked and now_s - parked[0].ended_s > self._cfg.parked_suppress_s:
                parked.popleft()
            if not parked:
                del self._parked[camera]
        return out

    def close(self, now_s: float) -> list[PlateEvent]:
        """End every open event (shutdown)."""
        out: list[PlateEvent] = []
        for camera in list(self._tracks):
            for track in list(self._tracks[camera]):
                out.extend(self._finish(track, now_s))
        self._tracks.clear()
        return out

    def _match(self, tracks: list[_Track], read: PlateRead, now_s: float) -> _Track | None:
        cfg = self._cfg
        read_texts = [read.text.text] + [
            c.text for c in read.text.candidates if c.text and c.text != read.text.text
        ]
        best: tuple[float, _Track] | None = None
        for track in tracks:
            if now_s - track.last_now_s >= cfg.quiet_time_s:
                continue
            overlap = iou(read.box_px, track.box)
            recent = track.recent_texts()  # once per track: this runs for every read
            distance = min(
                edit_distance(a, b, cfg.max_edit_distance) for a in read_texts for b in recent
            )
            if distance <= cfg.max_edit_distance:
                score = distance - overlap
            else:
                ref = track.published.text if track.published else track.last_read.text.text
                if overlap < cfg.misread_iou:
                    continue
                half = max(len(ref), len(read.text.text)) // 2
                if edit_distance(read.text.text, ref, half) > half:
                    continue
                score = cfg.max_edit_distance + 1 - overlap
            if best is None or score < best[0]:
                best = (score, track)
        return best[1] if best else None

    def _take_parked(self, read: PlateRead, now_s: float) -> bool:
        parked = self._parked.get(read.camera)
        if not parked:
            return False
        for spot in parked:
            if (
                now_s - spot.ended_s < self._cfg.parked_suppress_s
                and edit_distance(read.text.text, spot.text, self._cfg.max_edit_distance)
                <= self._cfg.max_edit_distance
                and iou(read.box_px, spot.box) >= self._cfg.parked_iou
            ):
                parked.remove(spot)
                return True
        return False

    def _worth_update(self, published: Vote | None, current: Vote, previous_vote: str) -> bool:
        if published is None:
            return True
        if current.text != published.text:
            # Hysteresis: a new best text is published once two reads in a row vote for it,
            # so two near-equal readings cannot make the event flip-flop with every frame.
            return current.text == previous_vote
        return current.confidence >= published.confidence + self._cfg.update_min_gain

    def _finish(self, track: _Track, now_s: float) -> list[PlateEvent]:
        tracks = self._tracks.get(track.camera)
        if tracks is not None and track in tracks:
            tracks.remove(track)
        final = vote(track.reads)
        parked = self._parked.setdefault(track.camera, deque())
        parked.append(_Parked(final.text, track.box, now_s))
        while len(parked) > self._cfg.max_open_events_per_camera:
            parked.popleft()
        if track.suppressed:
            return []
        return [self._event(track, "end", final)]

    def _event(self, track: _Track, kind: EventKind, v: Vote) -> PlateEvent:
        read = track.last_read
        return PlateEvent(
            event_id=track.event_id,
            kind=kind,
            camera=track.camera,
            text=v.text,
            confidence=round(v.confidence, 4),
            candidates=v.candidates,
            region=v.region,
            box_px=track.box,
            capture_time_us=read.capture_time_us,
            first_seen_us=track.first_seen_us,
            last_seen_us=track.last_seen_us,
            read_count=track.read_count,
            frame_sequence=read.frame_sequence,
            latency_origin_s=read.completed_monotonic_s,
        )
