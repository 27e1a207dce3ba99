"""Slow and silent connections against ``edge-anpr serve`` (a subprocess, loopback only).

1,100 connections from 127.0.0.2 that send half a request head and then nothing (slowloris),
against a service run under a soft limit of 1,024 open files (systemd's default), with the
default ``http.max_connections`` and with one above what that limit allows. Then, from
127.0.0.1, a posted image with the token must be answered within 2 s and ``/health`` within
1 s, the service must log at most 5 lines a second and never a traceback, and it must keep file
descriptors for the rest of the appliance. With the larger setting, a second round lowers the
running service's limit below the files it holds (as if something else had taken them): accept
fails with EMFILE, which must be counted, logged rate-limited, and cost the legitimate clients
nothing but an idle connection closed for them.

The test raises its own soft limit (it holds the 1,100 client sockets) and bounds its time.
"""

from __future__ import annotations

import os
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import free_tcp_port, serve_http, write_serve_config

from edge_anpr.assets import DEMO_DIR

pytestmark = pytest.mark.slow

TOKEN = "slowloris-token-0123456789"
SLOW = 1100
SERVER_FILES = 1024
HEAD = b"POST /v1/plate-reader/ HTTP/1.1\r\nHost: appliance\r\nContent-Type: image/jpeg\r\n"
"""A request head that never ends (no blank line)."""




def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def log_lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines()


@pytest.fixture
def own_files_limit() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * SLOW + 512
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.skip(f"the test needs {want} open files, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def slow_connections(port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.connect(("127.0.0.1", port))
        s.sendall(HEAD)
        socks.append(s)
    return socks


def timed(fn: object, *args: object, **kw: object) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = fn(*args, **kw)  # type: ignore[operator]
    return response, time.monotonic() - started


def legitimate_clients(base: str) -> tuple[float, float, dict[str, int]]:
    """Seconds to answer a posted image (with the token) and /health; /health's connection
    counters."""
    jpeg = (DEMO_DIR / "frame_00.jpg").read_bytes()
    posted, post_s = timed(
        httpx.post, f"{base}/v1/plate-reader/", timeout=10,
        headers={"Authorization": f"Token {TOKEN}"},
        files={"upload": ("car.jpg", jpeg, "image/jpeg")},
    )
    assert posted.status_code == 201, posted.text
    assert posted.json()["results"], posted.text
    health, health_s = timed(httpx.get, f"{base}/health", timeout=10)
    assert health.status_code == 200, health.text
    return post_s, health_s, health.json()["http"]["connections"]


@pytest.mark.parametrize("max_connections", [32, 4096], ids=["default", "over-the-file-limit"])
def test_slow_connections_never_starve_token_holders_nor_flood_the_log(
    tmp_path: Path, own_files_limit: None, max_connections: int,
) -> None:
    port = free_tcp_port()
    config = write_serve_config(tmp_path / "config.toml", port, TOKEN, tmp_path / "outbox.sqlite",
                                http=f"max_connections = {max_connections}")
    log_path = tmp_path / "serve.log"

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (SERVER_FILES, SERVER_FILES))

    proc = serve_http(config, port, log_path, preexec_fn=low_limit)
    base = f"http://127.0.0.1:{port}"
    socks: list[socket.socket] = []
    try:
        lines_before = len(log_lines(log_path))
        started = time.monotonic()

        socks = slow_connections(port, SLOW)
        time.sleep(1.0)  # let the service accept what it will
        post_s, health_s, conns = legitimate_clients(base)
        print(f"\n1,100 slow connections: posted image {post_s:.3f} s, /health {health_s:.3f} s,"
              f" {conns}, service fds {open_fds(proc.pid)}")
        assert post_s <= 2.0 and health_s <= 1.0
        assert conns["cap"] == min(max_connections, SERVER_FILES - 128)
        assert conns["open"] <= conns["cap"] and conns["evicted"] >= SLOW - conns["cap"]
        assert open_fds(proc.pid) < SERVER_FILES - 64  # room left for the rest of the appliance

        if max_connections > SERVER_FILES:
            # Something else takes the files: the limit drops below what the service holds.
            resource.prlimit(proc.pid, resource.RLIMIT_NOFILE,
                             (open_fds(proc.pid) - 100, SERVER_FILES))
            socks += slow_connections(port, 200)
            time.sleep(1.0)
            post_s, health_s, conns = legitimate_clients(base)
            print(f"out of files: posted image {post_s:.3f} s, /health {health_s:.3f} s, "
                  f"{conns}")
            assert post_s <= 2.0 and health_s <= 1.0
            assert conns["accept_errors"] > 0

        elapsed = time.monotonic() - started
        lines = log_lines(log_path)[lines_before:]
        print(f"{len(lines)} log lines in {elapsed:.1f} s")
        assert len(lines) <= 5 * elapsed, "\n".join(lines[:40])
        assert not [line for line in lines if "Traceback" in line or " ERROR " in line], \
            "\n".join(lines[:40])
        if max_connections > SERVER_FILES:
            assert any("http accept failed" in line for line in lines)
            assert any("http_connections_capped" in line for line in log_lines(log_path))
    finally:
        for s in socks:
            s.close()
        proc.kill()
        proc.wait()
