"""sd_notify messages over a real AF_UNIX datagram socket, and the watchdog task's behaviour."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from edge_anpr.system.notify import (
    Liveness,
    SystemdNotifier,
    run_watchdog,
    watchdog_interval_s,
)


class Receiver:
    """Stands in for systemd's notification socket: a bound datagram socket we read from."""

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.setblocking(False)

    def drain(self) -> list[list[str]]:
        messages = []
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return messages
            messages.append(data.decode("utf-8").split("\n"))

    def count(self, item: str) -> int:
        return sum(msg.count(item) for msg in self.drain())


@pytest.fixture
def sock_path() -> Iterator[str]:
    # AF_UNIX paths are limited to 108 bytes; pytest's tmp_path can be longer than that.
    with tempfile.TemporaryDirectory(prefix="ea-") as d:
        yield os.path.join(d, "notify")


@pytest.fixture
def receiver(sock_path: str) -> Iterator[Receiver]:
    r = Receiver(sock_path)
    yield r
    r.sock.close()


def test_messages_arrive_as_one_datagram_of_assignments(sock_path: str, receiver: Receiver) -> None:
    with SystemdNotifier.from_environ({"NOTIFY_SOCKET": sock_path}) as n:
        assert n.enabled
        assert n.status("loading models")
        assert n.ready("listening\non udp 6112")
        assert n.watchdog()
        assert n.extend_timeout(2.5)
        assert n.stopping()
        assert n.sent_count == 5
    assert receiver.drain() == [
        ["STATUS=loading models"],
        # The newline in the status must not start a bogus second assignment.
        ["READY=1", "STATUS=listening on udp 6112"],
        ["WATCHDOG=1"],
        ["EXTEND_TIMEOUT_USEC=2500000"],
        ["STOPPING=1"],
    ]


def test_abstract_namespace_socket() -> None:
    name = f"edge-anpr-test-{uuid.uuid4().hex}"
    r = Receiver(b"\0" + name.encode())
    try:
        n = SystemdNotifier(f"@{name}")
        assert n.ready()
        n.close()
        assert r.drain() == [["READY=1"]]
    finally:
        r.sock.close()


def test_long_status_is_truncated_to_one_short_line(sock_path: str, receiver: Receiver) -> None:
    SystemdNotifier(sock_path).status("x" * 5000)
    (msg,) = receiver.drain()
    assert msg == ["STATUS=" + "x" * 200]


def test_without_notify_socket_everything_is_a_no_op() -> None:
    n = SystemdNotifier.from_environ({})
    assert not n.enabled
    assert not n.ready("up")
    assert not n.watchdog()
    assert n.sent_count == 0


@pytest.mark.parametrize("address", ["run/notify", "vsock:2:1234"])
def test_unusable_notify_socket_disables_notifications_without_failing(
    address: str, caplog: pytest.LogCaptureFixture
) -> None:
    n = SystemdNotifier.from_environ({"NOTIFY_SOCKET": address})
    assert not n.enabled
    assert not n.ready()
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "absolute path" in record.getMessage()


def test_send_failure_is_not_fatal_and_warned_once(
    sock_path: str, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    n = SystemdNotifier(sock_path)
    assert n.watchdog()
    receiver.sock.close()
    Path(sock_path).unlink()  # systemd went away
    caplog.set_level(logging.DEBUG, logger="edge_anpr.system.notify")
    assert not n.watchdog()
    assert not n.watchdog()
    assert not n.stopping()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert sock_path in warnings[0].getMessage()
    assert n.sent_count == 1


def test_recovers_when_the_socket_comes_back(sock_path: str) -> None:
    n = SystemdNotifier(sock_path)
    assert not n.ready()  # nothing bound yet
    r = Receiver(sock_path)
    try:
        assert n.ready()
        assert r.drain() == [["READY=1"]]
    finally:
        r.sock.close()


def test_malformed_assignment_is_our_bug() -> None:
    n = SystemdNotifier("/nonexistent/notify")
    with pytest.raises(ValueError):
        n.notify("READY")
    with pytest.raises(ValueError):
        n.notify("A=1\nB=2")


@pytest.mark.parametrize(
    ("env", "pid", "expected"),
    [
        ({}, 1, None),
        ({"WATCHDOG_USEC": "30000000"}, 1, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, 42, 30.0),
        # Inherited by a child: the watchdog belongs to the parent.
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, 43, None),
        ({"WATCHDOG_USEC": "0"}, 1, None),
        ({"WATCHDOG_USEC": "-5"}, 1, None),
        ({"WATCHDOG_USEC": "thirty"}, 1, None),
        ({"WATCHDOG_USEC": "500"}, 1, 0.0005),
    ],
)
def test_watchdog_interval(env: dict[str, str], pid: int, expected: float | None) -> None:
    assert watchdog_interval_s(env, pid=pid) == expected


def test_watchdog_interval_uses_own_pid_by_default() -> None:
    env = {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval_s(env) == 1.0


class Flag:
    def __init__(self) -> None:
        self.value = True

    def __call__(self) -> bool:
        return self.value


async def test_watchdog_pings_only_while_healthy(
    sock_path: str, receiver: Receiver, autojump_clock: trio.testing.MockClock
) -> None:
    n = SystemdNotifier(sock_path)
    healthy = Flag()
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: run_watchdog(
            n, healthy, interval_s=10.0, task_status=task_status))
        await trio.sleep(19.9)  # pings at 0, 5, 10, 15
        assert receiver.count("WATCHDOG=1") == 4

        healthy.value = False  # e.g. the ingest loop hung
        await trio.sleep(60.0)
        msgs = receiver.drain()
        assert sum(m.count("WATCHDOG=1") for m in msgs) <= 1  # at most the one already due
        # The operator sees why in `systemctl status`, once, not every period.
        assert [m for m in msgs if m[0].startswith("STATUS=")] == [
            ["STATUS=unhealthy: health check failed"]
        ]

        healthy.value = True
        await trio.sleep(10.0)
        assert receiver.count("WATCHDOG=1") >= 2
        nursery.cancel_scope.cancel()


async def test_a_raising_health_check_withholds_pings(
    sock_path: str, receiver: Receiver, autojump_clock: trio.testing.MockClock
) -> None:
    def broken() -> bool:
        raise RuntimeError("stage table corrupted")

    n = SystemdNotifier(sock_path)
    with trio.move_on_after(30):
        await run_watchdog(n, broken, interval_s=4.0)
    assert receiver.count("WATCHDOG=1") == 0


async def test_watchdog_task_returns_when_systemd_asked_for_none(
    sock_path: str, receiver: Receiver
) -> None:
    n = SystemdNotifier(sock_path)
    with trio.fail_after(1):
        async with trio.open_nursery() as nursery:
            await nursery.start(run_watchdog, n, Flag())
    # No WATCHDOG_USEC in this test process's environment (pytest is not a systemd service).
    assert "WATCHDOG_USEC" not in os.environ
    assert receiver.drain() == []


async def test_watchdog_task_returns_without_notify_socket() -> None:
    with trio.fail_after(1):
        await run_watchdog(SystemdNotifier(None), Flag(), interval_s=1.0)


async def test_liveness_drives_the_watchdog(
    sock_path: str, receiver: Receiver, autojump_clock: trio.testing.MockClock
) -> None:
    liveness = Liveness(["ingest", "publish"], max_silence_s=8.5, clock=trio.current_time)
    n = SystemdNotifier(sock_path)

    async def stage(name: str, turns: int) -> None:
        for _ in range(turns):
            liveness.beat(name)
            await trio.sleep(1.0)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stage, "ingest", 1000)
        nursery.start_soon(stage, "publish", 20)  # the publisher hangs after 20 s
        await nursery.start(lambda task_status: run_watchdog(
            n, liveness, interval_s=6.0, task_status=task_status))
        await trio.sleep(20.5)
        assert receiver.count("WATCHDOG=1") == 7  # 0, 3, ..., 18
        await trio.sleep(30.0)
        msgs = receiver.drain()
        # Pings continue until publish has been silent 8.5 s (t=27.5), then stop for good.
        assert sum(m.count("WATCHDOG=1") for m in msgs) == 3  # 21, 24, 27
        assert ["STATUS=unhealthy: publish"] in msgs
        assert liveness.stale() == ["publish"]
        nursery.cancel_scope.cancel()


def test_liveness_reports_the_most_silent_stage_first() -> None:
    now = [100.0]
    live = Liveness(["ingest", "reader", "publish"], max_silence_s=5.0, clock=lambda: now[0])
    assert live()
    now[0] = 103.0
    live.beat("ingest")
    now[0] = 104.0
    live.beat("reader")
    now[0] = 106.0
    assert live.stale() == ["publish"]  # never beat: counted from construction
    now[0] = 108.5  # ingest 5.5 s silent, reader 4.5 s
    assert live.stale() == ["publish", "ingest"]
    assert not live()
    live.beat("publish")
    live.beat("ingest")
    assert live.stale() == []
    with pytest.raises(KeyError, match="known: ingest, reader, publish"):
        live.beat("ingets")


def test_liveness_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Liveness([], max_silence_s=1.0)
    with pytest.raises(ValueError):
        Liveness(["a"], max_silence_s=0)


class _NoPlates:
    def recognize_jpeg(self, data: bytes, **kw: object) -> list[object]:
        return []


async def test_a_stuck_publisher_stops_the_pings_and_is_named(
    sock_path: str, receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real pipeline with no camera sending: the idle stages keep beating (a quiet night
    is not a hang), while a publisher whose connect never returns goes silent."""
    import threading

    import paho.mqtt.client as paho

    from edge_anpr.app import running_pipeline
    from edge_anpr.config import config_from_dict

    release = threading.Event()

    def connect_that_hangs(self: object, *args: object, **kwargs: object) -> None:
        release.wait(30)  # e.g. a DNS lookup that never answers
        raise OSError("released by the test")

    monkeypatch.setattr(paho.Client, "connect", connect_that_hangs)
    cfg = config_from_dict({
        "ingest": {"bind": "127.0.0.1", "port": 0},
        "workers": {"count": 2},
        "mqtt": {"host": "127.0.0.1", "connect_timeout_s": 0.1, "flush_timeout_s": 0},
    })
    n = SystemdNotifier(sock_path)
    try:
        async with running_pipeline(
            cfg, outbox_path=str(tmp_path / "outbox.sqlite"), stall_after_s=2.5,
            recognizer_factory=_NoPlates,
        ) as (pipeline, helpers):
            msgs: list[list[str]] = []

            async def collect() -> None:  # the socket queues only a few datagrams
                while True:
                    msgs.extend(receiver.drain())
                    await trio.sleep(0.02)

            helpers.start_soon(collect)
            await helpers.start(lambda task_status: run_watchdog(
                n, pipeline.liveness, interval_s=0.2, task_status=task_status))
            await trio.sleep(4.0)
            msgs.extend(receiver.drain())
            assert pipeline.liveness.stale() == ["publish"]
            pipeline.stop()
    finally:
        release.set()
    status = msgs.index(["STATUS=unhealthy: publish"])
    assert ["WATCHDOG=1"] in msgs[:status]  # healthy while the connect was young
    assert ["WATCHDOG=1"] not in msgs[status:]  # then no ping: systemd restarts the service


def test_retired_stages_are_no_longer_watched() -> None:
    now = [0.0]
    liveness = Liveness(["ingest", "events"], max_silence_s=5.0, clock=lambda: now[0])
    now[0] = 10.0
    assert set(liveness.stale()) == {"events", "ingest"}
    liveness.start_all()  # all stages are up: the allowance starts now
    assert liveness()
    liveness.retire("ingest")  # the shutdown drain stopped the UDP loop on purpose
    now[0] = 14.0
    liveness.beat("events")
    liveness.beat("ingest")  # a late beat of a retired stage is ignored
    now[0] = 30.0
    assert liveness.stages == ["events"] and liveness.stale() == ["events"]
