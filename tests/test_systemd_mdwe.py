"""The runtime stack works under the unit's ``MemoryDenyWriteExecute=yes``.

systemd 252 enforces that setting with a seccomp filter: ``mmap`` asking for write+exec,
``mprotect``/``pkey_mprotect`` adding exec, and ``shmat`` with ``SHM_EXEC`` fail with EPERM. A
JIT (XNNPACK's, if a build enabled it), an executable-stack library or a libffi without static
trampolines would then break on the target only. This test installs the same rules with
libseccomp's Python binding (Debian's ``python3-seccomp``, for the system interpreter), checks
they bite, then imports numpy, OpenCV, trio, paho and sqlite3, makes a ctypes callback, and runs
every TFLite model in ``models/`` through ai_edge_litert with its default XNNPACK delegate.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = Path("/usr/bin/python3")

SCRIPT = r'''
import errno, mmap, sys
import seccomp

PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000
f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
eperm = seccomp.ERRNO(errno.EPERM)
f.add_rule(eperm, "mmap",
           seccomp.Arg(2, seccomp.MASKED_EQ, PROT_WRITE | PROT_EXEC, PROT_WRITE | PROT_EXEC))
f.add_rule(eperm, "mprotect", seccomp.Arg(2, seccomp.MASKED_EQ, PROT_EXEC, PROT_EXEC))
f.add_rule(eperm, "pkey_mprotect", seccomp.Arg(2, seccomp.MASKED_EQ, PROT_EXEC, PROT_EXEC))
f.add_rule(eperm, "shmat", seccomp.Arg(2, seccomp.MASKED_EQ, SHM_EXEC, SHM_EXEC))
f.load()

import ctypes
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit("filter not active: W+X mmap allowed")
except PermissionError:
    pass
libc = ctypes.CDLL(None, use_errno=True)
page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE)
addr = ctypes.addressof(ctypes.c_char.from_buffer(page))
if libc.mprotect(ctypes.c_void_p(addr), 4096, mmap.PROT_READ | mmap.PROT_EXEC) == 0:
    sys.exit("filter not active: mprotect(PROT_EXEC) allowed")
print("filter active")

sys.path.extend(sys.argv[2:])
from pathlib import Path
import sqlite3
import cv2
import numpy as np
import paho.mqtt.client
import trio

cb = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda v: v + 1)
assert cb(41) == 42
ok, jpeg = cv2.imencode(".jpg", np.full((240, 320, 3), 128, np.uint8))
gray = cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2GRAY)
assert cv2.HOGDescriptor((64, 32), (16, 16), (8, 8), (8, 8), 9).compute(gray[:32, :64]).size
trio.run(trio.sleep, 0)
assert sqlite3.connect(":memory:").execute("select 1").fetchone() == (1,)
print("stack ok")

models = sorted(Path(sys.argv[1]).glob("*.tflite"))
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
    if not SYSTEM_PYTHON.exists():
        return False
    proc = subprocess.run(
        [str(SYSTEM_PYTHON), "-c",
         "import seccomp, sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True, text=True, timeout=30,
    )
    return proc.returncode == 0 and proc.stdout.strip() == "{}.{}".format(*sys.version_info[:2])


pytestmark = pytest.mark.skipif(
    not _seccomp_python(),
    reason="needs python3-seccomp for a system Python of the same version as this venv",
)


def test_stack_and_models_run_under_memory_deny_write_execute() -> None:
    site_dirs = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    models_dir = REPO / "models"
    proc = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", SCRIPT, str(models_dir), *site_dirs],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["filter active", "stack ok"]
    expected = sorted(p.name for p in models_dir.glob("*.tflite"))
    assert [line.split()[2] for line in lines[2:]] == expected


def test_unit_enables_memory_deny_write_execute() -> None:
    unit = (REPO / "systemd" / "edge-anpr.service").read_text()
    assert "\nMemoryDenyWriteExecute=yes\n" in unit
