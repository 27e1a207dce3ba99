"""A recognition request's body: the image and the parameters that came with it (pure).

Accepted, as Plate Recognizer's Snapshot API and OpenALPR's cloud API take them:

- ``multipart/form-data`` (python-multipart parses it): the image as a file part ``upload``
  (Plate Recognizer) or ``image`` (OpenALPR), or as a text part holding it in base64;
- ``application/x-www-form-urlencoded`` and ``application/json``: ``upload`` in base64 (a
  ``data:image/...;base64,`` prefix is allowed);
- ``image/*`` or ``application/octet-stream``: the body is the image itself.

Other fields: ``regions`` (repeatable, or a list in JSON; ``country`` is OpenALPR's name for
it), ``camera_id``, ``timestamp``, ``config`` (Plate Recognizer's engine options: a JSON text,
or an object in a JSON body; kept as sent, ``http.engine`` reads it); they may also be given in
the query string (the body wins). ``upload_url`` is refused: the appliance fetches nothing.
Every other field (``mmc`` among them) is ignored.

Errors are ``BadUpload`` with the status to answer (400, 413 or 415) and a one-line reason
naming the field; nothing here raises anything else for any body (``tests/test_http_uploads.py``
feeds it garbage).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from edge_anpr.logs import rate_limit_logger

IMAGE_FIELDS = ("upload", "image")
"""Names of the image field: Plate Recognizer's, then OpenALPR's."""
MAX_FIELDS = 64
"""Form fields or parts looked at; a body with more is refused."""
MAX_TEXT_BYTES = 4096
"""Longest value of a field other than the image."""
_IMAGE_MAGIC = (b"\xff\xd8", b"\x89PNG", b"BM")

rate_limit_logger("python_multipart.multipart", interval_s=60.0)
"""python-multipart warns once per malformed body (the 400 answer already says why): one line
a minute at most, whoever sends them."""


class BadUpload(Exception):
    """The request cannot be read: ``status`` to answer and ``error`` (a short code)."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Upload:
    image: bytes
    filename: str
    """The file part's name ('' when the image came in base64 or as the body)."""
    regions: tuple[str, ...]
    """Region codes as sent (``regions``, else ``country``), not yet mapped."""
    camera_id: str | None
    timestamp: str | None
    config: str | dict[str, Any] | None = None
    """Plate Recognizer's engine ``config`` as sent: a JSON text, or a JSON body's object."""


@dataclass
class _Fields:
    """Fields in arrival order: text values per name, and the image when one came."""

    text: dict[str, list[str]]
    image: bytes | None = None
    config: dict[str, Any] | None = None
    """A JSON body's ``config`` object."""
    filename: str = ""
    count: int = 0

    def add_text(self, name: str, value: str) -> None:
        self._count()
        if len(value.encode("utf-8")) > MAX_TEXT_BYTES and name not in IMAGE_FIELDS:
            raise BadUpload(400, "bad_field", f"{name}: longer than {MAX_TEXT_BYTES} bytes")
        self.text.setdefault(name, []).append(value)

    def add_image(self, data: bytes, filename: str) -> None:
        self._count()
        if self.image is None:
            self.image, self.filename = data, filename

    def _count(self) -> None:
        self.count += 1
        if self.count > MAX_FIELDS:
            raise BadUpload(400, "bad_form", f"more than {MAX_FIELDS} fields")


def parse_upload(
    body: bytes, content_type: str, query: str, *, max_image_bytes: int
) -> Upload:
    """The image and parameters of one request (module docstring); ``BadUpload`` otherwise.

    ``max_image_bytes`` bounds the image once decoded from base64 (413 beyond)."""
    fields = _Fields({})
    for name, value in _query_pairs(query):
        fields.add_text(name, value)
    query_fields = fields.text
    fields = _Fields({})
    media, params = _media_type(content_type)
    if media == "multipart/form-data":
        _read_multipart(body, params.get("boundary", ""), fields)
    elif media == "application/x-www-form-urlencoded":
        for name, value in _query_pairs(_ascii(body, "form body")):
            fields.add_text(name, value)
    elif media == "application/json":
        _read_json(body, fields)
    elif media.startswith("image/") or media == "application/octet-stream":
        fields.add_image(body, "")
    elif not media and not body:
        pass
    else:
        raise BadUpload(
            415, "unsupported_media_type",
            f"Content-Type {media or '(none)'} is not multipart/form-data, "
            "application/x-www-form-urlencoded, application/json or an image",
        )
    merged = {**query_fields, **fields.text}
    if "upload_url" in merged:
        raise BadUpload(
            400, "upload_url_unsupported",
            "upload_url: not supported, the appliance fetches nothing; post the image as upload",
        )
    image, filename = fields.image, fields.filename
    if image is None:
        encoded = next((merged[n][0] for n in IMAGE_FIELDS if n in merged), None)
        if encoded is None:
            raise BadUpload(400, "no_upload", "upload: no image in the request (field upload)")
        image = _from_base64(encoded, max_image_bytes)
    if not image:
        raise BadUpload(400, "no_upload", "upload: the image is empty")
    if len(image) > max_image_bytes:
        raise BadUpload(
            413, "image_too_large",
            f"upload: {len(image)} bytes, at most {max_image_bytes} (ingest.max_frame_bytes)",
        )
    regions = merged.get("regions") or merged.get("country") or []
    return Upload(
        image=image,
        filename=filename,
        regions=tuple(r for value in regions for r in value.split(",") if r.strip()),
        camera_id=_first(merged, "camera_id"),
        timestamp=_first(merged, "timestamp"),
        config=fields.config if fields.config is not None else _first(merged, "config"),
    )


def _first(fields: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = fields.get(name)
    return values[0] if values else None


def _media_type(content_type: str) -> tuple[str, dict[str, str]]:
    media, raw = parse_options_header(content_type)
    params = {
        k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw.items()
    }
    return media.decode("latin-1").lower(), params


def _ascii(data: bytes, what: str) -> str:
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise BadUpload(400, "bad_form", f"{what}: not ASCII (percent-encode it)") from None


def _query_pairs(text: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        raise BadUpload(400, "bad_form", f"more than {MAX_FIELDS} fields") from None


def _from_base64(text: str, max_image_bytes: int) -> bytes:
    """The bytes of a base64 image field; a form encoder's '+'-as-space and line breaks are
    forgiven, anything else not base64 is a ``BadUpload``."""
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    cleaned = "".join(text.split()) if "\n" in text or "\r" in text else text.replace(" ", "+")
    if len(cleaned) // 4 * 3 > max_image_bytes + 3:
        raise BadUpload(
            413, "image_too_large",
            f"upload: over {max_image_bytes} bytes once decoded (ingest.max_frame_bytes)",
        )
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise BadUpload(
            400, "bad_upload", "upload: neither a file part nor valid base64"
        ) from None


def _read_json(body: bytes, fields: _Fields) -> None:
    try:
        doc: Any = json.loads(body)
    except (ValueError, RecursionError):
        raise BadUpload(400, "bad_json", "body: not valid JSON") from None
    if not isinstance(doc, dict):
        raise BadUpload(400, "bad_json", "body: a JSON object was expected")
    for name, value in doc.items():
        if name == "config" and isinstance(value, dict):
            fields.config = value
            continue
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, (dict, list)):
                continue  # a nested value of a field this API does not read
            fields.add_text(str(name), "" if item is None else str(item))


def _read_multipart(body: bytes, boundary: str, fields: _Fields) -> None:
    if not boundary:
        raise BadUpload(400, "bad_form", "multipart/form-data without a boundary")
    headers: dict[bytes, bytes] = {}
    field_name, field_value = bytearray(), bytearray()
    chunks: list[bytes] = []
    ended = False

    def on_part_begin() -> None:
        headers.clear()
        chunks.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        field_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        field_value.extend(data[start:end])

    def on_header_end() -> None:
        headers[bytes(field_name).lower()] = bytes(field_value)
        field_name.clear()
        field_value.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        chunks.append(data[start:end])

    def on_part_end() -> None:
        _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        filename = disposition.get(b"filename")
        data = b"".join(chunks)
        if name in IMAGE_FIELDS and (filename is not None or data.startswith(_IMAGE_MAGIC)):
            fields.add_image(data, (filename or b"").decode("utf-8", "replace"))
        elif filename is None:
            try:
                fields.add_text(name, data.decode("utf-8"))
            except UnicodeDecodeError:
                raise BadUpload(400, "bad_field", f"{name}: not UTF-8 text") from None

    def on_end() -> None:
        nonlocal ended
        ended = True

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field,
        "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_part_data": on_part_data, "on_part_end": on_part_end, "on_end": on_end,
    })
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise BadUpload(400, "bad_form", f"multipart body: {exc}") from None
    if not ended:
        raise BadUpload(400, "bad_form", "multipart body: ends before its closing boundary")
