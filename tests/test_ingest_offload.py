"""UDP offload: GSO on the sender, GRO on the receiver, and the fallbacks, on real sockets."""

from __future__ import annotations

import random
import socket
import sys

import pytest
import trio

from edge_anpr.config import config_from_dict
from edge_anpr.ingest.offload import (
    GRO_CMSG_BYTES,
    DatagramSender,
    coalesced_size,
    enable_gro,
)
from edge_anpr.ingest.protocol import encode_legacy, encode_sequenced
from edge_anpr.ingest.queue import FrameQueue
from edge_anpr.ingest.reassembly import Reassembler
from edge_anpr.ingest.udp import run_udp_ingest

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="UDP GSO and GRO are Linux socket options"
)
SO_NO_CHECK = 11
"""Linux: send without UDP checksums, which the kernel will not combine with GSO."""


def _receiver(gro: bool) -> socket.socket:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    if gro and not enable_gro(rx):
        rx.close()
        pytest.skip("this kernel refuses UDP_GRO (Linux >= 5.0 needed)")
    return rx


def _mixed_datagrams() -> list[bytes]:
    """Runs of equal sizes broken by shorter and longer datagrams, as frames produce them."""
    rng = random.Random(7)
    sizes = [4] + [1472] * 70 + [338, 4, 1472, 1472, 900, 1472, 60] + [1000] * 3 + [1200]
    return [rng.randbytes(n) for n in sizes]


def _split(data: bytes, size: int) -> list[bytes]:
    """A coalesced buffer cut back into its datagrams (the last may be shorter)."""
    if size <= 0 or size >= len(data):
        return [data]
    return [data[start : start + size] for start in range(0, len(data), size)]


def test_coalesced_size_reads_the_gro_control_message() -> None:
    assert coalesced_size([]) == 0
    assert coalesced_size([(17, 104, (1472).to_bytes(4, sys.byteorder))]) == 1472
    assert coalesced_size([(1, 29, b"\x00" * 8)]) == 0  # someone else's control message


@linux_only
def test_gso_sends_the_same_datagrams_in_fewer_calls() -> None:
    datagrams = _mixed_datagrams()
    with _receiver(gro=False) as rx, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        out = DatagramSender(tx, rx.getsockname())
        out.send(datagrams)
        got = [rx.recv(65535) for _ in datagrams]
    assert got == datagrams
    assert out.gso
    # 4 | 64 x 1472 | 6 x 1472 + 338 | 4 | 2 x 1472 + 900 | 1472 + 60 | 3 x 1000 | 1200
    assert out.system_calls == 8


@linux_only
def test_gso_refused_by_the_kernel_falls_back_to_one_call_per_datagram() -> None:
    datagrams = _mixed_datagrams()
    with _receiver(gro=False) as rx, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        tx.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
        out = DatagramSender(tx, rx.getsockname())
        out.send(datagrams)
        got = [rx.recv(65535) for _ in datagrams]
    assert got == datagrams
    assert not out.gso
    assert out.system_calls == len(datagrams)  # the refused sendmsg sent nothing


@linux_only
def test_gro_receives_a_gso_run_as_one_buffer_that_splits_back() -> None:
    datagrams = [bytes([i]) * 1472 for i in range(40)] + [b"end" * 100]
    with _receiver(gro=True) as rx, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        DatagramSender(tx, rx.getsockname()).send(datagrams)
        got: list[bytes] = []
        calls = 0
        while len(got) < len(datagrams):
            data, ancdata, _, _ = rx.recvmsg(65535, GRO_CMSG_BYTES)
            calls += 1
            got.extend(_split(data, coalesced_size(ancdata)))
    assert got == datagrams
    assert calls < len(datagrams)


@linux_only
@pytest.mark.parametrize("gro", [True, False])
async def test_frames_sent_with_gso_arrive_whole_with_gro_on_or_off(
    nursery: trio.Nursery, gro: bool
) -> None:
    cfg = config_from_dict({"ingest": {
        "bind": "127.0.0.1", "port": 0, "queue_frames_per_camera": 64, "udp_gro": gro,
    }})
    reassembler = Reassembler(cfg.ingest, cfg.cameras)
    queue = FrameQueue(cfg.ingest.queue_frames_per_camera, reassembler.stats)
    port = await nursery.start(run_udp_ingest, cfg, queue, reassembler)
    rng = random.Random(3)
    jpegs = [rng.randbytes(rng.randrange(100, 90_000)) for _ in range(12)]
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        out = DatagramSender(tx, ("127.0.0.1", port))
        for i, jpeg in enumerate(jpegs):
            if i % 2:
                datagrams = encode_sequenced(jpeg, camera=1, frame=100 + i, time_us=i)
            else:
                datagrams = encode_legacy(jpeg)
            out.send(datagrams)
            sent += len(datagrams)
            await trio.sleep(0.005)  # one legacy frame at a time from this sender
    got = []
    with trio.fail_after(5):
        while len(got) < len(jpegs):
            got.append((await queue.get()).jpeg)
    assert sorted(got) == sorted(jpegs)
    assert reassembler.stats.datagrams == sent
    assert not reassembler.stats.drops
