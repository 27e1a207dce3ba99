"""``edge-anpr send``: a small client that pushes frames to the appliance over UDP.

Sources: one image file, a folder of images (sorted by name), a video file, or a webcam index
(digits). Image files are sent as their bytes, unchanged; frames from a video or a webcam are
encoded as JPEG. Frames are paced at ``fps``. In the sequenced format each frame carries the
capture time (now, in microseconds), its frame number and, with a key, the HMAC tag. A frame's
datagrams go to the kernel in one system call where it segments them (UDP GSO, Linux).

Frame numbers start from a millisecond clock rather than 0, so a sender restarted within seconds
continues *ahead* of the numbers the receiver last handed on instead of looking late.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from edge_anpr.ingest.offload import DatagramSender
from edge_anpr.ingest.protocol import SEQ_MODULO, encode_legacy, encode_sequenced, key_bytes

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
JPEG_QUALITY = 90


class SourceError(Exception):
    """The frame source cannot be opened or read."""


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def frames_from(source: str, loop: bool) -> Iterator[bytes]:
    """Encoded frames from ``source``; raises SourceError when it cannot be opened."""
    if source.isdigit():
        yield from _capture_frames(int(source), source)
        return
    path = Path(source)
    if path.is_dir():
        files = _image_files(path)
        if not files:
            raise SourceError(f"{source}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
        while True:
            for f in files:
                yield f.read_bytes()
            if not loop:
                return
    if not path.exists():
        raise SourceError(f"{source}: no such file, folder or webcam index")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        data = path.read_bytes()
        if not data:
            raise SourceError(f"{source}: empty file")
        while True:
            yield data
            if not loop:
                return
    while True:
        yield from _capture_frames(str(path), source)
        if not loop:
            return


def _capture_frames(device: int | str, label: str) -> Iterator[bytes]:
    import cv2

    cap = cv2.VideoCapture(device)
    try:
        if not cap.isOpened():
            raise SourceError(f"{label}: cannot open as a video or webcam")
        got_any = False
        while True:
            ok, image = cap.read()
            if not ok:
                if not got_any:
                    raise SourceError(f"{label}: no frame could be read")
                return
            got_any = True
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if ok:
                yield buf.tobytes()
    finally:
        cap.release()


def send_main(
    source: str, host: str, port: int, wire_format: str, camera: int, fps: float, key: str,
    loop: bool, count: int, gso: bool = True,
) -> int:
    """Send frames until the source ends (or ``count`` frames, or Ctrl-C); print a summary."""
    if not 0 < port <= 65535:
        print(f"edge-anpr: error: --port must be 1..65535, got {port}", file=sys.stderr)
        return 2
    if wire_format == "sequenced" and not 0 <= camera <= 0xFFFF:
        print(f"edge-anpr: error: --camera must be 0..65535, got {camera}", file=sys.stderr)
        return 2
    if key and wire_format == "legacy":
        print("edge-anpr: error: --key needs --format sequenced", file=sys.stderr)
        return 2
    try:
        family, _, _, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        print(f"edge-anpr: error: --host {host!r}: cannot resolve: {exc}", file=sys.stderr)
        return 2
    hmac_key = key_bytes(key)
    frame_no = (time.time_ns() // 1_000_000) % SEQ_MODULO
    sent = total_bytes = datagrams = 0
    started = time.monotonic()
    period = 1.0 / fps
    next_at = started
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        out = DatagramSender(sock, addr, gso=gso)
        try:
            for jpeg in frames_from(source, loop):
                if count and sent >= count:
                    break
                delay = next_at - time.monotonic()
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
            print(f"edge-anpr: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            pass
        except OSError as exc:
            print(f"edge-anpr: error: sending to {host}:{port}: {exc}", file=sys.stderr)
            return 1
    elapsed = time.monotonic() - started
    print(
        f"sent frames={sent} bytes={total_bytes} datagrams={datagrams} "
        f"send_calls={out.system_calls} gso={'on' if out.gso else 'off'} "
        f"format={wire_format} to={host}:{port} seconds={elapsed:.2f}"
    )
    return 0
