"""The runtime stack works inside the unit's seccomp sandbox.

systemd enforces three of the unit's settings with seccomp filters installed before the service
starts; a library that needs something they forbid fails on the target only, often at model
load. This test installs the same rules with libseccomp's Python binding (Debian's
``python3-seccomp``, for the system interpreter, reading this venv's site-packages), proves
each one bites, then exercises what the service does:

- ``SystemCallFilter=@system-service`` + ``~@privileged @resources`` with
  ``SystemCallErrorNumber=EPERM``: the allow-list is expanded with ``systemd-analyze
  syscall-filter`` from the installed systemd, so it is the real set;
- ``MemoryDenyWriteExecute=yes`` (systemd 252's rules: W+X ``mmap``, ``mprotect`` or
  ``pkey_mprotect`` adding exec, ``shmat`` with ``SHM_EXEC``);
- ``RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX`` (others fail with EAFNOSUPPORT).

Exercised under them: numpy, OpenCV (JPEG, HoG), a ctypes callback, threads, trio receiving UDP,
an SQLite file (the outbox), name resolution without netlink, a real MQTT connect and QoS 1
publish with paho to a mosquitto started by the test, and every TFLite model in
``edge_anpr/models/`` through ai_edge_litert with its default XNNPACK delegate.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "systemd" / "edge-anpr.service"
SYSTEM_PYTHON = Path("/usr/bin/python3")
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

SCRIPT = r'''
import errno, json, mmap, os, socket, sys
import seccomp

allowed, models_dir, broker_port, workdir, *site_dirs = sys.argv[1:]
allowed = json.loads(allowed)

# 1. MemoryDenyWriteExecute=yes
PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000
mdwe = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
eperm = seccomp.ERRNO(errno.EPERM)
mdwe.add_rule(eperm, "mmap",
              seccomp.Arg(2, seccomp.MASKED_EQ, PROT_WRITE | PROT_EXEC, PROT_WRITE | PROT_EXEC))
mdwe.add_rule(eperm, "mprotect", seccomp.Arg(2, seccomp.MASKED_EQ, PROT_EXEC, PROT_EXEC))
mdwe.add_rule(eperm, "pkey_mprotect", seccomp.Arg(2, seccomp.MASKED_EQ, PROT_EXEC, PROT_EXEC))
mdwe.add_rule(eperm, "shmat", seccomp.Arg(2, seccomp.MASKED_EQ, SHM_EXEC, SHM_EXEC))

# 2. RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
families = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
nosupport = seccomp.ERRNO(errno.EAFNOSUPPORT)
keep = {socket.AF_UNIX, socket.AF_INET, socket.AF_INET6}
for family in range(0, max(keep) + 1):
    if family not in keep:
        families.add_rule(nosupport, "socket", seccomp.Arg(0, seccomp.EQ, family))
families.add_rule(nosupport, "socket", seccomp.Arg(0, seccomp.GT, max(keep)))

# 3. SystemCallFilter=@system-service ~@privileged @resources, SystemCallErrorNumber=EPERM
calls = seccomp.SyscallFilter(defaction=eperm)
unknown = 0
for name in allowed:
    try:
        calls.add_rule(seccomp.ALLOW, name)
    except (RuntimeError, ValueError, OSError):
        unknown += 1  # not a system call on this architecture
for f in (mdwe, families, calls):
    f.load()

import ctypes
failures = []
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    failures.append("W+X mmap allowed")
except PermissionError:
    pass
libc = ctypes.CDLL(None, use_errno=True)
page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE)
addr = ctypes.addressof(ctypes.c_char.from_buffer(page))
if libc.mprotect(ctypes.c_void_p(addr), 4096, mmap.PROT_READ | mmap.PROT_EXEC) == 0:
    failures.append("mprotect(PROT_EXEC) allowed")
try:
    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    failures.append("AF_NETLINK allowed")
except OSError as exc:
    if exc.errno != errno.EAFNOSUPPORT:
        failures.append(f"AF_NETLINK: {exc}")
try:
    os.nice(1)  # @resources
    failures.append("nice() allowed")
except PermissionError:
    pass
if failures:
    sys.exit("filters not active: " + ", ".join(failures))
print("filters active")

sys.path.extend(site_dirs)
import sqlite3, threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import cv2
import numpy as np
import paho.mqtt.client as mqtt
import trio

cb = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda v: v + 1)
assert cb(41) == 42
ok, jpeg = cv2.imencode(".jpg", np.full((240, 320, 3), 128, np.uint8))
gray = cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2GRAY)
assert cv2.HOGDescriptor((64, 32), (16, 16), (8, 8), (8, 8), 9).compute(gray[:32, :64]).size
with ThreadPoolExecutor(4) as pool:
    products = pool.map(lambda i: np.ones((64, 64)).dot(np.ones((64, 64)))[0, 0], range(8))
    assert sum(products) == 512
db = sqlite3.connect(os.path.join(workdir, "outbox.sqlite"))
db.execute("pragma journal_mode=wal")
db.execute("create table if not exists m (id integer primary key, body blob)")
db.execute("insert into m (body) values (?)", (b"x" * 1000,))
db.commit()
assert socket.getaddrinfo("localhost", 1883, type=socket.SOCK_STREAM)

async def udp_roundtrip():
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    sender = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await sender.sendto(b"frame", sock.getsockname())
    with trio.fail_after(5):
        data, _ = await sock.recvfrom(2048)
    assert data == b"frame"
    result = await trio.to_thread.run_sync(lambda: threading.current_thread().name)
    assert result
trio.run(udp_roundtrip)
print("stack ok")

client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sandbox-test")
client.connect("127.0.0.1", int(broker_port), keepalive=10)
client.loop_start()
info = client.publish("edge-anpr/sandbox", b"hello", qos=1)
info.wait_for_publish(timeout=10)
assert info.is_published()
client.disconnect()
client.loop_stop()
print("mqtt ok")

models = sorted(Path(models_dir).glob("*.tflite"))
if models:
    from ai_edge_litert.interpreter import Interpreter
for model in models:
    it = Interpreter(model_path=str(model), num_threads=2)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], np.zeros(inp["shape"], inp["dtype"]))
    it.invoke()
    print("model ok", model.name, it.get_tensor(it.get_output_details()[0]["index"]).shape)
'''


def _seccomp_python() -> bool:
    if not SYSTEM_PYTHON.exists() or shutil.which("systemd-analyze") is None:
        return False
    proc = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import seccomp, sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True, text=True, timeout=30,
    )
    return proc.returncode == 0 and proc.stdout.strip() == "{}.{}".format(*sys.version_info[:2])


pytestmark = pytest.mark.skipif(
    not _seccomp_python(),
    reason="needs systemd-analyze and python3-seccomp for a system Python of this venv's version",
)


def expand(group: str, seen: set[str] | None = None) -> set[str]:
    """System calls of a systemd group, nested groups included, per the installed systemd."""
    seen = set() if seen is None else seen
    seen.add(group)
    out = subprocess.run(
        ["systemd-analyze", "syscall-filter", group], capture_output=True, text=True,
        timeout=30, check=True,
    ).stdout
    calls: set[str] = set()
    for line in out.splitlines()[1:]:
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        if item.startswith("@"):
            if item not in seen:
                calls |= expand(item, seen)
        else:
            calls.add(item)
    return calls


def unit_filter() -> tuple[set[str], set[str]]:
    """The unit's SystemCallFilter lines as (allowed groups/calls, denied groups/calls)."""
    allow: set[str] = set()
    deny: set[str] = set()
    for value in re.findall(r"^SystemCallFilter=(.*)$", UNIT.read_text(), re.M):
        target = deny if value.startswith("~") else allow
        target.update(value.lstrip("~").split())
    return allow, deny


def resolve(items: set[str]) -> set[str]:
    calls: set[str] = set()
    for item in items:
        calls |= expand(item) if item.startswith("@") else {item}
    return calls


@pytest.fixture
def broker() -> Iterator[int]:
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed (make test installs it)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen([MOSQUITTO, "-p", str(port)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "mosquitto failed"
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_unit_filter_is_what_this_test_emulates() -> None:
    text = UNIT.read_text()
    assert unit_filter() == ({"@system-service"}, {"@privileged", "@resources"})
    assert "\nMemoryDenyWriteExecute=yes\n" in text
    assert "\nSystemCallErrorNumber=EPERM\n" in text
    assert "\nRestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\n" in text


def test_stack_runs_inside_the_sandbox(broker: int, tmp_path: Path) -> None:
    allow, deny = unit_filter()
    allowed = sorted(resolve(allow) - resolve(deny))
    assert "sched_setaffinity" not in allowed and "setuid" not in allowed  # the deny list bit
    site_dirs = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    models_dir = REPO / "edge_anpr" / "models"
    proc = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", SCRIPT, json.dumps(allowed), str(models_dir), str(broker),
         str(tmp_path), *site_dirs],
        capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:3] == ["filters active", "stack ok", "mqtt ok"]
    expected = sorted(p.name for p in models_dir.glob("*.tflite"))
    assert expected, f"no models in {models_dir}"
    assert [line.split()[2] for line in lines[3:]] == expected
