"""Real systemd: readiness, the watchdog restart, and the unit's sandbox, without booting.

A systemd *user* manager runs inside private mount and PID namespaces (``unshare``) whose
``/run`` is a fresh tmpfs holding what PID 1 would have created (``/run/systemd/system`` and the
``inaccessible`` nodes the Protect*= settings bind over paths). Nothing outside the namespaces
changes, and everything in them dies with the driver, even on a timeout. In it:

- a ``Type=notify`` + ``WatchdogSec=2`` service using ``SystemdNotifier``/``run_watchdog`` is
  "activating" until READY=1, then "running" with our STATUS text, and once its health check
  turns false systemd kills and restarts it (NRestarts grows);
- the shipped unit, with only ``User=``/``Group=``/``WorkingDirectory=`` dropped (a user
  manager cannot switch users) and ExecStart pointed at a probe, starts and reports READY while
  the probe checks from inside what the sandbox allows: read-only /etc and /opt, no /root, no
  W+X memory, no netlink, no nice(), private /dev; and that numpy, OpenCV, trio with a UDP
  socket, every TFLite model in ``edge_anpr/models/`` and a write to ``$STATE_DIRECTORY`` all work.

The service interpreter is the system ``/usr/bin/python3`` reading this venv's site-packages:
the venv's own interpreter may live under /root (pyenv), which ``ProtectHome=yes`` hides; the
Ansible role builds the production venv from the system python3 for that reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "systemd" / "edge-anpr.service"
SYSTEMD = Path("/usr/lib/systemd/systemd")
SYSTEM_PYTHON = Path("/usr/bin/python3")


def _can_run() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs root on Linux (a private mount namespace with a tmpfs /run)"
    if not SYSTEMD.exists() or shutil.which("unshare") is None or not SYSTEM_PYTHON.exists():
        return "needs /usr/lib/systemd/systemd, unshare and /usr/bin/python3"
    version = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import sys; print('{}.{}'.format(*sys.version_info[:2]))"],
        capture_output=True, text=True, timeout=30,
    ).stdout.strip()
    if version != "{}.{}".format(*sys.version_info[:2]):
        return f"/usr/bin/python3 is {version}, this venv's packages are for another version"
    return None


_SKIP = _can_run()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_SKIP is not None, reason=_SKIP or ""),
]

# Runs inside `unshare -m`: a fresh /run, a user manager, then the scenario given as $1.
DRIVER = r"""
set -eu
work="$1"; scenario="$2"
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/systemd/system /run/xdg /run/probe /run/cfg/systemd/user /run/state
chmod 700 /run/xdg
mkdir /run/systemd/inaccessible && cd /run/systemd/inaccessible
mkdir dir && touch reg && mkfifo fifo && mknod chr c 0 0 && mknod blk b 0 0
/usr/bin/python3 -c "import socket; socket.socket(socket.AF_UNIX).bind('sock')"
chmod 0000 dir reg fifo chr blk sock && cd /
cp "$work"/probe/* /run/probe/
cp -r "$work"/units/* /run/cfg/systemd/user/
# Not /run/user/0: ProtectHome=yes hides /run/user, and with it a user manager's notify
# socket (a system manager's is /run/systemd/notify, which stays visible).
export XDG_RUNTIME_DIR=/run/xdg XDG_CONFIG_HOME=/run/cfg XDG_STATE_HOME=/run/state
/usr/lib/systemd/systemd --user >"$work/manager.log" 2>&1 &
manager=$!
trap 'kill $manager 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -S /run/xdg/systemd/private ] && break; sleep 0.1; done
show() { echo "== $1"; systemctl --user show "$2" -p ActiveState -p SubState -p StatusText \
  -p NRestarts -p Result -p ExecMainStatus; }
case "$scenario" in
watchdog)
  systemctl --user start --no-block probe.service
  sleep 0.3; show early probe.service
  for _ in $(seq 50); do
    [ "$(systemctl --user show probe.service -p SubState --value)" = running ] && break
    sleep 0.1
  done
  show ready probe.service
  sleep 7; show later probe.service
  systemctl --user stop probe.service; show stopped probe.service
  ;;
hardened)
  systemctl --user start edge-anpr.service || true
  show started edge-anpr.service
  # A user manager's StateDirectory= is under $XDG_STATE_HOME or, before systemd 254,
  # $XDG_CONFIG_HOME: both are in /run here.
  echo "== result"; cat "$(find /run/state /run/cfg -name result.json | head -1)" || true; echo
  echo "== log"; cat /run/probe/out.log || true
  systemctl --user stop edge-anpr.service; show stopped edge-anpr.service
  ;;
esac
"""

WATCHDOG_PROBE = r"""
import sys, time
sys.path[:0] = sys.argv[1:]
import trio
from edge_anpr.system.notify import SystemdNotifier, run_watchdog

start = time.monotonic()
notifier = SystemdNotifier.from_environ()

async def main():
    await trio.sleep(1.0)  # "loading models": systemd must still say activating
    notifier.ready("probe up")
    async with trio.open_nursery() as nursery:
        # Healthy for 2.5 s, then hung: the pings stop and systemd must restart us.
        await nursery.start(run_watchdog, notifier, lambda: time.monotonic() - start < 2.5)

trio.run(main)
"""

WATCHDOG_UNIT = """[Service]
Type=notify
NotifyAccess=main
WatchdogSec=2
Restart=on-failure
RestartSec=1
ExecStart={python} /run/probe/watchdog.py {paths}
"""

HARDENED_PROBE = r"""
import errno, json, mmap, os, signal, socket, sys
sys.path[:0] = sys.argv[2:]
from pathlib import Path
from edge_anpr.system.notify import SystemdNotifier

notifier = SystemdNotifier.from_environ()
notifier.status("probing")
result = {}

def attempt(name, fn):
    try:
        fn()
        result[name] = "ok"
    except OSError as exc:
        result[name] = errno.errorcode.get(exc.errno, str(exc.errno))

attempt("write_etc", lambda: open("/etc/edge-anpr-probe", "w"))
attempt("write_opt", lambda: open("/opt/edge-anpr-probe", "w"))
attempt("write_work", lambda: open(sys.argv[1] + "/edge-anpr-probe", "w"))
attempt("list_root", lambda: os.listdir("/root"))
attempt("wx_mmap", lambda: mmap.mmap(-1, 4096, prot=7))
attempt("netlink", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0))
attempt("packet", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
attempt("nice", lambda: os.nice(1))
attempt("video", lambda: open("/dev/video0", "rb"))
result["dev"] = sorted(os.listdir("/dev"))

import cv2
import numpy as np
import trio
ok, jpeg = cv2.imencode(".jpg", np.full((240, 320, 3), 128, np.uint8))
assert cv2.imdecode(jpeg, cv2.IMREAD_COLOR).shape == (240, 320, 3)

async def udp():
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await sock.bind(("0.0.0.0", 0))
    out = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await out.sendto(b"frame", ("127.0.0.1", sock.getsockname()[1]))
    with trio.fail_after(5):
        return (await sock.recvfrom(64))[0].decode()

result["udp"] = trio.run(udp)
models = sorted(Path(sys.argv[1], "edge_anpr", "models").glob("*.tflite"))
if models:
    from ai_edge_litert.interpreter import Interpreter
result["models"] = []
for model in models:
    it = Interpreter(model_path=str(model), num_threads=2)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], np.zeros(inp["shape"], inp["dtype"]))
    it.invoke()
    result["models"].append(model.name)
state = os.environ["STATE_DIRECTORY"]
attempt("write_state", lambda: Path(state, "outbox.sqlite").write_bytes(b"x"))
Path(state, "result.json").write_text(json.dumps(result))
notifier.ready("probe ready")

def stop(*_):
    notifier.stopping("probe stopping")
    sys.exit(0)

signal.signal(signal.SIGTERM, stop)
while True:
    signal.pause()
"""


def run_driver(tmp_path: Path, scenario: str) -> str:
    script = tmp_path / "driver.sh"
    script.write_text(DRIVER)
    proc = subprocess.run(
        ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "--kill-child",
         "--propagation", "private", "bash", str(script), str(tmp_path),
         scenario],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr + (tmp_path / "manager.log").read_text()
    return proc.stdout


def sections(output: str) -> dict[str, str]:
    parts = re.split(r"^== (\w+)$", output, flags=re.M)
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}


def props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def search_path() -> str:
    dirs = [str(REPO), *sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})]
    return " ".join(dirs)


def test_watchdog_restarts_a_hung_service(tmp_path: Path) -> None:
    (tmp_path / "probe").mkdir()
    (tmp_path / "units").mkdir()
    (tmp_path / "probe" / "watchdog.py").write_text(WATCHDOG_PROBE)
    (tmp_path / "units" / "probe.service").write_text(
        WATCHDOG_UNIT.format(python=SYSTEM_PYTHON, paths=search_path())
    )
    out = sections(run_driver(tmp_path, "watchdog"))
    early, ready, later = props(out["early"]), props(out["ready"]), props(out["later"])
    # Type=notify: not started until READY=1 arrives (the probe waits 1 s first).
    assert (early["ActiveState"], early["SubState"]) == ("activating", "start")
    assert (ready["ActiveState"], ready["SubState"]) == ("active", "running")
    assert ready["StatusText"] == "probe up"
    assert ready["NRestarts"] == "0"
    # Healthy for 2.5 s, then no pings: killed after WatchdogSec=2, restarted after 1 s.
    assert int(later["NRestarts"]) >= 1
    assert props(out["stopped"])["ActiveState"] == "inactive"


def test_shipped_unit_sandbox_from_inside(tmp_path: Path) -> None:
    (tmp_path / "probe").mkdir()
    (tmp_path / "units").mkdir()
    (tmp_path / "probe" / "hardened.py").write_text(HARDENED_PROBE)
    unit = UNIT.read_text()
    unit = re.sub(r"^(User|Group|WorkingDirectory)=.*\n", "", unit, flags=re.M)
    unit, n = re.subn(
        r"^ExecStart=.*$",
        f"ExecStart={SYSTEM_PYTHON} /run/probe/hardened.py {REPO} {search_path()}",
        unit, flags=re.M,
    )
    assert n == 1
    (tmp_path / "units" / "edge-anpr.service").write_text(unit)
    # No journald in the namespace: keep the probe's output, and fail fast if it hangs. The
    # checkout and its venv are bound in read-only, as an installation under /opt would be
    # visible: a clone under /tmp is otherwise hidden by the unit's PrivateTmp=yes.
    dropin = tmp_path / "units" / "edge-anpr.service.d"
    dropin.mkdir()
    (dropin / "test.conf").write_text(
        "[Service]\nStandardOutput=file:/run/probe/out.log\n"
        "StandardError=file:/run/probe/out.log\nTimeoutStartSec=40\n"
        f"BindReadOnlyPaths={search_path()}\n"
    )
    out = sections(run_driver(tmp_path, "hardened"))
    started = props(out["started"])
    assert (started["ActiveState"], started["SubState"]) == ("active", "running"), out["log"]
    assert started["StatusText"] == "probe ready"
    result = json.loads(out["result"])
    assert result["write_etc"] == "EROFS"  # ProtectSystem=strict
    assert result["write_opt"] == "EROFS"
    assert result["write_work"] == "EROFS"
    assert result["list_root"] in ("EACCES", "ENOENT")  # ProtectHome=yes
    assert result["wx_mmap"] == "EPERM"  # MemoryDenyWriteExecute=yes
    assert result["netlink"] == "EAFNOSUPPORT"  # RestrictAddressFamilies=
    assert result["packet"] == "EAFNOSUPPORT"
    assert result["nice"] == "EPERM"  # SystemCallFilter=~@resources
    assert result["video"] == "ENOENT"  # PrivateDevices=yes
    assert "vda" not in result["dev"] and "sda" not in result["dev"]
    assert {"null", "urandom"} <= set(result["dev"])
    assert result["udp"] == "frame"
    shipped = sorted(p.name for p in (REPO / "edge_anpr" / "models").glob("*.tflite"))
    assert shipped and result["models"] == shipped
    assert result["write_state"] == "ok"  # StateDirectory= is the writable exception
    assert props(out["stopped"])["ActiveState"] == "inactive"
