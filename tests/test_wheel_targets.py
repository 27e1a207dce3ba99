"""Every supported target gets every run-time dependency as a binary wheel from the package index.

For each target (README, "Supported boxes"), ``pip install --dry-run --only-binary=:all:`` with
that target's platform tags, CPython version and ABI resolves this checkout's wheel against the
public index, as a fresh box would (this machine's own pip configuration is left out). A target
for which some dependency has no wheel fails with the target's name and pip's reason. The
32-bit Raspberry Pi OS is checked the other way round: it must not resolve, which is why the
README sends its users to the 64-bit OS (and why this test is known to be able to fail).

The platform tags are those pip on the target accepts: ``manylinux_2_Y`` for every glibc from
the target's own down to the oldest of its architecture (2.17 on aarch64, 2.5 on x86_64), the
legacy aliases, and ``linux_<arch>``. One limit of pip's cross-target resolution: environment
markers (``python_version < '3.11'``) are evaluated for the interpreter running the test, so a
dependency that only a 3.10 target needs (``tomli``, ``exceptiongroup``: both pure Python) is
not in its list.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

INDEX = "https://pypi.org/simple/"


@dataclass(frozen=True)
class Target:
    name: str
    machine: str
    python: str
    glibc_minor: int

    def platforms(self) -> list[str]:
        oldest = 17 if self.machine == "aarch64" else 5
        tags = [f"manylinux_2_{m}_{self.machine}" for m in range(self.glibc_minor, oldest - 1, -1)]
        legacy = {"aarch64": ["manylinux2014"],
                  "x86_64": ["manylinux2014", "manylinux2010", "manylinux1"]}
        return [*tags, *(f"{alias}_{self.machine}" for alias in legacy.get(self.machine, [])),
                f"linux_{self.machine}"]

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")


TARGETS = [
    Target("Jetson, Ubuntu 22.04 (aarch64, CPython 3.10, glibc 2.35)", "aarch64", "3.10", 35),
    Target("Raspberry Pi OS bookworm 64-bit (aarch64, CPython 3.11, glibc 2.36)",
           "aarch64", "3.11", 36),
    Target("Raspberry Pi OS trixie 64-bit (aarch64, CPython 3.13, glibc 2.41)",
           "aarch64", "3.13", 41),
    Target("Debian bookworm PC (x86_64, CPython 3.11, glibc 2.36)", "x86_64", "3.11", 36),
]
PI_OS_32_BIT = Target("Raspberry Pi OS bookworm 32-bit (armv7l, CPython 3.11, glibc 2.36)",
                      "armv7l", "3.11", 36)


@pytest.fixture(scope="module")
def index_reachable() -> None:
    try:
        urllib.request.urlopen(INDEX + "pip/", timeout=20).close()
    except (urllib.error.URLError, OSError) as exc:
        pytest.skip(f"the package index {INDEX} is unreachable from here ({exc}): "
                    "wheel availability per target not checked")


def resolve(target: Target, wheel: Path, tmp_path: Path) -> tuple[int, str, list[str]]:
    """pip's exit code, its error text, and the files it would install for ``target``."""
    report = tmp_path / "report.json"
    platforms = [arg for tag in target.platforms() for arg in ("--platform", tag)]
    # The public index alone, as on a fresh box: no config file, no local mirror or links.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")
           or k in ("PIP_CERT", "PIP_DEFAULT_TIMEOUT")}
    env |= {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
         "--report", str(report), "--index-url", INDEX, "--only-binary=:all:", *platforms,
         "--python-version", target.python, "--implementation", "cp", "--abi", target.abi,
         "--target", str(tmp_path / "target"), str(wheel)],
        capture_output=True, text=True, timeout=600, env=env,
    )
    files: list[str] = []
    if proc.returncode == 0:
        files = [item["download_info"]["url"].rsplit("/", 1)[-1]
                 for item in json.loads(report.read_text())["install"]]
    return proc.returncode, proc.stderr, files


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: f"{t.machine}-cp{t.abi[2:]}")
def test_every_dependency_has_a_wheel_for_the_target(
    target: Target, wheel: Path, tmp_path: Path, index_reachable: None
) -> None:
    rc, err, files = resolve(target, wheel, tmp_path)
    assert rc == 0, f"{target.name}: no binary wheel for some dependency:\n{err[-3000:]}"
    binary = sorted(f for f in files if not f.endswith("-none-any.whl"))
    print(f"\n{target.name}: {len(files)} wheels, compiled: {', '.join(binary)}")
    names = {f.split("-", 1)[0].lower() for f in files}
    assert {"numpy", "opencv_python_headless", "ai_edge_litert"} <= names, (target.name, files)
    assert all(target.machine in f or f.endswith("-none-any.whl") for f in files), files


def test_32_bit_raspberry_pi_os_has_no_wheels(
    wheel: Path, tmp_path: Path, index_reachable: None
) -> None:
    rc, err, _ = resolve(PI_OS_32_BIT, wheel, tmp_path)
    assert rc != 0, f"{PI_OS_32_BIT.name} resolved: README's advice to use the 64-bit OS is stale"
    assert "No matching distribution found" in err
    print(f"\n{PI_OS_32_BIT.name}: {err.strip().splitlines()[-1]}")
