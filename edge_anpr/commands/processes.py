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

systemd: the supervisor is the service's main process. It says READY once every child has been
started and pings the watchdog while every child is alive; the children do not talk to systemd
(their own stage liveness is logged but not relayed: a known limit, docs/performance.md).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

from edge_anpr.config import Config
from edge_anpr.ingest.udp import open_udp_socket, steer_by_camera
from edge_anpr.logs import fields
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
    try:
        for index in range(count):
            sock = open_udp_socket(ing.bind, port, ing.recv_buffer_bytes, reuse_port=True)
            socks.append(sock)
            if index == 0:
                steer_by_camera(sock, count)
                port = int(sock.getsockname()[1])
        log.info("%s", fields(event="processes_starting", processes=count, udp_port=port))
        children = [_start(argv, ProcessSlot(i, count), s.fileno()) for i, s in enumerate(socks)]
    finally:
        for sock in socks:
            sock.close()
    return _wait(children, early)


def _start(argv: Sequence[str], slot: ProcessSlot, fd: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in SYSTEMD_VARIABLES}
    env[ENV_SLOT] = slot.env()
    env[ENV_UDP_FD] = str(fd)
    return subprocess.Popen(
        [sys.executable, "-m", "edge_anpr", *argv], env=env, pass_fds=(fd,),
        # Out of the terminal's process group: Ctrl-C reaches the supervisor alone, which
        # forwards it once (a signal from both would be a second one: "stop now").
        start_new_session=True,
    )


def _wait(children: list[subprocess.Popen[bytes]], early: Sequence[int]) -> int:
    received: list[int] = list(early)

    def record(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    previous = {s: signal.signal(s, record) for s in (signal.SIGINT, signal.SIGTERM)}
    notifier = SystemdNotifier.from_environ()
    watchdog = watchdog_interval_s()
    notifier.ready(f"{len(children)} processes")
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
            if failed is None and not received and all(c.poll() is None for c in children):
                now = time.monotonic()
                if watchdog is not None and now >= next_ping:
                    notifier.watchdog()
                    next_ping = now + watchdog / 2
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


def _signal_all(children: list[subprocess.Popen[bytes]], signum: int) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signum)
