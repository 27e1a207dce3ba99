"""The tracker on scripted read sequences: plain calls, a fake clock, deterministic ids."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_anpr.boxes import iou
from edge_anpr.config import TrackerConfig
from edge_anpr.plates.tracker import Tracker, vote
from edge_anpr.values import NO_REGION, Candidate, PlateEvent, PlateRead, PlateRegion, PlateText


def read(
    text: str,
    t: float,
    *,
    camera: str = "gate",
    box: tuple[int, int, int, int] = (100, 200, 120, 30),
    conf: float = 0.9,
    chars: tuple[float, ...] | None = None,
    candidates: tuple[Candidate, ...] | None = None,
    capture_us: int | None = None,
    region: PlateRegion = NO_REGION,
) -> PlateRead:
    return PlateRead(
        camera=camera,
        text=PlateText(
            text=text,
            confidence=conf,
            char_confidences=chars if chars is not None else tuple(conf for _ in text),
            candidates=candidates if candidates is not None else (Candidate(text, conf),),
            format_region="generic",
            region=region,
        ),
        box_px=box,
        capture_time_us=capture_us if capture_us is not None else int(t * 1e6) + 1_700_000_000,
        frame_sequence=int(t * 10),
        completed_monotonic_s=t,
    )


def tracker(**over: float) -> Tracker:
    counter = itertools.count(1)
    return Tracker(replace(TrackerConfig(), **over), id_source=lambda: f"ev{next(counter)}")


def run(tr: Tracker, reads: list[PlateRead], until_s: float) -> list[PlateEvent]:
    out: list[PlateEvent] = []
    for r in reads:
        out += tr.push(r, r.completed_monotonic_s)
    out += tr.tick(until_s)
    return out


def moving(text: str, t0: float, n: int, *, dx: int = 8, **kw: object) -> list[PlateRead]:
    """n reads 0.1 s apart of a plate whose box drifts right by dx pixels per frame."""
    return [
        read(text, t0 + 0.1 * i, box=(100 + dx * i, 200, 120, 30), **kw)  # type: ignore[arg-type]
        for i in range(n)
    ]


def kinds(events: list[PlateEvent]) -> list[tuple[str, str, str]]:
    return [(e.event_id, e.kind, e.text) for e in events]


def test_one_car_gives_start_then_end_with_all_fields() -> None:
    tr = tracker()
    events = run(tr, moving("AB123CD", 10.0, 8), until_s=20.0)
    assert kinds(events) == [("ev1", "start", "AB123CD"), ("ev1", "end", "AB123CD")]
    end = events[-1]
    assert end.read_count == 8
    assert end.first_seen_us == 1_700_000_000 + 10_000_000
    assert end.last_seen_us == 1_700_000_000 + 10_700_000
    assert end.box_px == (100 + 8 * 7, 200, 120, 30)
    assert end.candidates[0] == Candidate("AB123CD", end.confidence)
    assert end.latency_origin_s == 10.7
    assert events[0].latency_origin_s == 10.0


def test_end_only_after_quiet_time() -> None:
    tr = tracker(quiet_time_s=3.0)
    assert kinds(tr.push(read("AB123CD", 0.0), 0.0)) == [("ev1", "start", "AB123CD")]
    assert tr.tick(2.9) == []
    assert kinds(tr.tick(3.0)) == [("ev1", "end", "AB123CD")]
    assert tr.tick(10.0) == []


def test_two_cars_in_one_frame_keep_their_own_events() -> None:
    tr = tracker()
    a = [read("AB123CD", 0.1 * i, box=(100 + 5 * i, 200, 120, 30)) for i in range(6)]
    b = [read("XY987ZW", 0.1 * i + 0.01, box=(600 - 5 * i, 220, 120, 30)) for i in range(6)]
    interleaved = [r for pair in zip(a, b, strict=True) for r in pair]
    events = run(tr, interleaved, until_s=10.0)
    by_id: dict[str, list[str]] = {}
    for e in events:
        by_id.setdefault(e.event_id, []).append(f"{e.kind}:{e.text}")
    assert by_id == {
        "ev1": ["start:AB123CD", "end:AB123CD"],
        "ev2": ["start:XY987ZW", "end:XY987ZW"],
    }
    ends = {e.text: e.read_count for e in events if e.kind == "end"}
    assert ends == {"AB123CD": 6, "XY987ZW": 6}


def test_two_cars_one_after_the_other_at_the_same_spot() -> None:
    tr = tracker(quiet_time_s=3.0)
    first = [read("AB123CD", 0.1 * i) for i in range(5)]
    second = [read("KL456MN", 1.0 + 0.1 * i) for i in range(5)]  # same box, within quiet time
    events = run(tr, first + second, until_s=10.0)
    assert [(e.event_id, e.kind, e.text) for e in events] == [
        ("ev1", "start", "AB123CD"),
        ("ev2", "start", "KL456MN"),
        ("ev1", "end", "AB123CD"),
        ("ev2", "end", "KL456MN"),
    ]


def test_a_misread_frame_joins_the_event_and_is_outvoted() -> None:
    tr = tracker()
    reads = moving("AB123CD", 0.0, 6)
    misread = read("A8I23C0", 0.35, box=(124, 201, 120, 30), conf=0.4)  # 3 edits: beyond 2
    events = run(tr, [*reads[:3], misread, *reads[3:]], until_s=10.0)
    assert kinds(events) == [("ev1", "start", "AB123CD"), ("ev1", "end", "AB123CD")]
    assert events[-1].read_count == 7
    assert "A8I23C0" in [c.text for c in events[-1].candidates]


def test_a_far_away_wrong_text_is_not_taken_for_a_misread() -> None:
    tr = tracker()
    events = run(
        tr, [read("AB123CD", 0.0), read("A8I23C0", 0.1, box=(900, 500, 120, 30))], until_s=9.0
    )
    assert sorted({e.event_id for e in events}) == ["ev1", "ev2"]


def test_vote_fixes_a_character_no_single_read_got_consistently() -> None:
    tr = tracker()
    # The first read is wrong at position 2; later, more confident reads are right.
    reads = [
        read("AB128CD", 0.0, conf=0.5, chars=(0.9, 0.9, 0.9, 0.9, 0.3, 0.9, 0.9)),
        read("AB123CD", 0.1, conf=0.8),
        read("AB123CD", 0.2, conf=0.85),
        read("AB128CD", 0.3, conf=0.5, chars=(0.9, 0.9, 0.9, 0.9, 0.3, 0.9, 0.9)),
        read("AB123CD", 0.4, conf=0.8),
    ]
    events = run(tr, reads, until_s=10.0)
    assert kinds(events) == [
        ("ev1", "start", "AB128CD"),
        ("ev1", "update", "AB123CD"),
        ("ev1", "end", "AB123CD"),
    ]


def test_updates_are_not_sent_for_every_frame() -> None:
    tr = tracker(update_min_gain=0.05)
    reads = [read("AB123CD", 0.1 * i, conf=0.9) for i in range(30)]
    events = run(tr, reads, until_s=20.0)
    assert [e.kind for e in events] == ["start", "end"]


def test_a_clear_confidence_gain_is_an_update() -> None:
    tr = tracker(update_min_gain=0.05)
    events = run(tr, [read("AB123CD", 0.0, conf=0.5), read("AB123CD", 0.1, conf=0.95)], 9.0)
    assert [e.kind for e in events] == ["start", "update", "end"]
    assert events[1].confidence > events[0].confidence + 0.05


def test_read_matching_only_through_a_candidate_joins() -> None:
    tr = tracker(max_edit_distance=1)
    far = read(
        "A8I23CO", 0.1, box=(800, 400, 120, 30),
        candidates=(Candidate("A8I23CO", 0.5), Candidate("AB123CD", 0.45)),
    )
    events = run(tr, [read("AB123CD", 0.0), far], until_s=9.0)
    assert {e.event_id for e in events} == {"ev1"}
    assert events[-1].read_count == 2


def test_parked_car_does_not_retrigger() -> None:
    tr = tracker(quiet_time_s=3.0, parked_suppress_s=600.0)
    events = run(tr, [read("AB123CD", 0.1 * i) for i in range(5)], until_s=10.0)
    assert kinds(events) == [("ev1", "start", "AB123CD"), ("ev1", "end", "AB123CD")]
    # Read again now and then at the same spot: silent, for far longer than the window,
    # because each silent sighting refreshes it.
    later: list[PlateEvent] = []
    for minute in range(1, 30):
        t = 60.0 * 5 * minute
        later += tr.push(read("AB123CD", t, box=(102, 201, 120, 30)), t)
        later += tr.tick(t + 5)
    assert later == []
    assert tr.suppressed_reads == 29


def test_parked_memory_expires() -> None:
    tr = tracker(quiet_time_s=3.0, parked_suppress_s=60.0)
    run(tr, [read("AB123CD", 0.0)], until_s=5.0)
    events = run(tr, [read("AB123CD", 100.0)], until_s=110.0)
    assert kinds(events) == [("ev2", "start", "AB123CD"), ("ev2", "end", "AB123CD")]


def test_same_plate_elsewhere_is_a_new_event() -> None:
    tr = tracker(quiet_time_s=3.0)
    run(tr, [read("AB123CD", 0.0)], until_s=5.0)
    events = run(tr, [read("AB123CD", 20.0, box=(700, 300, 120, 30))], until_s=30.0)
    assert [e.kind for e in events] == ["start", "end"]


def test_other_camera_is_independent() -> None:
    tr = tracker()
    events = run(tr, [read("AB123CD", 0.0), read("AB123CD", 0.1, camera="exit")], until_s=9.0)
    assert sorted((e.camera, e.kind) for e in events) == [
        ("exit", "end"), ("exit", "start"), ("gate", "end"), ("gate", "start"),
    ]


def test_close_ends_everything_open() -> None:
    tr = tracker()
    tr.push(read("AB123CD", 0.0), 0.0)
    tr.push(read("XY987ZW", 0.0, box=(600, 200, 120, 30)), 0.0)
    assert tr.open_events() == 2
    events = tr.close(0.5)
    assert sorted((e.kind, e.text) for e in events) == [("end", "AB123CD"), ("end", "XY987ZW")]
    assert tr.open_events() == 0
    assert tr.close(1.0) == []


def test_open_events_are_bounded_per_camera() -> None:
    tr = tracker(max_open_events_per_camera=3)
    texts = ["AAA111", "BBB222", "CCC333", "DDD444"]
    out: list[PlateEvent] = []
    for i, text in enumerate(texts):
        out += tr.push(read(text, 0.1 * i, box=(200 * i, 0, 100, 30)), 0.1 * i)
    assert tr.open_events() == 3
    assert ("ev1", "end", "AAA111") in kinds(out)


def test_missing_capture_time_uses_wall_clock() -> None:
    tr = tracker()
    tr.push(read("AB123CD", 0.0, capture_us=0), 0.0, wall_us=5_000_000)
    events = tr.push(read("AB123CD", 0.2, capture_us=0, conf=0.99), 0.2, wall_us=5_200_000)
    events += tr.tick(10.0)
    end = events[-1]
    assert (end.first_seen_us, end.last_seen_us, end.capture_time_us) == (5_000_000, 5_200_000, 0)


def test_empty_text_is_ignored() -> None:
    tr = tracker()
    assert tr.push(read("", 0.0), 0.0) == []
    assert tr.open_events() == 0


def test_iou() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (10, 0, 10, 10)) == 0.0
    assert abs(iou((0, 0, 10, 10), (5, 0, 10, 10)) - 50 / 150) < 1e-9


def test_vote_prefers_modal_length() -> None:
    reads = [read("AB123CD", 0), read("AB123CD", 0.1), read("AB123C", 0.2, conf=0.95)]
    assert vote(reads).text == "AB123CD"


plates = st.text(alphabet="ABCDEFGHKLMNPRSTXYZ0123456789", min_size=5, max_size=8)


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(plates, min_size=1, max_size=30),
    gaps=st.lists(st.floats(min_value=0.0, max_value=5.0), min_size=30, max_size=30),
)
def test_every_started_event_ends_exactly_once(texts: list[str], gaps: list[float]) -> None:
    tr = tracker(quiet_time_s=1.0, parked_suppress_s=0.0)
    out: list[PlateEvent] = []
    t = 0.0
    for text, gap in zip(texts, gaps, strict=False):
        t += gap
        out += tr.push(read(text, t), t)
    out += tr.close(t + 0.5)
    starts = [e.event_id for e in out if e.kind == "start"]
    ends = [e.event_id for e in out if e.kind == "end"]
    assert sorted(starts) == sorted(ends)
    assert len(set(starts)) == len(starts)
    seen: set[str] = set()
    for e in out:  # nothing before its start, nothing after its end
        if e.kind == "start":
            seen.add(e.event_id)
        else:
            assert e.event_id in seen
        if e.kind == "end":
            seen.discard(e.event_id)
    assert sum(e.read_count for e in out if e.kind == "end") == len(texts)


def test_a_misread_first_frame_is_corrected_by_the_following_reads() -> None:
    tr = tracker()
    reads = [read("A8I23C0", 0.0, conf=0.4)] + [
        read("AB123CD", 0.1 * i, box=(100 + 2 * i, 200, 120, 30)) for i in range(1, 5)
    ]
    events = run(tr, reads, until_s=10.0)
    assert kinds(events) == [
        ("ev1", "start", "A8I23C0"), ("ev1", "update", "AB123CD"), ("ev1", "end", "AB123CD"),
    ]
    assert events[-1].read_count == 5


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(alphabet="AB18", min_size=0, max_size=9),
            st.floats(min_value=0.0, max_value=1.0),
            st.lists(st.floats(min_value=0.0, max_value=1.0), max_size=12),
            st.tuples(st.integers(-50, 2000), st.integers(-50, 2000), st.integers(0, 400),
                      st.integers(0, 200)),
        ),
        max_size=25,
    )
)
def test_odd_reads_never_break_the_tracker(
    reads: list[tuple[str, float, list[float], tuple[int, int, int, int]]],
) -> None:
    """Zero-size boxes, confidences that do not fit the text, empty texts: still consistent."""
    tr = tracker(quiet_time_s=0.5)
    out: list[PlateEvent] = []
    for i, (text, conf, chars, box) in enumerate(reads):
        r = read(text, 0.05 * i, conf=conf, chars=tuple(chars), box=box, candidates=())
        out += tr.push(r, 0.05 * i)
    out += tr.close(100.0)
    for e in out:
        assert e.text and 0.0 <= e.confidence <= 1.0
        assert e.candidates[0].text == e.text
    assert tr.open_events() == 0


def test_two_near_equal_readings_do_not_flip_flop_the_event() -> None:
    tr = tracker()
    # cumulative votes alternate between the two texts with every read
    confs = [0.5, 0.6, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]
    reads = [
        read("AB123CD" if i % 2 == 0 else "AB128CD", 0.1 * i, conf=c)
        for i, c in enumerate(confs)
    ]
    votes = [vote(reads[: i + 1]).text for i in range(len(reads))]
    assert votes == ["AB123CD", "AB128CD"] * 4  # the raw vote does flip every frame
    events = run(tr, reads, until_s=10.0)
    assert [e.kind for e in events] == ["start", "end"]


def test_an_event_carries_the_region_its_reads_give_most_weight() -> None:
    regions = [PlateRegion("us-ca", 0.8), PlateRegion("us-nv", 0.5), PlateRegion("us-ca", 0.9)]
    reads = [read("7ABC123", 0.1 * i, region=r) for i, r in enumerate(regions)]
    events = run(tracker(), reads, 10.0)
    assert events[-1].kind == "end"
    assert events[-1].region == PlateRegion("us-ca", pytest.approx(1.7 / 3, abs=1e-4))
