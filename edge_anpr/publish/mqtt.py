"""MQTT connection driven from trio: paho-mqtt 2.x as a protocol engine, no paho thread.

paho is used only for its packet encoding and session bookkeeping; the socket I/O is ours.
Paho's socket callbacks tell us when it has bytes to write (``on_socket_register_write``) and
when it closes the socket (``on_socket_close``: we call ``trio.lowlevel.notify_closing`` first
so a task waiting on it wakes up instead of polling a dead descriptor). Per connection, three
small tasks run in one nursery: a reader (``wait_readable`` + ``loop_read``, draining TLS
buffered bytes too), a writer (``wait_writable`` + ``loop_write`` while paho has bytes) and a
one-second ``loop_misc`` for keepalive. The blocking parts of paho's ``connect()`` (DNS, TCP
connect, TLS handshake) run once per attempt in ``trio.to_thread.run_sync``.

Delivery. The SQLite outbox is the single source of truth; paho keeps no state across
connections. Every connection is a fresh paho ``Client`` with a clean session (``clean_session``
for 3.1.1, ``clean_start`` and no session expiry for 5), so paho never resends anything on its
own. The sender publishes pending outbox rows in id order with QoS 1, at most
``mqtt.max_inflight`` unacknowledged at a time, and deletes a row on its PUBACK. When the
connection drops, the unacknowledged rows simply stay pending and the next connection sends
them again, first, in the same order. A message is therefore never lost, stays in order, and is
sent twice only if the broker stored it but its PUBACK was lost on the way back (the one
duplicate QoS 1 permits). MQTT 5 PUBACKs with a failure reason (for example "not authorized")
are logged and the row is dropped, so one forbidden topic cannot block the queue forever.

Status. Last will: ``offline`` retained on ``<prefix>/status``; ``online`` retained is published
on every CONNACK, and ``offline`` before a clean disconnect. Home Assistant discovery
(``homeassistant.py``) is published on connect, for each new camera, and again whenever
``<homeassistant_prefix>/status`` says ``online``. Both are regenerated state, so they are
published directly, not through the outbox. Only announced cameras have discovery
(``publish.unconfigured``: the configured ones and a few others); an expired one's configs are
cleared with empty retained messages (``remove_camera``; at the next connection if offline).
With one appliance process, the retained discovery configs under this device's node id are
read back on connect, and those of cameras no longer announced (left by an earlier run) are
cleared with the retained plate and snapshot they point at.

Reconnect: exponential backoff from ``mqtt.reconnect_min_s`` doubling to ``mqtt.reconnect_max_s``,
with jitter in [delay/2, delay], reset once a connection has stayed up for ``STABLE_AFTER_S``
(a broker that accepts and then drops us at once is not hammered).

Poison messages: see ``MqttPublisher._strike``.

Liveness (``beat``, the stage ``publish`` of ``system.notify.Liveness``): the publisher beats
once per connection attempt (just before the connect, which paho bounds by
``mqtt.connect_timeout_s``), every ``IDLE_BEAT_S`` of a reconnect delay and every keepalive turn
(``_misc``, once a second) of a live connection: a connect that has not returned within the
watchdog's silence is stuck, and that silence is what the watchdog sees. (No task beats beside
the connect: a nursery there added checkpoints inside the publisher's scope, whose shield the
event stage sets once the publisher has started, and trio asserts when a shield changes under
a task that is checking for cancellation: tests/test_mqtt_publish.py's
cancelled-while-starting test failed 9 times in 25 under load with it, 1 in 25 without.)
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import socket
import ssl
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
import trio
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from edge_anpr.config import Config, MqttConfig
from edge_anpr.errors import PublishError
from edge_anpr.logs import fields
from edge_anpr.publish import homeassistant
from edge_anpr.publish.outbox import Outbox
from edge_anpr.publish.topics import Topics
from edge_anpr.system.processes import client_id_for

log = logging.getLogger(__name__)

MAX_PENDING_CLEARS = 4096
"""Discovery topics waiting to be cleared while offline (oldest forgotten beyond)."""

MISC_INTERVAL_S = 1.0
IDLE_BEAT_S = 1.0
"""Longest gap between beats while the publisher waits on purpose (a reconnect delay)."""
STABLE_AFTER_S = 5.0
"""A connection that lasted this long resets the reconnect backoff."""
POISON_STRIKES = 5
"""Connections lost in a row with the same oldest unacknowledged message before it is dropped."""


class ConnectionLost(Exception):
    """Internal: the current connection ended; the run loop reconnects."""


def backoff_delays(
    min_s: float, max_s: float, rng: Callable[[], float] = random.random
) -> Callable[[bool], float]:
    """A function giving the next delay; call it with ``reset=True`` after a good connection."""
    state = {"delay": min_s}

    def next_delay(reset: bool = False) -> float:
        if reset:
            state["delay"] = min_s
        delay = state["delay"]
        state["delay"] = min(delay * 2, max_s)
        return delay / 2 + rng() * delay / 2

    return next_delay


class MqttPublisher:
    """One broker connection at a time, fed from the outbox. Owned by one trio task tree."""

    def __init__(
        self, cfg: Config, outbox: Outbox, topics: Topics,
        beat: Callable[[], None] = lambda: None,
    ) -> None:
        self._cfg = cfg
        self._beat = beat
        self._mqtt: MqttConfig = cfg.mqtt
        self._outbox = outbox
        self.topics = topics
        self._client: Any = None
        self._sock: socket.socket | None = None
        self._want_write = trio.Event()
        self._work = trio.Event()
        self._progress = trio.Event()
        self._connack = trio.Event()
        self._connack_ok = False
        self._inflight: dict[int, int] = {}
        """paho mid -> outbox id of messages sent on this connection and not yet acked."""
        self._last_sent_id = 0
        self._cameras: list[str] = []
        self._to_clear: dict[str, None] = {}
        """Discovery config topics to clear at the next connection (bounded)."""
        self.connected = False
        self.connections = 0
        self.published = 0
        self.rejected = 0
        self.poisoned = 0
        self.stale_cleared = 0
        """Retained discovery configs of cameras no longer announced, cleared on connect."""
        self._closing = False
        self._strikes: dict[str, int] = {}
        self._last_refusal = ""
        self._tls_context = self._make_tls_context() if self._mqtt.tls else None

    # -- API used by the event stage -------------------------------------------------------

    def wake(self) -> None:
        """New rows are in the outbox."""
        self._work.set()

    def add_camera(self, camera: str) -> None:
        """Announce a camera (Home Assistant discovery) now or on the next connection."""
        if camera in self._cameras:
            return
        self._cameras.append(camera)
        if self.connected:
            self._publish_discovery([camera])

    def remove_camera(self, camera: str) -> None:
        """Withdraw a camera's discovery (empty retained configs), now or on reconnection."""
        if camera in self._cameras:
            self._cameras.remove(camera)
        if not self._mqtt.homeassistant_discovery:
            return
        for topic, _ in homeassistant.camera_messages(self._cfg, self.topics, camera):
            self._to_clear[topic] = None
        while len(self._to_clear) > MAX_PENDING_CLEARS:
            del self._to_clear[next(iter(self._to_clear))]
        if self.connected:
            self._clear_pending()

    def _clear_pending(self) -> None:
        client = self._client
        if client is None:
            return
        for topic in list(self._to_clear):
            client.publish(topic, b"", qos=1, retain=True)
        self._to_clear.clear()

    def publish_direct(self, topic: str, payload: str | bytes, qos: int = 0,
                       retain: bool = False) -> bool:
        """Publish state that is regenerated anyway (stats): not stored, dropped if offline."""
        if not self.connected or self._client is None:
            return False
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        return bool(info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS)

    async def wait_flushed(self) -> None:
        """Return once the outbox is empty (every message acknowledged)."""
        while len(self._outbox) > 0:
            self._work.set()
            event = self._progress = trio.Event()
            await event.wait()

    async def say_goodbye(self, timeout_s: float = 1.0) -> None:
        """Publish ``offline`` (the will is only for unclean ends) and disconnect cleanly."""
        client = self._client
        if not self.connected or client is None:
            return
        with trio.move_on_after(timeout_s):
            info = client.publish(self.topics.status, "offline", qos=1, retain=True)
            while not info.is_published() and self.connected:
                await trio.sleep(0.01)
            self._closing = True  # the connection loop ends instead of reconnecting
            self.connected = False
            client.disconnect()
            while client.want_write() and self._sock is not None:
                await trio.sleep(0.01)
        self.connected = False

    def stats(self) -> dict[str, object]:
        return {
            "connected": self.connected, "connections": self.connections,
            "published": self.published, "rejected": self.rejected, "poisoned": self.poisoned,
            "inflight": len(self._inflight),
        }

    # -- connection loop --------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, serve, reconnect with backoff; forever (until cancelled)."""
        next_delay = backoff_delays(self._mqtt.reconnect_min_s, self._mqtt.reconnect_max_s)
        task_status.started()
        while True:
            self._beat()
            stable = False
            try:
                client = await self._connect()
                started = trio.current_time()
                was_up = await self._serve(client)
                stable = was_up and trio.current_time() - started >= STABLE_AFTER_S
                if not was_up and not self._last_refusal:
                    raise ConnectionLost(
                        "closed before CONNACK (TLS client certificate refused? see paho log)"
                    )
            except ConnectionLost as exc:
                if str(exc):
                    log.warning(
                        "mqtt connection failed %s",
                        fields(host=self._mqtt.host, port=self._mqtt.port, error=exc),
                    )
            finally:
                self._drop_connection()
            if self._closing:
                return
            delay = next_delay(stable)
            log.info("mqtt reconnecting %s", fields(in_s=round(delay, 2)))
            end = trio.current_time() + delay
            while (left := end - trio.current_time()) > 0:
                self._beat()
                await trio.sleep(min(left, IDLE_BEAT_S))

    def _make_client(self) -> Any:
        m = self._mqtt
        v5 = m.protocol == "5"
        kwargs: dict[str, Any] = {
            "callback_api_version": CallbackAPIVersion.VERSION2,
            "client_id": client_id_for(
                m.client_id or f"edge-anpr-{self._cfg.device.name}", self.topics.process
            ),
            "protocol": paho.MQTTv5 if v5 else paho.MQTTv311,
        }
        if not v5:
            kwargs["clean_session"] = True
        client = paho.Client(**kwargs)
        client.enable_logger(logging.getLogger("edge_anpr.publish.paho"))
        client.connect_timeout = m.connect_timeout_s
        client.max_inflight_messages_set(0)  # 0 = no paho-side queueing: our window rules
        client.max_queued_messages_set(0)
        if m.username:
            client.username_pw_set(m.username, m.password or None)
        if self._tls_context is not None:
            client.tls_set_context(self._tls_context)
        client.will_set(self.topics.status, "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _make_tls_context(self) -> ssl.SSLContext:
        m = self._mqtt
        try:
            ctx = ssl.create_default_context(cafile=m.ca_file or None)
            if m.cert_file:
                ctx.load_cert_chain(m.cert_file, m.key_file or None)
        except (OSError, ssl.SSLError) as exc:
            raise PublishError(
                f"mqtt TLS files unusable (mqtt.ca_file={m.ca_file!r}, mqtt.cert_file="
                f"{m.cert_file!r}, mqtt.key_file={m.key_file!r}): {exc}"
            ) from None
        return ctx

    async def _connect(self) -> Any:
        m = self._mqtt
        client = self._make_client()
        self._client = client
        self._connack = trio.Event()
        self._connack_ok = False
        kwargs: dict[str, Any] = {"keepalive": m.keepalive_s}
        if m.protocol == "5":
            kwargs["clean_start"] = True
        try:
            await trio.to_thread.run_sync(
                lambda: client.connect(m.host, m.port, **kwargs), abandon_on_cancel=True
            )
        except (OSError, ValueError) as exc:
            raise ConnectionLost(exc) from None
        return client

    async def _serve(self, client: Any) -> bool:
        """Drive one connection until it drops; True if it got a successful CONNACK."""
        sock = client.socket()
        if sock is None:
            raise ConnectionLost("no socket after connect")
        self._sock = sock
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        client.on_socket_close = self._on_socket_close
        self._want_write = trio.Event()
        if client.want_write():
            self._want_write.set()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._reader, client, sock, nursery.cancel_scope)
                nursery.start_soon(self._writer, client, sock, nursery.cancel_scope)
                nursery.start_soon(self._misc, client, nursery.cancel_scope)
                nursery.start_soon(self._sender, client, nursery.cancel_scope)
        except trio.ClosedResourceError:
            pass
        return self._connack_ok

    async def _reader(self, client: Any, sock: socket.socket, scope: trio.CancelScope) -> None:
        try:
            while _open(sock):
                await trio.lowlevel.wait_readable(sock)
                rc = client.loop_read()
                while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and _tls_pending(sock):
                    rc = client.loop_read()
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    log.info("mqtt connection lost %s", fields(rc=paho.error_string(rc)))
                    break
        except (trio.ClosedResourceError, OSError):
            pass
        scope.cancel()

    async def _writer(self, client: Any, sock: socket.socket, scope: trio.CancelScope) -> None:
        try:
            while True:
                await self._want_write.wait()
                if not _open(sock):
                    break
                await trio.lowlevel.wait_writable(sock)
                rc = client.loop_write()
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
                if not client.want_write():
                    self._want_write = trio.Event()
                    if client.want_write():  # paho queued more in between
                        self._want_write.set()
        except (trio.ClosedResourceError, OSError):
            pass
        scope.cancel()

    async def _misc(self, client: Any, scope: trio.CancelScope) -> None:
        timeout = max(self._mqtt.connect_timeout_s, 1.0)
        self._beat()
        with trio.move_on_after(timeout) as waiting:
            await self._connack.wait()
        if waiting.cancelled_caught or not self._connack_ok:
            if waiting.cancelled_caught:
                log.warning("mqtt no CONNACK %s", fields(timeout_s=timeout))
            scope.cancel()
            return
        while True:
            self._beat()
            await trio.sleep(MISC_INTERVAL_S)
            if client.loop_misc() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                scope.cancel()
                return

    async def _sender(self, client: Any, scope: trio.CancelScope) -> None:
        await self._connack.wait()
        if not self._connack_ok:
            return
        window = self._mqtt.max_inflight
        while True:
            free = window - len(self._inflight)
            batch = self._outbox.pending(self._last_sent_id, free) if free > 0 else []
            for msg in batch:
                info = client.publish(msg.topic, msg.payload, qos=msg.qos, retain=msg.retain)
                if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    scope.cancel()  # the socket went away under us: resend on the next one
                    return
                self._last_sent_id = msg.id
                if msg.qos == 0:
                    self._outbox.ack(msg.id)
                    self.published += 1
                else:
                    self._inflight[info.mid] = msg.id
            if not batch:
                if len(self._outbox) == 0:
                    self._progress.set()
                self._work = trio.Event()
                if len(self._inflight) < window and self._outbox.pending(self._last_sent_id, 1):
                    continue
                await self._work.wait()

    def _drop_connection(self) -> None:
        """Forget everything about the finished connection; the outbox still has it all."""
        if self.connected:
            log.warning("mqtt disconnected %s", fields(unacked=len(self._inflight)))
        if self._inflight:
            self._strike(min(self._inflight.values()))
        self.connected = False
        self._inflight.clear()
        self._last_sent_id = 0
        client, self._client = self._client, None
        if client is not None:
            client.on_socket_close = None
            client.on_socket_register_write = None
            client.on_socket_unregister_write = None
            sock = self._sock
            if sock is not None and _open(sock):
                with contextlib.suppress(OSError, ValueError):
                    trio.lowlevel.notify_closing(sock)
            with contextlib.suppress(OSError):
                client._sock_close()  # paho has no public "drop the socket now"
        self._sock = None
        self._progress.set()

    def _strike(self, outbox_id: int) -> None:
        """The oldest unacknowledged message when a connection died gets a strike.

        The broker handles a client's messages in order, so when a broker closes the
        connection because of one message (3.1.1 brokers may do that for a forbidden topic or
        an oversized packet) that message is the oldest unacknowledged one every time. After
        ``POISON_STRIKES`` connections in a row died with it there, it is dropped (logged,
        counted) so that it cannot block everything behind it forever.
        """
        if self._strikes.get("id") != outbox_id:
            self._strikes = {"id": outbox_id, "count": 0}
        self._strikes["count"] += 1
        if self._strikes["count"] >= POISON_STRIKES:
            msg = self._outbox.pending(outbox_id - 1, 1)
            topic = msg[0].topic if msg and msg[0].id == outbox_id else "?"
            log.error(
                "mqtt dropping a message the broker keeps refusing %s",
                fields(topic=topic, connections_lost=self._strikes["count"]),
            )
            self._outbox.ack(outbox_id)
            self.poisoned += 1
            self._strikes = {}

    # -- paho callbacks (run inside loop_read/loop_write, i.e. in our trio task) ---------------

    def _on_register_write(self, client: Any, userdata: Any, sock: Any) -> None:
        self._want_write.set()

    def _on_unregister_write(self, client: Any, userdata: Any, sock: Any) -> None:
        pass

    def _on_socket_close(self, client: Any, userdata: Any, sock: Any) -> None:
        # Wake whoever waits on this fd before paho closes it (trio must never wait on a
        # closed or, worse, reused descriptor); the reader then ends the connection.
        if _open(sock):
            with contextlib.suppress(OSError, ValueError):
                trio.lowlevel.notify_closing(sock)

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            text = str(reason)
            if text != self._last_refusal:
                log.error(
                    "mqtt broker refused the connection %s",
                    fields(host=self._mqtt.host, port=self._mqtt.port, reason=text,
                           hint="check mqtt.username/mqtt.password/mqtt.client_id"),
                )
            self._last_refusal = text
            self._connack_ok = False
            self._connack.set()
            return
        self._last_refusal = ""
        self.connected = True
        self.connections += 1
        self._connack_ok = True
        log.info(
            "mqtt connected %s",
            fields(host=self._mqtt.host, port=self._mqtt.port, protocol=self._mqtt.protocol,
                   pending=len(self._outbox)),
        )
        client.publish(self.topics.status, "online", qos=1, retain=True)
        if self._mqtt.homeassistant_discovery:
            client.subscribe(self.topics.homeassistant_status, qos=1)
            self._clear_pending()
            self._publish_discovery(self._cameras, device=True)
            if self.topics.processes == 1:
                client.subscribe(self._own_discovery, qos=1)
        self._connack.set()

    def _on_publish(
        self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any
    ) -> None:
        outbox_id = self._inflight.pop(mid, None)
        if outbox_id is None:
            return  # a direct publish (status, discovery)
        if getattr(reason, "is_failure", False):
            self.rejected += 1
            log.warning("mqtt broker rejected a message %s", fields(reason=reason))
        else:
            self.published += 1
        self._outbox.ack(outbox_id)
        self._work.set()
        if len(self._outbox) == 0:
            self._progress.set()

    @property
    def _own_discovery(self) -> str:
        """Every discovery config topic of this device."""
        return f"{self._mqtt.homeassistant_prefix}/+/{homeassistant.node_id(self._cfg)}/+/config"

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        if message.topic == self.topics.homeassistant_status and message.payload == b"online":
            log.info("home assistant is online, republishing discovery")
            self._publish_discovery(self._cameras, device=True)
        elif message.retain and message.payload:
            self._clear_if_stale(client, message.topic, message.payload)

    def _clear_if_stale(self, client: Any, topic: str, payload: bytes) -> None:
        """A retained discovery config of this device on the broker (read back on connect):
        cleared, with the retained plate or snapshot it points at, unless an announced
        camera or the device's diagnostics publish it now."""
        wanted = {t for t, _ in homeassistant.device_messages(self._cfg, self.topics)}
        for camera in self._cameras:
            wanted.update(t for t, _ in homeassistant.camera_messages(self._cfg, self.topics,
                                                                      camera))
        if topic in wanted:
            return
        client.publish(topic, b"", qos=1, retain=True)
        try:
            config = json.loads(payload)
        except ValueError:
            return
        prefix = self.topics.prefix + "/"
        for key in ("state_topic", "image_topic"):
            target = config.get(key) if isinstance(config, dict) else None
            if (isinstance(target, str) and target.startswith(prefix)
                    and target.endswith(("/plate", "/snapshot"))):
                client.publish(target, b"", qos=1, retain=True)
        self.stale_cleared += 1

    def _publish_discovery(self, cameras: list[str], device: bool = False) -> None:
        """Discovery of ``cameras`` and, with ``device``, of the appliance's diagnostics."""
        client = self._client
        if client is None or not self._mqtt.homeassistant_discovery:
            return
        messages = homeassistant.device_messages(self._cfg, self.topics) if device else []
        for camera in cameras:
            messages += homeassistant.camera_messages(self._cfg, self.topics, camera)
        for topic, payload in messages:
            client.publish(topic, json.dumps(payload, sort_keys=True), qos=1, retain=True)


def _tls_pending(sock: Any) -> bool:
    pending = getattr(sock, "pending", None)
    return bool(pending is not None and pending() > 0)


def _open(sock: Any) -> bool:
    """False once the socket is closed (its descriptor may already belong to another file)."""
    try:
        return bool(sock.fileno() >= 0)
    except (OSError, ValueError):
        return False
