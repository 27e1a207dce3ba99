"""``edge-anpr send`` from real camera sources: an HTTP MJPEG stream the test serves on
loopback (multipart/x-mixed-replace JPEG parts of rendered plate frames), read through OpenCV's
FFmpeg backend, sent to the whole appliance in this process; the stream is dropped by the
server and the sender reconnects and is read again. Plus a video's own frame rate and
``--key-file``.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
import trio

from edge_anpr.app import Sinks, running_pipeline
from edge_anpr.assets import DEMO_DIR
from edge_anpr.cli import main
from edge_anpr.config import config_from_dict
from edge_anpr.ingest.sender import Backoff, FrameSource
from edge_anpr.values import PlateRead

pytestmark = pytest.mark.slow

KEY = "a-long-camera-secret-0123456789"
CAMERA_ID = 9
FIRST_PLATE, SECOND_PLATE = "815SVN", "WNR4W56"  # frame_00.jpg, frame_02.jpg
FIRST_CONNECTION_FRAMES = 6


class MjpegCamera:
    """A camera's MJPEG endpoint: the first connection gets ``FIRST_CONNECTION_FRAMES`` frames
    of one car and is then closed by the server (the drop); later ones get the other car for
    as long as the client reads."""

    def __init__(self, fps: float = 10.0) -> None:
        self.first = (DEMO_DIR / "frame_00.jpg").read_bytes()
        self.second = (DEMO_DIR / "frame_02.jpg").read_bytes()
        self.period = 1.0 / fps
        self.connections = 0
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                camera.connections += 1
                number = camera.connections
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                jpeg, frames = (camera.first, FIRST_CONNECTION_FRAMES) if number == 1 else (
                    camera.second, 600)
                try:
                    for _ in range(frames):
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\n"
                            b"Content-Length: %d\r\n\r\n" % len(jpeg) + jpeg + b"\r\n"
                        )
                        self.wfile.flush()
                        time.sleep(camera.period)
                except OSError:
                    return  # the client went away
                self.close_connection = True  # the drop: the server hangs up mid-stream

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/video.mjpg"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> MjpegCamera:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def camera() -> Iterator[MjpegCamera]:
    with MjpegCamera() as cam:
        yield cam


async def test_send_from_an_mjpeg_camera_reads_and_reconnects_after_a_drop(
    camera: MjpegCamera, tmp_path: Path
) -> None:
    key_file = tmp_path / "gate.key"
    key_file.write_text(KEY + "\n")
    cfg = config_from_dict({
        "ingest": {"bind": "127.0.0.1", "port": 0},
        "cameras": {"gate": {"id": CAMERA_ID, "key": KEY}},
        "workers": {"count": 1},
        "mqtt": {"enabled": False},
    })
    reads: list[PlateRead] = []
    total = FIRST_CONNECTION_FRAMES + 8
    async with running_pipeline(cfg, sinks=Sinks(on_read=reads.append)) as (pipeline, _):
        sender = await trio.run_process(
            [sys.executable, "-m", "edge_anpr", "send", camera.url, "--port", str(pipeline.port),
             "--camera", str(CAMERA_ID), "--key-file", str(key_file), "--count", str(total)],
            capture_stdout=True, capture_stderr=True, check=False,
        )
        with trio.move_on_after(10):
            while not any(r.text.text == SECOND_PLATE for r in reads):
                await trio.sleep(0.05)
        pipeline.stop()
    out, err = sender.stdout.decode(), sender.stderr.decode()
    assert sender.returncode == 0, err
    assert f"sent frames={total}" in out, out
    assert "drops=1 reconnects=1" in out, out
    assert "stream dropped" in err and "stream reconnected" in err, err
    assert KEY not in out + err
    assert camera.connections == 2
    plates = [r.text.text for r in reads]
    assert plates.count(FIRST_PLATE) >= FIRST_CONNECTION_FRAMES - 1, plates
    assert SECOND_PLATE in plates, plates
    assert plates.index(SECOND_PLATE) > max(i for i, p in enumerate(plates) if p == FIRST_PLATE)
    assert all(r.camera == "gate" and r.authenticated for r in reads)  # the key file's key


def test_a_stream_that_cannot_be_opened_is_retried_with_backoff() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens there once closed
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 4:
            raise KeyboardInterrupt  # the user's Ctrl-C, the only end of a live source

    source = FrameSource(f"http://127.0.0.1:{port}/x.mjpg", sleep=sleep, open_timeout_s=1.0,
                         backoff=Backoff(0.5, 2.0))
    assert source.live and source.fps is None
    with pytest.raises(KeyboardInterrupt):
        next(source.frames())
    assert slept == [0.5, 1.0, 2.0, 2.0]
    assert source.drops == 4 and source.reconnects == 0


def _video(path: Path, fps: float, frames: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG/AVI")
    for i in range(frames):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()


def test_a_video_is_sent_at_its_own_frame_rate_from_a_file_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video = tmp_path / "clip.avi"
    _video(video, 20.0, 10)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        started = time.monotonic()
        assert main(["send", video.as_uri(), "--port", str(rx.getsockname()[1])]) == 0
        took = time.monotonic() - started
    out = capsys.readouterr().out
    assert "sent frames=10" in out and "fps=20" in out, out
    assert 0.35 < took < 3.0  # 10 frames at 20 fps: 0.45 s of pacing, not 2 s at 5 fps


@pytest.mark.parametrize(("content", "extra", "why"), [
    (None, [], "cannot read"),
    ("\n", [], "the file is empty"),
    ("short\n", [], "at least 16 bytes"),
    (KEY, ["--key", KEY], "not both"),
])
def test_key_file_errors_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, extra: list[str],
    why: str,
) -> None:
    image = tmp_path / "a.jpg"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    key_file = tmp_path / "k.key"
    if content is not None:
        key_file.write_text(content)
    assert main(["send", str(image), "--port", "9", "--key-file", str(key_file), *extra]) == 2
    err = capsys.readouterr().err
    assert why in err and err.count("\n") == 1, err
