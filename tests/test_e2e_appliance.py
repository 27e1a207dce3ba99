"""End to end: a real mosquitto, ``edge-anpr serve`` as a subprocess, ``edge-anpr send``.

Frames are the bundled rendered demo frames (always there) and, when ``../shared/data`` is
present, real validation scene photographs. Both wire formats are sent, from two configured
cameras, and the plates must arrive as MQTT events on the right camera's topic. The SIGTERM
test stops the service in the middle of a stream and checks it exits 0 and that every event it
made (its own JSON lines) reached the broker's subscriber, with each started event ended.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio

from edge_anpr.assets import DEMO_DIR, expected_plates
from edge_anpr.lab.datasplit import shared_data_dir

if TYPE_CHECKING:  # fixtures come from conftest.py
    from conftest import Broker, Subscriber

pytestmark = pytest.mark.slow

SEQ_CAMERA_ID = 7


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp_path: Path, broker: Broker, udp_port: int) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[device]
name = "e2e"
stats_interval_s = 1.0
shutdown_timeout_s = 10.0

[ingest]
bind = "127.0.0.1"
port = {udp_port}
allow_unauthenticated = true

[cameras.gate]
id = {SEQ_CAMERA_ID}

[cameras.lane]
source = "127.0.0.1"

[workers]
count = 2

[tracker]
quiet_time_s = 1.0

[mqtt]
host = "{broker.host}"
port = {broker.port}
outbox_path = "{tmp_path / 'outbox.sqlite'}"
homeassistant_discovery = false
"""
    )
    return path


class Service:
    """``edge-anpr serve`` in a subprocess, its stdout JSON lines collected."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.log_path = log_path
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge_anpr", "serve", "--config", str(config), "--stdout"],
            stdout=subprocess.PIPE, stderr=log_path.open("wb"), env={**os.environ},
        )
        self.lines: list[dict[str, Any]] = []

    def wait_log(self, text: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.log_path.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"service never logged {text!r}:\n{self.log_path.read_text()}")

    def stop(self, timeout_s: float = 20.0) -> tuple[int, float]:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=timeout_s)
        took = time.monotonic() - started
        self.lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
        return self.proc.returncode, took

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def service_factory() -> Iterator[Callable[[Path, Path], Service]]:
    made: list[Service] = []

    def make(config: Path, log_path: Path) -> Service:
        svc = Service(config, log_path)
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.kill()


@pytest.fixture
def served(
    tmp_path: Path, mosquitto: Broker, service_factory: Callable[[Path, Path], Service]
) -> tuple[Service, int]:
    """``edge-anpr serve`` on the test broker, models loaded; and its UDP port."""
    udp_port = free_udp_port()
    svc = service_factory(write_config(tmp_path, mosquitto, udp_port), tmp_path / "serve.log")
    svc.wait_log("event=workers_ready")
    return svc, udp_port


def send(source: Path, port: int, *, wire_format: str, count: int = 0, fps: float = 8.0) -> None:
    command = [
        sys.executable, "-m", "edge_anpr", "send", str(source), "--port", str(port),
        "--format", wire_format, "--fps", str(fps),
    ]
    if wire_format == "sequenced":
        command += ["--camera", str(SEQ_CAMERA_ID)]
    if count:
        command += ["--count", str(count)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def event_plates(sub: Subscriber, camera: str) -> set[str]:
    return {
        p["plate"] for p in sub.on(f"edge-anpr/e2e/{camera}/event")  # type: ignore[index]
        if isinstance(p, dict)
    }


async def test_plates_sent_in_both_formats_arrive_as_mqtt_events(
    tmp_path: Path, mosquitto: Broker, subscriber_factory: Callable[..., Subscriber],
    served: tuple[Service, int],
) -> None:
    svc, udp_port = served
    expected = expected_plates()
    assert expected, "the bundled demo frames come with expected.json"
    sub = subscriber_factory(mosquitto, ["edge-anpr/e2e/#"])
    async with trio.open_nursery() as nursery:
        await nursery.start(sub.run)
        await trio.to_thread.run_sync(
            lambda: send(DEMO_DIR, udp_port, wire_format="sequenced")
        )
        await trio.to_thread.run_sync(lambda: send(DEMO_DIR, udp_port, wire_format="legacy"))
        with trio.move_on_after(30):
            await sub.wait_for(
                lambda: expected <= event_plates(sub, "gate")
                and expected <= event_plates(sub, "lane"),
                timeout_s=30,
            )
        assert event_plates(sub, "gate") >= expected, "sequenced camera"
        assert event_plates(sub, "lane") >= expected, "legacy camera"
        code, took = await trio.to_thread.run_sync(svc.stop)
        await sub.wait_for(
            lambda: any(
                p.get("kind") == "end"  # type: ignore[union-attr]
                for p in sub.on("edge-anpr/e2e/lane/event")
            ),
            timeout_s=10,
        )
        nursery.cancel_scope.cancel()
    assert code == 0, (tmp_path / "serve.log").read_text()
    assert took < 15
    status = sub.on("edge-anpr/e2e/status")
    assert status, "retained status was published"


async def test_real_scene_photographs_arrive_as_events(
    tmp_path: Path, mosquitto: Broker, subscriber_factory: Callable[..., Subscriber],
    served: tuple[Service, int],
) -> None:
    data = shared_data_dir()
    if data is None:
        pytest.skip("../shared/data is not there: no real photographs to send")
    # Real validation photographs whose plate the recognizer reads (the accuracy itself is
    # measured by `edge-anpr eval`; this test is about the transport and the topics).
    pick = _readable_real_scenes(data, limit=2)
    if not pick:
        pytest.fail("no validation scene is read correctly: see `edge-anpr eval`")
    svc, udp_port = served
    sub = subscriber_factory(mosquitto, ["edge-anpr/e2e/#"])
    async with trio.open_nursery() as nursery:
        await nursery.start(sub.run)
        for image, _ in pick:
            await trio.to_thread.run_sync(
                lambda image=image: send(image, udp_port, wire_format="sequenced", count=1)
            )
            await trio.to_thread.run_sync(
                lambda image=image: send(image, udp_port, wire_format="legacy", count=1)
            )
        want = {text for _, text in pick}
        with trio.move_on_after(30):
            await sub.wait_for(
                lambda: want <= event_plates(sub, "gate") and want <= event_plates(sub, "lane"),
                timeout_s=30,
            )
        assert event_plates(sub, "gate") >= want, "sequenced camera"
        assert event_plates(sub, "lane") >= want, "legacy camera"
        code, _ = await trio.to_thread.run_sync(svc.stop)
        nursery.cancel_scope.cancel()
    assert code == 0


def _readable_real_scenes(data: Path, limit: int) -> list[tuple[Path, str]]:
    from edge_anpr.config import Config
    from edge_anpr.lab.datasplit import split_of
    from edge_anpr.vision.recognize import FrameRecognizer

    recognizer = FrameRecognizer(Config())
    picked: list[tuple[Path, str]] = []
    for label in sorted((data / "scenes").glob("*/*.txt")):
        image = label.with_suffix(".jpg")
        lines = [line.split() for line in label.read_text().splitlines() if line.strip()]
        if split_of(image.name) != "val" or len(lines) != 1 or not image.exists():
            continue
        if image.stat().st_size > 1_000_000:
            continue
        found = recognizer.recognize_jpeg(image.read_bytes())
        if found and found[0].text.text == lines[0][-1]:
            picked.append((image, lines[0][-1]))
            if len(picked) == limit:
                break
    return picked


async def test_sigterm_mid_stream_exits_0_and_loses_no_event(
    tmp_path: Path, mosquitto: Broker, subscriber_factory: Callable[..., Subscriber],
    served: tuple[Service, int],
) -> None:
    svc, udp_port = served
    sub = subscriber_factory(mosquitto, ["edge-anpr/e2e/+/event"])
    async with trio.open_nursery() as nursery:
        await nursery.start(sub.run)
        sender = await trio.lowlevel.open_process([
            sys.executable, "-m", "edge_anpr", "send", str(DEMO_DIR), "--port", str(udp_port),
            "--format", "sequenced", "--camera", str(SEQ_CAMERA_ID), "--fps", "10", "--loop",
        ])
        try:
            # Two seconds of stream (every bundled plate seen, events open), then SIGTERM
            # while frames are still arriving.
            await sub.wait_for(lambda: len(sub.messages) >= 6, timeout_s=30)
            await trio.sleep(2.0)
            code, took = await trio.to_thread.run_sync(svc.stop)
        finally:
            sender.kill()
            await sender.wait()
        made = [line for line in svc.lines if line["type"] == "event"]
        made_ids = [(e["event_id"], e["kind"]) for e in made]
        await sub.wait_for(lambda: len(sub.messages) >= len(made), timeout_s=10)
        nursery.cancel_scope.cancel()
    got = [(p["event_id"], p["kind"]) for p in sub.on("edge-anpr/e2e/gate/event")]  # type: ignore[index]
    reads = sum(1 for line in svc.lines if line["type"] == "read")
    print(f"sigterm: exit={code} in {took:.2f}s reads={reads} events_made={len(made_ids)} "
          f"events_received={len(got)}")
    assert code == 0, (tmp_path / "serve.log").read_text()
    assert took < 15
    assert made_ids, "the service made events before the SIGTERM"
    assert got == made_ids, "every event the service made reached the subscriber, in order"
    starts = {i for i, k in made_ids if k == "start"}
    ends = {i for i, k in made_ids if k == "end"}
    assert starts == ends, "every started event was ended at shutdown"
