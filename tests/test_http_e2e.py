"""End to end: ``edge-anpr serve`` with ``[http] port`` set, as a subprocess, on loopback.

Real images (the bundled rendered demo frames, 1280x720 JPEGs) are posted with httpx and with
the README's curl line; both answer shapes must carry the right plates and a wrong token gets
401. Then a bounded load: 200 requests at once of one 1280x720 JPEG (``lab.bench_http.load``);
the service must answer every one (201 with the right plate, or 429 when every
``http.max_pending`` place is taken, counted), stay up, keep its peak memory bounded, count the
429s in ``/metrics`` (parsed by prometheus_client) and stop cleanly on SIGTERM. The latencies
are printed (``-s``), not asserted: this checks correctness, not speed.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio
from conftest import free_tcp_port, serve_http, write_serve_config
from prometheus_client.parser import text_string_to_metric_families

from edge_anpr.assets import DEMO_DIR
from edge_anpr.lab.bench_http import load

pytestmark = pytest.mark.slow

TOKEN = "e2e-token-0123456789abcdef"
EXPECTED = {name: v["plates"] for name, v in
            json.loads((DEMO_DIR / "expected.json").read_text()).items()}
RSS_GROWTH_LIMIT_MB = 200
"""Peak RSS the load may add to the service (measured: see the test's printed line)."""




def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    port = free_tcp_port()
    config = write_serve_config(
        tmp_path / "config.toml", port, TOKEN, tmp_path / "outbox.sqlite", workers=2,
        http="allow = []\nmax_pending = 8\nmax_connections = 256",
    )
    log_path = tmp_path / "serve.log"
    proc = serve_http(config, port, log_path)
    base = f"http://127.0.0.1:{port}"
    try:
        yield proc, base, log_path
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_answers_both_shapes_refuses_a_wrong_token_and_survives_a_load(
    service: tuple[subprocess.Popen[bytes], str, Path],
) -> None:
    proc, base, log_path = service
    auth = {"Authorization": f"Token {TOKEN}"}
    with httpx.Client(base_url=base, timeout=60) as client:
        right = 0
        for name, expected in sorted(EXPECTED.items()):
            image = (DEMO_DIR / name).read_bytes()
            pr = client.post("/v1/plate-reader/", headers=auth,
                             files={"upload": (name, image, "image/jpeg")})
            alpr = client.post("/v2/recognize", headers=auth,
                               files={"image": (name, image, "image/jpeg")})
            assert (pr.status_code, alpr.status_code) == (201, 200), (pr.text, alpr.text)
            pr_plates = [r["plate"].upper() for r in pr.json()["results"]]
            alpr_plates = [r["plate"] for r in alpr.json()["results"]]
            assert pr_plates == alpr_plates  # one reader behind both shapes
            right += sorted(pr_plates) == sorted(expected)
        # the same frames the demo reads 8 of 8 from over UDP
        assert right == len(EXPECTED), right

        wrong = client.post("/v1/plate-reader/", headers={"Authorization": "Token nope"},
                            files={"upload": ("a.jpg", b"\xff\xd8", "image/jpeg")})
        assert wrong.status_code == 401 and wrong.json() == {"detail": "Invalid token."}
        none = client.post("/v1/plate-reader/", files={"upload": ("a.jpg", b"x", "image/jpeg")})
        assert none.status_code == 401

    if shutil.which("curl"):
        out = subprocess.run(
            ["curl", "-sS", "-F", f"upload=@{DEMO_DIR / 'frame_01.jpg'}", "-F", "regions=us-ca",
             "-H", f"Authorization: Token {TOKEN}", f"{base}/v1/plate-reader/"],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout
        assert [r["plate"] for r in json.loads(out)["results"]] == ["lql7367"]

    image = (DEMO_DIR / "frame_00.jpg").read_bytes()
    before_mb = peak_rss_mb(proc.pid)
    result = trio.run(lambda: load("127.0.0.1", int(base.rsplit(":", 1)[1]), image,
                                   requests=200, concurrency=200, token=TOKEN))
    after_mb = peak_rss_mb(proc.pid)
    summary = result.summary()
    print(f"\nhttp load: {summary}; service peak RSS {before_mb:.0f} -> {after_mb:.0f} MB")

    assert proc.poll() is None, log_path.read_text()
    assert not result.errors, result.errors
    assert sum(result.statuses.values()) == 200
    assert set(result.statuses) <= {201, 429}, result.statuses
    assert result.statuses[429] > 0 and result.statuses[201] >= 8
    assert all(plates == ["815svn"] for plates in result.plates)
    assert after_mb - before_mb < RSS_GROWTH_LIMIT_MB

    with httpx.Client(base_url=base, timeout=30) as client:
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        text = client.get("/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }
    key = ("edge_anpr_http_requests_total", (("code", "429"), ("endpoint", "plate_reader")))
    assert samples[key] == result.statuses[429]
    assert samples[("edge_anpr_frames_total", (("outcome", "recognized"),))] >= (
        result.statuses[201] + 2 * len(EXPECTED) + 1)

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, log_path.read_text()
    assert "Token" not in log_path.read_text() and TOKEN not in log_path.read_text()
