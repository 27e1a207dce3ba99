"""An image's width and height from its header, without decoding it (pure, bytes in).

Decoding allocates what the header announces: a 2 MB JPEG can announce 12000x12000 pixels and
cost gigabytes once decoded and searched. ``decode_jpeg`` therefore reads the size here first
and refuses an image above ``ingest.max_frame_pixels`` before OpenCV sees it; an image whose
size cannot be read here is not decoded at all (it counts as undecodable), so the bound holds
for any input, whatever formats OpenCV would otherwise accept.

Read: JPEG (the frame header of any SOF marker), PNG (IHDR) and BMP. Tests:
``tests/test_image_size.py``.
"""

from __future__ import annotations

from edge_anpr.errors import ImageTooLarge

MAX_JPEG_STEPS = 4096
"""Markers and fill bytes looked at before a JPEG's frame header is given up on. Real files
have a few dozen segments (APPn, quantisation and Huffman tables) before it; the bound keeps a
crafted file of a million empty segments from costing a second of a worker's time."""

_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
"""Start-of-frame markers (baseline, progressive, lossless, arithmetic...); C4 (Huffman
tables), C8 (reserved) and CC (arithmetic conditioning) share the range but are not frames."""
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) announced by the header of a JPEG, PNG or BMP; None when ``data`` is
    none of them, is cut off before its size, or announces a zero size."""
    if data[:2] == b"\xff\xd8":
        size = _jpeg_size(data)
    elif data[:8] == _PNG_SIGNATURE:
        size = _png_size(data)
    elif data[:2] == b"BM":
        size = _bmp_size(data)
    else:
        return None
    if size is None or size[0] <= 0 or size[1] <= 0:
        return None
    return size


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    n = len(data)
    i = 2
    for _ in range(MAX_JPEG_STEPS):
        if i + 4 > n or data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # a fill byte before the marker
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        if marker in (0xD8, 0xD9, 0xDA):  # SOI again, EOI or scan data before any frame
            return None
        length = (data[i + 2] << 8) | data[i + 3]
        if marker in _JPEG_SOF:
            # length(2) precision(1) height(2) width(2) components(1)...
            if length < 8 or i + 9 > n:
                return None
            height = (data[i + 5] << 8) | data[i + 6]
            width = (data[i + 7] << 8) | data[i + 8]
            return width, height
        if length < 2:
            return None
        i += 2 + length
    return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    # signature(8), then the IHDR chunk: length(4) "IHDR" width(4) height(4), big-endian
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 26:
        return None
    header = int.from_bytes(data[14:18], "little")
    if header == 12:  # OS/2 core header: unsigned 16-bit width and height
        return int.from_bytes(data[18:20], "little"), int.from_bytes(data[20:22], "little")
    # Windows headers: signed 32-bit; a negative height means top-down rows
    width = int.from_bytes(data[18:22], "little", signed=True)
    height = int.from_bytes(data[22:26], "little", signed=True)
    return width, abs(height)


def check_pixels(data: bytes, max_pixels: int) -> tuple[int, int] | None:
    """The image's size when it is at most ``max_pixels``; None when unreadable (see
    ``image_size``). Raises ``ImageTooLarge`` when above."""
    size = image_size(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageTooLarge(size[0], size[1], max_pixels)
    return size
