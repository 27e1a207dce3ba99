"""What each request asks for and what it is answered (pure: request values in, replies out).

The server shell (``http.server``) calls, in order: ``classify`` (the endpoint, or 404/405),
``authorized`` (the token, or a client in ``http.allow``; 401), then for a recognition
``prepare`` (the body into a ``Job`` for a worker, or 400/413/415) and, once a worker has
answered (or the time is up), ``answer``.
Errors are JSON: ``{"error": <code>, "detail": <one line>}``; a missing or wrong token is
``{"detail": "Invalid token."}`` with ``WWW-Authenticate: Token``, as Plate Recognizer answers.
"""

from __future__ import annotations

import dataclasses
import datetime
import hmac
import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal

from edge_anpr.config import Config
from edge_anpr.http.engine import EngineConfig, parse_engine_config
from edge_anpr.http.regions import reader_regions
from edge_anpr.http.shapes import detector_score, openalpr_json, plate_reader_json
from edge_anpr.http.uploads import BadUpload, Upload, parse_upload
from edge_anpr.plates.formats import fits_any
from edge_anpr.values import PlateRead
from edge_anpr.vision.imagesize import image_size
from edge_anpr.vision.jobs import JobResult

Endpoint = Literal["plate_reader", "openalpr", "health", "metrics"]
JSON = "application/json"
ENDPOINTS: dict[str, tuple[Endpoint, str]] = {
    "/v1/plate-reader/": ("plate_reader", "POST"),
    "/v1/plate-reader": ("plate_reader", "POST"),
    "/v2/recognize": ("openalpr", "POST"),
    "/v2/recognize/": ("openalpr", "POST"),
    "/health": ("health", "GET"),
    "/metrics": ("metrics", "GET"),
}
"""Path -> (endpoint, its method). Plate Recognizer's path is taken with and without its
trailing slash (clients differ); ``/v2/recognize`` is OpenALPR's cloud API path."""
RECOGNITION: frozenset[Endpoint] = frozenset({"plate_reader", "openalpr"})


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False
    """Close the connection after this reply."""


def json_reply(status: int, obj: Any, **kw: Any) -> Reply:
    return Reply(status, json.dumps(obj, separators=(",", ":")).encode(), **kw)


def error_reply(status: int, error: str, detail: str, **kw: Any) -> Reply:
    return json_reply(status, {"error": error, "detail": detail}, **kw)


def classify(method: str, path: str) -> Endpoint | Reply:
    """The endpoint ``path`` names, or the 404/405 reply. HEAD is not served."""
    found = ENDPOINTS.get(path)
    if found is None:
        return error_reply(404, "not_found", f"no endpoint {path[:100]!r}; see docs/http.md")
    endpoint, allowed = found
    if method != allowed:
        return error_reply(
            405, "method_not_allowed", f"{path} takes {allowed}", headers=(("Allow", allowed),)
        )
    return endpoint


def reason(status: int) -> str:
    """The status line's reason phrase (``201 Created``); '' for a code HTTP does not name."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def authorized(
    endpoint: Endpoint, authorization: str | None, token: str, *,
    peer: str = "", allow: Sequence[str] = (),
) -> bool:
    """True when ``endpoint`` needs no token (``/health``, ``/metrics``, or none configured),
    the client's address ``peer`` is in a network of ``allow`` (``http.allow``: clients written
    for Plate Recognizer's on-premise SDK send no token), or ``authorization`` is
    ``Token <token>`` (compared in constant time)."""
    if not token or endpoint not in RECOGNITION:
        return True
    if peer and allowed_peer(peer, allow):
        return True
    scheme, _, credential = (authorization or "").strip().partition(" ")
    return scheme.lower() == "token" and hmac.compare_digest(
        credential.strip().encode("utf-8", "replace"), token.encode("utf-8")
    )


def allowed_peer(peer: str, allow: Sequence[str]) -> bool:
    """``peer`` (an IP address; an IPv4-mapped IPv6 one counts as its IPv4) is in one of the
    networks ``allow`` (checked by the config loader; a bad entry matches nothing)."""
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for network in allow:
        try:
            if address in ipaddress.ip_network(network, strict=False):
                return True
        except ValueError:
            continue
    return False


def unauthorized() -> Reply:
    return json_reply(401, {"detail": "Invalid token."},
                      headers=(("WWW-Authenticate", "Token"),))


def saturated(what: str) -> Reply:
    """429: every place for a posted image is taken (or every connection)."""
    return error_reply(429, "too_many_requests", f"{what}; try again shortly",
                       headers=(("Retry-After", "1"),))


@dataclass(frozen=True, slots=True)
class Job:
    """A posted image ready for a worker, and what its answer needs."""

    endpoint: Endpoint
    upload: Upload
    camera: str
    """The configured camera ``camera_id`` names ('' for none): its ROI, plate widths and
    regions apply."""
    regions: tuple[str, ...]
    """The reader's regions from the request's codes; () = the camera's."""
    width: int
    height: int
    engine: EngineConfig = field(default_factory=EngineConfig)
    """Plate Recognizer's engine options of the request (``http.engine``)."""


def prepare(
    endpoint: Endpoint, body: bytes, content_type: str, query: str, cfg: Config
) -> Job | Reply:
    """The request's image checked against the frame limits (bytes, then the pixels its
    header announces: nothing is decoded here), or the error reply."""
    try:
        upload = parse_upload(
            body, content_type, query, max_image_bytes=cfg.ingest.max_frame_bytes
        )
        engine = parse_engine_config(upload.config)
    except BadUpload as exc:
        return error_reply(exc.status, exc.error, exc.detail)
    size = image_size(upload.image)
    if size is None:
        return error_reply(
            400, "bad_upload", "upload: not a JPEG, PNG or BMP image, or cut off before its size"
        )
    width, height = size
    if width * height > cfg.ingest.max_frame_pixels:
        return error_reply(
            413, "too_many_pixels",
            f"upload: {width}x{height} pixels, at most {cfg.ingest.max_frame_pixels} "
            "(ingest.max_frame_pixels)",
        )
    regions, _ignored = reader_regions(upload.regions)
    camera = upload.camera_id if upload.camera_id in cfg.cameras else ""
    return Job(endpoint, upload, camera or "", regions, width, height, engine)


def engine_filter(reads: Sequence[PlateRead], engine: EngineConfig, regions: Sequence[str]
                  ) -> list[PlateRead]:
    """``reads`` as the engine options keep them (``http.engine``): under ``region: strict`` a
    read whose plate (its answered reading) fits no format of ``regions`` (the regions the image
    was read with) is left out, and a kept read keeps only the candidates that fit;
    ``threshold_d``/``threshold_o`` leave out reads whose ``dscore``/``score`` are under them."""
    kept: list[PlateRead] = []
    strict = engine.region_strict and any(r != "generic" for r in regions)
    for read in reads:
        if strict:
            if not fits_any(read.text.text, regions):
                continue
            fitting = tuple(c for c in read.text.candidates if fits_any(c.text, regions))
            read = dataclasses.replace(
                read, text=dataclasses.replace(read.text, candidates=fitting)
            )
        if detector_score(read.detector_score) < engine.threshold_d:
            continue
        if read.text.confidence < engine.threshold_o:
            continue
        kept.append(read)
    return kept


def answer(
    job: Job, result: JobResult | None, cfg: Config, *, now_s: float, calls: int = 0
) -> Reply:
    """The reply to ``job`` once its worker answered, or (``result`` None) when the time ran
    out: 504. ``now_s`` is the wall clock (Unix seconds) for the answer's timestamp;
    ``calls`` the recognitions answered so far, this one included (``usage.calls``)."""
    if result is None:
        return error_reply(
            504, "timeout", f"not recognised within http.timeout_s ({cfg.http.timeout_s:g} s)"
        )
    if result.outcome == "undecodable":
        return error_reply(400, "bad_upload", "upload: the image does not decode")
    if result.outcome == "too_large":
        return error_reply(413, "too_many_pixels", "upload: too many pixels")
    if result.outcome == "failed":
        return error_reply(500, "recognition_failed", "recognition failed (logged); a bug")
    regions = job.regions or cfg.regions_of(job.camera)
    reads = engine_filter(result.reads, job.engine, regions)
    if job.endpoint == "openalpr":
        return json_reply(200, openalpr_json(
            reads, regions=regions,
            top_n=cfg.reader.top_n, processing_ms=result.recognition_ms,
            epoch_ms=int(now_s * 1000), width=job.width, height=job.height,
            requested_regions=job.upload.regions,
        ))
    return json_reply(201, plate_reader_json(
        reads, processing_ms=result.recognition_ms,
        timestamp=job.upload.timestamp or _iso(now_s), filename=job.upload.filename,
        camera_id=job.upload.camera_id, requested_regions=job.upload.regions, calls=calls,
        vehicle_mode=job.engine.vehicle_mode,
    ))


def _iso(now_s: float) -> str:
    moment = datetime.datetime.fromtimestamp(now_s, tz=datetime.timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
