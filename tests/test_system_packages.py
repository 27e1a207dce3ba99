"""``scripts/ensure-system-packages`` touches no service it did not install.

The script runs for real with bash, on this machine's files, but with ``apt-get``,
``systemctl``, ``dpkg``, ``dpkg-query`` and ``sudo`` replaced by recorders first on ``PATH``:
installing or stopping anything here is not the test's business. ``dpkg`` and ``dpkg-query``
answer from a small state folder that the ``apt-get`` recorder updates, as a real install would.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "ensure-system-packages"

# Each fake answers from $STATE/<package> (present = installed) and logs its argv to $STATE/log.
FAKES = {
    "apt-get": """
echo "apt-get $*" >> "$STATE/log"
if [ "$1" = install ]; then
  for arg in "$@"; do case "$arg" in -*|install) ;; *) touch "$STATE/$arg" ;; esac; done
fi
""",
    "systemctl": 'echo "systemctl $*" >> "$STATE/log"\n',
    "dpkg": '[ "$1" = -s ] && [ -e "$STATE/$2" ]\n',
    "dpkg-query": (
        'pkg="${@: -1}"\n'
        'if [ -e "$STATE/$pkg" ]; then printf installed; else printf not-installed; fi\n'
    ),
    "sudo": 'exec "$@"\n',
    "update-binfmts": 'echo "update-binfmts $*" >> "$STATE/log"\n',
}


def run_script(
    tmp_path: Path, installed: set[str], pulled_in: tuple[str, ...] = (),
    arm64_handler: str = "enabled",
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the script with the packages ``installed`` present; an install also brings
    ``pulled_in`` (as apt does with dependencies); ``arm64_handler`` is the first line of the
    qemu-aarch64 binfmt_misc entry ("" when there is none). Returns the result and the recorded
    calls."""
    fakes = tmp_path / "bin"
    fakes.mkdir()
    state = tmp_path / "state"
    state.mkdir()
    for name, body in FAKES.items():
        if name == "apt-get":
            body += "".join(f'if [ "$1" = install ]; then touch "$STATE/{p}"; fi\n'
                            for p in pulled_in)
        path = fakes / name
        path.write_text("#!/usr/bin/env bash\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    for package in installed:
        (state / package).touch()
    binfmt = tmp_path / "binfmt_misc"
    binfmt.mkdir()
    if arm64_handler:
        (binfmt / "qemu-aarch64").write_text(f"{arm64_handler}\ninterpreter /usr/bin/x\n")
    proc = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "STATE": str(state), "PATH": f"{fakes}:{os.environ['PATH']}",
             "BINFMT_MISC": str(binfmt)},
    )
    log = state / "log"
    return proc, log.read_text().splitlines() if log.exists() else []


@pytest.fixture(autouse=True)
def _machine_has_the_tools() -> None:
    # The script looks at this machine's files; these cases assume `make test` set it up.
    for tool in ("mosquitto", "mosquitto_passwd", "systemd-analyze", "openssl", "fc-list"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            pytest.skip(f"{tool} missing: run scripts/ensure-system-packages once")
    for path in ("/usr/bin/qemu-aarch64-static", "/usr/sbin/update-binfmts",
                 "/usr/sbin/debootstrap", "/usr/share/binfmts/qemu-aarch64"):
        if not Path(path).exists():
            pytest.skip(f"{path} missing: run scripts/ensure-system-packages once")
    for fonts in ("dejavu", "liberation2", "freefont"):
        if not Path("/usr/share/fonts/truetype", fonts).is_dir():
            pytest.skip("fonts missing: run scripts/ensure-system-packages once")


def test_nothing_missing_runs_nothing(tmp_path: Path) -> None:
    proc, log = run_script(tmp_path, {"python3-seccomp", "mosquitto"})
    assert proc.returncode == 0, proc.stderr
    assert log == []


def test_installing_something_else_leaves_the_broker_alone(tmp_path: Path) -> None:
    # The reported bug: installing only python3-seccomp (or a font) ran
    # `systemctl disable --now mosquitto`, stopping a broker the user runs.
    proc, log = run_script(tmp_path, {"mosquitto"})
    assert proc.returncode == 0, proc.stderr
    assert "apt-get install -y -qq --no-install-recommends python3-seccomp" in log
    assert not [line for line in log if line.startswith("systemctl")]


def test_a_mosquitto_present_without_its_package_is_left_alone(tmp_path: Path) -> None:
    # A broker built from source or from another package: not ours to stop.
    proc, log = run_script(tmp_path, set())
    assert proc.returncode == 0, proc.stderr
    assert not [line for line in log if line.startswith("systemctl")]


def test_the_broker_this_run_installed_is_disabled_and_said(tmp_path: Path) -> None:
    # The package goes from absent to installed during the run (here apt pulls it in with
    # python3-seccomp): the script says so and disables that unit only.
    proc, log = run_script(tmp_path, set(), pulled_in=("mosquitto",))
    assert proc.returncode == 0, proc.stderr
    assert log[-1] == "systemctl disable --now mosquitto.service"
    assert "mosquitto was just installed by this script" in proc.stderr


@pytest.mark.parametrize("state", ["disabled", ""])
def test_arm64_emulation_is_enabled_when_off_and_nothing_else(tmp_path: Path, state: str) -> None:
    # qemu-user-static's handler registered but off (binfmt_misc was not mounted when the
    # package was installed), or not registered at all: only that one format is enabled.
    proc, log = run_script(tmp_path, {"python3-seccomp", "mosquitto"}, arm64_handler=state)
    assert proc.returncode == 0, proc.stderr
    assert log == ["update-binfmts --enable qemu-aarch64"]
    assert "enabling the qemu-aarch64 binfmt handler" in proc.stderr
