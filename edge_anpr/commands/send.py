"""``edge-anpr send``: images, a folder, a video or a camera to the appliance over UDP."""

from __future__ import annotations

import socket
import sys
import time

from edge_anpr.ingest.offload import DatagramSender
from edge_anpr.ingest.protocol import SEQ_MODULO, encode_legacy, encode_sequenced, key_bytes
from edge_anpr.ingest.sender import SourceError, frames_from


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

