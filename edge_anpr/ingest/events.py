"""What the reassembler gives out: complete frames and counted drops (``Event``), and the
ingest stage's counters. Values only: the UDP shell, the queue and the stats line read them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from edge_anpr.ingest.protocol import DropReason
from edge_anpr.values import Frame

Address = tuple[str, int]
"""A sender: (IP address, UDP port)."""


@dataclass(frozen=True, slots=True)
class FrameReady:
    frame: Frame


@dataclass(frozen=True, slots=True)
class Dropped:
    reason: DropReason
    sender: Address
    camera: str | None
    """Camera name when known (``None`` for datagrams too broken to name one)."""
    detail: str
    missing_chunks: int = 0
    """For sequenced frames dropped incomplete: how many chunks never arrived."""


Event = FrameReady | Dropped


@dataclass
class IngestStats:
    """Counters of the ingest stage; ``drops`` is keyed by drop reason."""

    datagrams: int = 0
    datagram_bytes: int = 0
    frames_completed: int = 0
    frame_bytes: int = 0
    duplicates: int = 0
    senders_evicted: int = 0
    streams_reset: int = 0
    kernel_drops: int | None = None
    """Datagrams the kernel dropped before they were read (a full socket receive buffer),
    set by the socket's owner (``ingest.udp``); None where the system does not tell."""
    drops: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> dict[str, object]:
        return {
            "datagrams": self.datagrams,
            "datagram_bytes": self.datagram_bytes,
            "frames_completed": self.frames_completed,
            "frame_bytes": self.frame_bytes,
            "duplicates": self.duplicates,
            "senders_evicted": self.senders_evicted,
            "streams_reset": self.streams_reset,
            **({} if self.kernel_drops is None else {"kernel_drops": self.kernel_drops}),
            "dropped": dict(sorted(self.drops.items())),
        }
