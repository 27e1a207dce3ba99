"""UDP offload on Linux: many datagrams per system call, same datagrams on the wire.

A 200 KB frame is ~140 datagrams. Received one ``recvfrom`` at a time, each costs the event
loop a system call, and a release and retake of the GIL that the recognition workers contend
for. Two kernel features (Linux >= 5.0) batch them without changing what travels:

- GRO on the receiving socket (``UDP_GRO``): the kernel hands over a run of one sender's
  datagrams of equal size as one buffer, plus the size of each (a control message). The last
  datagram of the run may be shorter. ``Reassembler.feed_coalesced`` takes the buffer as the
  datagrams it holds, so the reassembler sees exactly what was sent. A real network card's
  GRO coalesces datagrams from any sender; on loopback only datagrams sent with GSO arrive
  coalesced.
- GSO on the sending socket (``UDP_SEGMENT``): ``DatagramSender`` passes runs of equal-size
  datagrams to the kernel in one ``sendmsg``, which sends them as separate datagrams.

Both are optional: where the kernel refuses them, the socket works one datagram per call.
"""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Sequence
from typing import Any

SOL_UDP = 17
UDP_SEGMENT = 103
"""Socket option and control message: send this payload as datagrams of the given size."""
UDP_GRO = 104
"""Socket option (receive coalesced datagrams) and control message (their size)."""
GRO_CMSG_BYTES = socket.CMSG_SPACE(4)
"""Room for the one control message a coalesced receive carries: the segment size, a C int."""
GSO_MAX_SEGMENTS = 64
"""The kernel's limit of datagrams per GSO send (UDP_MAX_SEGMENTS)."""
GSO_MAX_BYTES = 65507
"""The largest UDP payload over IPv4, which a GSO send's total must also fit."""
GSO_REFUSED = frozenset({errno.EINVAL, errno.EIO, errno.EMSGSIZE, errno.ENOPROTOOPT,
                         errno.EOPNOTSUPP})
"""Errors by which a kernel or device says it cannot segment: the run is resent one datagram
at a time, which then succeeds or fails for a reason of its own."""


def enable_gro(sock: socket.socket) -> bool:
    """Ask the kernel to coalesce received datagrams; False where it cannot (not Linux, old
    kernel), and the socket then receives one datagram per call as before."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        sock.setsockopt(SOL_UDP, UDP_GRO, 1)
    except OSError:
        return False
    return True


def coalesced_size(ancdata: Sequence[tuple[int, int, bytes]]) -> int:
    """The datagram size of a coalesced receive, or 0 when the buffer is one datagram."""
    for level, kind, value in ancdata:
        if level == SOL_UDP and kind == UDP_GRO and len(value) >= 4:
            return int.from_bytes(value[:4], sys.byteorder)
    return 0


class DatagramSender:
    """Sends datagrams to one address, with GSO where the kernel takes it.

    Runs of equal-size datagrams (plus one shorter datagram that ends the run, as the last chunk
    of a frame is) go in one ``sendmsg``. The first refusal (an old kernel, a device without
    checksum offload) turns GSO off for good and the run is sent one datagram at a time, so a
    sender never fails because of the optimisation.
    """

    def __init__(self, sock: socket.socket, addr: tuple[Any, ...], *, gso: bool = True) -> None:
        self._sock = sock
        self._addr = addr
        self.gso = gso and sys.platform.startswith("linux")
        self.system_calls = 0

    def send(self, datagrams: Sequence[bytes]) -> None:
        start = 0
        while start < len(datagrams):
            end = _run_end(datagrams, start) if self.gso else start + 1
            if end - start > 1 and self._send_segmented(datagrams[start:end]):
                start = end
                continue
            for datagram in datagrams[start:end]:
                self._sock.sendto(datagram, self._addr)
                self.system_calls += 1
            start = end

    def _send_segmented(self, run: Sequence[bytes]) -> bool:
        size = len(run[0])
        try:
            self._sock.sendmsg(
                [b"".join(run)], [(SOL_UDP, UDP_SEGMENT, size.to_bytes(2, sys.byteorder))], 0,
                self._addr,
            )
        except OSError as exc:
            if exc.errno not in GSO_REFUSED:
                raise
            self.gso = False
            return False
        self.system_calls += 1
        return True


def _run_end(datagrams: Sequence[bytes], start: int) -> int:
    """End (exclusive) of the GSO run from ``start``: equal sizes, then at most one shorter."""
    size = len(datagrams[start])
    limit = min(len(datagrams), start + GSO_MAX_SEGMENTS, start + GSO_MAX_BYTES // max(1, size))
    end = start + 1
    while end < limit and len(datagrams[end]) == size:
        end += 1
    if end < limit and len(datagrams[end]) < size:
        end += 1
    return end
