"""``edge-anpr send``: images, a folder, a video, a camera stream or a webcam to the appliance
over UDP.

Pacing: ``--fps`` when given; else a video file's own frame rate; else a live source's own pace
(a camera stream sends as fast as the camera delivers); else (images) ``DEFAULT_FPS``. A live
source faster than ``--fps`` has its surplus frames skipped, never queued.

The HMAC key comes from ``--key`` or, so that it is not on a command line that every user of the
machine can read (``ps``, ``/proc``), from ``--key-file`` (the file's text, surrounding
whitespace removed; the systemd template unit ``edge-anpr-send@.service`` uses this).
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

from edge_anpr.config import MIN_KEY_BYTES
from edge_anpr.ingest.offload import DatagramSender
from edge_anpr.ingest.protocol import SEQ_MODULO, encode_legacy, encode_sequenced, key_bytes
from edge_anpr.ingest.sender import FrameSource, SourceError

DEFAULT_FPS = 5.0
"""Rate of sources that have none of their own (images, a folder, a video that says none)."""


def _error(message: str) -> int:
    print(f"edge-anpr: error: {message}", file=sys.stderr)
    return 2


def read_key_file(path: str) -> str:
    """The key in ``path`` (whitespace around it removed); ``ValueError`` saying what is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"--key-file {path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"--key-file {path}: not UTF-8 text") from None
    key = text.strip()
    if not key:
        raise ValueError(f"--key-file {path}: the file is empty")
    return key


def send_main(
    source: str, host: str, port: int, wire_format: str, camera: int, fps: float | None,
    key: str, loop: bool, count: int, gso: bool = True, key_file: str = "",
) -> int:
    """Send frames until the source ends (or ``count`` frames, or Ctrl-C); print a summary."""
    if not 0 < port <= 65535:
        return _error(f"--port must be 1..65535, got {port}")
    if wire_format == "sequenced" and not 0 <= camera <= 0xFFFF:
        return _error(f"--camera must be 0..65535, got {camera}")
    if key and key_file:
        return _error("give --key or --key-file, not both")
    if key_file:
        try:
            key = read_key_file(key_file)
        except ValueError as exc:
            return _error(str(exc))
        if len(key.encode("utf-8")) < MIN_KEY_BYTES:
            return _error(
                f"--key-file {key_file}: the key must be at least {MIN_KEY_BYTES} bytes "
                "(as the appliance's cameras.<name>.key)"
            )
    if key and wire_format == "legacy":
        return _error("--key needs --format sequenced")
    try:
        family, _, _, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        return _error(f"--host {host!r}: cannot resolve: {exc}")
    try:
        frames = FrameSource(source, loop)
    except SourceError as exc:
        return _error(str(exc))
    rate = fps or frames.fps or (None if frames.live else DEFAULT_FPS)
    hmac_key = key_bytes(key)
    frame_no = (time.time_ns() // 1_000_000) % SEQ_MODULO
    sent = total_bytes = datagrams = skipped = 0
    started = time.monotonic()
    period = 1.0 / rate if rate else 0.0
    next_at = started
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        out = DatagramSender(sock, addr, gso=gso)
        try:
            for jpeg in frames.frames():
                if count and sent >= count:
                    break
                if period:
                    delay = next_at - time.monotonic()
                    if delay > 0 and frames.live:
                        skipped += 1  # a camera faster than --fps: drop, never fall behind
                        continue
                    if delay > 0:
                        time.sleep(delay)
                    next_at = max(next_at + period, time.monotonic() - period)
                if wire_format == "legacy":
                    packets = encode_legacy(jpeg)
                else:
                    packets = encode_sequenced(
                        jpeg, camera=camera, frame=frame_no, time_us=time.time_ns() // 1000,
                        key=hmac_key,
                    )
                    frame_no = (frame_no + 1) % SEQ_MODULO
                out.send(packets)
                sent += 1
                total_bytes += len(jpeg)
                datagrams += len(packets)
        except SourceError as exc:
            return _error(str(exc))
        except KeyboardInterrupt:
            pass
        except OSError as exc:
            print(f"edge-anpr: error: sending to {host}:{port}: {exc}", file=sys.stderr)
            return 1
    elapsed = time.monotonic() - started
    live = f" skipped={skipped} drops={frames.drops} reconnects={frames.reconnects}" \
        if frames.live else ""
    print(
        f"sent frames={sent} bytes={total_bytes} datagrams={datagrams} "
        f"send_calls={out.system_calls} gso={'on' if out.gso else 'off'} "
        f"format={wire_format} to={host}:{port} seconds={elapsed:.2f}"
        f" fps={'source' if not rate else f'{rate:g}'}{live}"
    )
    return 0
