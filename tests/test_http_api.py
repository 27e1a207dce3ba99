"""The HTTP API on a real pipeline in this process (real models, real loopback sockets):
both answer shapes, every refusal, the bounds (places, connections, body, time), 100-continue
and the shutdown drain. ``tests/test_http_e2e.py`` does the same through ``edge-anpr serve``.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio

from edge_anpr.app import Pipeline, running_pipeline
from edge_anpr.assets import DEMO_DIR
from edge_anpr.config import config_from_dict

TOKEN = "k" * 24
AUTH = {"Authorization": f"Token {TOKEN}"}
EXPECTED = json.loads((DEMO_DIR / "expected.json").read_text())


def jpeg(name: str = "frame_00.jpg") -> bytes:
    return (DEMO_DIR / name).read_bytes()


def plates(name: str) -> list[str]:
    return list(EXPECTED[name]["plates"])


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def appliance(**http: Any) -> AsyncIterator[tuple[Pipeline, httpx.AsyncClient]]:
    port = free_tcp_port()
    cfg = config_from_dict({
        "ingest": {"port": 0, "bind": "127.0.0.1"},
        "mqtt": {"enabled": False, "outbox_path": ":memory:"},
        "workers": {"count": 1},
        "cameras": {"gate": {"id": 3, "regions": ["sk"]}},
        "http": {"port": port, "token": TOKEN, "allow": [], **http},
    })
    async with running_pipeline(cfg) as (pipeline, _), httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", timeout=30
    ) as client:
        try:
            yield pipeline, client
        finally:
            pipeline.stop()


async def test_both_shapes_and_every_way_to_send_the_image() -> None:
    async with appliance() as (_, client):
        r = await client.post(
            "/v1/plate-reader/", headers=AUTH,
            files={"upload": ("car.jpg", jpeg(), "image/jpeg")},
            data={"regions": ["br", "us-ca"], "camera_id": "gate"},
        )
        assert r.status_code == 201, r.text
        doc = r.json()
        assert [x["plate"] for x in doc["results"]] == [p.lower() for p in plates("frame_00.jpg")]
        assert doc["filename"] == "car.jpg" and doc["camera_id"] == "gate"
        assert doc["results"][0]["vehicle"]["type"] == ""

        r = await client.post("/v2/recognize", headers=AUTH,
                              files={"image": ("x.jpg", jpeg("frame_01.jpg"), "image/jpeg")})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert [x["plate"] for x in doc["results"]] == plates("frame_01.jpg")
        assert doc["img_width"] == 1280 and len(doc["results"][0]["coordinates"]) == 4
        assert 0 <= doc["results"][0]["confidence"] <= 100

        b64 = base64.b64encode(jpeg("frame_01.jpg")).decode()
        for kw in ({"json": {"upload": b64}}, {"data": {"upload": b64}},
                   {"content": jpeg("frame_01.jpg"),
                    "headers": {**AUTH, "Content-Type": "image/jpeg"}}):
            r = await client.post("/v1/plate-reader", **{"headers": AUTH, **kw})  # type: ignore[arg-type]
            assert r.status_code == 201, r.text
            assert [x["plate"] for x in r.json()["results"]] == ["lql7367"]


async def test_refusals_are_json_and_keep_the_connection_usable() -> None:
    bomb = bytearray(jpeg())
    sof = bomb.index(b"\xff\xc0")
    bomb[sof + 5: sof + 9] = (12000).to_bytes(2, "big") * 2
    async with appliance(max_body_bytes=200_000) as (_, client):
        upload = {"upload": ("a.jpg", jpeg(), "image/jpeg")}
        cases = [
            (await client.post("/v1/plate-reader/", files=upload), 401),
            (await client.post("/v1/plate-reader/", files=upload,
                               headers={"Authorization": "Token wrong"}), 401),
            (await client.post("/v2/recognize", files=upload,
                               headers={"Authorization": f"Bearer {TOKEN}"}), 401),
            (await client.get("/v1/plate-reader/"), 405),
            (await client.post("/nowhere", files=upload), 404),
            (await client.post("/v1/plate-reader/", headers=AUTH,
                               files={"upload": ("a.jpg", b"\xff\xd8 broken", "image/jpeg")}), 400),
            (await client.post("/v1/plate-reader/", headers=AUTH, data={"regions": "br"}), 400),
            (await client.post("/v1/plate-reader/", headers=AUTH,
                               files={"upload": ("a.jpg", bytes(bomb), "image/jpeg")}), 413),
            (await client.post("/v1/plate-reader/", content=b"x" * 300_000,
                               headers={**AUTH, "Content-Type": "image/jpeg"}), 413),
            (await client.post("/v1/plate-reader/", content=b"hi",
                               headers={**AUTH, "Content-Type": "text/plain"}), 415),
        ]
        for response, status in cases:
            assert response.status_code == status, response.text
            assert "detail" in response.json()
        assert cases[0][0].headers["www-authenticate"] == "Token"
        r = await client.post("/v1/plate-reader/", headers=AUTH, files=upload)
        assert r.status_code == 201  # the same client, after all that


async def test_429_when_every_place_is_taken_then_served_again() -> None:
    async with appliance(max_pending=2) as (pipeline, client):
        assert pipeline.jobs is not None
        held = [pipeline.jobs.reserve(), pipeline.jobs.reserve()]
        r = await client.post("/v1/plate-reader/", headers=AUTH,
                              files={"upload": ("a.jpg", jpeg(), "image/jpeg")})
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        for ticket in held:
            assert ticket is not None
            pipeline.jobs.release(ticket)
        r = await client.post("/v1/plate-reader/", headers=AUTH,
                              files={"upload": ("a.jpg", jpeg(), "image/jpeg")})
        assert r.status_code == 201
        metrics = (await client.get("/metrics")).text
        assert 'edge_anpr_http_requests_total{code="429",endpoint="plate_reader"} 1.0' in metrics


async def raw(port: int, data: bytes, *, read_until: bytes = b"\r\n\r\n") -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(data)
    got = b""
    with trio.fail_after(10):
        while read_until not in got:
            chunk = await stream.receive_some(65536)
            if not chunk:
                break
            got += chunk
    await stream.aclose()
    return got


async def test_slow_client_and_100_continue() -> None:
    async with appliance(max_connections=2, timeout_s=0.5) as (pipeline, _):
        port = pipeline.http_port
        assert port is not None
        # a client that announces a body and stops sending: 408 after http.timeout_s
        head = (b"POST /v1/plate-reader/ HTTP/1.1\r\nHost: x\r\nAuthorization: Token " +
                TOKEN.encode() + b"\r\nContent-Type: image/jpeg\r\nContent-Length: 1000\r\n\r\n")
        reply = await raw(port, head + b"\xff\xd8")
        assert reply.startswith(b"HTTP/1.1 408"), reply
        # Expect: 100-continue is answered before the body is sent
        body = jpeg()
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(
            head.replace(b"1000", str(len(body)).encode()).replace(
                b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n"))
        with trio.fail_after(5):
            assert (await stream.receive_some(4096)).startswith(b"HTTP/1.1 100")
        await stream.send_all(body)
        got = b""
        with trio.fail_after(20):
            while b"lql" not in got and b"815svn" not in got:
                got += await stream.receive_some(65536)
        assert got.startswith(b"HTTP/1.1 201")
        await stream.aclose()


async def test_idle_connections_give_their_places_up_and_busy_ones_keep_them() -> None:
    """At ``http.max_connections``, a new connection closes the oldest idle one (a client that
    sent nothing); when every place is a request being served, the newcomer gets 429."""
    async with appliance(max_connections=2, timeout_s=5) as (pipeline, client):
        port = pipeline.http_port
        assert port is not None
        idle = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(2)]
        await trio.sleep(0.1)
        with trio.fail_after(1):
            r = await client.get("/health")
        assert r.status_code == 200
        with trio.fail_after(2):
            assert await idle[0].receive_some(100) == b""  # closed to make room, unanswered
        for s in idle:
            await s.aclose()
        await client.aclose()
        # two authorised requests whose bodies are slow hold both places: a third waits for
        # nothing and is told so
        head = (b"POST /v1/plate-reader/ HTTP/1.1\r\nHost: x\r\nAuthorization: Token " +
                TOKEN.encode() + b"\r\nContent-Type: image/jpeg\r\nContent-Length: 1000\r\n\r\n")
        busy = []
        for _ in range(2):
            s = await trio.open_tcp_stream("127.0.0.1", port)
            await s.send_all(head + b"\xff\xd8")
            busy.append(s)
        await trio.sleep(0.2)
        reply = await raw(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 429"), reply
        assert b"max_connections" in reply
        for s in busy:
            await s.aclose()


async def test_a_request_head_not_sent_in_time_is_answered_408() -> None:
    async with appliance(timeout_s=0.5) as (pipeline, _):
        port = pipeline.http_port
        assert port is not None
        started = trio.current_time()
        reply = await raw(port, b"GET /health HTTP/1.1\r\nHost: x\r\n")  # no blank line
        assert reply.startswith(b"HTTP/1.1 408"), reply
        assert b"http.timeout_s" in reply and trio.current_time() - started < 3
        assert (await raw(port, b"")).startswith(b"HTTP/1.1 408")  # nothing sent at all


async def test_head_is_answered_like_get_without_a_body(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with appliance() as (pipeline, client):
        port = pipeline.http_port
        assert port is not None
        get = await client.get("/health")
        for _ in range(20):
            head = await client.head("/health")  # keep-alive: the same connection each time
            assert head.status_code == 200 and head.content == b""
            assert int(head.headers["content-length"]) > 0
            assert head.headers["content-type"] == get.headers["content-type"]
        assert (await client.head("/metrics")).status_code == 200
        assert (await client.head("/nowhere")).status_code == 404
        refused = await client.head("/v1/plate-reader/")
        assert refused.status_code == 405 and refused.content == b""
        assert (await client.get("/health")).status_code == 200  # the connection still works
        reply = await raw(port, b"HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                          read_until=b"\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"\r\n\r\n"), reply
    assert not [r for r in caplog.records if r.levelno >= 40], caplog.text
    assert "Traceback" not in caplog.text


async def test_stop_answers_the_request_in_progress_and_health_reports_stages() -> None:
    async with appliance() as (pipeline, client):
        health = (await client.get("/health")).json()
        assert health["status"] == "ok"
        assert set(health["stages"]) == {"ingest", "worker-0", "events"}
        answers: list[int] = []

        async def post() -> None:
            r = await client.post("/v1/plate-reader/", headers=AUTH,
                                  files={"upload": ("a.jpg", jpeg(), "image/jpeg")})
            answers.append(r.status_code)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(post)
            with trio.fail_after(10):
                while not pipeline.queue.requests_queued:
                    await trio.sleep(0.001)
            pipeline.stop()  # the image is queued: it is read and answered
        assert answers == [201]
        with pytest.raises(httpx.ConnectError):
            await client.get("/health")  # nothing listens any more


@pytest.mark.parametrize("regions", [["uk"], ["gb", "us-ca"]])
async def test_a_format_never_puts_a_less_confident_reading_first(regions: list[str]) -> None:
    # Plate Recognizer treats regions as a guide: with UK formats asked for, each demo frame's
    # plate (a US, Brazilian, European or UK plate) is still answered as read, the first
    # candidate is the plate, and the candidates are sorted by score (issue 34: 2FE5568 was
    # answered ZFE5568 and GSNJ206 as GSN1206 with a lower score than the reading behind them)
    async with appliance() as (_, client):
        for name in sorted(EXPECTED):
            r = await client.post("/v1/plate-reader/", headers=AUTH,
                                  files={"upload": (name, jpeg(name), "image/jpeg")},
                                  data={"regions": regions})
            assert r.status_code == 201, r.text
            first = r.json()["results"][0]
            scores = [c["score"] for c in first["candidates"]]
            assert first["plate"] == plates(name)[0].lower(), (name, first["candidates"])
            assert first["candidates"][0] == {"score": first["score"], "plate": first["plate"]}
            assert scores == sorted(scores, reverse=True), (name, first["candidates"])
            right = [c["score"] for c in first["candidates"] if c["plate"] == first["plate"]]
            assert right == [max(scores)]
