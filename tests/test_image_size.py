"""Pixels are bounded before decoding: an image's size is read from its header, and one that
announces more than ``ingest.max_frame_pixels`` is refused without OpenCV allocating it, in the
worker pool, in ``edge-anpr recognize`` and in ``edge-anpr read``."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_anpr.assets import DEMO_DIR
from edge_anpr.config import Config, config_from_dict
from edge_anpr.errors import ConfigError, ImageTooLarge
from edge_anpr.ingest.queue import FrameQueue
from edge_anpr.values import Frame, PlateRead
from edge_anpr.vision import recognize
from edge_anpr.vision.imagesize import MAX_JPEG_STEPS, check_pixels, image_size
from edge_anpr.vision.workers import WorkerStats, run_workers


def encoded(ext: str, width: int = 24, height: int = 16, **params: int) -> bytes:
    image = np.full((height, width, 3), 127, np.uint8)
    flags = [int(k) for kv in params.items() for k in (getattr(cv2, kv[0]), kv[1])]
    ok, buf = cv2.imencode(ext, image, flags)
    assert ok
    return buf.tobytes()


def bomb(width: int = 12000, height: int = 12000) -> bytes:
    """A real 24x16 JPEG whose frame header (SOF0) is edited to announce ``width`` x
    ``height``: a few hundred bytes that would cost gigabytes once decoded."""
    data = bytearray(encoded(".jpg"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 7] = height.to_bytes(2, "big")
    data[sof + 7 : sof + 9] = width.to_bytes(2, "big")
    return bytes(data)


def test_sizes_of_real_images_are_read_from_their_headers() -> None:
    assert image_size(encoded(".jpg")) == (24, 16)
    assert image_size(encoded(".jpg", IMWRITE_JPEG_PROGRESSIVE=1)) == (24, 16)
    assert image_size(encoded(".png", 31, 7)) == (31, 7)
    assert image_size(encoded(".bmp", 5, 9)) == (5, 9)
    demo = (DEMO_DIR / "frame_00.jpg").read_bytes()
    shape = cv2.imdecode(np.frombuffer(demo, np.uint8), cv2.IMREAD_GRAYSCALE).shape
    assert image_size(demo) == (shape[1], shape[0])


def test_unreadable_headers_give_no_size() -> None:
    jpeg = encoded(".jpg")
    sof = jpeg.index(b"\xff\xc0")
    assert image_size(b"") is None
    assert image_size(b"GIF89a....") is None
    assert image_size(jpeg[: sof + 6]) is None  # cut inside the frame header
    assert image_size(bomb(0, 100)) is None  # height 0 (DNL): not decoded either
    # a file of empty segments gives up after a bounded number of steps
    assert image_size(b"\xff\xd8" + b"\xff\xfe\x00\x02" * (MAX_JPEG_STEPS + 10)) is None
    assert image_size(b"\xff\xd8" + b"\xff" * 1_000_000) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_after_a_jpeg_start_give_a_size_or_none(tail: bytes) -> None:
    size = image_size(b"\xff\xd8" + tail)
    assert size is None or (size[0] > 0 and size[1] > 0)


def test_a_header_announcing_12000x12000_is_refused_without_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = bomb()
    assert len(data) < 1000
    assert image_size(data) == (12000, 12000)
    with pytest.raises(ImageTooLarge) as caught:
        check_pixels(data, Config().ingest.max_frame_pixels)
    assert "12000x12000" in str(caught.value)

    def no_decoding(*args: object) -> None:
        raise AssertionError("cv2.imdecode must not see a refused image")

    monkeypatch.setattr(recognize.cv2, "imdecode", no_decoding)
    with pytest.raises(ImageTooLarge):
        recognize.decode_jpeg(data, grey=True, max_pixels=Config().ingest.max_frame_pixels)


def test_the_default_limit_takes_a_4k_frame_and_the_limit_is_validated() -> None:
    assert check_pixels(bomb(3840, 2160), Config().ingest.max_frame_pixels) == (3840, 2160)
    assert check_pixels(bomb(4096, 2304), Config().ingest.max_frame_pixels) == (4096, 2304)
    cfg = config_from_dict({"ingest": {"max_frame_pixels": 640 * 480}})
    with pytest.raises(ImageTooLarge):
        check_pixels(bomb(641, 480), cfg.ingest.max_frame_pixels)
    with pytest.raises(ConfigError, match=r"ingest\.max_frame_pixels"):
        config_from_dict({"ingest": {"max_frame_pixels": 10}})


async def test_workers_count_a_refused_frame_and_read_the_next_one() -> None:
    cfg = Config()
    queue = FrameQueue(frames_per_camera=4)
    demo = (DEMO_DIR / "frame_00.jpg").read_bytes()
    for i, data in enumerate([bomb(), demo]):
        queue.put_nowait(Frame("cam-1", ("127.0.0.1", 9), "sequenced", i, data, 0, 0.0))
    queue.close()
    send, receive = trio.open_memory_channel[PlateRead](math.inf)
    stats = WorkerStats()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(functools.partial(run_workers, cfg, queue, send, stats, count=1))
        reads = [read async for read in receive]
    assert stats.frames_too_large == 1
    assert stats.frames_undecodable == 0 and stats.frames_failed == 0
    assert stats.frames_recognized == 1 and reads
    assert stats.snapshot()["frames_too_large"] == 1


def test_recognize_and_read_commands_refuse_the_bomb(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge_anpr.commands.read import read_main
    from edge_anpr.commands.recognize import recognize_main

    path = tmp_path / "bomb.jpg"
    path.write_bytes(bomb())
    demo = DEMO_DIR / "frame_00.jpg"
    assert recognize_main(Config(), [path, demo], output="json") == 1
    out, err = capsys.readouterr()
    assert "bomb.jpg: image of 12000x12000 pixels is above the limit" in err
    assert '"image": "' + str(demo) in out  # the next image is still read
    assert read_main(Config(), [path]) == 1
    assert "12000x12000" in capsys.readouterr().err
