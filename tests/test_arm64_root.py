"""The Ansible role applied to a Raspberry Pi's userland: a Debian bookworm arm64 root (the base
of the 64-bit Raspberry Pi OS) run under qemu-user, reading exactly as the host does.

The root is made once with ``debootstrap --arch=arm64 --variant=minbase`` (with python3,
python3-venv, python3-pip and ca-certificates: what the role's ``os.yml`` installs on a Pi) and
kept, with pip's download cache inside it, under ``~/.cache/edge-anpr-test/`` (or
``$EDGE_ANPR_TEST_CACHE``), outside the checkout: the first run takes minutes, later ones reuse
it. Before each run the role's own paths in it are removed; its venv too when it is more than a
week old or was made for other dependencies (``venv_reusable``), so pip then installs them all
from the index again.
The root's pip trusts the certificate authorities this machine's pip trusts (``/etc/pip.conf``
in the root names a copy of them), so that it reaches the index wherever this machine does.

The playbook runs on this machine with the inventory host ``pi`` reached through the ``local``
connection, its Python interpreter being ``chroot ROOT /usr/bin/python3`` (arm64, emulated as a
Pi 4's Cortex-A72, ``QEMU_CPU``): each module runs inside the root, where ``/`` is the Pi's
``/``, so the role applies with its default paths (``edge_anpr_root=/``). Files the role
copies travel through a temporary folder that has the same path on both sides (a folder in the
root, and a link to it in this machine's ``/tmp``). ``edge_anpr_manage_os`` is off (no systemd
in a chroot); the wheel is this checkout's, its dependencies come from the package index as on
a Pi (pip in the root has none of this machine's pip settings but its trusted CAs, above).

Then, inside the root, ``edge-anpr recognize --json`` on the demo frames must give exactly the
plates and confidences it gives on the host, and ``edge-anpr demo`` must read 8 of 8.

When the machine cannot do this, every test here skips with one line saying why: not root
(chroot), no ``binfmt_misc``, no enabled ``qemu-aarch64`` handler, no debootstrap, or the
Debian archive or the package index unreachable. ``scripts/ensure-system-packages`` (``make
test``) installs and enables what it can.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "edge_anpr" / "assets" / "demo"
BIN = Path(sys.executable).parent
PLAYBOOK = shutil.which("ansible-playbook", path=str(BIN)) or shutil.which("ansible-playbook")
CACHE = Path(
    os.environ.get("EDGE_ANPR_TEST_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edge-anpr-test"
)
SUITE = "bookworm"
MIRROR = os.environ.get("EDGE_ANPR_DEBIAN_MIRROR", "http://deb.debian.org/debian")
PACKAGES = "python3,python3-venv,python3-pip,ca-certificates"
INDEX = "https://pypi.org/simple/"
BINFMT = Path("/proc/sys/fs/binfmt_misc")
HOST_CA = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
"""The certificate authorities this machine's pip trusts, given to pip in the root."""
VENV = "opt/edge-anpr/venv"
ROLE_PATHS = ("opt/edge-anpr/dist", VENV, "etc/edge-anpr", "etc/systemd/system/edge-anpr.service")
"""What the role writes with the variables used here: removed before each run (the venv only
when ``venv_reusable`` says so)."""
VENV_MAX_AGE_S = 7 * 24 * 3600
CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
QEMU_CPU = "cortex-a72"
"""The emulated core: a Raspberry Pi 4's (ARMv8.0, NEON, no dot product or SVE). qemu's default
(``max``) has SVE, with which OpenCV and LiteRT take paths that emulate about ten times slower
(8 s of CPU a frame against 0.9 s here) and that no Pi has."""

pytestmark = pytest.mark.slow


def reachable(url: str) -> str | None:
    """None when ``url`` answers, else why not (one line)."""
    try:
        urllib.request.urlopen(url, timeout=20).close()
    except (urllib.error.URLError, OSError) as exc:
        return f"{url} unreachable ({exc})"
    return None


def why_not(root_ready: bool) -> str | None:
    """The one reason this machine cannot run an arm64 root, or None."""
    if PLAYBOOK is None:
        return "ansible-playbook missing: pip install -e '.[test]'"
    if os.geteuid() != 0:
        return "needs root (chroot into the arm64 root)"
    if os.uname().machine != "aarch64":
        if not (BINFMT / "status").exists():
            return f"binfmt_misc is not mounted at {BINFMT}: run scripts/ensure-system-packages"
        handler = BINFMT / "qemu-aarch64"
        if not handler.exists() or handler.read_text().split("\n", 1)[0] != "enabled":
            return ("no enabled qemu-aarch64 binfmt handler: run scripts/ensure-system-packages "
                    "(qemu-user-static, binfmt-support)")
    if not root_ready:
        if shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists():
            return "debootstrap is not installed: run scripts/ensure-system-packages"
        if why := reachable(f"{MIRROR}/dists/{SUITE}/Release"):
            return f"the Debian archive is needed for the first arm64 root: {why}"
    if why := reachable(INDEX + "pip/"):
        return f"the package index is needed inside the arm64 root: {why}"
    return None


def chroot(root: Path, *argv: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside the root with a Pi's plain environment."""
    return subprocess.run(
        ["chroot", str(root), "/usr/bin/env", "-i", f"PATH={CHROOT_PATH}", "HOME=/root",
         "LANG=C.UTF-8", f"QEMU_CPU={QEMU_CPU}", *argv],
        capture_output=True, text=True, timeout=timeout,
    )


def make_root(base: Path) -> Path:
    """The cached root, made with debootstrap when it is not there yet (under nice: minutes)."""
    root = base / "root"
    if (root / ".edge-anpr-complete").exists():
        return root
    partial = base / "root.partial"
    shutil.rmtree(partial, ignore_errors=True)
    proc = subprocess.run(
        ["nice", "-n", "10", "debootstrap", "--arch=arm64", "--variant=minbase",
         f"--include={PACKAGES}", SUITE, str(partial), MIRROR],
        capture_output=True, text=True, timeout=1800,
    )
    assert proc.returncode == 0, f"debootstrap failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    (partial / ".edge-anpr-complete").write_text(f"{SUITE} arm64 {PACKAGES}\n")
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    return root


def venv_reusable(root: Path, wheel: Path) -> bool:
    """Whether the venv a previous run left may stay: made less than ``VENV_MAX_AGE_S`` ago for
    a wheel with the same dependencies. Installing numpy, OpenCV and LiteRT under emulation
    takes minutes; a kept venv is what a Pi deployed again has (the role still installs this
    run's wheel into it). Otherwise it goes, and pip installs everything from the index."""
    stamp = root / VENV / ".edge-anpr-test-deps"
    with zipfile.ZipFile(wheel) as whl:
        (meta,) = [n for n in whl.namelist() if n.endswith(".dist-info/METADATA")]
        # The run-time dependencies only: the extras' (test, train) are never in the venv.
        deps = "".join(line + "\n" for line in whl.read(meta).decode().splitlines()
                       if line.startswith("Requires-Dist:") and "extra ==" not in line)
    fresh_enough = stamp.exists() and time.time() - stamp.stat().st_mtime < VENV_MAX_AGE_S
    if fresh_enough and stamp.read_text() == deps:
        return True
    # Written now, kept only if this run's apply succeeds (``ArmRoot.stamp``).
    (root / ".edge-anpr-test-deps.next").write_text(deps)
    return False


class ArmRoot:
    """The arm64 root, its interpreter wrapper, and the folder the playbook works in."""

    def __init__(self, root: Path, work: Path, wheel: Path) -> None:
        self.root = root
        self.work = work
        self.wheel = wheel
        self.fresh = not venv_reusable(root, wheel)
        for rel in ROLE_PATHS:
            path = root / rel
            if path == root / VENV and not self.fresh:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")  # pip resolves names
        # Trust what this machine trusts (a site may inspect TLS with a CA of its own, as a
        # Pi's owner would add it); nothing else of this machine's pip settings goes in.
        shutil.copy(HOST_CA, root / "etc" / "ssl" / "host-ca-certificates.crt")
        (root / "etc" / "pip.conf").write_text(
            "[global]\ncert = /etc/ssl/host-ca-certificates.crt\n"
        )
        # A folder with one path on both sides: in the root, and linked from this machine's /tmp.
        name = f"edge-anpr-arm64-{os.getpid()}-{time.monotonic_ns()}"
        self.exchange = Path("/tmp") / name
        inside = root / "tmp" / name
        inside.mkdir(parents=True)
        self.exchange.symlink_to(inside)
        self.python = work / "pi-python3"
        self.python.write_text(
            "#!/bin/sh\n"
            "# The Pi's python3: this arm64 root's, run under qemu-user inside it.\n"
            f"exec chroot {root} /usr/bin/env PATH={CHROOT_PATH} HOME=/root LANG=C.UTF-8 "
            f'QEMU_CPU={QEMU_CPU} /usr/bin/python3 "$@"\n'
        )
        self.python.chmod(0o755)
        self.inventory = work / "inventory.ini"
        self.inventory.write_text(
            "[edge_anpr]\n"
            f"pi ansible_connection=local ansible_become=false "
            f"ansible_python_interpreter={self.python} ansible_remote_tmp={self.exchange}\n"
        )

    def stamp(self) -> None:
        """After a successful apply onto a fresh venv: note which dependencies it holds."""
        pending = self.root / ".edge-anpr-test-deps.next"
        if self.fresh and pending.exists():
            pending.replace(self.root / VENV / ".edge-anpr-test-deps")

    def close(self) -> None:
        self.exchange.unlink(missing_ok=True)
        shutil.rmtree(self.root / "tmp" / self.exchange.name, ignore_errors=True)

    def apply(self) -> subprocess.CompletedProcess[str]:
        extra = self.work / "vars.json"
        extra.write_text(json.dumps({
            "edge_anpr_manage_os": False,
            "edge_anpr_source": str(self.wheel),
            "edge_anpr_python": "/usr/bin/python3",
            "edge_anpr_device_name": "pi",
            "edge_anpr_cameras": {"gate": {"id": 1, "key": "a key of sixteen+ bytes"}},
            "edge_anpr_mqtt_enabled": False,
        }))
        # The modules inherit the playbook's environment: only what a plain login has, so
        # that none of this machine's settings (pip's mirror, CA bundle variables naming files
        # that differ in the root) reaches the Pi.
        env = {k: os.environ[k] for k in ("HOME", "TMPDIR", "USER") if k in os.environ}
        env |= {
            "LANG": "C.UTF-8",
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_PIPELINING": "1",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        return subprocess.run(
            [str(PLAYBOOK), "-i", str(self.inventory), str(REPO / "ansible" / "playbook.yml"),
             "-e", f"@{extra}"],
            capture_output=True, text=True, timeout=1500, env=env, cwd=self.work,
        )


@pytest.fixture(scope="module")
def arm_root(
    tmp_path_factory: pytest.TempPathFactory, wheel: Path
) -> Iterator[tuple[ArmRoot, float]]:
    """The root with the role applied; the second item is how long the apply took (s)."""
    base = CACHE / f"{SUITE}-arm64"
    if why := why_not((base / "root" / ".edge-anpr-complete").exists()):
        pytest.skip(f"arm64 root not tested: {why}")
    base.mkdir(parents=True, exist_ok=True)
    with (base / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one run at a time uses the cached root
        arm = ArmRoot(make_root(base), tmp_path_factory.mktemp("arm64"), wheel)
        try:
            started = time.monotonic()
            proc = arm.apply()
            took = time.monotonic() - started
            assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
            arm.stamp()
            yield arm, took
        finally:
            arm.close()


def reads(stdout: str) -> dict[str, list[tuple[str, float]]]:
    """``recognize --json`` output as file name -> [(plate, confidence)]."""
    result: dict[str, list[tuple[str, float]]] = {}
    for line in stdout.splitlines():
        item: dict[str, Any] = json.loads(line)
        result[Path(item["image"]).name] = [
            (p["plate"], p["confidence"]) for p in item["plates"]
        ]
    return result


def test_role_installs_arm64_wheels_into_the_root(arm_root: tuple[ArmRoot, float]) -> None:
    arm, took = arm_root
    print(f"\nrole applied to the arm64 root in {took:.0f} s "
          f"({'a new venv' if arm.fresh else 'the venv of an earlier run kept'})")
    proc = chroot(arm.root, "/opt/edge-anpr/venv/bin/python", "-c",
                  "import platform, cv2, numpy, ai_edge_litert, edge_anpr; "
                  "print(platform.machine(), numpy.__version__, cv2.__version__, "
                  "edge_anpr.__file__)")
    assert proc.returncode == 0, proc.stderr
    machine, _numpy, _cv2, where = proc.stdout.split()
    assert machine == "aarch64"
    assert where.startswith("/opt/edge-anpr/venv/")
    # The compiled dependencies pip chose are aarch64 wheels.
    site = arm.root / "opt/edge-anpr/venv/lib"
    wheels = {w.parent.name: w.read_text() for w in site.glob("python3*/site-packages/*/WHEEL")}
    compiled = {name: text for name, text in wheels.items() if "Root-Is-Purelib: false" in text}
    assert len(compiled) >= 3, sorted(wheels)  # numpy, opencv, ai-edge-litert at least
    assert all("aarch64" in text for text in compiled.values()), compiled
    config = arm.root / "etc/edge-anpr/config.toml"
    assert 'name = "pi"' in config.read_text()


def test_recognize_in_the_root_reads_exactly_as_the_host(
    arm_root: tuple[ArmRoot, float], tmp_path: Path
) -> None:
    arm, _ = arm_root
    frames = sorted(p.name for p in DEMO.glob("*.jpg"))
    config = tmp_path / "config.toml"
    shutil.copy(arm.root / "etc/edge-anpr/config.toml", config)  # the one the role wrote
    host = subprocess.run(
        [sys.executable, "-m", "edge_anpr", "recognize", "--json", "--config", str(config),
         *frames], capture_output=True, text=True, timeout=300, cwd=DEMO,
    )
    assert host.returncode == 0, host.stderr
    inside = arm.root / "tmp" / arm.exchange.name / "frames"
    shutil.copytree(DEMO, inside)
    started = time.monotonic()
    pi = chroot(arm.root, "/bin/sh", "-c",
                f"cd /tmp/{arm.exchange.name}/frames && exec /opt/edge-anpr/venv/bin/edge-anpr "
                f"recognize --json --config /etc/edge-anpr/config.toml {' '.join(frames)}")
    took = time.monotonic() - started
    assert pi.returncode == 0, pi.stderr
    host_reads, pi_reads = reads(host.stdout), reads(pi.stdout)
    print(f"\narm64 root, {len(frames)} frames in {took:.0f} s; reads (plate, confidence):")
    for name in frames:
        print(f"  {name}: host {host_reads[name]}  arm64 {pi_reads[name]}")
    assert pi_reads == host_reads
    expected = json.loads((DEMO / "expected.json").read_text())
    assert {n: [p for p, _ in r] for n, r in host_reads.items()} == {
        n: e["plates"] for n, e in expected.items()
    }


def test_demo_in_the_root_reads_8_of_8(arm_root: tuple[ArmRoot, float]) -> None:
    arm, _ = arm_root
    started = time.monotonic()
    proc = chroot(arm.root, "/opt/edge-anpr/venv/bin/edge-anpr", "demo")
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = proc.stdout.splitlines()[-1]
    print(f"\narm64 root, edge-anpr demo in {took:.0f} s: {summary}")
    assert summary == "demo: read 8 of 8 plates in the bundled frames", proc.stdout[-3000:]


def test_a_machine_without_emulation_is_told_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The skip reasons, one line each, for a machine without binfmt_misc or without the handler.
    if os.geteuid() != 0 or PLAYBOOK is None or os.uname().machine == "aarch64":
        pytest.skip("the reasons before the binfmt_misc check apply here")
    monkeypatch.setattr(sys.modules[__name__], "BINFMT", tmp_path)
    assert why_not(True) == (
        f"binfmt_misc is not mounted at {tmp_path}: run scripts/ensure-system-packages"
    )
    (tmp_path / "status").write_text("enabled\n")
    (tmp_path / "qemu-aarch64").write_text("disabled\ninterpreter /usr/libexec/qemu-binfmt/x\n")
    reason = why_not(True)
    assert reason is not None and reason.startswith("no enabled qemu-aarch64 binfmt handler")
    assert "\n" not in reason
