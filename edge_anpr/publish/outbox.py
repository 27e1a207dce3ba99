"""The durable outbox: every message is on disk before it is published, and leaves on PUBACK.

An SQLite file (standard library ``sqlite3``, WAL journal, ``synchronous=NORMAL``) with one
table of messages in insertion order. The publisher reads pending rows in id order, publishes
them with QoS 1 and deletes a row only when the broker acknowledged it, so after a broker outage
or a restart of the appliance the pending messages go out again, in order, and none is lost.

Size is bounded by ``mqtt.outbox_max_messages``: when full, the oldest rows are evicted first
(a days-long outage keeps the newest events). Evictions are counted (``evicted``) and logged once
per outage, not once per message: the warning is given again only after the outbox has drained
below ``FULL_AGAIN_BELOW`` of its bound (a snapshot that replaces its own row, one out and one
in, does not end the outage). Rows can carry an expiry (wall clock): a gate command that
could not be sent within its TTL is dropped instead of opening a gate for a car long gone.

Path: ``mqtt.outbox_path``; when empty, ``$STATE_DIRECTORY/outbox.sqlite`` (systemd sets
``STATE_DIRECTORY`` from ``StateDirectory=``), else ``./edge-anpr-outbox.sqlite``. ``:memory:``
gives a volatile outbox (tests).

Durability: WAL with ``synchronous=NORMAL`` survives a crash or kill of the process (every
``put`` is its own committed transaction); a power cut can lose the last few commits, the
price of not calling fsync for every message on an SD card.

Threading: one connection, owned by the one task that created the ``Outbox``; calls are short
synchronous statements (a few hundred microseconds on an SD card with WAL and NORMAL sync), made
directly from that trio task rather than through a thread so that the write-before-publish order
cannot be reordered by a scheduler.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_anpr.errors import PublishError
from edge_anpr.logs import fields

log = logging.getLogger(__name__)

DEFAULT_FILE = "edge-anpr-outbox.sqlite"
FULL_AGAIN_BELOW = 0.9
"""Fraction of ``mqtt.outbox_max_messages`` the outbox must drain below before a new overflow
is warned about again."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created_us INTEGER NOT NULL,
    expires_us INTEGER NOT NULL DEFAULT 0
)
"""


def default_outbox_path(configured: str, environ: dict[str, str] | None = None) -> str:
    """``mqtt.outbox_path``, else ``$STATE_DIRECTORY/outbox.sqlite``, else the working folder."""
    if configured:
        return configured
    env = os.environ if environ is None else environ
    state = env.get("STATE_DIRECTORY", "")
    if state:
        # systemd may pass several colon-separated directories; the first is ours.
        return str(Path(state.split(":")[0]) / "outbox.sqlite")
    return str(Path.cwd() / DEFAULT_FILE)


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created_us: int
    expires_us: int
    """Wall-clock expiry in µs since the epoch; 0 = never."""


class Outbox:
    """A bounded, ordered, durable queue of MQTT messages."""

    def __init__(
        self,
        path: str,
        max_messages: int,
        wall_us: Callable[[], int] = lambda: time.time_ns() // 1000,
    ) -> None:
        self.path = path
        self.max_messages = max_messages
        self._wall_us = wall_us
        self.evicted = 0
        self.expired = 0
        self.written = 0
        self.acked = 0
        self._warned_full = False
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            self._count = int(self._db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])
        except (OSError, sqlite3.Error) as exc:
            raise PublishError(
                f"cannot open the MQTT outbox {path!r}: {exc} "
                "(set mqtt.outbox_path to a writable file)"
            ) from None
        if self._count:
            log.info("outbox has pending messages %s", fields(path=path, pending=self._count))

    def __len__(self) -> int:
        return self._count

    def put(
        self, topic: str, payload: bytes, qos: int = 1, retain: bool = False, ttl_s: float = 0.0,
        replace: bool = False,
    ) -> int:
        """Store a message (durably, before anyone publishes it); returns its id.

        With ``replace`` the pending messages of ``topic`` are deleted first: retained state
        that only its newest value matters for (snapshots) holds one row per topic, whatever
        the length of an outage. A replaced message already in flight is simply acknowledged
        into nothing.
        """
        now = self._wall_us()
        expires = now + int(ttl_s * 1e6) if ttl_s > 0 else 0
        if replace:
            cur = self._db.execute("DELETE FROM messages WHERE topic = ?", (topic,))
            self._count -= max(0, cur.rowcount)
        cur = self._db.execute(
            "INSERT INTO messages (topic, payload, qos, retain, created_us, expires_us) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (topic, payload, qos, int(retain), now, expires),
        )
        self._count += 1
        self.written += 1
        if self._count > self.max_messages:
            self._evict(self._count - self.max_messages)
        rowid = cur.lastrowid
        assert rowid is not None
        return rowid

    def _evict(self, n: int) -> None:
        self._db.execute(
            "DELETE FROM messages WHERE id IN (SELECT id FROM messages ORDER BY id LIMIT ?)", (n,)
        )
        self._count -= n
        self.evicted += n
        if not self._warned_full:
            self._warned_full = True
            log.warning(
                "outbox full, evicting oldest messages %s",
                fields(path=self.path, max_messages=self.max_messages, evicted_total=self.evicted),
            )

    def pending(self, after_id: int = 0, limit: int = 100) -> list[OutboxMessage]:
        """Up to ``limit`` unexpired messages with id above ``after_id``, oldest first.

        Expired messages met on the way are deleted and counted.
        """
        rows = self._db.execute(
            "SELECT id, topic, payload, qos, retain, created_us, expires_us FROM messages "
            "WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        ).fetchall()
        now = self._wall_us()
        out: list[OutboxMessage] = []
        for row in rows:
            msg = OutboxMessage(
                id=row[0], topic=row[1], payload=bytes(row[2]), qos=row[3], retain=bool(row[4]),
                created_us=row[5], expires_us=row[6],
            )
            if msg.expires_us and msg.expires_us < now:
                self._delete(msg.id)
                self.expired += 1
                log.warning(
                    "outbox message expired unsent %s",
                    fields(topic=msg.topic, age_s=round((now - msg.created_us) / 1e6, 1)),
                )
                continue
            out.append(msg)
        return out

    def ack(self, message_id: int) -> None:
        """The broker has it: forget the message."""
        if self._delete(message_id):
            self.acked += 1

    def _delete(self, message_id: int) -> bool:
        cur = self._db.execute("DELETE FROM messages WHERE id = ?", (message_id,))
        if cur.rowcount:
            self._count -= cur.rowcount
            if self._count < self.max_messages * FULL_AGAIN_BELOW:
                self._warned_full = False  # drained: the outage is over
            return True
        return False

    def adopt(self, path: str) -> int:
        """Take over every message of the outbox file at ``path`` and remove that file.

        For the outbox of a process that no longer runs (``system.processes.orphan_outboxes``):
        its rows are appended after this outbox's pending ones, in their own order, with their
        creation and expiry times, in one transaction of this file; only once that has committed
        is ``path`` (with its ``-wal`` and ``-shm``) deleted. A crash in between leaves the
        messages in both files, and the next start adopts them again: they may go out twice,
        never zero times (the outbox's at-least-once). The size bound applies as to ``put``.
        Returns the number of messages adopted (0 when ``path`` does not exist); a file that
        cannot be read is logged and left in place, to be tried again at the next start.
        """
        if not os.path.exists(path):
            return 0
        try:
            self._db.execute("ATTACH DATABASE ? AS orphan", (path,))
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    cur = self._db.execute(
                        "INSERT INTO main.messages "
                        "(topic, payload, qos, retain, created_us, expires_us) "
                        "SELECT topic, payload, qos, retain, created_us, expires_us "
                        "FROM orphan.messages ORDER BY id"
                    )
                    adopted = max(0, cur.rowcount)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            finally:
                self._db.execute("DETACH DATABASE orphan")
        except sqlite3.Error as exc:
            log.error("%s", fields(
                event="outbox_adopt_failed", path=path, into=self.path, error=exc,
                effect="left in place; tried again at the next start",
            ))
            return 0
        self._count += adopted
        if self._count > self.max_messages:
            self._evict(self._count - self.max_messages)
        log.info("%s", fields(event="outbox_adopted", path=path, into=self.path, messages=adopted))
        for leftover in (f"{path}-wal", f"{path}-shm", path):
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.error("%s", fields(
                    event="outbox_adopted_not_removed", path=leftover, error=exc.strerror,
                    effect="its messages are adopted again (sent twice) at the next start",
                ))
        return adopted

    def stats(self) -> dict[str, int]:
        return {
            "pending": self._count, "written": self.written, "acked": self.acked,
            "evicted": self.evicted, "expired": self.expired,
        }

    def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error as exc:  # pragma: no cover - nothing useful left to do
            log.warning("outbox close failed %s", fields(path=self.path, error=exc))
