"""``edge-anpr send``: the frame sources of a small client that pushes frames to the appliance.

Sources (``open_source``):

- one image file, or a folder of images (sorted by name): sent as their bytes, unchanged;
- a video file (a path, or a ``file://`` URL): decoded through OpenCV's FFmpeg backend and
  re-encoded as JPEG, at the video's own frame rate (``fps``) unless ``--fps`` says otherwise;
- a camera stream, ``rtsp://``, ``rtsps://``, ``http://`` or ``https://`` (MJPEG, HLS, ...)
  through OpenCV's FFmpeg backend (``cv2.CAP_FFMPEG``): *live*, so frames are sent as the
  camera delivers them (``--fps`` lower than the camera's drops the surplus). When the stream
  drops, or cannot be opened, it is opened again after a backoff (``Backoff``: 0.5 s doubling
  to 30 s, reset by the first frame of a new connection); each drop and each reconnection is
  logged and counted (``drops``, ``reconnects``), and a live source never ends on its own;
- a webcam index (digits): live, like a stream, but not reopened.

A live camera's frame rate as FFmpeg reports it is often a guess (25 for any MJPEG stream), so
a live source has no ``fps`` and the camera's own pace is the rate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from edge_anpr.logs import fields

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
JPEG_QUALITY = 90
STREAM_SCHEMES = {"rtsp", "rtsps", "http", "https"}
OPEN_TIMEOUT_S = 10.0
"""How long FFmpeg may take to open a stream, and to wait for its next frame, before the
attempt counts as a drop."""
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 30.0
MAX_SOURCE_FPS = 240.0
"""A video's reported rate above this (or none) is not believed: ``fps`` is then None."""


class SourceError(Exception):
    """The frame source cannot be opened or read."""


class Backoff:
    """Reconnection delays: ``min_s`` doubling to ``max_s``; ``reset`` after a good frame."""

    def __init__(self, min_s: float = RECONNECT_MIN_S, max_s: float = RECONNECT_MAX_S) -> None:
        self.min_s, self.max_s = min_s, max_s
        self._next = min_s

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self.max_s)
        return delay

    def reset(self) -> None:
        self._next = self.min_s


class FrameSource:
    """Encoded frames from one source: iterate ``frames()``. ``fps`` is the source's own frame
    rate when it has a believable one (a video file); ``live`` sources (streams, webcams) set
    their own pace."""

    def __init__(
        self, source: str, loop: bool = False, *, sleep: Callable[[float], None] = time.sleep,
        open_timeout_s: float = OPEN_TIMEOUT_S, backoff: Backoff | None = None,
    ) -> None:
        self.source = source
        self.loop = loop
        self.fps: float | None = None
        self.live = False
        self.drops = 0
        """Times a live stream ended or failed to open."""
        self.reconnects = 0
        """Times a live stream was opened again after a drop."""
        self._sleep = sleep
        self._open_timeout_s = open_timeout_s
        self._backoff = backoff or Backoff()
        self._frames = self._open()

    def frames(self) -> Iterator[bytes]:
        return self._frames

    def _open(self) -> Iterator[bytes]:
        source = self.source
        scheme = urlsplit(source).scheme.lower() if "://" in source else ""
        if scheme in STREAM_SCHEMES:
            self.live = True
            return self._stream(source)
        if scheme == "file":
            source = unquote(urlsplit(source).path)
        elif scheme:
            raise SourceError(
                f"{source}: unsupported URL scheme {scheme!r} "
                f"(use {', '.join(sorted(STREAM_SCHEMES | {'file'}))})"
            )
        if source.isdigit():
            self.live = True
            return self._capture(int(source), source, check=True)
        path = Path(source)
        if path.is_dir():
            files = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not files:
                raise SourceError(
                    f"{source}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})"
                )
            return self._files(files)
        if not path.exists():
            raise SourceError(f"{source}: no such file, folder or webcam index")
        if path.suffix.lower() in IMAGE_SUFFIXES:
            if path.stat().st_size == 0:
                raise SourceError(f"{source}: empty file")
            return self._files([path])
        cap = _video_capture(str(path), self._open_timeout_s)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{source}: cannot open as a video")
        rate = float(cap.get(_cv2().CAP_PROP_FPS) or 0.0)
        self.fps = rate if 0 < rate <= MAX_SOURCE_FPS else None
        return self._video(cap, str(path))

    def _files(self, files: list[Path]) -> Iterator[bytes]:
        while True:
            for f in files:
                yield f.read_bytes()
            if not self.loop:
                return

    def _video(self, first: Any, path: str) -> Iterator[bytes]:
        cap = first
        while True:
            yield from self._capture(cap, path, check=True)
            if not self.loop:
                return
            cap = _video_capture(path, self._open_timeout_s)

    def _stream(self, url: str) -> Iterator[bytes]:
        """Frames of a camera stream for ever: reopened with backoff whenever it drops."""
        shown = _redacted(url)
        attempts = 0
        while True:
            attempts += 1
            cap = _video_capture(url, self._open_timeout_s)
            got = 0
            if cap.isOpened():
                if attempts > 1:
                    self.reconnects += 1
                    log.info("stream reconnected %s", fields(url=shown, reconnects=self.reconnects))
                for jpeg in self._capture(cap, shown, check=False):
                    if got == 0:
                        self._backoff.reset()
                    got += 1
                    yield jpeg
            else:
                cap.release()
            self.drops += 1
            delay = self._backoff.next()
            log.warning(
                "stream %s %s",
                "dropped" if got else "unavailable",
                fields(url=shown, frames=got, drops=self.drops, retry_in_s=round(delay, 2)),
            )
            self._sleep(delay)

    def _capture(self, device: Any, label: str, *, check: bool) -> Iterator[bytes]:
        """JPEG frames of an OpenCV capture (or a webcam index) until it ends; with ``check``
        a capture that gives no frame at all is a ``SourceError``."""
        cv2 = _cv2()
        cap = cv2.VideoCapture(device) if isinstance(device, int) else device
        try:
            if not cap.isOpened():
                raise SourceError(f"{label}: cannot open as a video or webcam")
            got_any = False
            while True:
                ok, image = cap.read()
                if not ok:
                    if check and not got_any:
                        raise SourceError(f"{label}: no frame could be read")
                    return
                got_any = True
                ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                if ok:
                    yield buf.tobytes()
        finally:
            cap.release()


def frames_from(source: str, loop: bool) -> Iterator[bytes]:
    """Encoded frames from ``source`` (``FrameSource(source, loop).frames()``); raises
    ``SourceError`` when it cannot be opened."""
    return FrameSource(source, loop).frames()


def _cv2() -> Any:
    import cv2

    return cv2


def _video_capture(target: str, timeout_s: float) -> Any:
    """An OpenCV capture through FFmpeg, with open and read timeouts (a camera that stops
    sending must not block the sender for ever)."""
    cv2 = _cv2()
    ms = int(timeout_s * 1000)
    return cv2.VideoCapture(
        target, cv2.CAP_FFMPEG,
        [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms],
    )


def _redacted(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()
