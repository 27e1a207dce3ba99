"""The wire formats as pure functions: sizes, byte layout, round trips, serial-number order."""

from __future__ import annotations

import hashlib
import hmac
import random
import struct

import pytest

from edge_anpr.ingest.protocol import (
    DROP_REASONS,
    MAX_DATAGRAM,
    SEQ_MODULO,
    BadDatagram,
    encode_legacy,
    encode_sequenced,
    key_bytes,
    parse_header,
    parse_sequenced,
    seq_newer,
    tag_is_valid,
)


@pytest.mark.parametrize("size", [1, 1471, 1472, 1473, 200_000])
@pytest.mark.parametrize("key", [None, b"k"])
def test_sequenced_datagrams_fit_the_mtu_and_round_trip(size: int, key: bytes | None) -> None:
    jpeg = random.Random(size).randbytes(size)
    datagrams = encode_sequenced(jpeg, camera=65535, frame=SEQ_MODULO + 5, time_us=2**63, key=key)
    assert all(len(d) <= MAX_DATAGRAM for d in datagrams)
    chunks = [parse_sequenced(d, 4 << 20) for d in datagrams]
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert {(c.camera, c.frame, c.count, c.length, c.time_us) for c in chunks} == {
        (65535, 5, len(datagrams), size, 2**63)
    }
    rebuilt = bytearray(size)
    for c in chunks:
        rebuilt[c.offset : c.offset + len(c.payload)] = c.payload
        assert (c.tag is not None) == (key is not None)
        if key is not None:
            assert tag_is_valid(key, c) and not tag_is_valid(b"other", c)
    assert bytes(rebuilt) == jpeg


def test_header_layout_is_big_endian_as_specified() -> None:
    (d,) = encode_sequenced(b"xyz", camera=0x0102, frame=0x03040506, time_us=0x0708, key=b"key")
    assert d[:4] == b"EANP" and d[4] == 2 and d[5] == 1
    assert d[6:8] == b"\x01\x02" and d[8:12] == b"\x03\x04\x05\x06"
    assert d[12:14] == b"\x00\x00" and d[14:16] == b"\x00\x01"  # index 0 of 1
    assert d[16:20] == struct.pack(">I", 3) and d[20:24] == b"\x00" * 4
    assert d[24:32] == struct.pack(">Q", 0x0708) and d[32:35] == b"xyz"
    assert d[35:] == hmac.new(b"key", d[:35], hashlib.sha256).digest()[:16]


def test_legacy_encoding() -> None:
    jpeg = bytes(range(256)) * 20
    datagrams = encode_legacy(jpeg)
    assert datagrams[0] == struct.pack("<I", len(jpeg))
    assert all(len(d) <= MAX_DATAGRAM for d in datagrams)
    assert b"".join(datagrams[1:]) == jpeg
    with pytest.raises(ValueError):
        encode_legacy(b"")


def test_parse_errors_carry_a_reason() -> None:
    with pytest.raises(BadDatagram) as info:
        parse_sequenced(b"EANP", 1000)
    assert info.value.reason == "malformed" and "shorter than 32" in str(info.value)
    (d,) = encode_sequenced(b"x" * 2000, camera=1, frame=1, max_datagram=4000)
    with pytest.raises(BadDatagram) as info:
        parse_sequenced(d, 1024)
    assert info.value.reason == "bad_length"
    assert set(DROP_REASONS) >= {"malformed", "bad_length", "late", "lost", "timeout"}


def test_keys_are_utf8_text() -> None:
    assert key_bytes("") is None
    assert key_bytes("clé") == "clé".encode()


@pytest.mark.parametrize(
    ("a", "b", "newer"),
    [(1, 0, True), (0, 1, False), (5, 5, False), (0, SEQ_MODULO - 1, True),
     (SEQ_MODULO - 1, 0, False), (2**31 - 1, 0, True), (2**31 + 1, 0, False)],
)
def test_serial_number_order(a: int, b: int, newer: bool) -> None:
    assert seq_newer(a, b) is newer


def test_encoder_refuses_what_the_format_cannot_carry() -> None:
    with pytest.raises(ValueError):
        encode_sequenced(b"", camera=1, frame=0)
    with pytest.raises(ValueError):
        encode_sequenced(b"x", camera=70000, frame=0)


def _header(**fields: int) -> bytes:
    values = {"version": 2, "flags": 0, "camera": 1, "frame": 7, "index": 0, "count": 2,
              "length": 100, "offset": 0, "time_us": 5, **fields}
    return struct.pack(">4sBBHIHHIIQ", b"EANP", *values.values())


@pytest.mark.parametrize(
    ("datagram", "reason", "words"),
    [
        (_header(version=1) + b"x", "malformed", "unsupported version"),
        (_header(flags=2) + b"x", "malformed", "unknown flag bits"),
        (_header(flags=1) + b"x" * 15, "malformed", "too short for a tag"),
        (_header(count=0) + b"x", "malformed", "count is 0"),
        (_header(index=2) + b"x", "malformed", "index 2 >= count 2"),
        (_header(length=0) + b"x", "bad_length", "frame length 0"),
        (_header(length=5000) + b"x", "bad_length",
         r"frame length 5000 \(ingest\.max_frame_bytes = 1024\)"),
        (_header(count=3, length=2) + b"x", "malformed", "chunks cannot be empty"),
        (_header(), "malformed", "no payload"),
        (_header(offset=99) + b"xx", "malformed", r"offset 99 \+ 2 bytes > length 100"),
    ],
)
def test_the_header_parser_names_each_broken_rule(
    datagram: bytes, reason: str, words: str
) -> None:
    with pytest.raises(BadDatagram, match=words) as info:
        parse_header(datagram, 1024)
    assert info.value.reason == reason


def test_the_header_parser_reads_a_datagram_inside_a_coalesced_receive() -> None:
    chunks = encode_sequenced(b"y" * 5000, camera=3, frame=9, time_us=11, key=b"k" * 16)
    buffer = b"".join(chunks)
    size = len(chunks[0])
    for i, chunk in enumerate(chunks):
        alone = parse_header(chunk, 1 << 20)
        assert parse_header(buffer, 1 << 20, i * size, len(chunk)) == alone
        flags, camera, frame, index, count, length, offset, time_us, n = alone
        assert (flags, camera, frame, index, length, time_us) == (1, 3, 9, i, 5000, 11)
        assert count == len(chunks)
        assert offset == sum(len(c) - 48 for c in chunks[:i]) and n == len(chunk) - 48
