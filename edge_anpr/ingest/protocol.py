"""Both UDP wire formats as pure functions: bytes in, typed values out (and back, for senders).

The formats are specified in ``docs/protocol.md``. A datagram starting with ``EANP`` is sequenced;
anything else is legacy. Whether a legacy 4-byte datagram is a header or the last data chunk
depends on the sender's state, so that decision belongs to the reassembler, not to this module.

Nothing here touches a socket or a clock. Parsing never raises anything but ``BadDatagram``.

``parse_header`` is the one parser of the sequenced header: the reassembler's per-datagram path
and its coalesced runs call it, and ``parse_sequenced`` (the chunk with its payload and tag, for
tests and tools) is built on it.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from typing import Literal

from edge_anpr.errors import ProtocolError

MAX_DATAGRAM = 1472
"""UDP payload that fits a 1500-byte MTU without IP fragmentation (1500 - 20 IP - 8 UDP)."""
MAGIC = b"EANP"
VERSION = 2
FLAG_TAG = 0x01
TAG_BYTES = 16
HEADER = struct.Struct(">4sBBHIHHIIQ")
HEADER_BYTES = HEADER.size  # 32
LEGACY_HEADER = struct.Struct("<I")
SEQ_MODULO = 1 << 32

DropReason = Literal[
    "malformed",  # sequenced datagram that breaks the header rules
    "bad_length",  # frame length 0 or above ingest.max_frame_bytes
    "legacy_disabled",  # non-EANP datagram while ingest.legacy is off
    "abandoned",  # legacy: a new header arrived while a frame was in progress
    "overflow",  # legacy: data beyond the announced length
    "no_frame",  # legacy: data from a sender with no frame in progress
    "inconsistent",  # sequenced: chunk disagrees with earlier chunks of its frame
    "overlap",  # sequenced: chunk payload overlaps one already received
    "late",  # sequenced: frame older than one already handed on
    "lost",  # sequenced: older incomplete frame dropped when a newer one completed
    "stream_limit",  # sequenced: too many frames in flight for one stream
    "memory_limit",  # global frames-in-flight or buffered-bytes bound reached
    "evicted",  # sender/stream evicted as least recently active
    "timeout",  # incomplete frame saw no datagram for ingest.frame_timeout_s
    "unauthenticated",  # untagged datagram where a key (or authentication) is required
    "bad_tag",  # tag does not match the key
    "queue_full",  # complete frame pushed out of the per-camera queue by a newer one
    "source_limit",  # new unauthenticated, unconfigured camera id beyond a source's share
    "replayed",  # authenticated frame not newer than the last accepted from its camera
    "stale",  # authenticated frame whose capture time is outside ingest.replay_window_s
    "undecodable",  # complete frame that is not a decodable image
]
DROP_REASONS: tuple[DropReason, ...] = DropReason.__args__  # type: ignore[attr-defined]


class BadDatagram(ProtocolError):
    """A datagram that breaks the wire format; ``reason`` is its drop counter."""

    def __init__(self, reason: DropReason, detail: str) -> None:
        super().__init__(detail)
        self.reason: DropReason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class SequencedChunk:
    """One parsed format-2 datagram. ``payload`` is a view into the datagram, not a copy."""

    camera: int
    frame: int
    index: int
    count: int
    length: int
    offset: int
    time_us: int
    payload: memoryview
    tag: bytes | None
    signed: memoryview
    """Bytes covered by the tag (header + payload)."""


SequencedHeader = tuple[int, int, int, int, int, int, int, int, int]
"""A checked sequenced header: ``(flags, camera, frame, index, count, length, offset, time_us,
payload_bytes)``, the wire fields in wire order, then the payload after the 32-byte header and
before the tag. A plain tuple, unpacked into locals: the reassembler parses every datagram that
does not continue a coalesced run, and a named tuple's construction and attribute reads cost
more there than the checks themselves."""


def is_sequenced(data: bytes) -> bool:
    return data[:4] == MAGIC


def parse_header(
    data: bytes, max_frame_bytes: int, pos: int = 0, size: int | None = None
) -> SequencedHeader:
    """Check the sequenced datagram ``data[pos:pos + size]`` (all of ``data`` by default)
    against every stateless rule of the format; ``BadDatagram`` names the first broken one.

    Invariant: a header this accepts has a payload of at least one byte that fits inside the
    announced frame (``offset + payload_bytes <= length <= max_frame_bytes``), ``index < count
    <= length``, and no flag but ``FLAG_TAG``; the tag itself is not checked (no key here).
    ``tests/test_ingest_protocol.py`` holds each rule.
    """
    if size is None:
        size = len(data) - pos
    if size < HEADER_BYTES:
        raise BadDatagram("malformed", f"sequenced datagram of {size} bytes is shorter than 32")
    magic, version, flags, camera, frame, index, count, length, offset, time_us = (
        HEADER.unpack_from(data, pos)
    )
    if magic != MAGIC:
        raise BadDatagram("malformed", f"wrong magic {magic!r}")
    if version != VERSION:
        raise BadDatagram("malformed", f"unsupported version {version}")
    if flags & ~FLAG_TAG:
        raise BadDatagram("malformed", f"unknown flag bits 0x{flags:02x}")
    end = size
    if flags:
        end = size - TAG_BYTES
        if end < HEADER_BYTES:
            raise BadDatagram("malformed", "tag flag set but datagram too short for a tag")
    n = end - HEADER_BYTES
    if count == 0:
        raise BadDatagram("malformed", "chunk count is 0")
    if index >= count:
        raise BadDatagram("malformed", f"index {index} >= count {count}")
    if length == 0 or length > max_frame_bytes:
        raise BadDatagram(
            "bad_length", f"frame length {length} (ingest.max_frame_bytes = {max_frame_bytes})"
        )
    if count > length:
        raise BadDatagram("malformed", f"count {count} > length {length}: chunks cannot be empty")
    if n == 0:
        raise BadDatagram("malformed", "chunk carries no payload")
    if offset + n > length:
        raise BadDatagram("malformed", f"offset {offset} + {n} bytes > length {length}")
    return flags, camera, frame, index, count, length, offset, time_us, n


def parse_sequenced(data: bytes, max_frame_bytes: int) -> SequencedChunk:
    """One sequenced datagram as a chunk: ``parse_header`` plus views of its payload and tag."""
    flags, camera, frame, index, count, length, offset, time_us, n = parse_header(
        data, max_frame_bytes
    )
    view = memoryview(data)
    end = HEADER_BYTES + n
    return SequencedChunk(
        camera, frame, index, count, length, offset, time_us,
        view[HEADER_BYTES:end], bytes(view[end:]) if flags else None, view[:end],
    )


def compute_tag(key: bytes, signed: bytes | memoryview) -> bytes:
    """The first 16 bytes of HMAC-SHA256(key, header + payload)."""
    return hmac.digest(key, signed, hashlib.sha256)[:TAG_BYTES]


def tag_is_valid(key: bytes, chunk: SequencedChunk) -> bool:
    if chunk.tag is None:
        return False
    return hmac.compare_digest(compute_tag(key, chunk.signed), chunk.tag)


def key_bytes(text: str) -> bytes | None:
    """Keys are configured as text; the HMAC key is the string's UTF-8 bytes ('' = no key)."""
    return text.encode("utf-8") if text else None


def encode_legacy(jpeg: bytes, max_datagram: int = MAX_DATAGRAM) -> list[bytes]:
    """A legacy frame: the 4-byte little-endian length, then the bytes in datagram-sized slices."""
    if not jpeg:
        raise ValueError("a legacy frame cannot be empty")
    out = [LEGACY_HEADER.pack(len(jpeg))]
    out.extend(jpeg[i : i + max_datagram] for i in range(0, len(jpeg), max_datagram))
    return out


def sequenced_payload_bytes(tagged: bool, max_datagram: int = MAX_DATAGRAM) -> int:
    return max_datagram - HEADER_BYTES - (TAG_BYTES if tagged else 0)


def encode_sequenced(
    jpeg: bytes,
    *,
    camera: int,
    frame: int,
    time_us: int = 0,
    key: bytes | None = None,
    max_datagram: int = MAX_DATAGRAM,
) -> list[bytes]:
    """A sequenced frame as datagrams of at most ``max_datagram`` bytes, tagged when keyed."""
    if not 0 <= camera <= 0xFFFF:
        raise ValueError(f"camera id must be 0..65535, got {camera}")
    per = sequenced_payload_bytes(key is not None, max_datagram)
    length = len(jpeg)
    count = max(1, -(-length // per))
    if length == 0 or count > 0xFFFF:
        raise ValueError(f"cannot send a frame of {length} bytes in the sequenced format")
    flags = FLAG_TAG if key is not None else 0
    frame %= SEQ_MODULO
    out = []
    for index in range(count):
        offset = index * per
        body = HEADER.pack(
            MAGIC, VERSION, flags, camera, frame, index, count, length, offset, time_us
        ) + jpeg[offset : offset + per]
        out.append(body + compute_tag(key, body) if key is not None else body)
    return out


def seq_newer(a: int, b: int) -> bool:
    """True when frame number ``a`` comes after ``b`` in serial-number order (mod 2^32)."""
    d = (a - b) % SEQ_MODULO
    return 0 < d < SEQ_MODULO // 2
