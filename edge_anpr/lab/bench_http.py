"""``edge-anpr bench http``: a bounded loopback load on the HTTP API, and the load itself.

``load`` posts one image ``requests`` times to ``POST /v1/plate-reader/`` as multipart
``upload`` (what the integrations send), all at once over ``concurrency`` connections of one
httpx client (the ``test`` extra), and records per request the status, the wall time from
send to answer and the plates read. Only loopback addresses are loaded (``load`` refuses
others), and the number of requests is fixed: it stops by itself.

``bench_http`` runs the real pipeline in this process with the HTTP API on a free loopback port
(MQTT off, outbox in memory), loads it with a bundled 1280x720 demo frame, and prints the
statuses (201 answered, 429 refused because every ``http.max_pending`` place was taken), the
p50/p99 latency per request (all, and answered only), how many answers had the wrong plate, and
the process's peak RSS before and after. The end-to-end test uses ``load`` against
``edge-anpr serve`` (``tests/test_http_e2e.py``); figures go to docs/performance.md.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import resource
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import trio

from edge_anpr.app import run_trio, running_pipeline
from edge_anpr.assets import DEMO_DIR
from edge_anpr.config import Config


@dataclass
class LoadResult:
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)
    """Every request's time from send to answer (failed requests excluded)."""
    answered_s: list[float] = field(default_factory=list)
    """The same for the answered (2xx) requests only."""
    plates: list[list[str]] = field(default_factory=list)
    """The plates of each answered request."""
    errors: Counter[str] = field(default_factory=Counter)
    """Requests that got no HTTP answer, by exception type."""
    wall_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "requests": sum(self.statuses.values()) + sum(self.errors.values()),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": dict(self.errors),
            "p50_ms": _ms(percentile(self.latencies_s, 50)),
            "p99_ms": _ms(percentile(self.latencies_s, 99)),
            "answered_p50_ms": _ms(percentile(self.answered_s, 50)),
            "answered_p99_ms": _ms(percentile(self.answered_s, 99)),
            "wall_s": round(self.wall_s, 2),
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def percentile(values: list[float], pct: float) -> float | None:
    """The ``pct`` percentile by the nearest-rank method; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


async def load(
    host: str, port: int, image: bytes, *, requests: int = 200, concurrency: int = 200,
    token: str = "", timeout_s: float = 120.0,
) -> LoadResult:
    """Post ``image`` ``requests`` times, ``concurrency`` at once (module docstring)."""
    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"load goes to loopback addresses only, not {host}")
    result = LoadResult()
    headers = {"Authorization": f"Token {token}"} if token else {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    start = trio.Event()
    async with httpx.AsyncClient(
        base_url=f"http://{host}:{port}", limits=limits, timeout=timeout_s
    ) as client:

        async def one() -> None:
            await start.wait()
            sent = time.perf_counter()
            try:
                response = await client.post(
                    "/v1/plate-reader/", headers=headers,
                    files={"upload": ("frame.jpg", image, "image/jpeg")},
                )
            except httpx.HTTPError as exc:
                result.errors[type(exc).__name__] += 1
                return
            took = time.perf_counter() - sent
            result.statuses[response.status_code] += 1
            result.latencies_s.append(took)
            if response.is_success:
                result.answered_s.append(took)
                result.plates.append([r["plate"] for r in response.json()["results"]])

        limiter = trio.CapacityLimiter(concurrency)

        async def limited() -> None:
            async with limiter:
                await one()

        began = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(requests):
                nursery.start_soon(limited)
            await trio.sleep(0)
            start.set()
        result.wall_s = time.perf_counter() - began
    return result


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_http(
    cfg: Config, *, requests: int = 200, concurrency: int = 200, workers: int | None = None
) -> int:
    """``edge-anpr bench http``: 0 when every request got an answer and every answered one
    the frame's plate."""
    frame = "frame_00.jpg"
    image = (DEMO_DIR / frame).read_bytes()
    expected = json.loads((DEMO_DIR / "expected.json").read_text())[frame]["plates"]
    port = _free_tcp_port()
    cfg = dataclasses.replace(
        cfg,
        ingest=dataclasses.replace(cfg.ingest, port=0, bind="127.0.0.1"),
        mqtt=dataclasses.replace(cfg.mqtt, enabled=False, outbox_path=":memory:"),
        http=dataclasses.replace(
            cfg.http, port=port, bind="127.0.0.1",
            max_connections=max(cfg.http.max_connections, concurrency),
        ),
        workers=dataclasses.replace(cfg.workers, count=workers or cfg.workers.count),
    )
    outcome: dict[str, Any] = {}

    async def run() -> None:
        async with running_pipeline(cfg) as (pipeline, _):
            outcome["rss_before_mb"] = round(_peak_rss_mb(), 1)
            result = await load(
                "127.0.0.1", port, image, requests=requests, concurrency=concurrency,
                token=cfg.http.token,
            )
            outcome["rss_after_mb"] = round(_peak_rss_mb(), 1)
            outcome["workers"] = pipeline.workers
            outcome["result"] = result
            pipeline.stop()

    run_trio(run)
    result: LoadResult = outcome["result"]
    wrong = sum(1 for plates in result.plates if [p.upper() for p in plates] != expected)
    summary = {
        **result.summary(), "wrong_plates": wrong, "workers": outcome["workers"],
        "max_pending": cfg.http.max_pending, "image": f"{frame} (1280x720, {len(image)} bytes)",
        "peak_rss_mb": {"before": outcome["rss_before_mb"], "after": outcome["rss_after_mb"]},
    }
    print(json.dumps(summary, indent=2))
    print(f"http: {summary['statuses']} p50={summary['p50_ms']} ms p99={summary['p99_ms']} ms "
          f"(answered p50={summary['answered_p50_ms']} p99={summary['answered_p99_ms']} ms), "
          f"wrong plates {wrong}, peak RSS {outcome['rss_before_mb']} -> "
          f"{outcome['rss_after_mb']} MB")
    return 0 if not result.errors and not wrong else 1
