"""The integrations written for Plate Recognizer, against the real appliance: ``edge-anpr serve``
as a subprocess with the HTTP API on loopback, the real models, real sockets.

Each test sends what that client sends (with ``requests``, the library those Python clients post
with, so the multipart body is encoded as theirs is) and reads what that client reads, as its
public source and docs show; the client code itself is not copied. A client "works" when every
field it reads is there, of the type it uses, and means what it shows:

- Home Assistant's ``platerecognizer`` custom component (robmarkcole/HASS-plate-recognizer)
  with ``server`` set: multipart ``upload`` (bytes: file name ``upload``), ``regions``,
  ``camera_id`` (the entity's name), ``mmc`` (``True``/``False``), ``config`` (a JSON text,
  ``{"region": "strict"}`` when so configured), ``Authorization: Token <api_token>``; reads each
  result's ``candidates[].plate``, ``plate``, ``score``, ``region.code``, ``vehicle.type``,
  ``box`` corners, with ``mmc`` each result's ``orientation`` list (``score``, ``orientation``),
  and, with a non-cloud server, ``usage.calls`` and ``usage.max_calls``;
- Plate Recognizer's ``plate_recognition.py`` in SDK mode (``-s URL``): ``URL/v1/plate-reader/``
  with ``upload`` (the file: its base name), ``regions``, ``config`` (``--engine-config``),
  ``camera_id``, and *no* ``Authorization``; it fails on a status outside 200-300, and with
  ``{"detection_mode": "vehicle"}`` (CSV output) reads the vehicle-first shape: ``plate.box``,
  ``plate.score``, ``plate.props.plate[].value/score``, ``plate.props.region``, ``vehicle.score/
  type/box``, ``vehicle.props.make_model/color/orientation``, and ``filename``, ``timestamp``,
  ``camera_id``, ``usage``, ``processing_time``;
- node-red-contrib-plate-recognizer: multipart text fields ``upload`` (base64), ``camera_id``,
  ``timestamp``, ``regions``, with the token; reads ``results[]`` (``box``, ``plate``,
  ``region.code/score``, ``vehicle.type/score/box``, ``score``, ``candidates``, ``dscore``) and
  the echoed ``camera_id`` and ``timestamp``;
- frigate_plate_recognizer: multipart ``upload`` (bytes), ``regions``, the token; accepts 200 or
  201, reads ``results[0].plate``, ``score`` and ``candidates[].plate/score``; on 429 it retries
  after ``Retry-After`` (urllib3's ``Retry``, as its HTTP session does).

The appliance allows ``127.0.0.1/32`` without a token (``http.allow``); the token-sending
clients connect from ``127.0.0.2`` (outside the allow list), so their token is checked.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import free_tcp_port, serve_http, write_serve_config
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from edge_anpr.assets import DEMO_DIR

pytestmark = pytest.mark.slow

TOKEN = "clients-token-0123456789"
EXPECTED = {name: v["plates"] for name, v in
            json.loads((DEMO_DIR / "expected.json").read_text()).items()}
OTHER_HOST = "127.0.0.2"
"""A loopback source address outside ``http.allow`` (Linux routes all of 127/8 to lo)."""


class _FromAddress(HTTPAdapter):
    """Connections from ``source`` (requests has no option for it; urllib3 has)."""

    def __init__(self, source: str, **kw: Any) -> None:
        self.source = source
        super().__init__(**kw)

    def init_poolmanager(self, *args: Any, **kw: Any) -> None:
        kw["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kw)


def session_from(source: str, retry: Retry | None = None) -> requests.Session:
    s = requests.Session()
    adapter = _FromAddress(source, max_retries=retry or 0)
    s.mount("http://", adapter)
    return s




def other_host_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 9), timeout=1,
                                      source_address=(OTHER_HOST, 0)):
            return True
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def start_serve(tmp_path: Path, http: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_tcp_port()
    config = write_serve_config(
        tmp_path / f"config-{port}.toml", port, TOKEN, tmp_path / f"outbox-{port}.sqlite",
        http=f'allow = ["127.0.0.1/32"]\n{http}',
    )
    log_path = tmp_path / f"serve-{port}.log"
    proc = serve_http(config, port, log_path)
    base = f"http://127.0.0.1:{port}"
    return proc, base, log_path


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def appliance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, base, _ = start_serve(tmp_path_factory.mktemp("clients"), "max_pending = 8")
    try:
        yield base
    finally:
        stop(proc)


def show(what: str, sent: dict[str, Any], read: Any) -> None:
    """The request a client sent and the fields it read (``pytest -s`` prints them)."""
    print(f"\n{what}\n  sent: {json.dumps(sent)}\n  read: {json.dumps(read)}")


# --- Home Assistant's platerecognizer component -----------------------------------------------


def home_assistant_scan(base: str, image: bytes, *, regions: list[str] | None, mmc: bool,
                        config: dict[str, Any]) -> tuple[requests.Response, dict[str, Any]]:
    """One scan as the component makes it with ``server`` set; the state and attributes it
    derives from the answer (the reads raise, as the component's do, on a missing field)."""
    with session_from(OTHER_HOST) as s:
        response = s.post(
            f"{base}/v1/plate-reader/",
            data={"regions": regions, "camera_id": "platerecognizer_gate", "mmc": mmc,
                  "config": json.dumps(config)},
            files={"upload": image},
            headers={"Authorization": f"Token {TOKEN}"}, timeout=60,
        )
    doc = response.json()
    results = doc["results"]
    plates = sorted({c["plate"] for r in results for c in r["candidates"]})
    orientations = sorted({o["orientation"] for r in results for o in r["orientation"]
                           if o["score"] >= 0.7}) if mmc else []
    vehicles = [{
        "plate": r["plate"], "confidence": r["score"], "region_code": r["region"]["code"],
        "vehicle_type": r["vehicle"]["type"],
        "box_y_centre": r["box"]["ymin"] + (r["box"]["ymax"] - r["box"]["ymin"]) / 2,
        "box_x_centre": r["box"]["xmin"] + (r["box"]["xmax"] - r["box"]["xmin"]) / 2,
    } for r in results]
    usage = doc["usage"]
    statistics = {**usage, "calls_remaining": usage["max_calls"] - usage["calls"]}
    return response, {"vehicles": vehicles, "plates": plates, "orientation": orientations,
                      "statistics": statistics}


@pytest.mark.skipif(not other_host_reachable(), reason="no 127.0.0.2 on this host")
@pytest.mark.parametrize("mmc", [False, True])
def test_home_assistant_component_scans_and_updates(appliance: str, mmc: bool) -> None:
    response, attrs = home_assistant_scan(
        appliance, (DEMO_DIR / "frame_01.jpg").read_bytes(), regions=None, mmc=mmc, config={})
    assert response.status_code == 201 and response.reason == "Created"
    (vehicle,) = attrs["vehicles"]
    assert vehicle["plate"] == "lql7367" and 0 < vehicle["confidence"] <= 1
    # the rendered US plate is read as from a US state (the region model's guess of which)
    assert vehicle["region_code"].startswith("us") and vehicle["vehicle_type"] == ""
    assert "lql7367" in attrs["plates"] and attrs["orientation"] == []
    stats = attrs["statistics"]
    assert stats["calls"] >= 1 and stats["calls_remaining"] > 0
    show(f"Home Assistant component (mmc={mmc})",
         {"data": {"camera_id": "platerecognizer_gate", "mmc": mmc, "config": "{}"},
          "files": {"upload": "frame_01.jpg bytes"}, "Authorization": "Token ..."}, attrs)


@pytest.mark.skipif(not other_host_reachable(), reason="no 127.0.0.2 on this host")
def test_home_assistant_region_strict_answers_only_plates_of_the_regions(appliance: str) -> None:
    """``region: strict`` with ``regions: [gb]``: the British plate is answered, the Dutch one
    (whose reading fits no British format) is not; without strict both are."""
    uk, dutch = (DEMO_DIR / "frame_07.jpg").read_bytes(), (DEMO_DIR / "frame_05.jpg").read_bytes()
    seen = {}
    for strict in (False, True):
        config = {"region": "strict"} if strict else {}
        for name, image in (("uk", uk), ("nl", dutch)):
            response, attrs = home_assistant_scan(appliance, image, regions=["gb"], mmc=False,
                                                  config=config)
            assert response.status_code == 201, response.text
            seen[(strict, name)] = [v["plate"] for v in attrs["vehicles"]]
    assert seen[(False, "uk")] == seen[(True, "uk")] == ["fe18iwc"]
    assert seen[(False, "nl")] == ["4kvx24"] and seen[(True, "nl")] == []
    show("Home Assistant component, regions [gb], config {\"region\": \"strict\"}",
         {"data": {"regions": ["gb"], "config": '{"region": "strict"}'}},
         {f"{'strict' if s else 'not strict'} {n}": p for (s, n), p in seen.items()})


# --- Plate Recognizer's plate_recognition.py, SDK mode -----------------------------------------


def sdk_post(base: str, path: Path, config: dict[str, Any]) -> requests.Response:
    """``plate_recognition.py -s URL --engine-config CONFIG --camera-id gate FILE``: no
    Authorization header in SDK mode."""
    with path.open("rb") as fp:
        return requests.post(
            base + "/v1/plate-reader/", files={"upload": fp},
            data={"regions": [], "config": json.dumps(config), "camera_id": "gate"},
            timeout=60,
        )


def sdk_vehicle_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The CSV rows the script makes of a ``detection_mode: vehicle`` answer: every field it
    reads, with the types it uses (dicts it calls ``.get`` on, lists it indexes)."""
    rows = []
    for result in doc.get("results", []):
        plate = result.get("plate")
        assert plate is None or isinstance(plate, dict), f"plate is {plate!r}, not an object"
        props = plate.get("props", {}) if plate else {}
        readings, regions = props.get("plate", []), props.get("region", [])
        top = readings[0] if readings else None
        vehicle = result.get("vehicle")
        if not vehicle:
            continue
        v_props = vehicle.get("props", {})
        rows.append({
            "filename": doc.get("filename"), "timestamp": doc.get("timestamp"),
            "camera_id": doc.get("camera_id"),
            "plate": top.get("value") if top else None,
            "score": top.get("score") if top else None,
            "region": regions[0].get("value") if regions else None,
            "dscore": plate.get("score") if plate else None,
            "box": plate.get("box") if plate else None,
            "candidates": [(c.get("value"), c.get("score")) for c in readings],
            "vehicle": (vehicle.get("score"), vehicle.get("type"), vehicle.get("box")),
            "model_make": v_props.get("make_model", []),
            "color": [(c.get("value"), c.get("score")) for c in v_props.get("color", [])],
            "orientation": [(o.get("value"), o.get("score"))
                            for o in v_props.get("orientation", [])],
            "usage": doc.get("usage", {}), "processing_time": doc.get("processing_time"),
        })
    return rows


def test_sdk_script_without_a_token_from_an_allowed_address(appliance: str) -> None:
    path = DEMO_DIR / "frame_00.jpg"
    response = sdk_post(appliance, path, {})
    assert 200 <= response.status_code <= 300, response.text
    doc = response.json()
    assert doc["filename"] == "frame_00.jpg" and doc["camera_id"] == "gate"
    assert [r["plate"] for r in doc["results"]] == ["815svn"]
    assert isinstance(doc["usage"]["calls"], int) and doc["processing_time"] > 0

    vehicle = sdk_post(appliance, path, {"detection_mode": "vehicle"})
    assert 200 <= vehicle.status_code <= 300, vehicle.text
    (row,) = sdk_vehicle_rows(vehicle.json())
    assert row["plate"] == "815svn" and row["filename"] == "frame_00.jpg"
    assert 0.5 < row["dscore"] <= 1 and row["box"]["xmax"] > row["box"]["xmin"]
    assert row["vehicle"] == (0.0, "", {"xmin": 0, "ymin": 0, "xmax": 0, "ymax": 0})
    assert row["model_make"] == row["color"] == row["orientation"] == []
    show("plate_recognition.py -s URL --engine-config '{\"detection_mode\":\"vehicle\"}'",
         {"data": {"regions": [], "config": '{"detection_mode": "vehicle"}',
                   "camera_id": "gate"}, "files": {"upload": "frame_00.jpg"},
          "Authorization": None}, row)


@pytest.mark.skipif(not other_host_reachable(), reason="no 127.0.0.2 on this host")
def test_sdk_script_from_outside_the_allow_list_needs_the_token(appliance: str) -> None:
    image = (DEMO_DIR / "frame_00.jpg").read_bytes()
    with session_from(OTHER_HOST) as s:
        refused = s.post(appliance + "/v1/plate-reader/", files={"upload": image}, timeout=60)
        taken = s.post(appliance + "/v1/plate-reader/", files={"upload": image}, timeout=60,
                       headers={"Authorization": f"Token {TOKEN}"})
    assert refused.status_code == 401 and refused.reason == "Unauthorized"
    assert refused.json() == {"detail": "Invalid token."}
    assert taken.status_code == 201


# --- node-red-contrib-plate-recognizer ---------------------------------------------------------


@pytest.mark.skipif(not other_host_reachable(), reason="no 127.0.0.2 on this host")
def test_node_red_node_base64_upload_with_camera_and_timestamp(appliance: str) -> None:
    b64 = base64.b64encode((DEMO_DIR / "frame_02.jpg").read_bytes()).decode()
    stamp = "2026-12-07T08:00:00.000Z"
    with session_from(OTHER_HOST) as s:
        response = s.post(appliance + "/v1/plate-reader/", files={
            "upload": (None, b64), "camera_id": (None, "driveway"),
            "timestamp": (None, stamp), "regions": (None, "br"),
        }, headers={"Authorization": f"Token {TOKEN}"}, timeout=60)
    assert 200 <= response.status_code < 300  # the node's first output
    doc = response.json()
    assert doc["camera_id"] == "driveway" and doc["timestamp"] == stamp
    read = [{
        "box": r["box"], "plate": r["plate"], "region": (r["region"]["code"],
                                                         r["region"]["score"]),
        "vehicle": (r["vehicle"]["type"], r["vehicle"]["score"], r["vehicle"]["box"]),
        "score": r["score"], "candidates": [(c["plate"], c["score"]) for c in r["candidates"]],
        "dscore": r["dscore"],
    } for r in doc["results"]]
    assert [r["plate"] for r in read] == ["wnr4w56"]
    scores = [c[1] for c in read[0]["candidates"]]
    assert scores == sorted(scores, reverse=True)
    show("node-red-contrib-plate-recognizer",
         {"multipart": {"upload": "base64 of frame_02.jpg", "camera_id": "driveway",
                        "timestamp": stamp, "regions": "br"}, "Authorization": "Token ..."},
         {"results": read, "camera_id": doc["camera_id"], "timestamp": doc["timestamp"]})


# --- frigate_plate_recognizer ------------------------------------------------------------------


def frigate_recognize(session: requests.Session, base: str, image: bytes
                      ) -> tuple[int, str | None, float | None, list[Any]]:
    response = session.post(base + "/v1/plate-reader/", data={"regions": ["us-ca"]},
                            files={"upload": image},
                            headers={"Authorization": f"Token {TOKEN}"}, timeout=60)
    if response.status_code not in (200, 201):
        return response.status_code, None, None, []
    results = response.json().get("results") or []
    if not results:
        return response.status_code, None, None, []
    top = results[0]
    return (response.status_code, top.get("plate"), top.get("score"),
            [(c.get("plate"), c.get("score")) for c in top.get("candidates") or []])


@pytest.mark.skipif(not other_host_reachable(), reason="no 127.0.0.2 on this host")
def test_frigate_plate_recognizer_reads_the_top_plate(appliance: str) -> None:
    with session_from(OTHER_HOST) as s:
        status, plate, score, candidates = frigate_recognize(
            s, appliance, (DEMO_DIR / "frame_04.jpg").read_bytes())
    assert status == 201 and plate == "2fe5568" and score is not None and 0 < score <= 1
    assert candidates[0][0] == plate
    show("frigate_plate_recognizer",
         {"data": {"regions": ["us-ca"]}, "files": {"upload": "frame_04.jpg bytes"},
          "Authorization": "Token ..."},
         {"plate": plate, "score": score, "candidates": candidates[:3]})


@pytest.mark.skipif(not other_host_reachable(), reason="no 127.0.0.2 on this host")
def test_frigate_backoff_on_429_follows_retry_after(tmp_path: Path) -> None:
    """Five events at once on an appliance with one place: the refused ones are 429 with a
    ``Retry-After`` that the client's retry session waits for; every event gets its plate."""
    proc, base, _ = start_serve(tmp_path, "max_pending = 1")
    image = (DEMO_DIR / "frame_04.jpg").read_bytes()
    try:
        def event(_: int) -> tuple[int, str | None, float | None, list[Any]]:
            retry = Retry(total=8, status_forcelist=(429,), allowed_methods=("POST",),
                          backoff_factor=0.5, respect_retry_after_header=True,
                          raise_on_status=False)
            with session_from(OTHER_HOST, retry) as s:
                return frigate_recognize(s, base, image)

        with ThreadPoolExecutor(5) as pool:
            outcomes = list(pool.map(event, range(5)))
        assert [o[:2] for o in outcomes] == [(201, "2fe5568")] * 5, outcomes
        with session_from(OTHER_HOST) as s:
            metrics = s.get(base + "/metrics", timeout=10).text
        refused = sum(float(line.split()[-1]) for line in metrics.splitlines()
                      if line.startswith("edge_anpr_http_requests_total")
                      and 'code="429"' in line)
        # the concurrency did hit the single place; each refusal said when to come back
        assert refused >= 1, metrics
        with session_from(OTHER_HOST) as s, ThreadPoolExecutor(3) as pool:
            raw = list(pool.map(lambda _: s.post(
                base + "/v1/plate-reader/", files={"upload": image}, timeout=60,
                headers={"Authorization": f"Token {TOKEN}"}), range(3)))
        too_many = [r for r in raw if r.status_code == 429]
        assert all(r.headers.get("Retry-After") == "1" for r in too_many)
        print(f"\nfrigate backoff: 5 events on max_pending = 1: {refused:g} answers 429 "
              "(Retry-After: 1), every event read 2fe5568")
    finally:
        stop(proc)
