"""``edge-anpr bench ingest``: receiver throughput, loss and latency over real loopback UDP.

The receiver is the real ingest path (``run_udp_ingest`` -> ``Reassembler`` -> ``FrameQueue``)
in this process; the sender is a second process (``python -m edge_anpr.lab.bench_ingest sender``),
so the two do not share a core or the GIL. The sender is windowed: it keeps at most ``window``
frames ahead of the newest frame the receiver has completed, which the receiver reports through
the sender's stdin. That measures what the receiver sustains rather than how fast a sender can
overrun a socket buffer; loss is still counted and reported honestly (frames sent but never
completed, drops by reason, and the kernel's UDP receive-buffer error counter).

Latency is measured on CLOCK_MONOTONIC, which both processes share on Linux: "reassembly" is from
the receiver reading the last datagram of a frame to a consumer taking the frame from the queue;
"end-to-end" is from the sender's ``sendto`` of that datagram to the same moment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import resource
import select
import socket
import statistics
import sys
import time
from typing import Any

import trio

from edge_anpr.config import Config
from edge_anpr.ingest.protocol import encode_legacy, encode_sequenced
from edge_anpr.ingest.queue import FrameQueue
from edge_anpr.ingest.reassembly import Reassembler
from edge_anpr.ingest.udp import run_udp_ingest
from edge_anpr.lab.progress import show_progress

WINDOW_FRAMES = 8
ACK_EVERY = 2
IDLE_END_S = 1.5
"""The run ends when the sender has exited and no frame completed for this long."""


def payload_for(index: int, base: bytes) -> bytes:
    """Frame ``index``: its number in the first 8 bytes, then fixed random-looking bytes."""
    return index.to_bytes(8, "big") + base[8:]


def base_bytes(frame_bytes: int) -> bytes:
    return random.Random(20261124).randbytes(max(frame_bytes, 8))


def bench_ingest(
    frames: int, frame_bytes: int, wire_format: str, window: int = WINDOW_FRAMES
) -> int:
    """Run the benchmark, print a readable table and a final JSON line; 0 unless it failed."""
    if frame_bytes < 8:
        print("edge-anpr: error: --frame-bytes must be at least 8", file=sys.stderr)
        return 2
    result = trio.run(_bench, frames, frame_bytes, wire_format, window)
    _print_table(result)
    print(json.dumps(result, separators=(",", ":")))
    return 0 if result["sender_ok"] else 1


def _udp_counters() -> dict[str, int]:
    """Linux UDP counters (RcvbufErrors = datagrams the kernel dropped for a full buffer)."""
    try:
        with open("/proc/net/snmp", encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    rows = [ln.split() for ln in lines if ln.startswith("Udp:")]
    if len(rows) < 2:
        return {}
    return {k: int(v) for k, v in zip(rows[0][1:], rows[1][1:], strict=False)}


async def _bench(frames: int, frame_bytes: int, wire_format: str, window: int) -> dict[str, Any]:
    cfg = Config()
    # The bench consumer only checks and counts; a deeper queue keeps the appliance's
    # freshness policy (drop-oldest at 2 per camera) from being measured as ingest loss.
    cfg = dataclasses.replace(cfg, ingest=dataclasses.replace(
        cfg.ingest, bind="127.0.0.1", port=0, queue_frames_per_camera=64,
        recv_buffer_bytes=8 * 1024 * 1024,
    ))
    reassembler = Reassembler(cfg.ingest, cfg.cameras)
    queue = FrameQueue(cfg.ingest.queue_frames_per_camera, reassembler.stats)
    base = base_bytes(frame_bytes)
    ready_at: dict[int, float] = {}
    reasm_latency: list[float] = []
    corrupt = 0
    udp_before = _udp_counters()
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    sender_out = b""
    async with trio.open_nursery() as nursery:
        port = await nursery.start(run_udp_ingest, cfg, queue, reassembler)
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "edge_anpr.lab.bench_ingest", "sender", "127.0.0.1", str(port),
             str(frames), str(frame_bytes), wire_format, str(window)],
            stdin=-1, stdout=-1,  # subprocess.PIPE
        )
        assert proc.stdin is not None and proc.stdout is not None
        stdin, stdout = proc.stdin, proc.stdout
        last_progress = 0.0

        async def read_sender() -> None:
            nonlocal sender_out
            async for chunk in stdout:
                sender_out += chunk

        nursery.start_soon(read_sender)
        highest = acked = -1
        last_ready = time.monotonic()
        while True:
            with trio.move_on_after(0.1):
                batch = [await queue.get()]
                # Take every frame already waiting in this scheduling round, as a pool of
                # workers would; one get() per round would measure trio's fairness instead.
                with contextlib.suppress(trio.WouldBlock):
                    while True:
                        batch.append(queue.get_nowait())
                now = time.monotonic()
                for frame in batch:
                    index = int.from_bytes(frame.jpeg[:8], "big")
                    if (
                        frame.jpeg != payload_for(index, base) or index >= frames
                        or index in ready_at
                    ):
                        corrupt += 1
                        continue
                    ready_at[index] = now
                    reasm_latency.append(now - frame.completed_monotonic_s)
                    highest = max(highest, index)
                last_ready = now
                if highest > acked and (
                    highest - acked >= ACK_EVERY or len(ready_at) >= frames - ACK_EVERY
                ):
                    acked = highest
                    with contextlib.suppress(trio.BrokenResourceError):
                        await stdin.send_all(b"%d\n" % highest)
            now = time.monotonic()
            if now - last_progress > 0.25:
                last_progress = now
                show_progress(len(ready_at), frames, "frames")
            if len(ready_at) == frames:
                break
            if proc.poll() is not None and now - last_ready > IDLE_END_S:
                break
        show_progress(len(ready_at), frames, "frames", final=True)
        await proc.wait()
        await stdin.aclose()
        nursery.cancel_scope.cancel()
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    udp_after = _udp_counters()
    return _summarise(
        frames, frame_bytes, wire_format, window, sender_out, ready_at, reasm_latency, corrupt,
        reassembler, cpu_before, cpu_after, udp_before, udp_after, proc.returncode,
    )


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _summarise(
    frames: int, frame_bytes: int, wire_format: str, window: int, sender_out: bytes,
    ready_at: dict[int, float], reasm_latency: list[float], corrupt: int,
    reassembler: Reassembler, cpu_before: Any, cpu_after: Any,
    udp_before: dict[str, int], udp_after: dict[str, int], returncode: int | None,
) -> dict[str, Any]:
    try:
        sent = json.loads(sender_out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        sent = {"frames": 0, "datagrams": 0, "t0": 0.0, "last_send": [], "stalls": 0}
    last_send: list[float] = sent["last_send"]
    e2e = [ready_at[i] - last_send[i] for i in ready_at if i < len(last_send)]
    t_end = max(ready_at.values()) if ready_at else sent["t0"]
    wall = max(t_end - sent["t0"], 1e-9)
    completed = len(ready_at)
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    stats = reassembler.stats
    return {
        "bench": "ingest",
        "format": wire_format,
        "frame_bytes": frame_bytes,
        "window_frames": window,
        "frames_sent": sent["frames"],
        "frames_completed": completed,
        "frames_lost": sent["frames"] - completed,
        "frames_corrupt": corrupt,
        "datagrams_sent": sent["datagrams"],
        "datagrams_received": stats.datagrams,
        "seconds": round(wall, 3),
        "frames_per_s": round(completed / wall, 1),
        "datagrams_per_s": round(stats.datagrams / wall, 0),
        "megabytes_per_s": round(completed * frame_bytes / wall / 1e6, 1),
        "reassembly_latency_ms_median": round(statistics.median(reasm_latency) * 1e3, 3)
        if reasm_latency else None,
        "reassembly_latency_ms_p99": round(_pct(reasm_latency, 0.99) * 1e3, 3)
        if reasm_latency else None,
        "end_to_end_latency_ms_median": round(statistics.median(e2e) * 1e3, 3) if e2e else None,
        "end_to_end_latency_ms_p99": round(_pct(e2e, 0.99) * 1e3, 3) if e2e else None,
        "receiver_cpu_s": round(cpu, 2),
        "receiver_cpu_fraction": round(cpu / wall, 2),
        # Frames per second of receiver CPU: what one whole core would sustain, independent of
        # how much of a shared machine the run actually got.
        "frames_per_cpu_s": round(completed / cpu, 1) if cpu > 0 else None,
        "drops": dict(sorted(stats.drops.items())),
        "duplicates": stats.duplicates,
        "kernel_rcvbuf_errors": udp_after.get("RcvbufErrors", 0)
        - udp_before.get("RcvbufErrors", 0),
        "sender_window_stalls": sent.get("stalls", 0),
        "sender_ok": returncode == 0,
    }


def _print_table(r: dict[str, Any]) -> None:
    rows = [
        ("format", r["format"]),
        ("frame size", f"{r['frame_bytes']:,} B"),
        ("frames sent / completed", f"{r['frames_sent']} / {r['frames_completed']}"),
        ("frames lost / corrupt", f"{r['frames_lost']} / {r['frames_corrupt']}"),
        ("throughput", f"{r['frames_per_s']:,.1f} frames/s, {r['datagrams_per_s']:,.0f} "
                       f"datagrams/s, {r['megabytes_per_s']} MB/s"),
        ("reassembly latency", f"median {r['reassembly_latency_ms_median']} ms, "
                               f"p99 {r['reassembly_latency_ms_p99']} ms"),
        ("end-to-end latency", f"median {r['end_to_end_latency_ms_median']} ms, "
                               f"p99 {r['end_to_end_latency_ms_p99']} ms"),
        ("receiver CPU", f"{r['receiver_cpu_s']} s ({r['receiver_cpu_fraction']:.0%} of a core), "
                         f"{r['frames_per_cpu_s']} frames per CPU-second"),
        ("drops by reason", json.dumps(r["drops"]) if r["drops"] else "none"),
        ("kernel rcvbuf errors", str(r["kernel_rcvbuf_errors"])),
        ("sender window stalls", str(r["sender_window_stalls"])),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


# -- the sender process ------------------------------------------------------------------------


def _sender_main(argv: list[str]) -> int:
    host, port_s, frames_s, bytes_s, wire_format, window_s = argv
    port, frames, frame_bytes, window = int(port_s), int(frames_s), int(bytes_s), int(window_s)
    base = base_bytes(frame_bytes)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
    addr = (host, port)
    stdin_fd = sys.stdin.fileno()
    os.set_blocking(stdin_fd, False)
    pending = b""
    acked = -1
    stalls = 0
    datagrams = 0
    last_send = [0.0] * frames
    sendto = sock.sendto

    def read_acks() -> None:
        nonlocal pending, acked
        while True:
            try:
                chunk = os.read(stdin_fd, 4096)
            except BlockingIOError:
                return
            if not chunk:
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line:
                    acked = max(acked, int(line))

    t0 = time.monotonic()
    for i in range(frames):
        read_acks()
        while i - acked > window:
            ready, _, _ = select.select([stdin_fd], [], [], 0.5)
            if not ready:
                stalls += 1  # lost frames: nothing completes in the window; go on anyway
                break
            read_acks()
        jpeg = payload_for(i, base)
        if wire_format == "legacy":
            packets = encode_legacy(jpeg)
        else:
            packets = encode_sequenced(jpeg, camera=1, frame=i, time_us=time.time_ns() // 1000)
        for packet in packets:
            sendto(packet, addr)
        last_send[i] = time.monotonic()
        datagrams += len(packets)
    sys.stdout.write(json.dumps({
        "frames": frames, "datagrams": datagrams, "t0": t0, "t_end": time.monotonic(),
        "last_send": last_send, "stalls": stalls,
    }) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 8 and sys.argv[1] == "sender":
        raise SystemExit(_sender_main(sys.argv[2:]))
    raise SystemExit(
        "usage: python -m edge_anpr.lab.bench_ingest sender HOST PORT N BYTES FMT WINDOW"
    )
