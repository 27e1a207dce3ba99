"""The HTTP API's thin shell: trio sockets, h11 for the protocol, ``routes`` for the answers.

One task per connection (``trio.serve_listeners``), HTTP/1.1 with keep-alive, parsed by h11
(no HTTP is parsed here). Per request: the head is classified and its token checked first, so
a request that will be refused (404, 405, 401, 429) never has its body kept: the body is read
and dropped (or, when the client waits for ``100 Continue``, never asked for and the
connection closed). A recognition request takes a place on the ``JobBoard`` *before* its body
is read, so at most ``http.max_pending`` bodies are held at once; its image goes to the frame
queue's request lane and the handler waits for the worker's result.

``HEAD`` is answered as ``GET`` would be, headers only (``Content-Length`` of the body a GET
gets), with the same token rule.

Bounds: a body over ``http.max_body_bytes`` is refused with 413 (unread when its length is
announced); a request must arrive whole within ``http.timeout_s`` (408, then closed) and be
answered within the same allowance (504); a head is at most ``MAX_HEAD_BYTES``; an idle
kept-alive connection is closed after ``KEEPALIVE_IDLE_S``.

Connections (``Admission``): at most ``connection_cap`` are open, ``http.max_connections``
lowered to what the process's file limit leaves after ``FD_RESERVE`` for the rest of the
appliance. A connection is *idle* while it waits for a request head (or drains the body of a
refused request): it holds a place but no work. When one more connection arrives at the cap,
the oldest idle connection of the peer address holding the most idle ones is closed to make
room; only when none is idle (every place is a request being served) is the newcomer refused
(429, closed). So slow or silent connections (slowloris) cost a place each for at most
``http.timeout_s`` and never keep out a client that sends its request at once, and a flood
from one address closes that address's own connections first. The accept loop is ours, not
``trio.serve_listeners``: out of file descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM), accept
closes the oldest idle connection, counts the error, logs it rate-limited and backs off
(doubling to ``ACCEPT_BACKOFF_MAX_S``) instead of a traceback per attempt. Any error on one
connection is logged (bad input rate-limited by kind, our bugs with their traceback) and
closes that connection only.

Shutdown: ``stop`` (called by ``Pipeline.stop``) stops accepting and closes idle connections;
a request in progress is answered (its image is still recognised: the workers drain the queue)
and its connection then closed. ``run`` returns once every connection has closed.

The token, the ``Authorization`` header and query strings are never logged.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import resource
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import h11
import trio

from edge_anpr.config import Config
from edge_anpr.errors import EdgeAnprError
from edge_anpr.http.metrics import METRICS_CONTENT_TYPE, Observed, health_json, render_metrics
from edge_anpr.http.routes import (
    RECOGNITION,
    Endpoint,
    Reply,
    answer,
    authorized,
    classify,
    error_reply,
    json_reply,
    prepare,
    reason,
    saturated,
    unauthorized,
)
from edge_anpr.ingest.queue import FrameQueue
from edge_anpr.logs import RateLimitedLog, fields
from edge_anpr.system.notify import Liveness
from edge_anpr.values import Frame
from edge_anpr.vision.jobs import JobBoard
from edge_anpr.vision.workers import LatencyHistogram

log = logging.getLogger(__name__)

RECEIVE_BYTES = 65536
MAX_HEAD_BYTES = 16384
"""Longest request line plus headers (h11's limit on an incomplete event)."""
KEEPALIVE_IDLE_S = 5.0
SERVER_HEADER = "edge-anpr"
FD_RESERVE = 128
"""File descriptors kept for the rest of the appliance (UDP socket, outbox and its journal,
replay state, broker connection, worker pipes, model files) when the file limit caps the
number of HTTP connections."""
ACCEPT_BACKOFF_MIN_S = 0.01
ACCEPT_BACKOFF_MAX_S = 1.0
OUT_OF_FDS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
"""accept() errors that mean "no resources now", not a broken listener."""


def connection_cap(max_connections: int, open_files_limit: int) -> int:
    """The most HTTP connections held at once: ``http.max_connections``, lowered so that
    ``FD_RESERVE`` file descriptors stay free for the rest of the appliance (at least 1)."""
    return max(1, min(max_connections, open_files_limit - FD_RESERVE))


def open_files_limit() -> int:
    """The process's soft limit on open files (RLIMIT_NOFILE)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


class Admission:
    """Which connections hold the places, and which idle one gives its place up (pure: no
    sockets, no clock).

    Invariant: every connection admitted and not yet ``leave``-d or evicted counts against
    ``cap``; ``admit`` returns False only when every one of them is busy. Idle connections are
    indexed by peer address in the order they became idle, so the victim (the oldest idle one
    of the address with the most idle ones) is found without scanning every connection.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.open: set[object] = set()
        self._idle: dict[str, dict[object, None]] = {}
        self._peer: dict[object, str] = {}

    def admit(self, conn: object, peer: str) -> tuple[bool, object | None]:
        """Take ``conn`` (idle: it has sent nothing yet) if there is a place, making one by
        evicting an idle connection when at the cap: (admitted, the evicted one or None)."""
        victim = None
        if len(self.open) >= self.cap:
            victim = self.evict()
            if victim is None:
                return False, None
        self.open.add(conn)
        self._peer[conn] = peer
        self.idle(conn)
        return True, victim

    def idle(self, conn: object) -> None:
        """``conn`` waits for a request head (or drains a refused body): it may be evicted."""
        if conn in self.open:
            by_peer = self._idle.setdefault(self._peer[conn], {})
            by_peer.pop(conn, None)
            by_peer[conn] = None

    def busy(self, conn: object) -> None:
        """``conn`` is serving a request: it keeps its place."""
        peer = self._peer.get(conn)
        if peer is None:
            return
        by_peer = self._idle.get(peer)
        if by_peer is not None:
            by_peer.pop(conn, None)
            if not by_peer:
                del self._idle[peer]

    def leave(self, conn: object) -> None:
        self.busy(conn)
        self.open.discard(conn)
        self._peer.pop(conn, None)

    def evict(self) -> object | None:
        """Remove and return the oldest idle connection of the peer with the most idle ones
        (None when none is idle)."""
        if not self._idle:
            return None
        peer = max(self._idle, key=lambda p: len(self._idle[p]))
        victim = next(iter(self._idle[peer]))
        self.leave(victim)
        return victim

    def idle_count(self) -> int:
        return sum(len(v) for v in self._idle.values())


@dataclass(frozen=True)
class Backend:
    """What the server needs of the running pipeline (``app.run_pipeline`` builds it)."""

    queue: FrameQueue
    jobs: JobBoard
    report: Callable[[], Mapping[str, Any]]
    """The stats report now (``publish.stage.StatsReport.build`` of the pipeline snapshot)."""
    liveness: Liveness
    recognition: LatencyHistogram
    stopping: Callable[[], bool]


class HttpServer:
    """The listener and its connections (module docstring)."""

    def __init__(
        self, cfg: Config, backend: Backend, *, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self.cfg = cfg
        self.backend = backend
        self.requests: Counter[tuple[str, int]] = Counter()
        """Requests answered, by (endpoint, status); ``other`` for unknown paths."""
        self.calls = 0
        """Recognitions answered with a read since the start (Plate Recognizer's
        ``usage.calls``)."""
        self._wall_clock = wall_clock
        self._accepting = trio.CancelScope()
        self._stopping = False
        self._bad_input = RateLimitedLog(log, interval_s=30.0)
        self.admission = Admission(cfg.http.max_connections)
        self.evicted = 0
        """Idle connections closed to make room for a new one (or for a file descriptor)."""
        self.refused = 0
        """Connections refused at the cap because every place was a request being served."""
        self.accept_errors = 0
        """accept() failures for lack of file descriptors or memory (EMFILE...)."""

    @property
    def open_connections(self) -> int:
        return len(self.admission.open)

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop(self) -> None:
        """Stop accepting; close idle connections; busy ones close after their answer."""
        self._stopping = True
        self._accepting.cancel()
        while (conn := self.admission.evict()) is not None:
            assert isinstance(conn, _Connection)
            conn.scope.cancel()

    def observe(self) -> Observed:
        b = self.backend
        return Observed(
            report=b.report(), recognition=b.recognition,
            silence_s=b.liveness.silence_s(), max_silence_s=b.liveness.max_silence_s,
            http_requests=dict(self.requests), http_pending=len(b.jobs),
            http_connections={
                "open": self.open_connections, "cap": self.admission.cap,
                "evicted": self.evicted, "refused": self.refused,
                "accept_errors": self.accept_errors,
            },
            stopping=b.stopping() or self._stopping,
        )

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on ``http.bind``:``http.port`` and serve until ``stop``; ``task_status``
        gets the port (the one chosen when ``http.port`` is 0 in tests)."""
        http = self.cfg.http
        try:
            listeners = await trio.open_tcp_listeners(http.port, host=http.bind)
        except OSError as exc:
            raise EdgeAnprError(
                f"cannot listen on tcp {http.bind}:{http.port}: {exc.strerror}; is another "
                "program using it? set http.port"
            ) from None
        port = int(listeners[0].socket.getsockname()[1])
        files = open_files_limit()
        self.admission.cap = connection_cap(http.max_connections, files)
        log.info("%s", fields(
            event="http_listening", bind=http.bind, port=port, token=bool(http.token),
            max_pending=http.max_pending, max_connections=self.admission.cap,
        ))
        if self.admission.cap < http.max_connections:
            log.warning("%s", fields(
                event="http_connections_capped", max_connections=http.max_connections,
                cap=self.admission.cap, open_files_limit=files, reserve=FD_RESERVE,
                hint="raise LimitNOFILE (systemd) or lower http.max_connections",
            ))

        async with trio.open_nursery() as connections:
            try:
                with self._accepting:
                    async with trio.open_nursery() as accepting:
                        for listener in listeners:
                            accepting.start_soon(self._accept, listener, connections)
                        task_status.started(port)
            finally:
                for listener in listeners:
                    await trio.aclose_forcefully(listener)
        log.info("%s", fields(event="http_stopped", **{
            f"{e}_{c}": n for (e, c), n in sorted(self.requests.items())
        }))

    async def _accept(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        """Accept connections until ``stop`` (module docstring: admission, EMFILE)."""
        backoff = 0.0
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in OUT_OF_FDS:
                    raise
                self.accept_errors += 1
                self._bad_input.warning(
                    "http_accept_failed", "http accept failed " + fields(
                        error=errno.errorcode.get(exc.errno or 0, exc.errno),
                        open_connections=self.open_connections,
                        accept_errors=self.accept_errors,
                        effect="oldest idle connection closed; retrying",
                    ),
                )
                self._evict()
                backoff = min(max(backoff * 2, ACCEPT_BACKOFF_MIN_S), ACCEPT_BACKOFF_MAX_S)
                await trio.sleep(backoff)
                continue
            backoff = 0.0
            try:
                name = stream.socket.getpeername()
            except OSError:
                await trio.aclose_forcefully(stream)  # gone before we looked
                continue
            conn = _Connection(self, stream, (str(name[0]), int(name[1])))
            admitted, victim = self.admission.admit(conn, conn.peer[0])
            if victim is not None:
                self._evicted(victim)
            if not admitted:
                self.refused += 1
                nursery.start_soon(self._refuse_connection, stream)
                continue
            nursery.start_soon(self._connection, conn)

    def _evict(self) -> bool:
        victim = self.admission.evict()
        if victim is None:
            return False
        self._evicted(victim)
        return True

    def _evicted(self, victim: object) -> None:
        assert isinstance(victim, _Connection)
        victim.scope.cancel()
        self.evicted += 1
        self._bad_input.warning(
            "http_evicted", "http idle connection closed to make room " + fields(
                open_connections=self.open_connections, cap=self.admission.cap,
                evicted=self.evicted, setting="http.max_connections",
            ),
        )

    async def _refuse_connection(self, stream: trio.SocketStream) -> None:
        """429 to a connection over the cap when no place can be freed; never read."""
        reply = saturated(f"{self.admission.cap} connections are serving requests "
                          "(http.max_connections)")
        self.requests[("other", 429)] += 1
        try:
            with trio.move_on_after(1.0):
                await stream.send_all(raw_response(reply))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await trio.aclose_forcefully(stream)

    async def _connection(self, conn: _Connection) -> None:
        try:
            with conn.scope:
                await conn.serve()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away
        except Exception:
            log.exception("%s", fields(event="http_connection_failed"))
        finally:
            self.admission.leave(conn)
            await trio.aclose_forcefully(conn.stream)

    def note(self, endpoint: str, reply: Reply, started: float, path: str,
             peer: tuple[str, int]) -> None:
        self.requests[(endpoint, reply.status)] += 1
        log.debug("%s", fields(
            event="http_request", endpoint=endpoint, path=path[:100], status=reply.status,
            ms=round((time.monotonic() - started) * 1000, 1), peer=peer[0],
        ))
        if reply.status in (400, 413, 415):
            self._bad_input.warning(
                f"http_{reply.status}",
                "http request refused " + fields(status=reply.status, peer=peer[0]),
            )

    def status_reply(self, endpoint: Endpoint) -> Reply:
        observed = self.observe()
        if endpoint == "metrics":
            return Reply(200, render_metrics(observed), content_type=METRICS_CONTENT_TYPE)
        status, body = health_json(observed)
        return json_reply(status, body)


def raw_response(reply: Reply) -> bytes:
    """``reply`` as bytes, closing, for a connection with no request to answer in h11's
    terms (one over the cap, or one whose request head never came whole)."""
    head = [
        f"HTTP/1.1 {reply.status} {HTTP_REASONS.get(reply.status, '')}",
        f"Content-Type: {reply.content_type}",
        f"Content-Length: {len(reply.body)}",
        f"Server: {SERVER_HEADER}",
        *(f"{name}: {value}" for name, value in reply.headers),
        "Connection: close",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + reply.body


HTTP_REASONS = {408: "Request Timeout", 429: "Too Many Requests"}


class _Connection:
    """One client connection: requests answered one after the other (HTTP/1.1 keep-alive)."""

    def __init__(
        self, server: HttpServer, stream: trio.SocketStream, peer: tuple[str, int]
    ) -> None:
        self.server = server
        self.cfg = server.cfg
        self.stream = stream
        self.peer = peer
        self.scope = trio.CancelScope()
        """Cancelled to close the connection (eviction, ``stop`` while idle)."""
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.content_length: int | None = None
        """The current request's announced body length (h11 has checked its syntax)."""
        self.head_only = False
        """The current request is a HEAD: its answer is sent without the body."""

    async def serve(self) -> None:
        first = True
        while True:
            try:
                request = await self._next_request(first)
            except h11.RemoteProtocolError as exc:
                await self._send(error_reply(
                    exc.error_status_hint, "bad_request", f"malformed HTTP request: {exc}",
                    close=True,
                ))
                return
            if request is None:
                return
            first = False
            started = time.monotonic()
            target = request.target.decode("ascii", "replace")
            path, _, query = target.partition("?")
            self.head_only = request.method == b"HEAD"
            try:
                endpoint, reply = await self._handle(request, path, query, started)
            except h11.RemoteProtocolError as exc:
                endpoint, reply = "other", error_reply(
                    exc.error_status_hint, "bad_request", f"malformed HTTP request: {exc}",
                    close=True,
                )
            self.server.note(endpoint, reply, started, path, self.peer)
            await self._send(reply)
            self.server.admission.idle(self)
            if reply.close or self.server.stopping or self.conn.our_state is h11.MUST_CLOSE:
                return
            try:
                self.conn.start_next_cycle()
            except h11.LocalProtocolError:
                return  # the client has not finished its request: cannot reuse

    async def _next_request(self, first: bool) -> h11.Request | None:
        """The next request's head; None when the client closes or stays idle too long (a
        request begun and not whole within ``http.timeout_s``, and a first one not sent, are
        answered 408). Idle meanwhile: evicted (``scope`` cancelled) when a place is needed."""
        if self.server.stopping:
            return None
        timeout_s = self.cfg.http.timeout_s
        with trio.move_on_after(timeout_s if first else KEEPALIVE_IDLE_S) as waiting:
            event = await self._next_event()
            if not isinstance(event, h11.Request):
                return None
            self.server.admission.busy(self)
            return event
        # Nothing begun on a kept-alive connection after KEEPALIVE_IDLE_S: close silently.
        begun = first or bool(self.conn.trailing_data[0])
        if waiting.cancelled_caught and begun:
            reply = error_reply(
                408, "timeout", "request head not received within http.timeout_s "
                f"({timeout_s:g} s)", close=True,
            )
            self.server.requests[("other", 408)] += 1
            with trio.move_on_after(1.0):
                await self.stream.send_all(raw_response(reply))
        return None

    async def _next_event(self) -> Any:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.conn.receive_data(await self.stream.receive_some(RECEIVE_BYTES))

    async def _handle(
        self, request: h11.Request, path: str, query: str, started: float
    ) -> tuple[str, Reply]:
        server, cfg = self.server, self.cfg
        deadline = trio.current_time() + cfg.http.timeout_s
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in request.headers
        }
        length = headers.get("content-length")
        self.content_length = int(length) if length is not None else None
        method = "GET" if self.head_only else request.method.decode("ascii", "replace")
        endpoint = classify(method, path)
        if isinstance(endpoint, Reply):
            return "other", await self._refuse(endpoint, deadline)
        if endpoint not in RECOGNITION:
            return endpoint, await self._refuse(server.status_reply(endpoint), deadline)
        if not authorized(endpoint, headers.get("authorization"), cfg.http.token,
                          peer=self.peer[0], allow=cfg.http.allow):
            return endpoint, await self._refuse(unauthorized(), deadline)
        jobs = server.backend.jobs
        ticket = jobs.reserve()
        if ticket is None:
            reply = saturated(f"{jobs.capacity} images are being recognised (http.max_pending)")
            return endpoint, await self._refuse(reply, deadline)
        queued = False
        try:
            body = await self._read_body(keep=True, deadline=deadline)
            if isinstance(body, Reply):
                return endpoint, body
            job = prepare(endpoint, body, headers.get("content-type", ""), query, cfg)
            del body
            if isinstance(job, Reply):
                return endpoint, job
            frame = Frame(
                camera=job.camera, sender=self.peer, wire_format="http", sequence=None,
                jpeg=job.upload.image, capture_time_us=0, completed_monotonic_s=started,
                request=ticket.id, regions=job.regions,
            )
            try:
                server.backend.queue.put_request(frame)
            except trio.ClosedResourceError:
                return endpoint, error_reply(
                    503, "stopping", "the appliance is shutting down", close=True
                )
            queued = True
            result = None
            with trio.move_on_at(deadline):
                result = await ticket.wait()
            if result is not None and result.outcome == "read":
                server.calls += 1
            return endpoint, answer(job, result, cfg, now_s=server._wall_clock(),
                                    calls=server.calls)
        finally:
            if not queued:
                jobs.release(ticket)

    async def _refuse(self, reply: Reply, deadline: float) -> Reply:
        """``reply``, given before the body is read: the body is read and dropped so the
        connection can serve the next request, unless the client waits for ``100 Continue``
        (it then sends nothing and the connection is closed)."""
        if self.conn.they_are_waiting_for_100_continue:
            return dataclasses.replace(reply, close=True)
        self.server.admission.idle(self)  # nothing of this body is kept: it holds no work
        drained = await self._read_body(keep=False, deadline=deadline)
        if isinstance(drained, Reply):
            return dataclasses.replace(reply, close=True)
        return reply

    async def _read_body(self, *, keep: bool, deadline: float) -> bytes | Reply:
        """The request's body (``keep``) or b"" after reading and dropping it; a Reply (that
        closes the connection) when it is too long (413) or too slow (408)."""
        limit = self.cfg.http.max_body_bytes
        length = self.content_length
        if length is not None and length > limit:
            return error_reply(
                413, "body_too_large", f"body of {length} bytes, at most {limit} "
                "(http.max_body_bytes)", close=True,
            )
        if keep and self.conn.they_are_waiting_for_100_continue:
            await self.stream.send_all(self.conn.send(h11.InformationalResponse(
                status_code=100, headers=[("Server", SERVER_HEADER)],
            )) or b"")
        chunks: list[bytes] = []
        size = 0
        with trio.move_on_at(deadline):
            while True:
                event = await self._next_event()
                if isinstance(event, h11.Data):
                    size += len(event.data)
                    if size > limit:
                        return error_reply(
                            413, "body_too_large", f"body over {limit} bytes "
                            "(http.max_body_bytes)", close=True,
                        )
                    if keep:
                        chunks.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    return b"".join(chunks)
                elif isinstance(event, h11.ConnectionClosed):
                    raise trio.BrokenResourceError("client closed mid-request")
        return error_reply(
            408, "timeout", f"request not received within http.timeout_s "
            f"({self.cfg.http.timeout_s:g} s)", close=True,
        )

    async def _send(self, reply: Reply) -> None:
        if self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        headers = [
            ("Content-Type", reply.content_type),
            ("Content-Length", str(len(reply.body))),
            ("Server", SERVER_HEADER),
            *reply.headers,
        ]
        if reply.close:
            headers.append(("Connection", "close"))
        data = self.conn.send(h11.Response(
            status_code=reply.status, headers=headers, reason=reason(reply.status).encode(),
        )) or b""
        if not self.head_only:
            data += self.conn.send(h11.Data(data=reply.body)) or b""
        data += self.conn.send(h11.EndOfMessage()) or b""
        with trio.move_on_after(self.cfg.http.timeout_s):
            await self.stream.send_all(data)
