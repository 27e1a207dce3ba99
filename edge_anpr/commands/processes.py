"""``serve`` with ``workers.processes`` above 1: the supervisor of the appliance processes.

It binds one UDP socket per process on the ingest port (``SO_REUSEPORT``, with the camera
steering program of ``system.processes``: sequenced camera ``k`` goes to process ``k % P``),
starts ``P`` copies of the same ``edge-anpr serve`` command, each with its socket and its
``ProcessSlot`` in the environment, and closes its own copies of the sockets (a socket left
open here would take a share of the datagrams and never read them).

Signals: SIGTERM/SIGINT are forwarded to every child (each drains like a lone ``serve``); the
children run in their own session, so a terminal's Ctrl-C reaches them only this way, and the
systemd unit has ``KillMode=mixed`` for the same reason; the
supervisor exits 0 when every child exited 0, else with the first failing child's code. A child
that ends on its own (a crash, a fatal error) makes the supervisor stop the others and exit
with that child's code, so that systemd restarts the whole set.

systemd: the supervisor is the service's main process (``NotifyAccess=main``), and the only one
that talks to systemd. Under systemd (``$NOTIFY_SOCKET`` set) it gives each child a
notification socket of its own (``NotifyRelay``: a datagram socket in a private folder, named
to the child by ``NOTIFY_SOCKET``, with ``WATCHDOG_USEC`` at half the service's) and reads what
the children say there (``system.children.ChildHealth``): it says ``READY=1`` once every child
has said it, and pings the watchdog only while every child has pinged within half the
service's interval, so a child that hangs (a stuck stage withholds its pings, a frozen process
cannot send them) stops the supervisor's pings too, and systemd restarts the set. The
``STATUS`` then names the silent process and what it last said.
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from types import FrameType

from edge_anpr.config import Config
from edge_anpr.ingest.udp import open_udp_socket, steer_by_camera
from edge_anpr.logs import fields
from edge_anpr.system.children import ChildHealth
from edge_anpr.system.notify import SystemdNotifier, watchdog_interval_s
from edge_anpr.system.processes import ENV_SLOT, ENV_UDP_FD, ProcessSlot

log = logging.getLogger(__name__)

POLL_S = 0.2
SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def run_processes(cfg: Config, argv: Sequence[str], count: int, early: Sequence[int]) -> int:
    """Run ``count`` copies of ``edge-anpr <argv>`` on one UDP port until they all exit."""
    ing = cfg.ingest
    socks = []
    port = ing.port
    notifier = SystemdNotifier.from_environ()
    watchdog = watchdog_interval_s()
    relay = NotifyRelay.open(count) if notifier.enabled else None
    try:
        try:
            for index in range(count):
                sock = open_udp_socket(ing.bind, port, ing.recv_buffer_bytes, reuse_port=True)
                socks.append(sock)
                if index == 0:
                    steer_by_camera(sock, count)
                    port = int(sock.getsockname()[1])
            log.info("%s", fields(event="processes_starting", processes=count, udp_port=port))
            children = [
                _start(argv, ProcessSlot(i, count), s.fileno(), relay, watchdog)
                for i, s in enumerate(socks)
            ]
        finally:
            for sock in socks:
                sock.close()
        health = ChildHealth(count, None if watchdog is None else watchdog / 2)
        return _wait(children, early, notifier, watchdog, relay, health)
    finally:
        if relay is not None:
            relay.close()


class NotifyRelay:
    """One ``sd_notify`` socket per child, bound in a private folder, read by the supervisor.

    A path in a folder only this user can enter (``mkdtemp``: mode 0700; the unit's
    ``PrivateTmp`` makes it private to the service too), so only the children can reach it.
    Each child gets its own socket: who sent a datagram is the socket it came in on.
    """

    def __init__(self, folder: str, socks: list[socket.socket]) -> None:
        self.folder = folder
        self.socks = socks

    @classmethod
    def open(cls, count: int) -> NotifyRelay | None:
        """The relay, or None (logged; the supervisor then speaks for its children as soon
        as they are started, and pings while they are alive) when its sockets cannot be made."""
        folder = tempfile.mkdtemp(prefix="edge-anpr-notify-")
        socks: list[socket.socket] = []
        try:
            for index in range(count):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                socks.append(sock)
                sock.bind(os.path.join(folder, f"p{index}"))
                sock.setblocking(False)
        except OSError as exc:
            for sock in socks:
                sock.close()
            shutil.rmtree(folder, ignore_errors=True)
            log.warning("%s", fields(
                event="notify_relay_unavailable", error=exc,
                effect="READY when the processes are started, watchdog while they are alive",
            ))
            return None
        return cls(folder, socks)

    def path(self, index: int) -> str:
        return str(self.socks[index].getsockname())

    def wait(self, health: ChildHealth, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for a notification; hand every one waiting to ``health``."""
        readable, _, _ = select.select(self.socks, [], [], timeout_s)
        for sock in readable:
            index = self.socks.index(sock)
            while True:
                try:
                    health.note(index, sock.recv(4096))
                except (BlockingIOError, InterruptedError):
                    break

    def close(self) -> None:
        for sock in self.socks:
            sock.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def _start(
    argv: Sequence[str], slot: ProcessSlot, fd: int, relay: NotifyRelay | None,
    watchdog: float | None,
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in SYSTEMD_VARIABLES}
    env[ENV_SLOT] = slot.env()
    env[ENV_UDP_FD] = str(fd)
    if relay is not None:
        env["NOTIFY_SOCKET"] = relay.path(slot.index)
        if watchdog is not None:
            # Half the service's interval: a child silent for that long still leaves the
            # supervisor the other half to withhold its own pings before systemd acts.
            env["WATCHDOG_USEC"] = str(max(1, round(watchdog * 1_000_000 / 2)))
    return subprocess.Popen(
        [sys.executable, "-m", "edge_anpr", *argv], env=env, pass_fds=(fd,),
        # Out of the terminal's process group: Ctrl-C reaches the supervisor alone, which
        # forwards it once (a signal from both would be a second one: "stop now").
        start_new_session=True,
    )


def _wait(
    children: list[subprocess.Popen[bytes]], early: Sequence[int], notifier: SystemdNotifier,
    watchdog: float | None, relay: NotifyRelay | None, health: ChildHealth,
) -> int:
    received: list[int] = list(early)

    def record(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    previous = {s: signal.signal(s, record) for s in (signal.SIGINT, signal.SIGTERM)}
    if relay is None:
        notifier.ready(f"{len(children)} processes")
    ready_sent = relay is None
    silent_before: list[int] = []
    next_ping = 0.0
    forwarded = 0
    failed: int | None = None
    try:
        while any(c.poll() is None for c in children):
            while forwarded < len(received):
                signum = received[forwarded]
                forwarded += 1
                log.info("%s", fields(event="processes_signal", signal=signal.Signals(signum).name))
                if forwarded == 1:
                    notifier.stopping()
                _signal_all(children, signum)
            for index, child in enumerate(children):
                code = child.poll()
                if code is not None and code != 0 and failed is None:
                    failed = code
                    log.error("%s", fields(event="process_failed", process=index, exit=code))
                    if not received:
                        _signal_all(children, signal.SIGTERM)
            running = failed is None and not received and all(c.poll() is None for c in children)
            if running and not ready_sent and health.all_ready():
                ready_sent = True
                log.info("%s", fields(event="processes_ready", processes=len(children)))
                notifier.ready(f"{len(children)} processes ready")
            silent = health.silent()
            if silent != silent_before:
                _report_silence(notifier, health, silent, silent_before)
                silent_before = silent
            if running and ready_sent and not silent:
                now = time.monotonic()
                if watchdog is not None and now >= next_ping:
                    notifier.watchdog()
                    next_ping = now + watchdog / 2
            if relay is not None:
                relay.wait(health, POLL_S)
            else:
                time.sleep(POLL_S)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    codes = [c.wait() for c in children]
    bad = [code for code in codes if code != 0]
    log.info("%s", fields(event="processes_stopped", exits=",".join(map(str, codes))))
    if not bad:
        return 0
    return bad[0] if bad[0] > 0 else 128 - bad[0]  # killed by a signal: the shell's code


def _report_silence(
    notifier: SystemdNotifier, health: ChildHealth, silent: list[int], before: list[int]
) -> None:
    """One log line per change of the set of silent children, and the status systemd shows."""
    for index in silent:
        if index not in before:
            log.error("%s", fields(
                event="process_unresponsive", process=index, silent_over_s=health.silence_s,
                last_status=health.status(index) or "-", effect="withholding watchdog pings",
            ))
    for index in before:
        if index not in silent:
            log.info("%s", fields(event="process_responsive", process=index))
    if silent:
        notifier.status("unhealthy: " + ", ".join(
            f"process {i} silent ({health.status(i) or 'no status'})" for i in silent
        ))
    else:
        notifier.status(f"{health.count} processes ready")


def _signal_all(children: list[subprocess.Popen[bytes]], signum: int) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signum)
