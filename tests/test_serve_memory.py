"""Memory bounded by configuration, on a real ``edge-anpr serve`` (default settings but its
outbox and port) fed by two real ``edge-anpr send`` processes on loopback: frames of 10
million pixels, the most ``ingest.max_frame_pixels`` lets through, from two unauthenticated
legacy senders. The resident memory of the service, sampled from /proc, stays within 700 MB
(the unit's ``MemoryMax`` is 800M; docs/configuration.md, "Memory")."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import cv2

from edge_anpr.assets import DEMO_DIR

LIMIT_MB = 700


def _pump(stream: IO[str], sink: queue.Queue[str]) -> None:
    for line in stream:
        sink.put(line)


def _rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` and its children (the appliance processes, if any)."""
    total = 0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for p in [pid, *map(int, children)]:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        total += next(int(ln.split()[1]) for ln in status.splitlines()
                      if ln.startswith("VmRSS:"))
    return total


def test_two_legacy_senders_of_10_megapixel_frames_stay_within_700_mb(tmp_path: Path) -> None:
    scene = cv2.imread(str(DEMO_DIR / "frame_00.jpg"))
    big = cv2.resize(scene, (3162, 3162), interpolation=cv2.INTER_CUBIC)
    ok, buf = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    image = tmp_path / "big.jpg"
    image.write_bytes(buf.tobytes())
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[device]\nstats_interval_s = 0.5\n[mqtt]\noutbox_path = '
                   f'"{tmp_path / "outbox.sqlite"}"\n')
    serve = subprocess.Popen(
        [sys.executable, "-m", "edge_anpr", "serve", "--stdout", "--port", "0", "--no-mqtt",
         "--config", str(cfg)],
        text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    out: queue.Queue[str] = queue.Queue()
    err: queue.Queue[str] = queue.Queue()
    assert serve.stdout is not None and serve.stderr is not None
    threading.Thread(target=_pump, args=(serve.stdout, out), daemon=True).start()
    threading.Thread(target=_pump, args=(serve.stderr, err), daemon=True).start()
    senders: list[subprocess.Popen[str]] = []
    peak_kb = 0
    recognized = 0
    try:
        port = 0
        deadline = time.monotonic() + 60
        while not port and time.monotonic() < deadline:
            assert serve.poll() is None
            try:
                line = err.get(timeout=0.2)
            except queue.Empty:
                continue
            if "serving udp=" in line:
                port = int(line.rsplit(":", 1)[1])
        assert port
        senders = [
            subprocess.Popen(
                [sys.executable, "-m", "edge_anpr", "send", str(image), "--port", str(port),
                 "--format", "legacy", "--fps", "5", "--loop"],
                text=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            for _ in range(2)
        ]
        # Until each worker has had several of them (or long enough for the old code's first
        # two, 5-6 s each), sampling the memory every 20 ms.
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and recognized < 12:
            assert serve.poll() is None
            peak_kb = max(peak_kb, _rss_kb(serve.pid))
            try:
                obj = json.loads(out.get(timeout=0.02))
            except queue.Empty:
                continue
            if obj.get("type") == "stats":
                recognized = obj["frames_recognized"]
    finally:
        for s in senders:
            s.kill()
            s.wait()
        serve.kill()
        serve.wait()
    print(f"peak RSS {peak_kb // 1024} MB, {recognized} frames of 10 Mpx recognized")
    assert recognized >= 4, "the frames were not recognized: nothing was measured"
    assert peak_kb // 1024 <= LIMIT_MB
