"""systemd readiness and watchdog notifications, without a dependency on libsystemd.

The unit runs with ``Type=notify`` and ``WatchdogSec=``: systemd considers the service started
only when it says ``READY=1``, and restarts it when ``WATCHDOG=1`` stops arriving. The protocol
is one AF_UNIX datagram of newline-separated ``KEY=value`` lines sent to the socket named by
``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace), so it fits in a few lines
of standard library code.

API for the integrator (``commands/serve.py``; ``app.run_pipeline`` owns the ``Liveness``)::

    notifier = SystemdNotifier.from_environ()          # no-op outside systemd
    notifier.status("loading models")
    ...bind the UDP socket, load the models...
    notifier.ready("listening on udp 0.0.0.0:6112")     # READY=1 + STATUS=...
    liveness = Liveness(["ingest", "worker-0", "events", "publish"], max_silence_s=30.0)
    await nursery.start(run_watchdog, notifier, liveness)   # returns at once if no watchdog
    ...each stage calls liveness.beat("ingest") once per loop turn, including idle turns...
    ...a stage that ends on purpose (the drain at shutdown) calls liveness.retire("ingest")...
    finally:
        notifier.stopping()                              # STOPPING=1 at shutdown

``run_watchdog`` pings at half the interval systemd asked for (``$WATCHDOG_USEC``) and only
while ``healthy()`` is true: a pipeline that is alive as a process but stuck (a worker thread
that never finishes its frame, a publisher whose connect never returns) stops the pings, the
status names the silent stages (``STATUS=unhealthy: publish``), and systemd restarts the
service (``Restart=on-failure`` counts a watchdog timeout as a failure). A frozen event loop
stops the pings too, without a status: nothing runs to send one. ``Liveness`` is the usual
``healthy``: every named stage must have beaten within ``max_silence_s``. A stage that can be
legitimately idle (no camera sending, nothing to publish) beats from its idle path (a timeout
tick), otherwise a quiet night would look like a hang.

Sending never raises: the service must not die because the notification socket went away. The
first failure is logged as a warning, later ones at debug level.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping

import trio

from edge_anpr.logs import fields

log = logging.getLogger(__name__)

_MAX_STATUS_CHARS = 200


class SystemdNotifier:
    """Sends ``sd_notify`` messages to ``$NOTIFY_SOCKET``; does nothing when it is unset.

    The socket is created on the first message and kept; ``close()`` releases it. Sends are
    non-blocking: systemd reads its notification socket promptly, and a full socket buffer
    (systemd itself stuck) must not block the event loop.
    """

    def __init__(self, address: str | None) -> None:
        self._address: str | bytes | None = None
        if address:
            try:
                self._address = _socket_address(address)
            except ValueError as exc:
                # A strange environment must not stop the service: run without notifications.
                log.warning("systemd notifications disabled %s", fields(reason=exc))
        self._sock: socket.socket | None = None
        self._failed_once = False
        self.sent_count = 0
        """Messages handed to the kernel successfully (for stats and tests)."""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> SystemdNotifier:
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` assignments in one datagram; True when the kernel accepted it."""
        if self._address is None or not assignments:
            return False
        for item in assignments:
            if "=" not in item or "\n" in item:
                raise ValueError(f"not a single KEY=value assignment: {item!r}")  # our bug
        payload = "\n".join(assignments).encode("utf-8")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(payload, self._address)
        except OSError as exc:
            self._log_failure(exc)
            return False
        self.sent_count += 1
        return True

    def ready(self, status: str | None = None) -> bool:
        """The service is up: the UDP socket is bound and the models are loaded."""
        return self.notify("READY=1", *self._status_items(status))

    def status(self, text: str) -> bool:
        """A one-line status shown by ``systemctl status``."""
        return self.notify(*self._status_items(text))

    def watchdog(self) -> bool:
        """Keep-alive ping; call more often than ``WatchdogSec``."""
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown has begun (so a slow flush is not mistaken for a hang)."""
        return self.notify("STOPPING=1", *self._status_items(status))

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more start/stop time (``EXTEND_TIMEOUT_USEC``), e.g. for a slow model load."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={max(0, round(seconds * 1_000_000))}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> SystemdNotifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _status_items(text: str | None) -> tuple[str, ...]:
        if text is None:
            return ()
        # A newline would start a new assignment: a status is one line by protocol.
        line = " ".join(text.split())[:_MAX_STATUS_CHARS]
        return (f"STATUS={line}",)

    def _log_failure(self, exc: OSError) -> None:
        message = "systemd notify failed %s"
        kv = fields(socket=_printable(self._address), error=exc.strerror or exc)
        if self._failed_once:
            log.debug(message, kv)
        else:
            self._failed_once = True
            log.warning(message + " (further failures logged at debug level)", kv)


def _socket_address(address: str) -> str | bytes:
    if address.startswith("@"):
        # Linux abstract namespace: a leading NUL byte instead of '@'.
        return b"\0" + address[1:].encode("utf-8")
    if not address.startswith("/"):
        # (systemd 254+ can also pass vsock: addresses, for VMs; not an appliance's case.)
        raise ValueError(f"NOTIFY_SOCKET must be an absolute path or @name, got {address!r}")
    return address


def _printable(address: str | bytes | None) -> str:
    if isinstance(address, bytes):
        return "@" + address[1:].decode("utf-8", "replace")
    return str(address)


def watchdog_interval_s(
    environ: Mapping[str, str] | None = None, pid: int | None = None
) -> float | None:
    """The watchdog timeout systemd expects pings within, or None when there is no watchdog.

    ``$WATCHDOG_PID``, when set, names the process the watchdog is meant for; a child process
    that inherited the environment must not ping on its parent's behalf.
    """
    env = os.environ if environ is None else environ
    raw = env.get("WATCHDOG_USEC")
    if not raw:
        return None
    owner = env.get("WATCHDOG_PID")
    if owner:
        own_pid = os.getpid() if pid is None else pid
        if owner.strip() != str(own_pid):
            return None
    try:
        usec = int(raw)
    except ValueError:
        log.warning("ignoring malformed WATCHDOG_USEC %s", fields(value=raw))
        return None
    if usec <= 0:
        return None
    return usec / 1_000_000


class Liveness:
    """``healthy()`` for ``run_watchdog``: every named stage beat within ``max_silence_s``.

    Stages call ``beat(name)`` from their loops. Before a stage's first beat its clock starts at
    construction, so a stage that never starts is reported once the allowance has passed.
    Invariant: ``healthy()`` is false exactly when a watched (not retired) stage has been silent
    for more than ``max_silence_s``. The clock is injectable for tests; ``beat`` is cheap enough
    for a per-datagram loop.
    """

    def __init__(
        self,
        stages: Iterable[str],
        max_silence_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_silence_s <= 0:
            raise ValueError("max_silence_s must be positive")
        self._clock = clock
        self._max_silence_s = max_silence_s
        now = clock()
        self._last: dict[str, float] = dict.fromkeys(stages, now)
        self._retired: set[str] = set()
        if not self._last:
            raise ValueError("Liveness needs at least one stage")

    def beat(self, stage: str) -> None:
        if stage not in self._last:
            if stage in self._retired:
                return  # a late beat of a stage that has ended
            raise KeyError(f"unknown stage {stage!r}; known: {', '.join(self._last)}")
        self._last[stage] = self._clock()

    def start_all(self) -> None:
        """Every watched stage's allowance starts now (once all are up: models load slowly)."""
        now = self._clock()
        for stage in self._last:
            self._last[stage] = now

    def retire(self, stage: str) -> None:
        """``stage`` ended on purpose (shutdown drain): its silence no longer counts."""
        if self._last.pop(stage, None) is not None:
            self._retired.add(stage)

    @property
    def stages(self) -> list[str]:
        """The stages still watched."""
        return list(self._last)

    def silence_s(self) -> dict[str, float]:
        """Seconds since each watched stage's last beat, in the order they were named."""
        now = self._clock()
        return {stage: now - t for stage, t in self._last.items()}

    @property
    def max_silence_s(self) -> float:
        return self._max_silence_s

    def stale(self) -> list[str]:
        """Stages silent for longer than the allowance, most silent first."""
        now = self._clock()
        late = [(now - t, s) for s, t in self._last.items() if now - t > self._max_silence_s]
        return [s for _, s in sorted(late, reverse=True)]

    def __call__(self) -> bool:
        return not self.stale()


async def run_watchdog(
    notifier: SystemdNotifier,
    healthy: Callable[[], bool],
    *,
    interval_s: float | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Ping ``WATCHDOG=1`` every ``interval_s / 2`` while ``healthy()`` holds.

    ``interval_s`` defaults to ``watchdog_interval_s()``; with no watchdog configured (or no
    notification socket) the task reports started and returns, so callers need no branch.
    An exception from ``healthy`` counts as unhealthy: a broken check must lead to a restart,
    not to a watchdog that pings forever. Transitions are logged once each, not every period.
    """
    if interval_s is None:
        interval_s = watchdog_interval_s()
    if interval_s is None or not notifier.enabled:
        task_status.started()
        return
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    period_s = interval_s / 2
    was_healthy = True
    task_status.started()
    while True:
        try:
            ok = bool(healthy())
        except Exception:
            log.exception("watchdog health check raised; treating as unhealthy")
            ok = False
        if ok:
            notifier.watchdog()
            if not was_healthy:
                log.info("watchdog pings resumed %s", fields(period_s=period_s))
        elif was_healthy:
            stale = healthy.stale() if isinstance(healthy, Liveness) else []
            log.error(
                "service unhealthy, withholding watchdog pings %s",
                fields(stale=",".join(stale) or "-", restart_within_s=interval_s),
            )
            notifier.status("unhealthy: " + (", ".join(stale) or "health check failed"))
        was_healthy = ok
        await trio.sleep(period_s)
