"""The HTTP API's thin shell: trio sockets, h11 for the protocol, ``routes`` for the answers.

One task per connection (``trio.serve_listeners``), HTTP/1.1 with keep-alive, parsed by h11
(no HTTP is parsed here). Per request: the head is classified and its token checked first, so
a request that will be refused (404, 405, 401, 429) never has its body kept: the body is read
and dropped (or, when the client waits for ``100 Continue``, never asked for and the
connection closed). A recognition request takes a place on the ``JobBoard`` *before* its body
is read, so at most ``http.max_pending`` bodies are held at once; its image goes to the frame
queue's request lane and the handler waits for the worker's result.

Bounds: a body over ``http.max_body_bytes`` is refused with 413 (unread when its length is
announced); a request must arrive whole within ``http.timeout_s`` (408) and be answered within
the same allowance (504); a head is at most ``MAX_HEAD_BYTES``; an idle kept-alive connection
is closed after ``KEEPALIVE_IDLE_S``; a connection beyond ``http.max_connections`` gets 429 and
is closed. Any error on one connection is logged (bad input rate-limited by kind, our bugs
with their traceback) and closes that connection only.

Shutdown: ``stop`` (called by ``Pipeline.stop``) stops accepting and closes idle connections;
a request in progress is answered (its image is still recognised: the workers drain the queue)
and its connection then closed. ``run`` returns once every connection has closed.

The token, the ``Authorization`` header and query strings are never logged.
"""

from __future__ import annotations

import dataclasses
import logging
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
        self.open_connections = 0
        self._wall_clock = wall_clock
        self._accepting = trio.CancelScope()
        self._idle: set[trio.CancelScope] = set()
        self._stopping = False
        self._bad_input = RateLimitedLog(log, interval_s=30.0)

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop(self) -> None:
        """Stop accepting; close idle connections; busy ones close after their answer."""
        self._stopping = True
        self._accepting.cancel()
        for scope in list(self._idle):
            scope.cancel()

    def observe(self) -> Observed:
        b = self.backend
        return Observed(
            report=b.report(), recognition=b.recognition,
            silence_s=b.liveness.silence_s(), max_silence_s=b.liveness.max_silence_s,
            http_requests=dict(self.requests), http_pending=len(b.jobs),
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
        log.info("%s", fields(
            event="http_listening", bind=http.bind, port=port, token=bool(http.token),
            max_pending=http.max_pending, max_connections=http.max_connections,
        ))

        async with trio.open_nursery() as connections:

            async def accept(task_status: trio.TaskStatus[list[trio.SocketListener]]) -> None:
                with self._accepting:
                    await trio.serve_listeners(
                        self._connection, listeners, handler_nursery=connections,
                        task_status=task_status,
                    )

            await connections.start(accept)
            task_status.started(port)
        log.info("%s", fields(event="http_stopped", **{
            f"{e}_{c}": n for (e, c), n in sorted(self.requests.items())
        }))

    async def _connection(self, stream: trio.SocketStream) -> None:
        self.open_connections += 1
        refuse = self.open_connections > self.cfg.http.max_connections
        try:
            peer = stream.socket.getpeername()
            await _Connection(self, stream, (str(peer[0]), int(peer[1])), refuse).serve()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away
        except Exception:
            log.exception("%s", fields(event="http_connection_failed"))
        finally:
            self.open_connections -= 1
            await trio.aclose_forcefully(stream)

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


class _Connection:
    """One client connection: requests answered one after the other (HTTP/1.1 keep-alive)."""

    def __init__(
        self, server: HttpServer, stream: trio.SocketStream, peer: tuple[str, int],
        refuse: bool,
    ) -> None:
        self.server = server
        self.cfg = server.cfg
        self.stream = stream
        self.peer = peer
        self.refuse = refuse
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.content_length: int | None = None
        """The current request's announced body length (h11 has checked its syntax)."""

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
            try:
                endpoint, reply = await self._handle(request, path, query, started)
            except h11.RemoteProtocolError as exc:
                endpoint, reply = "other", error_reply(
                    exc.error_status_hint, "bad_request", f"malformed HTTP request: {exc}",
                    close=True,
                )
            self.server.note(endpoint, reply, started, path, self.peer)
            await self._send(reply)
            if reply.close or self.server.stopping or self.conn.our_state is h11.MUST_CLOSE:
                return
            try:
                self.conn.start_next_cycle()
            except h11.LocalProtocolError:
                return  # the client has not finished its request: cannot reuse

    async def _next_request(self, first: bool) -> h11.Request | None:
        """The next request's head; None when the client closes, stays idle too long, or the
        server stops while this connection is idle."""
        wait_s = self.cfg.http.timeout_s if first else KEEPALIVE_IDLE_S
        with trio.move_on_after(wait_s) as idle:
            self.server._idle.add(idle)
            try:
                if self.server.stopping:
                    return None
                event = await self._next_event()
            finally:
                self.server._idle.discard(idle)
        if idle.cancelled_caught or not isinstance(event, h11.Request):
            return None
        return event

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
        endpoint = classify(request.method.decode("ascii", "replace"), path)
        if isinstance(endpoint, Reply):
            return "other", await self._refuse(endpoint, deadline)
        if self.refuse:
            reply = saturated(f"more than {cfg.http.max_connections} connections "
                              "(http.max_connections)")
            return endpoint, await self._refuse(dataclasses.replace(reply, close=True), deadline)
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
        data += self.conn.send(h11.Data(data=reply.body)) or b""
        data += self.conn.send(h11.EndOfMessage()) or b""
        with trio.move_on_after(self.cfg.http.timeout_s):
            await self.stream.send_all(data)
