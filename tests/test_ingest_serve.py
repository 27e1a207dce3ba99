"""End to end through the CLI: ``edge-anpr serve --stdout`` fed by ``edge-anpr send``."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np
import pytest

from edge_anpr.cli import main
from edge_anpr.ingest.protocol import encode_legacy, encode_sequenced
from edge_anpr.system.signals import held_stop_signals


def _pump(stream: IO[str], sink: queue.Queue[str]) -> None:
    for line in stream:
        sink.put(line)


def _jpeg(path: Path, width: int, height: int) -> bytes:
    image = np.zeros((height, width, 3), np.uint8)
    cv2.rectangle(image, (5, 5), (width - 5, height - 5), (0, 200, 255), 3)
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    path.write_bytes(buf.tobytes())
    return buf.tobytes()


def _edge_anpr(*args: str, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "edge_anpr", *args], text=True, **kw)


def test_serve_counts_sent_frames_and_stops_on_sigterm(tmp_path: Path) -> None:
    """`edge-anpr send` (both formats) into `edge-anpr serve --stdout --port 0`: the stats line
    shows every frame completed by ingest, and SIGTERM stops the appliance with exit 0."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[device]\nstats_interval_s = 0.5\n[cameras.gate]\nid = 3\n')
    image = _jpeg(tmp_path / "car.jpg", 64, 48)
    proc = _edge_anpr(
        "serve", "--stdout", "--port", "0", "--no-mqtt", "--config", str(cfg),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    out: queue.Queue[str] = queue.Queue()
    err: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None and proc.stderr is not None
    threading.Thread(target=_pump, args=(proc.stdout, out), daemon=True).start()
    threading.Thread(target=_pump, args=(proc.stderr, err), daemon=True).start()
    log: list[str] = []

    def early_exit() -> None:
        if proc.poll() is None:
            return
        time.sleep(0.2)
        while not err.empty():
            log.append(err.get())
        text = "".join(log)
        errors = [ln for ln in text.splitlines() if ln.startswith("edge-anpr: error:")]
        if errors and ("model" in errors[-1] or "/models/" in errors[-1]):
            # Recognition stages load models at start; this test is about ingest.
            pytest.skip(f"serve cannot load the models: {errors[-1]}")
        pytest.fail(f"serve exited with {proc.returncode}: {text[-2000:]}")

    try:
        port = None
        deadline = time.monotonic() + 30
        while port is None and time.monotonic() < deadline:
            early_exit()
            try:
                line = err.get(timeout=0.2)
            except queue.Empty:
                continue
            log.append(line)
            if "serving udp=" in line:
                port = int(line.rsplit(":", 1)[1])
        assert port is not None, "".join(log)
        for args in (["--format", "legacy"],
                     ["--format", "sequenced", "--camera", "3", "--count", "2", "--loop"]):
            sent = subprocess.run(
                [sys.executable, "-m", "edge_anpr", "send", str(tmp_path / "car.jpg"), "--port",
                 str(port), "--fps", "50", *args],
                capture_output=True, text=True, timeout=30, check=True,
            )
            assert "sent frames=" in sent.stdout
        junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with junk:
            junk.sendto(b"\x00" * 100, ("127.0.0.1", port))  # legacy data with no frame
        stats: dict[str, Any] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            early_exit()
            try:
                obj = json.loads(out.get(timeout=0.2))
            except queue.Empty:
                continue
            if obj["type"] == "stats":
                stats = obj
                if stats["frames_completed"] >= 3 and stats["dropped"].get("no_frame"):
                    break
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert stats["frames_completed"] == 3, stats
    assert stats["dropped"].get("no_frame") == 1
    # One legacy frame, two sequenced frames and the junk datagram, nothing else.
    assert stats["datagrams"] == (
        len(encode_legacy(image)) + 2 * len(encode_sequenced(image, camera=3, frame=0)) + 1
    )


def test_send_missing_source_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["send", str(tmp_path / "nope.jpg"), "--port", "9"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_send_bad_host_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _jpeg(tmp_path / "a.jpg", 32, 32)
    assert main(["send", str(tmp_path / "a.jpg"), "--host", "no.such.host.invalid"]) == 2
    assert "cannot resolve" in capsys.readouterr().err


def test_send_folder_sends_files_unchanged_in_name_order(tmp_path: Path) -> None:
    a = _jpeg(tmp_path / "b.jpg", 40, 30)
    b = _jpeg(tmp_path / "a.jpg", 20, 10)
    (tmp_path / "notes.txt").write_text("not an image")
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5)
        port = rx.getsockname()[1]
        assert main(["send", str(tmp_path), "--port", str(port), "--format", "legacy",
                     "--fps", "100"]) == 0
        expected = encode_legacy(b) + encode_legacy(a)  # a.jpg first: name order
        got = [rx.recv(2048) for _ in expected]
    assert got == expected
    assert got[0] == len(b).to_bytes(4, "little") and b"".join(got[1:-1]).startswith(b)


def test_send_video_reencodes_frames(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG/AVI")
    for i in range(3):
        writer.write(np.full((24, 32, 3), i * 60, np.uint8))
    writer.release()
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5)
        port = rx.getsockname()[1]
        assert main(["send", str(video), "--port", str(port), "--fps", "100"]) == 0
        datagrams = [rx.recv(2048) for _ in range(3)]
    for d in datagrams:
        assert d[:4] == b"EANP"
        image = cv2.imdecode(np.frombuffer(d[32:], np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (24, 32, 3)


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX only")
def test_serve_port_in_use_is_one_readable_error(capsys: pytest.CaptureFixture[str]) -> None:
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with busy:
        busy.bind(("0.0.0.0", 0))
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port), "--no-mqtt"]) == 1
    err = capsys.readouterr().err
    assert f"cannot listen on udp 0.0.0.0:{port}" in err and "Traceback" not in err


def test_sigterm_while_the_models_load_is_a_clean_stop() -> None:
    """A stop during startup (``systemctl stop`` while a Pi loads its models) used to kill the
    process by the signal, exit 143. ``serving udp`` is logged once the socket is bound and
    before the workers load their models (hundreds of ms): SIGTERM then must wait for the
    pipeline, drain it and exit 0."""
    proc = _edge_anpr(
        "serve", "--port", "0", "--no-mqtt", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    err: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stderr, err), daemon=True).start()
    log: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while not any("serving udp=" in line for line in log):
            assert proc.poll() is None, "".join(log)[-2000:]
            assert time.monotonic() < deadline, "serve never bound its socket"
            with contextlib.suppress(queue.Empty):
                log.append(err.get(timeout=0.2))
        loading = not any("workers_ready" in line for line in log)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    time.sleep(0.2)
    while not err.empty():
        log.append(err.get())
    text = "".join(log)
    assert code == 0, text[-2000:]
    assert "event=shutdown signal=SIGTERM" in text and "event=stopped" in text
    # That the signal did land during startup (else this test shows nothing new).
    assert loading, "the workers were ready before the signal; the test needs a slower start"


def test_held_stop_signals_records_them_and_puts_the_handlers_back() -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with held_stop_signals() as early:
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGINT)
        for _ in range(5):  # a flood keeps two: stop, then stop now
            signal.raise_signal(signal.SIGTERM)
    assert early.received == [signal.SIGTERM, signal.SIGINT]
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


class _Serve:
    """``edge-anpr serve --stdout`` in a child process, its stats lines and log at hand."""

    def __init__(self, cfg: Path, port: int = 0) -> None:
        self.proc = _edge_anpr(
            "serve", "--stdout", "--port", str(port), "--no-mqtt", "--config", str(cfg),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.out: queue.Queue[str] = queue.Queue()
        self.err: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_pump, args=(self.proc.stdout, self.out), daemon=True).start()
        threading.Thread(target=_pump, args=(self.proc.stderr, self.err), daemon=True).start()
        self.log: list[str] = []
        self.port = 0
        deadline = time.monotonic() + 60
        while not self.port and time.monotonic() < deadline:
            assert self.proc.poll() is None, "".join(self.log)
            try:
                line = self.err.get(timeout=0.2)
            except queue.Empty:
                continue
            self.log.append(line)
            if "serving udp=" in line:
                self.port = int(line.rsplit(":", 1)[1])
        assert self.port, "".join(self.log)

    def stats_until(self, done: Any, timeout_s: float = 30) -> dict[str, Any]:
        """The first stats line for which ``done(stats)`` holds."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "".join(self.log)
            try:
                obj = json.loads(self.out.get(timeout=0.2))
            except queue.Empty:
                continue
            if obj["type"] == "stats" and done(obj):
                return dict(obj)
        raise AssertionError(f"no such stats line in {timeout_s} s")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def test_frames_replayed_right_after_a_sigkill_are_refused(tmp_path: Path) -> None:
    """A keyed camera sends 20 frames a second; as soon as the appliance has read at least 20,
    it is killed (SIGKILL) and restarted, and the last 10 frames it had read are sent again at
    once, well within the freshness window: none is read again (docs/protocol.md, "Replay
    protection"); and the camera's new frames are read right away."""
    key = "gate-camera-key-0123"
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        # a window wider than a slow restart: the replays are refused as replayed, not stale
        '[device]\nstats_interval_s = 0.5\n[ingest]\nreplay_window_s = 30\n[mqtt]\n'
        'outbox_path = "' + str(tmp_path / "outbox.sqlite")
        + f'"\n[cameras.gate]\nid = 1\nkey = "{key}"\n'
    )
    image = _jpeg(tmp_path / "car.jpg", 64, 48)
    recorded: list[list[bytes]] = []
    first = _Serve(cfg)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stop = threading.Event()

    def camera() -> None:
        n = 0
        while not stop.is_set():
            frame = encode_sequenced(image, camera=1, frame=n, key=key.encode(),
                                     time_us=time.time_ns() // 1000)
            recorded.append(frame)
            for d in frame:
                sock.sendto(d, ("127.0.0.1", first.port))
            n += 1
            time.sleep(0.05)

    sender = threading.Thread(target=camera, daemon=True)
    try:
        sender.start()
        read = first.stats_until(lambda s: s["frames_completed"] >= 20)["frames_completed"]
        first.proc.send_signal(signal.SIGKILL)
        stop.set()
        sender.join()
        first.proc.wait(timeout=30)
        replays = [d for frame in recorded[read - 10 : read] for d in frame]
        again = _Serve(cfg, first.port)
        try:
            for d in replays:
                sock.sendto(d, ("127.0.0.1", again.port))
            stats = again.stats_until(lambda s: s["datagrams"] >= len(replays))
            fresh = encode_sequenced(image, camera=1, frame=0, key=key.encode(),
                                     time_us=time.time_ns() // 1000)
            for d in fresh:
                sock.sendto(d, ("127.0.0.1", again.port))
            after = again.stats_until(lambda s: s["datagrams"] >= len(replays) + len(fresh))
        finally:
            again.kill()
    finally:
        stop.set()
        sock.close()
        first.kill()
    print(f"replays read after SIGKILL: {stats['frames_completed']} of 10, "
          f"dropped {stats['dropped']}")
    assert stats["frames_completed"] == 0, stats
    assert stats["dropped"] == {"replayed": len(replays)}, stats
    assert after["frames_completed"] == 1, after
