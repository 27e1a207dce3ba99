"""Replay protection of authenticated frames (docs/protocol.md, "Replay protection"), through
plain calls to the sans-IO reassembler and to the state file's load and save."""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from edge_anpr.config import config_from_dict, config_warnings
from edge_anpr.errors import ConfigError
from edge_anpr.ingest.events import Dropped, Event, FrameReady
from edge_anpr.ingest.protocol import encode_sequenced
from edge_anpr.ingest.reassembly import Reassembler
from edge_anpr.ingest.replay_state import (
    ReplayJournal,
    load_replay_state,
    load_replay_states,
    replay_state_path,
    save_replay_state,
)
from edge_anpr.values import Frame

KEY = b"gate-camera-key-0123"
A = ("10.0.0.1", 5000)
T0 = 1_780_000_000_000_000  # a wall-clock time, us since the epoch
S = 1_000_000  # one second in us


def make(window_s: float = 5.0, last_us: dict[int, int] | None = None,
         **ingest: Any) -> Reassembler:
    cfg = config_from_dict({
        "ingest": {"replay_window_s": window_s, **ingest},
        "cameras": {"gate": {"id": 1, "key": KEY.decode()}, "open": {"id": 2}},
    })
    return Reassembler(cfg.ingest, cfg.cameras, replay_last_us=last_us)


def frame(seq: int, time_us: int, camera: int = 1, size: int = 3000,
          key: bytes | None = KEY) -> list[bytes]:
    return encode_sequenced(random.Random(seq).randbytes(size), camera=camera, frame=seq,
                            time_us=time_us, key=key)


def feed(r: Reassembler, datagrams: Iterable[bytes], wall_us: int | None,
         sender: tuple[str, int] = A, now_s: float | None = None) -> list[Event]:
    # the monotonic clock follows the wall clock here; only the wall clock matters for replay
    now = (wall_us or T0) / 1e6 - 1.7e9 if now_s is None else now_s
    out: list[Event] = []
    for d in datagrams:
        out.extend(r.feed(d, sender, now, wall_us))
    return out


def ready(events: Sequence[Event]) -> list[Frame]:
    return [e.frame for e in events if isinstance(e, FrameReady)]


def reasons(events: Sequence[Event]) -> set[str]:
    return {e.reason for e in events if isinstance(e, Dropped)}


def test_a_captured_frame_is_refused_at_any_later_time() -> None:
    r = make()
    captured = frame(10, T0)
    assert ready(feed(r, captured, T0 + 20_000))
    # at once, from the same address: the same frame again is a duplicate, never a read
    assert ready(feed(r, captured, T0 + 30_000)) == []
    # later, while the camera went on: refused as not newer (from any address)
    for i in range(1, 40):
        assert ready(feed(r, frame(10 + i, T0 + i * 100_000), T0 + i * 100_000 + 20_000))
    for sender in (A, ("10.0.0.66", 4000)):
        events = feed(r, captured, T0 + 4 * S, sender=sender)
        assert ready(events) == [] and reasons(events) == {"replayed"}
    # after the freshness window: refused as stale
    for later_s in (12.5, 3600, 86400 * 30):
        events = feed(r, captured, T0 + int(later_s * S))
        assert ready(events) == [] and reasons(events) == {"stale"}
    assert r.stats.drops["replayed"] > 0 and r.stats.drops["stale"] > 0


def test_capture_time_must_be_within_the_window_of_the_appliance_clock() -> None:
    r = make(window_s=2.0)
    assert reasons(feed(r, frame(1, T0 - 2 * S - 1), T0)) == {"stale"}  # too old
    assert reasons(feed(r, frame(2, T0 + 2 * S + 1), T0)) == {"stale"}  # too far ahead
    assert reasons(feed(r, frame(3, 0), T0)) == {"stale"}  # no capture time
    assert reasons(feed(r, frame(4, T0), None)) == {"stale"}  # no appliance clock given
    assert r.tracked_senders() == 0  # refused before any state is made
    assert ready(feed(r, frame(5, T0 - 2 * S), T0))  # at the edge of the window: taken
    assert ready(feed(r, frame(6, T0 + 2 * S), T0))


def test_a_frame_must_be_strictly_newer_than_the_last_accepted() -> None:
    r = make()
    assert ready(feed(r, frame(1, T0), T0))
    # the same capture time under a new frame number, and an older one under a newer number
    assert reasons(feed(r, frame(2, T0), T0)) == {"replayed"}
    assert reasons(feed(r, frame(3, T0 - 1), T0)) == {"replayed"}
    (f,) = ready(feed(r, frame(4, T0 + 1), T0))
    assert f.sequence == 4 and f.authenticated and f.capture_time_us == T0 + 1
    assert r.replay is not None and r.replay.last_us() == {1: T0 + 1}


def test_a_restarted_sender_goes_on_working() -> None:
    r = make()
    for i in range(5):
        assert ready(feed(r, frame(70_000 + i, T0 + i * 40_000), T0 + i * 40_000))
    # the sender restarts: new numbers far behind (or far ahead), capture times go on
    for i, seq in enumerate((12, 13, 14, 900_000, 900_001)):
        t = T0 + S + i * 40_000
        (f,) = ready(feed(r, frame(seq, t), t))
        assert f.sequence == seq
    assert r.stats.drops["replayed"] == 0 and r.stats.drops["stale"] == 0


def test_a_restarted_appliance_refuses_what_it_accepted_before() -> None:
    r = make()
    frames = [frame(100 + i, T0 + i * 40_000) for i in range(10)]
    for i, datagrams in enumerate(frames):
        assert ready(feed(r, datagrams, T0 + i * 40_000 + 10_000))
    assert r.replay is not None
    saved = r.replay.last_us()
    restarted = make(last_us=saved)
    for datagrams in frames:
        events = feed(restarted, datagrams, T0 + 2 * S)
        assert ready(events) == [] and reasons(events) == {"replayed"}
    # the camera's next frame is taken
    assert ready(feed(restarted, frame(110, T0 + 2 * S), T0 + 2 * S))
    # without the saved state the same replays would have been read: the state is what counts
    assert ready(feed(make(), frames[-1], T0 + 2 * S))


def test_replays_cannot_reset_a_stream_or_make_its_frames_late() -> None:
    r = make()
    old = [frame(1000 + i, T0 + i * 40_000) for i in range(10)]
    for i, datagrams in enumerate(old):
        assert ready(feed(r, datagrams, T0 + i * 40_000))
    # three older frames far behind, newer each time: for an unauthenticated stream this
    # would make it start over; replayed, they are refused before the stream sees them
    events = feed(r, [d for f in old[:3] for d in f], T0 + S)
    assert ready(events) == [] and reasons(events) == {"replayed"}
    assert r.stats.streams_reset == 0
    t = T0 + S
    events = feed(r, [d for i in range(5) for d in frame(1010 + i, t + i)], t + 10)
    assert [f.sequence for f in ready(events)] == list(range(1010, 1015))
    assert reasons(events) == set()


def test_reordering_and_duplicates_are_counted_as_such_not_as_replays() -> None:
    r = make()
    a, b = frame(1, T0), frame(2, T0 + 40_000)
    # frame 2 overtakes the end of frame 1: frame 1 is lost, its last chunk late
    events = feed(r, a[:-1] + b, T0 + 50_000)
    assert [f.sequence for f in ready(events)] == [2]
    assert reasons(feed(r, a[-1:], T0 + 60_000)) == {"late"}
    duplicates = r.stats.duplicates
    assert feed(r, b[:1], T0 + 70_000) == []  # a duplicate of the frame just handed on
    assert r.stats.duplicates == duplicates + 1
    assert r.stats.drops["replayed"] == 0


def test_unauthenticated_frames_and_window_zero_are_not_checked() -> None:
    r = make()
    # camera 2 has no key: its frames prove nothing, and are taken whatever their time
    for i, wall_us in enumerate((T0, T0 + 100 * S, None)):
        sender = (f"10.0.0.{10 + i}", 1)
        (f,) = ready(feed(r, frame(5, 0, camera=2, key=None), wall_us, sender=sender))
        assert not f.authenticated
    assert r.replay is not None and r.replay.last_us() == {}
    off = make(window_s=0)
    assert off.replay is None
    captured = frame(9, 0)
    assert ready(feed(off, captured, None))
    assert ready(feed(off, captured, None, sender=("10.0.0.7", 7)))


def test_the_window_is_a_validated_key() -> None:
    with pytest.raises(ConfigError, match=r"ingest\.replay_window_s must be at least 0"):
        config_from_dict({"ingest": {"replay_window_s": -1}})
    with pytest.raises(ConfigError, match=r"ingest\.replay_window_s must be a number"):
        config_from_dict({"ingest": {"replay_window_s": "5"}})
    keyed = {"ingest": {"key": KEY.decode(), "replay_window_s": 0}}
    assert any("replay_window_s = 0" in w for w in config_warnings(config_from_dict(keyed)))
    keyed["ingest"]["replay_window_s"] = 5
    assert not any("replay_window_s" in w for w in config_warnings(config_from_dict(keyed)))


# -- the state file -------------------------------------------------------------------------


def test_state_round_trips_and_is_replaced_whole(tmp_path: Path) -> None:
    path = replay_state_path(str(tmp_path / "outbox.sqlite"))
    assert Path(path).parent == tmp_path
    assert load_replay_state(path, T0) == {}  # first start
    save_replay_state(path, {1: T0, 65535: T0 + 5})
    save_replay_state(path, {1: T0 + 7, 65535: T0 + 5})
    assert load_replay_state(path, T0 + 10) == {1: T0 + 7, 65535: T0 + 5}
    assert sorted(p.name for p in tmp_path.iterdir()) == [Path(path).name]  # no temp file left
    assert replay_state_path("outbox.sqlite") == "./edge-anpr-replay.json"


@pytest.mark.parametrize("body", ["", "{not json", '{"last_capture_time_us": {"x": 1}}',
                                  "[1, 2]", '{"last_capture_time_us": 5}'])
def test_a_damaged_state_file_is_logged_and_taken_as_empty(
    tmp_path: Path, body: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "edge-anpr-replay.json"
    path.write_text(body)
    with caplog.at_level(logging.WARNING):
        assert load_replay_state(str(path), T0) == {}
    assert "replay_state_unreadable" in caplog.text


def test_a_state_ahead_of_the_clock_is_kept_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "edge-anpr-replay.json"
    path.write_text(json.dumps({"version": 1, "last_capture_time_us": {"1": T0 + 60 * S}}))
    with caplog.at_level(logging.WARNING):
        assert load_replay_state(str(path), T0) == {1: T0 + 60 * S}
    assert "replay_state_ahead_of_clock" in caplog.text and "ahead_s=60.0" in caplog.text


def test_each_process_keeps_its_own_state_and_every_process_loads_them_all(
    tmp_path: Path,
) -> None:
    """Several appliance processes: one file each (a shared one kept the last writer's cameras
    only), and a camera that moved to another process with the process count keeps its time."""
    outbox = str(tmp_path / "outbox.sqlite")
    paths = [replay_state_path(outbox, i) for i in range(3)]
    assert [Path(p).name for p in paths] == [
        "edge-anpr-replay.json", "edge-anpr-replay-1.json", "edge-anpr-replay-2.json",
    ]
    save_replay_state(paths[0], {0: T0 + 1, 3: T0 + 3})
    save_replay_state(paths[1], {1: T0 + 2})
    save_replay_state(paths[2], {2: T0 + 4, 3: T0 + 9})  # camera 3 moved here later
    (tmp_path / "edge-anpr-replay.json.tmp").write_text("{torn")  # not a state file
    for path in paths[:2]:
        assert load_replay_states(path, T0 + 10) == {0: T0 + 1, 1: T0 + 2, 2: T0 + 4, 3: T0 + 9}
    assert load_replay_states(str(tmp_path / "empty" / "edge-anpr-replay.json"), T0) == {}


def test_the_journal_writes_the_state_through_each_time_it_changes(tmp_path: Path) -> None:
    path = replay_state_path(str(tmp_path / "outbox.sqlite"))
    r = make()
    assert r.replay is not None
    journal = ReplayJournal(r.replay, path)
    journal.write()
    assert not Path(path).exists()  # nothing accepted, nothing written
    for n in range(3):
        assert ready(feed(r, frame(n, T0 + n), T0 + n))
        journal.write()
        assert load_replay_state(path, T0 + 10) == {1: T0 + n}
    os.remove(path)
    journal.write()  # unchanged since the last write: no write
    assert not Path(path).exists()


def test_a_stale_frame_says_it_may_be_a_replay_or_a_clock_problem() -> None:
    from edge_anpr.ingest.replay import ReplayGuard

    guard = ReplayGuard(5.0)
    reason, detail = guard.check(1, 1_000_000_000, 1_000_000_000 + 60_000_000) or ("", "")
    assert reason == "stale"
    assert "recording sent again" in detail and "NTP" in detail
