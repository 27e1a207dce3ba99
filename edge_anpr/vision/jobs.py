"""Posted images whose sender waits for the reads: the board of places the HTTP API takes.

An image posted to the HTTP API goes to the same recognition workers as camera frames (the
frame queue's request lane, ``ingest.queue``), but its reads go back to the poster instead of
the event stage. The board is where they meet: the poster ``reserve``s a place (None when all
``capacity`` are taken: the API answers 429), puts a ``Frame`` with ``request=ticket.id`` in the
queue and awaits ``ticket.wait()``; the worker that recognised it calls ``finish``.

Invariant: a place is taken from ``reserve`` until ``finish`` (or ``release``, for a place
whose image was never queued), even when the poster stopped waiting (a timeout): an image in
the queue or in a worker thread holds its place, so at most ``capacity`` posted images are
ever in memory or in the workers. Everything runs on the event loop; no locks.
Tests: ``tests/test_http_jobs.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import trio

from edge_anpr.values import PlateRead

Outcome = Literal["read", "undecodable", "too_large", "failed"]


@dataclass(frozen=True, slots=True)
class JobResult:
    """What a worker made of one posted image."""

    outcome: Outcome
    """``read`` (``reads`` may be empty: no plate), ``undecodable`` (not an image),
    ``too_large`` (refused undecoded: too many pixels) or ``failed`` (a bug, logged)."""
    reads: tuple[PlateRead, ...] = ()
    """Most confident first, each at least ``reader.min_confidence``."""
    recognition_ms: float = 0.0
    """Wall time the worker thread spent on the image."""


class Ticket:
    """One reserved place on the board: its id, then its result once a worker finished."""

    def __init__(self, ident: int) -> None:
        self.id = ident
        self.result: JobResult | None = None
        self._done = trio.Event()

    async def wait(self) -> JobResult:
        await self._done.wait()
        assert self.result is not None
        return self.result

    def _finish(self, result: JobResult) -> None:
        self.result = result
        self._done.set()


class JobBoard:
    """At most ``capacity`` posted images at once, from reservation to result (module
    docstring)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._next_id = 1
        self._taken: dict[int, Ticket] = {}
        self.refused = 0
        """Reservations refused because every place was taken (the API's 429s)."""

    def __len__(self) -> int:
        return len(self._taken)

    def reserve(self) -> Ticket | None:
        """A place, or None when all ``capacity`` are taken (counted in ``refused``)."""
        if len(self._taken) >= self.capacity:
            self.refused += 1
            return None
        ticket = Ticket(self._next_id)
        self._next_id += 1
        self._taken[ticket.id] = ticket
        return ticket

    def release(self, ticket: Ticket) -> None:
        """Give back the place of an image that was never queued (a bad upload)."""
        self._taken.pop(ticket.id, None)

    def finish(self, ident: int, result: JobResult) -> None:
        """A worker's result for request ``ident``: wakes its poster and frees the place.
        An unknown id (released, or finished already) is ignored."""
        ticket = self._taken.pop(ident, None)
        if ticket is not None:
            ticket._finish(result)
