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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import reduce
from operator import add, attrgetter
from typing import NamedTuple

from edge_anpr.boxes import BoxPx, iou
from edge_anpr.config import TrackerConfig
from edge_anpr.plates.known import edit_distance
from edge_anpr.values import (
    NO_REGION,
    Candidate,
    EventKind,
    PlateEvent,
    PlateRead,
    PlateRegion,
)

MAX_EVENT_CANDIDATES = 5
RECENT_TEXTS = 8
"""Distinct recent read texts of an event that a new read is compared with."""
DISTANCE_MEMO_SIZE = 4096
"""Edit distances a tracker remembers; the memo is emptied when it reaches this many."""


@dataclass(frozen=True, slots=True)
class Vote:
    text: str
    confidence: float
    candidates: tuple[Candidate, ...]
    format_region: str
    region: PlateRegion = NO_REGION
    """The reads' region (``region_vote``)."""


class _Item(NamedTuple):
    """What voting needs of one read, worked out once when the read joins an event (``_item``)
    instead of on every vote over it."""

    text: str
    confidence: float
    weight: float
    char_weights: tuple[float, ...]
    alt_texts: tuple[str, ...]
    """Candidate texts, empty ones left out."""
    alt_confidences: tuple[float, ...]
    format_region: str
    region: PlateRegion


_BY_CONFIDENCE = attrgetter("confidence")


def _item(r: PlateRead) -> _Item:
    """The voting inputs of one read: the same values ``vote`` would derive on every call."""
    t = r.text
    text = t.text
    weight = max(t.confidence, 1e-6)
    cc = t.char_confidences
    if len(cc) == len(text):
        char_weights = tuple([max(c, 1e-6) for c in cc])
    else:
        char_weights = (weight,) * len(text)
    alternatives = [c for c in t.candidates or (Candidate(text, t.confidence),) if c.text]
    return _Item(
        text, t.confidence, weight, char_weights, tuple([c.text for c in alternatives]),
        tuple([c.confidence for c in alternatives]), t.format_region, t.region,
    )


def vote(reads: Iterable[PlateRead]) -> Vote:
    """The best text of a group of reads of one plate (see the module docstring)."""
    return _vote([_item(r) for r in reads if r.text.text])


def _vote(items: Sequence[_Item]) -> Vote:
    """``vote`` of reads prepared by ``_item`` (all with a text).

    It runs on every read that joins an event, over up to ``max_reads_per_event`` reads, on the
    event loop (holding the GIL the recognition threads need), so it works on columns (``zip``)
    and takes shortcuts where every read agrees. Every sum still adds the same values in read
    order and the same way (one ``+`` at a time, or ``sum()`` where voting always used it), so
    the results are the same to the bit as voting read by read.
    """
    n = len(items)
    if not n:
        return Vote("", 0.0, (), "generic")
    texts, confidences, weights, char_weights, alt_texts, alt_confidences, _, regions = zip(
        *items, strict=True
    )
    lengths = list(map(len, texts))
    length = lengths[0]
    if lengths.count(length) == n:
        # One length: it is the modal one whatever its summed confidence.
        same_texts, same_weights = texts, char_weights
    else:
        by_length: dict[int, float] = {}
        for m, w in zip(lengths, weights, strict=True):
            by_length[m] = by_length.get(m, 0.0) + w
        length = max(sorted(by_length), key=by_length.__getitem__)
        same_texts = tuple([t for t in texts if len(t) == length])
        same_weights = tuple(
            [w for t, w in zip(texts, char_weights, strict=True) if len(t) == length]
        )
    m = len(same_texts)
    chars: list[str] = []
    support: list[float | None] = []
    columns = list(
        zip(zip(*same_texts, strict=True), zip(*same_weights, strict=True), strict=True)
    )
    for column, column_weights in columns:
        first = column[0]
        if column.count(first) == m:
            # One character: it wins whatever its weight; its support is only needed when
            # no read gave the voted text, so it is summed below only then.
            chars.append(first)
            support.append(None)
            continue
        tally: dict[str, float] = {}
        for c, w in zip(column, column_weights, strict=True):
            tally[c] = tally.get(c, 0.0) + w
        best = max(sorted(tally), key=tally.__getitem__)
        chars.append(best)
        support.append(tally[best] / m)
    text = "".join(chars)
    exact = items if texts.count(text) == n else [it for it in items if it.text == text]
    if exact:
        # sum() over the same values in the same order as ever (on Python 3.12 and later sum()
        # of floats is compensated, so a plain loop would not give the same bits).
        exact_confidences = confidences if exact is items else [it.confidence for it in exact]
        confidence = sum(exact_confidences) / len(exact)
        format_region = max(exact, key=_BY_CONFIDENCE).format_region
    else:
        full = [
            s if s is not None else reduce(add, w, 0.0) / m
            for s, (_, w) in zip(support, columns, strict=True)
        ]
        confidence = math.exp(sum(math.log(max(s, 1e-9)) for s in full) / len(full))
        format_region = max(items, key=_BY_CONFIDENCE).format_region
    first_alts = alt_texts[0]
    if alt_texts.count(first_alts) == n and len(set(first_alts)) == len(first_alts):
        # Every read lists the same distinct candidate texts in the same order: each text's
        # score is the sum of one column of confidences, in read order.
        per_text = zip(first_alts, zip(*alt_confidences, strict=True), strict=True)
        scores = {t: reduce(add, column, 0.0) for t, column in per_text}
    else:
        scores = {}
        for ts, cs in zip(alt_texts, alt_confidences, strict=True):
            for t, c in zip(ts, cs, strict=True):
                scores[t] = scores.get(t, 0.0) + c
    scores.pop(text, None)
    others = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[: MAX_EVENT_CANDIDATES - 1]
    candidates = (
        Candidate(text, round(confidence, 4)),
        *(Candidate(t, round(min(s / n, 1.0), 4)) for t, s in others),
    )
    return Vote(text, min(max(confidence, 0.0), 1.0), candidates, format_region,
                region_vote(regions))


def region_vote(regions: Sequence[PlateRegion]) -> PlateRegion:
    """The region of a group of reads of one plate: the code with the highest summed score,
    scored by that sum over all the reads (a read naming another code, or none, adds 0).
    Ties go to the code seen first. ``NO_REGION`` when no read has one."""
    totals: dict[str, float] = {}
    for r in regions:
        if r.code:
            totals[r.code] = totals.get(r.code, 0.0) + r.score
    if not totals:
        return NO_REGION
    code = max(totals, key=totals.__getitem__)
    return PlateRegion(code, round(min(totals[code] / len(regions), 1.0), 4))


class _Track:
    __slots__ = (
        "authenticated", "box", "camera", "event_id", "first_seen_us", "items", "last_now_s",
        "last_read", "last_seen_us", "last_vote_text", "published", "read_count", "recent",
        "recent_published", "suppressed", "texts",
    )

    def __init__(
        self, event_id: str, read: PlateRead, now_s: float, seen_us: int, max_reads: int,
        suppressed: bool,
    ) -> None:
        self.event_id = event_id
        self.camera = read.camera
        self.authenticated = read.authenticated
        """Every read so far was authenticated: one that was not taints the event for good."""
        self.items: deque[_Item] = deque([_item(read)], maxlen=max_reads)
        """The last ``max_reads`` reads, prepared for voting."""
        self.texts = {read.text.text: 1}
        """How many of ``items`` say each text; the most recently said text last."""
        self.recent: tuple[str, ...] | None = None
        """``recent_texts()`` as of ``recent_published``; None once a read was added."""
        self.recent_published: Vote | None = None
        self.read_count = 1
        self.first_seen_us = seen_us
        self.last_seen_us = seen_us
        self.last_now_s = now_s
        self.box: BoxPx = read.box_px
        self.last_read = read
        self.suppressed = suppressed
        self.published: Vote | None = None
        self.last_vote_text = read.text.text

    def add(self, read: PlateRead, now_s: float, seen_us: int) -> None:
        self.authenticated = self.authenticated and read.authenticated
        items = self.items
        texts = self.texts
        if len(items) == items.maxlen:
            # The oldest read drops out of the window: its text stops being recent unless a
            # newer read said it too (then it keeps its place, which that newer read set).
            old = items[0].text
            left = texts[old] - 1
            if left:
                texts[old] = left
            else:
                del texts[old]
        item = _item(read)
        items.append(item)
        text = item.text
        texts[text] = texts.pop(text, 0) + 1
        self.recent = None
        self.read_count += 1
        self.last_seen_us = max(self.last_seen_us, seen_us)
        self.last_now_s = now_s
        self.box = read.box_px
        self.last_read = read

    def recent_texts(self) -> tuple[str, ...]:
        """The published text, then the distinct texts of the reads newest first (at most
        ``RECENT_TEXTS`` in all).

        Every read is matched against every open event of its camera, so this is kept
        between reads instead of scanning up to ``max_reads_per_event`` reads each time.
        ``texts`` holds the distinct texts of the window in the order they were last said,
        which is the order a scan of the reads from the newest meets them in.
        """
        published = self.published
        if self.recent is None or self.recent_published is not published:
            texts: list[str] = []
            if published is not None:
                texts.append(published.text)
            for text in reversed(self.texts):
                if text not in texts:
                    texts.append(text)
                if len(texts) >= RECENT_TEXTS:
                    break
            self.recent = tuple(texts)
            self.recent_published = published
        return self.recent


@dataclass(slots=True)
class _Parked:
    text: str
    box: BoxPx
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
        self._distances: dict[tuple[str, str, int], int] = {}
        """Memo of ``edit_distance(a, b, limit)`` by (a, b, limit); see ``_distance``."""
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
                current = _vote(track.items)
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
            track.published = _vote(track.items)
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
            distance = self._nearest(read_texts, track.recent_texts())
            if distance <= cfg.max_edit_distance:
                score = distance - overlap
            else:
                ref = track.published.text if track.published else track.last_read.text.text
                if overlap < cfg.misread_iou:
                    continue
                half = max(len(ref), len(read.text.text)) // 2
                if self._distance(read.text.text, ref, half) > half:
                    continue
                score = cfg.max_edit_distance + 1 - overlap
            if best is None or score < best[0]:
                best = (score, track)
        return best[1] if best else None

    def _nearest(self, texts: list[str], recent: tuple[str, ...]) -> int:
        """``min(edit_distance(a, b, max_edit_distance) for a in texts for b in recent)``.

        This runs for every open event of the camera for every read, with the read's
        candidates, so the distances come from the memo and equal texts (distance 0, the
        least there is) end the search.
        """
        limit = self._cfg.max_edit_distance
        memo = self._distances
        nearest = -1
        for a in texts:
            for b in recent:
                if a == b:
                    return 0
                d = memo.get((a, b, limit))
                if d is None:
                    d = self._distance(a, b, limit)
                if nearest < 0 or d < nearest:
                    nearest = d
        return nearest

    def _distance(self, a: str, b: str, limit: int) -> int:
        """``edit_distance(a, b, limit)``, memoised.

        A camera's open events and a car's reads repeat the same few texts frame after frame,
        and the Levenshtein loop in Python was most of what a read cost. The memo is emptied when
        it is full, so its memory stays bounded whatever texts come in.
        """
        key = (a, b, limit)
        memo = self._distances
        d = memo.get(key)
        if d is None:
            if len(memo) >= DISTANCE_MEMO_SIZE:
                memo.clear()
            d = memo[key] = edit_distance(a, b, limit)
        return d

    def _take_parked(self, read: PlateRead, now_s: float) -> bool:
        parked = self._parked.get(read.camera)
        if not parked:
            return False
        for spot in parked:
            if (
                now_s - spot.ended_s < self._cfg.parked_suppress_s
                and self._distance(read.text.text, spot.text, self._cfg.max_edit_distance)
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
        final = _vote(track.items)
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
            format_region=v.format_region,
            region=v.region,
            box_px=track.box,
            capture_time_us=read.capture_time_us,
            first_seen_us=track.first_seen_us,
            last_seen_us=track.last_seen_us,
            read_count=track.read_count,
            frame_sequence=read.frame_sequence,
            latency_origin_s=read.completed_monotonic_s,
            authenticated=track.authenticated,
        )
