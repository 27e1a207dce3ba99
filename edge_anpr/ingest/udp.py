"""The thin I/O shell around the reassembler: one non-blocking UDP socket driven by trio.

The drain loop waits for readability, then reads datagrams until the socket would block (on
Linux with UDP GRO, so one receive can carry a run of a sender's datagrams: ``offload``). There
is deliberately no per-datagram timeout or ``await`` between datagrams: at 1,000 frames/s of
200 KB the socket delivers ~140,000 datagrams/s, and any per-datagram scheduling cost is paid that
many times. The loop returns to the scheduler after a bounded batch so other tasks still run.
Stale state is expired after every drain pass and by a periodic task (when no datagram arrives).

Liveness (``beat``, the stage ``ingest`` of ``system.notify.Liveness``): the drain loop beats
once per pass. While it waits for readability (no camera sending), the expiry task beats for it
on each tick, but only when a zero-timeout poll finds nothing waiting in the socket: datagrams
sitting unread while the loop sleeps would be a hang. The wait itself has no timeout: a cancel
scope per pass cost receiver CPU well beyond the noise of ``edge-anpr bench ingest``.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import select
import socket
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable

import trio

from edge_anpr.config import Config
from edge_anpr.errors import EdgeAnprError
from edge_anpr.ingest.events import Dropped, Event, FrameReady
from edge_anpr.ingest.offload import GRO_CMSG_BYTES, coalesced_size, enable_gro
from edge_anpr.ingest.queue import FrameQueue
from edge_anpr.ingest.reassembly import Reassembler
from edge_anpr.logs import RateLimitedLog, fields
from edge_anpr.system.processes import ENV_UDP_FD, ProcessSlot, steering_program

log = logging.getLogger(__name__)

RECV_BYTES = 65535
"""Room for the largest UDP datagram, and for the largest coalesced (GRO) receive."""
MSG_TRUNC = int(socket.MSG_TRUNC)
"""As a plain int: ``int & socket.MSG_TRUNC`` goes through the ``enum.IntFlag`` operators and
builds a flag member on every receive (3% of the event loop's ingest time in a profile)."""
BATCH_DATAGRAMS = 128
"""Receive calls per drain pass before yielding to other tasks (each may carry up to 64
datagrams when the kernel coalesces them)."""


def open_udp_socket(
    bind: str, port: int, recv_buffer_bytes: int, *, reuse_port: bool = False
) -> socket.socket:
    """A bound, non-blocking UDP socket with the largest receive buffer the system grants.

    With ``reuse_port`` the socket joins the port's ``SO_REUSEPORT`` group (the several
    appliance processes of ``system.processes``): the kernel then spreads the senders over the
    group's sockets.
    """
    infos = socket.getaddrinfo(bind, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv_buffer_bytes)
        force = getattr(socket, "SO_RCVBUFFORCE", None)
        granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        # Linux reports twice the usable size and caps requests at net.core.rmem_max; as root,
        # SO_RCVBUFFORCE bypasses the cap (a burst of frames needs megabytes of buffer).
        if force is not None and granted < recv_buffer_bytes and _is_root():
            try:
                sock.setsockopt(socket.SOL_SOCKET, force, recv_buffer_bytes)
                granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            except OSError:
                pass
        if granted >= recv_buffer_bytes:
            log.info("%s", fields(
                event="udp_recv_buffer", requested=recv_buffer_bytes, granted=granted,
            ))
        else:
            log.warning("%s", fields(
                event="udp_recv_buffer", requested=recv_buffer_bytes, granted=granted,
                hint="raise sysctl net.core.rmem_max or run as root",
            ))
        try:
            sock.bind(addr)
        except OSError as exc:
            raise EdgeAnprError(
                f"cannot listen on udp {bind}:{port}: {exc.strerror}; is another edge-anpr "
                f"running, or set ingest.port / --port"
            ) from None
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


SO_ATTACH_REUSEPORT_CBPF = 51
"""From ``<asm-generic/socket.h>`` (Linux 4.5+); Python's ``socket`` module does not name it."""


def steer_by_camera(sock: socket.socket, count: int) -> None:
    """Attach ``system.processes.steering_program`` to ``sock``'s ``SO_REUSEPORT`` group."""
    program = steering_program(count)
    insns = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("@HP", len(program) // 8, ctypes.addressof(insns))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)


def inherited_udp_socket() -> socket.socket | None:
    """The bound socket the supervisor passed down (``system.processes.ENV_UDP_FD``), once.

    The variable is removed when taken: a restarted ingest stage binds a new socket into the
    same ``SO_REUSEPORT`` group (``open_udp_socket(reuse_port=True)``).
    """
    fd = os.environ.pop(ENV_UDP_FD, "")
    if not fd:
        return None
    sock = socket.socket(fileno=int(fd))
    sock.setblocking(False)
    return sock


KERNEL_DROPS_EVERY_S = 1.0
"""How often the socket's kernel drop count is read (a read of ``/proc/net/udp``)."""


def kernel_drops(sock: socket.socket) -> int | None:
    """Datagrams the kernel has dropped for ``sock`` since it was opened (receive buffer full,
    mostly): the ``drops`` column of the socket's line in ``/proc/net/udp`` (or ``udp6``),
    found by its inode. None where there is no such file (not Linux) or no such line.

    Read on a timer rather than per receive (``SO_RXQ_OVFL`` would add a control message to
    every ``recvmsg``): the count is cumulative, so nothing is missed between reads.
    """
    path = "/proc/net/udp6" if sock.family == socket.AF_INET6 else "/proc/net/udp"
    try:
        inode = str(os.fstat(sock.fileno()).st_ino)
        with open(path, encoding="ascii") as table:
            next(table, None)  # the header line
            for line in table:
                # sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
                cols = line.split()
                if len(cols) >= 13 and cols[9] == inode:
                    return int(cols[12])
    except (OSError, ValueError):
        return None
    return None


def _is_root() -> bool:
    return sys.platform.startswith("linux") and os.geteuid() == 0


class DropLog:
    """At most one line per drop reason per ``interval_s`` and at most ``lines_per_s`` lines in
    any second for all reasons together, plus a periodic summary.

    The key is the reason alone: sender addresses and camera names are chosen by the network,
    so keying by them let a flood from many ports or camera ids write thousands of lines a
    second. Reasons are a fixed set (``protocol.DROP_REASONS``), so a long flood gets at most
    ``len(DROP_REASONS) / interval_s`` lines a second (21 reasons / 15 s: under 1.5), and the
    shared budget keeps the first second of a flood of every reason at once to ``lines_per_s``
    too (a reason over budget is written in a later second). Every drop is still counted in
    the stats, and ``summarize`` writes, every ``summary_interval_s`` in which some drops were
    not written, one line counting them by reason. The clock is injected for tests.
    """

    def __init__(
        self, interval_s: float = 15.0, summary_interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic, lines_per_s: int = 1,
    ) -> None:
        self._lines_per_s = lines_per_s
        self._second_start = -math.inf
        self._second_lines = 0
        self._interval_s = interval_s
        self._summary_interval_s = summary_interval_s
        self._clock = clock
        self._written: dict[str, float] = {}
        self._counts: Counter[str] = Counter()
        """Drops by reason since the last summary."""
        self._unwritten = 0
        self._window_start = clock()

    def dropped(self, ev: Dropped) -> None:
        self._counts[ev.reason] += 1
        now = self._clock()
        last = self._written.get(ev.reason)
        if last is not None and now - last < self._interval_s:
            self._unwritten += 1  # a dict lookup under a flood: no string is built
            return
        if now - self._second_start >= 1.0:
            self._second_start, self._second_lines = now, 0
        if self._second_lines >= self._lines_per_s:
            self._unwritten += 1
            return
        self._second_lines += 1
        self._written[ev.reason] = now
        extra = {"missing_chunks": ev.missing_chunks} if ev.missing_chunks else {}
        log.warning("ingest drop %s", fields(
            reason=ev.reason, sender=f"{ev.sender[0]}:{ev.sender[1]}", camera=ev.camera or "-",
            detail=ev.detail, **extra,
        ))

    def summarize(self) -> None:
        """Write the summary line when ``summary_interval_s`` has passed since the last one and
        some drops were not written; call it as often as convenient."""
        now = self._clock()
        if now - self._window_start < self._summary_interval_s:
            return
        if self._unwritten:
            by_reason = {f"dropped.{r}": n for r, n in sorted(self._counts.items())}
            log.warning("ingest drops summary %s", fields(
                window_s=round(now - self._window_start, 1), not_logged=self._unwritten,
                **by_reason,
            ))
        self._counts.clear()
        self._unwritten = 0
        self._window_start = now


def deliver(events: Iterable[Event], queue: FrameQueue, drops: DropLog) -> None:
    """Queue complete frames, log drops (including frames pushed out of a full queue)."""
    for ev in events:
        if isinstance(ev, FrameReady):
            old = queue.put_nowait(ev.frame)
            if old is not None:
                drops.dropped(Dropped(
                    "queue_full", old.sender, old.camera,
                    "consumers are behind; oldest waiting frame of this camera dropped",
                ))
        else:
            drops.dropped(ev)


async def run_udp_ingest(
    cfg: Config,
    queue: FrameQueue,
    reassembler: Reassembler,
    *,
    beat: Callable[[], None] = lambda: None,
    persist: Callable[[], None] = lambda: None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Receive on ``cfg.ingest.bind``/``port`` until cancelled, feeding ``queue``.

    ``persist`` is called at the end of every drain pass, before the loop yields: the replay
    state's write-through (``replay_state.ReplayJournal.write``). Frames reach the workers only
    through tasks of this trio run, which cannot run before then, so no frame is read before
    the capture time it was accepted with is on file; one write serves all the frames of a
    pass. (The expiry task accepts no frame.)

    Reports the bound port through ``task_status.started(port)`` (so ``port = 0`` works), and
    logs ``serving udp=HOST:PORT``. Counters live in ``reassembler.stats``. Never raises because
    of a datagram: bad input is counted and logged; a bug in the reassembler is logged with its
    traceback and the rest of that receive (one datagram, or one coalesced run of a sender's)
    skipped, so one bad packet cannot take the appliance down.
    """
    ing = cfg.ingest
    sock = inherited_udp_socket() or open_udp_socket(
        ing.bind, ing.port, ing.recv_buffer_bytes,
        reuse_port=ProcessSlot.from_environ() is not None,
    )
    drops = DropLog()
    bugs = RateLimitedLog(log, interval_s=60.0)
    with sock:
        host, port = sock.getsockname()[:2]
        gro = ing.udp_gro and enable_gro(sock)
        log.info("%s", fields(event="udp_gro", enabled=gro))
        log.info("serving udp=%s:%d", host, port)
        task_status.started(port)
        feed, feed_coalesced = reassembler.feed, reassembler.feed_coalesced
        recvfrom = sock.recvfrom
        recvmsg = sock.recvmsg
        clock = time.monotonic
        wall_ns = time.time_ns  # the capture times of authenticated frames are checked on it
        expire_every_s = min(ing.frame_timeout_s / 4, 0.25)
        next_expire = clock() + expire_every_s
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                _expire_periodically, reassembler, queue, drops, expire_every_s, sock, beat
            )
            while True:
                beat()
                await trio.lowlevel.wait_readable(sock)
                for _ in range(BATCH_DATAGRAMS):
                    try:
                        if gro:
                            data, ancdata, msg_flags, addr = recvmsg(RECV_BYTES, GRO_CMSG_BYTES)
                        else:
                            data, addr = recvfrom(RECV_BYTES)
                    except BlockingIOError:
                        break
                    except OSError as exc:  # e.g. ICMP errors surfacing on some platforms
                        bugs.warning("recv", "ingest recv_error " + fields(error=exc))
                        break
                    size = coalesced_size(ancdata) if gro and ancdata else 0
                    if size and msg_flags & MSG_TRUNC:
                        # Never seen: the kernel stops coalescing at 64 KiB. Should it not,
                        # the cut-off last datagram is left out rather than fed half.
                        bugs.warning("truncated", "ingest recv_truncated " + fields(
                            sender=f"{addr[0]}:{addr[1]}", datagrams=len(data) // size,
                        ))
                        data = data[: (len(data) - 1) // size * size]
                    sender = (addr[0], addr[1])
                    try:
                        # one datagram (a sender without GSO): feed() without the extra call
                        wall_us = wall_ns() // 1000
                        events = (feed_coalesced(data, size, sender, clock(), wall_us) if size
                                  else feed(data, sender, clock(), wall_us))
                    except Exception:
                        # Lost: the rest of this receive (one frame's datagrams at most).
                        log.exception("ingest bug while handling datagrams from %s", addr)
                        continue
                    if events:
                        deliver(events, queue, drops)
                now = clock()
                if now >= next_expire:
                    deliver(reassembler.expire(now), queue, drops)
                    next_expire = now + expire_every_s
                persist()  # before the frames of this pass can reach a worker


async def _expire_periodically(
    reassembler: Reassembler, queue: FrameQueue, drops: DropLog, every_s: float,
    sock: socket.socket, beat: Callable[[], None],
) -> None:
    """Expire stale frames when no datagram arrives; beat for the idle drain loop; read the
    kernel's drop count of the socket into the stats every ``KERNEL_DROPS_EVERY_S``."""
    next_kernel_read = 0.0
    while True:
        await trio.sleep(every_s)
        now = time.monotonic()
        deliver(reassembler.expire(now), queue, drops)
        drops.summarize()
        if now >= next_kernel_read:
            next_kernel_read = now + KERNEL_DROPS_EVERY_S
            reassembler.stats.kernel_drops = kernel_drops(sock)
        if not select.select([sock], [], [], 0)[0]:
            beat()  # the drain loop is waiting, and there is nothing for it to read
