"""Several appliance processes on one port, and several appliances on one broker.

Real parts: ``edge-anpr serve`` subprocesses (the supervisor and its children), ``edge-anpr
send`` subprocesses as cameras, a real mosquitto and one subscriber.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio

from edge_anpr.app import running_pipeline
from edge_anpr.assets import DEMO_DIR
from edge_anpr.config import config_from_dict
from edge_anpr.ingest.udp import open_udp_socket, steer_by_camera
from edge_anpr.publish import homeassistant
from edge_anpr.publish.outbox import Outbox
from edge_anpr.publish.topics import Topics
from edge_anpr.system.children import ChildHealth, parse_notification
from edge_anpr.system.processes import (
    ProcessSlot,
    client_id_for,
    orphan_outboxes,
    outbox_path_for,
    process_count,
    workers_per_process,
)

if TYPE_CHECKING:  # fixtures come from conftest.py
    from conftest import Broker, Subscriber

CAMERAS = {"north": 0, "south": 1}


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the per-process rules -------------------------------------------------------------------


def test_defaults_give_a_four_core_pi_two_processes_of_two_workers() -> None:
    cfg = config_from_dict({})
    assert (process_count(cfg, cores=4), workers_per_process(cfg, 2, cores=4)) == (2, 2)
    assert (process_count(cfg, cores=2), workers_per_process(cfg, 1, cores=2)) == (1, 2)
    assert process_count(cfg, cores=1) == 1
    pinned = config_from_dict({"workers": {"processes": 3, "count": 1}})
    assert (process_count(pinned, cores=64), workers_per_process(pinned, 3, cores=64)) == (3, 1)


def test_each_process_owns_its_outbox_client_id_and_status_topic() -> None:
    assert outbox_path_for("/var/lib/edge-anpr/outbox.sqlite", 0) == (
        "/var/lib/edge-anpr/outbox.sqlite"
    )
    assert outbox_path_for("/var/lib/edge-anpr/outbox.sqlite", 2) == (
        "/var/lib/edge-anpr/outbox-2.sqlite"
    )
    assert [client_id_for("edge-anpr-gate", i) for i in range(3)] == [
        "edge-anpr-gate", "edge-anpr-gate-p1", "edge-anpr-gate-p2",
    ]
    cfg = config_from_dict({"device": {"name": "gate"}})
    one = Topics.from_config(cfg, ProcessSlot(0, 1))
    assert (one.status, one.stats) == ("edge-anpr/gate/status", "edge-anpr/gate/status/stats")
    second = Topics.from_config(cfg, ProcessSlot(1, 2))
    assert (second.status, second.stats) == (
        "edge-anpr/gate/status/p1", "edge-anpr/gate/status/p1/stats"
    )
    # Every process announces the same entities: one payload, whichever publishes it last.
    first = Topics.from_config(cfg, ProcessSlot(0, 2))
    assert homeassistant.camera_messages(cfg, first, "north") == (
        homeassistant.camera_messages(cfg, second, "north")
    )
    assert homeassistant.device_messages(cfg, first) == homeassistant.device_messages(cfg, second)
    entity = homeassistant.camera_messages(cfg, second, "north")[0][1]
    assert entity["availability_mode"] == "all"
    assert [a["topic"] for a in entity["availability"]] == [
        "edge-anpr/gate/status/p0", "edge-anpr/gate/status/p1",
    ]


def test_outboxes_of_processes_gone_are_adopted_by_the_one_serving_their_cameras(
    tmp_path: Path,
) -> None:
    base = tmp_path / "outbox.sqlite"
    for name in ("outbox.sqlite", *(f"outbox-{j}.sqlite" for j in range(1, 6)),
                 "outbox-3.sqlite-wal", "outbox-03.sqlite", "outbox-x.sqlite", "other-4.sqlite",
                 "outbox-7.db"):
        (tmp_path / name).write_bytes(b"")

    def adopted(slot: ProcessSlot | None) -> list[str]:
        return [Path(p).name for p in orphan_outboxes(str(base), slot)]

    # 6 processes before (files 1..5); now 2: process 0 serves ids 0, 2, 4 (mod 6 -> mod 2)
    assert adopted(ProcessSlot(0, 2)) == ["outbox-2.sqlite", "outbox-4.sqlite"]
    assert adopted(ProcessSlot(1, 2)) == ["outbox-3.sqlite", "outbox-5.sqlite"]
    assert adopted(None) == [f"outbox-{j}.sqlite" for j in range(1, 6)]  # one process: all
    assert adopted(ProcessSlot(2, 3)) == ["outbox-5.sqlite"]
    assert adopted(ProcessSlot(0, 6)) == [], "nothing is an orphan while as many processes run"
    assert orphan_outboxes(":memory:", None) == []
    assert orphan_outboxes(str(tmp_path / "missing" / "o.sqlite"), None) == []


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_the_set_is_ready_when_every_child_is_and_alive_while_every_child_pings() -> None:
    clock = Clock()
    health = ChildHealth(3, silence_s=5.0, clock=clock)
    health.note(0, b"READY=1\nSTATUS=listening on udp 0.0.0.0:6112")
    health.note(2, b"READY=1")
    health.note(1, b"STATUS=loading models")
    assert not health.all_ready() and health.ready_count() == 2
    clock.t += 60  # 0 and 2 are silent; 1, still loading, is not (systemd's start timeout is)
    assert health.silent() == [0, 2]
    health.note(1, b"READY=1")
    health.note(0, b"WATCHDOG=1")
    health.note(2, b"WATCHDOG=1")
    assert health.all_ready() and health.silent() == []
    clock.t += 4.0
    health.note(0, b"WATCHDOG=1")
    health.note(1, b"WATCHDOG=1")
    health.note(2, b"STATUS=unhealthy: publish")  # withholds its pings: a stuck stage
    assert health.silent() == []
    clock.t += 1.5
    assert health.silent() == [2] and health.status(2) == "unhealthy: publish"
    health.note(2, b"WATCHDOG=1")
    assert health.silent() == []
    health.note(1, b"\xff\xfe garbage \x00")  # ignored, never raises
    assert parse_notification(b"READY=1\nSTATUS=a=b\n\nnonsense") == {
        "READY": "1", "STATUS": "a=b"
    }
    assert ChildHealth(2, silence_s=None, clock=clock).silent() == []


def test_sequenced_datagrams_go_to_socket_camera_id_mod_count() -> None:
    socks = []
    port = 0
    try:
        for index in range(3):
            sock = open_udp_socket("127.0.0.1", port, 1 << 20, reuse_port=True)
            socks.append(sock)
            if index == 0:
                steer_by_camera(sock, 3)
                port = sock.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for camera in range(7):
                header = b"EANP" + bytes([2, 0]) + camera.to_bytes(2, "big") + bytes(24)
                tx.sendto(header + b"x", ("127.0.0.1", port))
        time.sleep(0.2)
        got: dict[int, list[int]] = {}
        for index, sock in enumerate(socks):
            while True:
                try:
                    data = sock.recv(2048)
                except BlockingIOError:
                    break
                got.setdefault(index, []).append(int.from_bytes(data[6:8], "big"))
    finally:
        for sock in socks:
            sock.close()
    assert got == {0: [0, 3, 6], 1: [1, 4], 2: [2, 5]}


# -- real services -----------------------------------------------------------------------------


async def test_a_box_restarted_with_fewer_processes_sends_what_the_others_left(
    tmp_path: Path, mosquitto: Broker, subscriber_factory: Callable[..., Subscriber],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run with 4 processes left events in the outboxes of processes 2 and 3 (the broker was
    away); the box comes back with 2: process 0 takes over file 2, process 1 file 3, and a
    subscriber gets every message, each file's in its order."""
    outbox = tmp_path / "outbox.sqlite"
    left: dict[int, list[tuple[str, bytes]]] = {}
    for j in (2, 3):
        box = Outbox(outbox_path_for(str(outbox), j), 1000)
        left[j] = [(f"edge-anpr/shrunk/cam{j}/event", json.dumps({"n": n}).encode())
                   for n in range(25)]
        for topic, payload in left[j]:
            box.put(topic, payload)
        box.close()
    cfg = config_from_dict({
        "device": {"name": "shrunk"},
        "ingest": {"bind": "127.0.0.1", "port": 0},
        "workers": {"count": 1},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "outbox_path": str(outbox),
                 "homeassistant_discovery": False},
    })
    sub = subscriber_factory(mosquitto, ["edge-anpr/shrunk/+/event"])
    async with trio.open_nursery() as nursery:
        await nursery.start(sub.run)
        for index in (0, 1):
            monkeypatch.setenv("EDGE_ANPR_PROCESS", f"{index}/2")
            async with running_pipeline(cfg) as (pipeline, _):
                topic = f"edge-anpr/shrunk/cam{index + 2}/event"
                await sub.wait_for(lambda t=topic: len(sub.on(t)) >= 25, timeout_s=30)
                pipeline.stop()
        nursery.cancel_scope.cancel()
    for j in (2, 3):
        got = [m.payload for m in sub.messages if m.topic == f"edge-anpr/shrunk/cam{j}/event"]
        assert got == [payload for _, payload in left[j]], f"file {j}: all, once, in order"
        assert not Path(outbox_path_for(str(outbox), j)).exists(), f"file {j} removed"
    for index in (0, 1):  # nothing left behind in the adopters either
        assert len(Outbox(outbox_path_for(str(outbox), index), 1000)) == 0


def write_config(
    path: Path, broker: Broker, udp_port: int, *, name: str, processes: int,
    discovery: bool = False,
) -> Path:
    cameras = "".join(f"[cameras.{cam}]\nid = {cid}\n\n" for cam, cid in CAMERAS.items())
    path.write_text(f"""
[device]
name = "{name}"
stats_interval_s = 1.0

[ingest]
bind = "127.0.0.1"
port = {udp_port}

{cameras}
[workers]
count = 1
processes = {processes}

[tracker]
quiet_time_s = 1.0

[mqtt]
host = "{broker.host}"
port = {broker.port}
outbox_path = "{path.parent / f'outbox-{name}.sqlite'}"
homeassistant_discovery = {"true" if discovery else "false"}
""")
    return path


class Service:
    """``edge-anpr serve --stdout`` in a subprocess."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.log_path = log_path
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge_anpr", "serve", "--config", str(config), "--stdout"],
            stdout=subprocess.PIPE, stderr=log_path.open("wb"), env={**os.environ},
        )
        self.lines: list[dict[str, Any]] = []

    def wait_log(self, text: str, count: int = 1, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.log_path.read_text(errors="replace").count(text) >= count:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"service never logged {text!r}:\n{self.log_path.read_text()}")

    def stop(self, timeout_s: float = 30.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=timeout_s)
        self.lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
        return self.proc.returncode

    def kill(self) -> None:
        _kill_with_children(self.proc)


@pytest.fixture
def services() -> Iterator[Callable[[Path, Path], Service]]:
    made: list[Service] = []

    def make(config: Path, log_path: Path) -> Service:
        svc = Service(config, log_path)
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.kill()


async def _senders(port: int, fps: float) -> list[trio.Process]:
    return [
        await trio.lowlevel.open_process([
            sys.executable, "-m", "edge_anpr", "send", str(DEMO_DIR), "--port", str(port),
            "--format", "sequenced", "--camera", str(cid), "--fps", str(fps), "--loop",
        ])
        for cid in CAMERAS.values()
    ]


@pytest.mark.slow
async def test_sigterm_during_a_two_process_stream_exits_0_and_loses_no_event(
    tmp_path: Path, mosquitto: Broker, subscriber_factory: Callable[..., Subscriber],
    services: Callable[[Path, Path], Service],
) -> None:
    udp_port = free_udp_port()
    log_path = tmp_path / "serve.log"
    svc = services(
        write_config(tmp_path / "c.toml", mosquitto, udp_port, name="two", processes=2),
        log_path,
    )
    svc.wait_log("event=workers_ready", count=2)
    sub = subscriber_factory(mosquitto, ["edge-anpr/two/+/event", "edge-anpr/two/status/#"])
    async with trio.open_nursery() as nursery:
        await nursery.start(sub.run)
        senders = await _senders(udp_port, 8.0)
        try:
            # Both cameras' events under way, then SIGTERM while frames still arrive.
            await sub.wait_for(
                lambda: all(sub.on(f"edge-anpr/two/{cam}/event") for cam in CAMERAS), 60
            )
            await trio.sleep(2.0)
            code = await trio.to_thread.run_sync(svc.stop)
        finally:
            for sender in senders:
                sender.kill()
                await sender.wait()
        made = [line for line in svc.lines if line["type"] == "event"]
        await sub.wait_for(
            lambda: sum(len(sub.on(f"edge-anpr/two/{c}/event")) for c in CAMERAS) >= len(made),
            timeout_s=10,
        )
        nursery.cancel_scope.cancel()
    log_text = log_path.read_text()
    assert code == 0, log_text
    for cam in CAMERAS:
        made_here = [(e["event_id"], e["kind"]) for e in made if e["camera"] == cam]
        got = [(p["event_id"], p["kind"]) for p in sub.on(f"edge-anpr/two/{cam}/event")]  # type: ignore[index]
        assert made_here, f"{cam}: events made before the SIGTERM"
        assert got == made_here, f"{cam}: every event made reached the subscriber, in order"
        assert {i for i, k in got if k == "start"} == {i for i, k in got if k == "end"}
    # camera id k is served by process k % 2, and only by it
    reads = [line for line in svc.lines if line["type"] == "read"]
    assert {(r["camera"], r["process"]) for r in reads} == {("north", 0), ("south", 1)}
    # each process has its own availability topic, online then offline (a clean stop)
    for index in (0, 1):
        assert sub.on(f"edge-anpr/two/status/p{index}")[-1] == "offline"
    assert log_text.count("event=stopped") == 2
    print(f"two processes: exit={code} reads={len(reads)} events={len(made)}")


@pytest.mark.slow
async def test_two_appliances_share_one_broker_without_collision(
    tmp_path: Path, mosquitto: Broker, subscriber_factory: Callable[..., Subscriber],
    services: Callable[[Path, Path], Service],
) -> None:
    boxes = {"gate-a": free_udp_port(), "gate-b": free_udp_port()}
    made = {
        name: services(
            write_config(tmp_path / f"{name}.toml", mosquitto, port, name=name, processes=1,
                         discovery=True),
            tmp_path / f"{name}.log",
        )
        for name, port in boxes.items()
    }
    for svc in made.values():
        svc.wait_log("event=workers_ready")
    sub = subscriber_factory(mosquitto, ["edge-anpr/#", "homeassistant/#"])
    async with trio.open_nursery() as nursery:
        await nursery.start(sub.run)
        senders = [s for port in boxes.values() for s in await _senders(port, 6.0)]
        try:
            await sub.wait_for(lambda: all(
                sub.on(f"edge-anpr/{name}/{cam}/event") for name in boxes for cam in CAMERAS
            ), 60)
        finally:
            for sender in senders:
                sender.kill()
                await sender.wait()
        codes = [await trio.to_thread.run_sync(svc.stop) for svc in made.values()]
        await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    assert codes == [0, 0]
    for name in boxes:
        node = name  # safe_id keeps "-"
        assert sub.on(f"edge-anpr/{name}/status")[:1] == ["online"], name
        assert sub.on(f"edge-anpr/{name}/status")[-1] == "offline", name
        configs = [
            m for m in sub.messages
            if m.topic.startswith("homeassistant/") and f"/{node}/" in m.topic
        ]
        assert configs, f"{name}: discovery published"
        for m in configs:
            payload = json.loads(m.payload)
            assert payload["device"]["name"] == name
            assert payload.get("availability_topic", f"edge-anpr/{name}/status") == (
                f"edge-anpr/{name}/status"
            ), m.topic
            assert "availability_topic" in payload or "availability" not in payload, m.topic
            assert payload["device"]["identifiers"] == [f"edge-anpr-{node}"]
            if "unique_id" in payload:  # every entity (not the device trigger)
                assert payload["unique_id"].startswith(f"{node}_")
    unique = [json.loads(m.payload).get("unique_id", "") for m in sub.messages
              if m.topic.startswith("homeassistant/")]
    per_box = {name: {u for u in unique if u.startswith(f"{name}_")} for name in boxes}
    assert per_box["gate-a"] and per_box["gate-b"]
    assert not per_box["gate-a"] & per_box["gate-b"], "no entity is shared by the two boxes"
    # The broker saw two clients with their own ids, neither taking over from the other.
    broker_log = mosquitto.log_text()
    assert "edge-anpr-gate-a" in broker_log and "edge-anpr-gate-b" in broker_log
    assert "already connected" not in broker_log


def _kill_with_children(proc: subprocess.Popen[bytes]) -> None:
    """Kill a ``serve`` still running, and its appliance processes: they run in sessions of
    their own, so killing the supervisor alone would leave them running after the test."""
    if proc.poll() is not None:
        return
    children = list(_child_slots(proc.pid).values())
    proc.kill()
    proc.wait()
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _child_slots(pid: int) -> dict[int, int]:
    """Process index -> pid of ``pid``'s children that are appliance processes."""
    out: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) != pid:
            continue
        for var in environ:
            if var.startswith(b"EDGE_ANPR_PROCESS="):
                out[int(var.split(b"=")[1].split(b"/")[0])] = int(entry.name)
    return out


@pytest.mark.slow
def test_systemd_hears_ready_from_the_last_child_and_no_ping_while_one_hangs(
    tmp_path: Path, mosquitto: Broker,
) -> None:
    """The supervisor under a stand-in for systemd (its notification socket, a 3 s watchdog),
    started with ``--processes 2`` over a config that says 1."""
    udp_port = free_udp_port()
    config = write_config(tmp_path / "c.toml", mosquitto, udp_port, name="relay", processes=1)
    name = f"edge-anpr-test-{uuid.uuid4().hex}"
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    systemd.bind(b"\0" + name.encode())
    heard: list[tuple[float, dict[str, str]]] = []

    def listen(until: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"systemd never heard it: {heard}\n{log_path.read_text()}")
            systemd.settimeout(left)
            try:
                heard.append((time.monotonic(), parse_notification(systemd.recv(4096))))
            except TimeoutError:
                continue

    def pings_since(t: float) -> int:
        return sum(1 for when, m in heard if when >= t and m.get("WATCHDOG") == "1")

    log_path = tmp_path / "serve.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_anpr", "serve", "--config", str(config), "--processes", "2"],
        stdout=subprocess.DEVNULL, stderr=log_path.open("wb"),
        env={**os.environ, "NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "3000000"},
    )
    try:
        listen(lambda: any(m.get("READY") == "1" for _, m in heard), 90)
        # READY only once both children are up (their pipelines started, workers ready)
        assert log_path.read_text().count("event=workers_ready") == 2, log_path.read_text()
        ready_at = heard[-1][0]
        listen(lambda: pings_since(ready_at) >= 2, 10)
        children = _child_slots(proc.pid)
        assert sorted(children) == [0, 1]
        os.kill(children[1], signal.SIGSTOP)  # process 1 hangs: alive, and silent
        stopped_at = time.monotonic()
        listen(lambda: any("process 1 silent" in m.get("STATUS", "") for _, m in heard), 10)
        hung_at = time.monotonic()
        assert hung_at - stopped_at < 3.0, "noticed within half the watchdog interval (+ poll)"
        time.sleep(4.5)  # three of the supervisor's ping periods
        systemd.setblocking(False)
        try:
            while True:
                heard.append((time.monotonic(), parse_notification(systemd.recv(4096))))
        except BlockingIOError:
            pass
        assert pings_since(hung_at) == 0, "no WATCHDOG=1 while a child hangs"
        os.kill(children[1], signal.SIGCONT)
        resumed_at = time.monotonic()
        listen(lambda: pings_since(resumed_at) >= 1, 10)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        for pid in _child_slots(proc.pid).values():
            os.kill(pid, signal.SIGCONT)
        _kill_with_children(proc)
        systemd.close()
    log_text = log_path.read_text()
    readies = [m for _, m in heard if m.get("READY") == "1"]
    assert len(readies) == 1 and readies[0]["STATUS"] == "2 processes ready"
    assert "event=process_unresponsive process=1" in log_text
    assert "event=process_responsive process=1" in log_text
    assert log_text.count("event=stopped") == 2


@pytest.mark.slow
def test_bench_serve_processes_prints_every_configuration_and_one_json_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Correctness only (short windows, no speed asserted): the shape of the report."""
    from edge_anpr.lab import bench_processes

    pytest.importorskip("paho.mqtt.client")
    for name, value in (("WARMUP_S", 1.5), ("WINDOW_S", 2.0), ("PROBE_S", 1.5),
                        ("LATENCY_S", 3.0)):
        monkeypatch.setattr(bench_processes, name, value)
    code = bench_processes.bench_serve_processes(
        cameras=2, processes=[2, 1], workers=1, rounds=2
    )
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    summary = json.loads(out[-1])
    assert [r["processes"] for r in summary["results"]] == [1, 2]
    for result in summary["results"]:
        assert result["workers_per_process"] == 1
        assert len(result["rounds_frames_per_s"]) == 2
        assert result["frames_per_s"] > 0
        assert result["latency_samples"] > 0
        assert 0 < result["latency_p50_ms"] <= result["latency_p99_ms"]
        # the service recognised frames all window long: it used a good share of a core
        assert 0.3 < result["service_cores"] <= (os.cpu_count() or 1) + 0.1
        assert result["harness_cores"] >= 0
        assert result["frames_per_cpu_s"] == pytest.approx(
            result["frames_per_s"] / result["service_cores"], rel=0.01)
    one, two = summary["results"]
    assert two["rss_total_mb"] > one["rss_total_mb"] > 50, "a second process adds its own RSS"
    assert summary["scaling_processes"] == 2 and len(summary["scaling_rounds"]) == 2
    assert summary["scaling"] == round(two["frames_per_s"] / one["frames_per_s"], 2)
    assert any(line.startswith("round 2/2 processes=1") for line in out)
    assert summary["cpu_efficiency"] == pytest.approx(
        two["frames_per_cpu_s"] / one["frames_per_cpu_s"], abs=0.002)
    assert 0 < summary["ceiling"] <= (os.cpu_count() or 1) / one["service_cores"] + 0.01
