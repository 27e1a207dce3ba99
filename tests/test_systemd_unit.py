"""The shipped unit passes ``systemd-analyze verify`` and keeps its hardening.

``verify`` runs against a throwaway root (``--root``) holding the unit, systemd's stock targets
and an executable at the ExecStart path, so the unit is checked unchanged. systemd reports most
mistakes (a misspelt key, a bad value) as "..., ignoring" warnings with exit code 0, so any
output at all counts as a failure; the negative cases prove the check catches real errors.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "systemd" / "edge-anpr.service"
SEND_UNIT = REPO / "systemd" / "edge-anpr-send@.service"
SYSTEMD_UNITS = Path("/usr/lib/systemd/system")

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None or not (SYSTEMD_UNITS / "sysinit.target").exists(),
    reason="systemd-analyze and the stock units are needed (make test installs systemd)",
)


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> values (systemd keys may repeat, so every value is kept)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None, f"assignment outside a section: {line}"
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def verify(unit_text: str, root: Path, name: str = "edge-anpr.service") -> tuple[int, str]:
    unit_dir = root / "etc" / "systemd" / "system"
    unit_dir.mkdir(parents=True, exist_ok=True)
    stock = root / "usr" / "lib" / "systemd" / "system"
    if not stock.exists():
        stock.mkdir(parents=True)
        for target in SYSTEMD_UNITS.glob("*.target"):
            if target.is_file():
                shutil.copy(target, stock)
    exec_start = re.search(r"^ExecStart=(\S+)", unit_text, re.M).group(1)  # type: ignore[union-attr]
    exe = root / exec_start.lstrip("/")
    if exec_start.startswith("/opt/edge-anpr/") and not exe.exists():
        exe.parent.mkdir(parents=True, exist_ok=True)
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    path = unit_dir / name
    path.write_text(unit_text)
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def test_shipped_unit_verifies_cleanly(tmp_path: Path) -> None:
    rc, output = verify(UNIT.read_text(), tmp_path)
    assert (rc, output) == (0, "")


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        ("Type=notify", "Type=notifyy", "Failed to parse service type"),
        ("WatchdogSec=30", "WatchdgSec=30", "Unknown key 'WatchdgSec'"),
        ("MemoryMax=800M", "MemoryMax=lots", "Invalid memory limit"),
        ("RestrictAddressFamilies=AF_INET ", "RestrictAddressFamilies=AF_INETT ", "address family"),
        ("SystemCallFilter=@system-service", "SystemCallFilter=@system-servic", "system call"),
        ("ExecStart=/opt/edge-anpr/", "ExecStart=/nowhere/edge-anpr/", "not executable"),
        ("[Service]", "[Servise]", "Unknown section"),
    ],
)
def test_verify_catches_a_broken_copy(
    tmp_path: Path, old: str, new: str, complaint: str
) -> None:
    text = UNIT.read_text()
    assert old in text
    rc, output = verify(text.replace(old, new, 1), tmp_path)
    assert rc != 0 or output, "a broken unit passed verification"
    assert complaint in output


def test_unit_has_the_required_settings() -> None:
    svc = parse_unit(UNIT.read_text())["Service"]

    def one(key: str) -> str:
        assert key in svc, f"{key} missing"
        return svc[key][-1]

    assert one("Type") == "notify"
    assert one("NotifyAccess") == "main"
    assert one("ExecStart") == (
        "/opt/edge-anpr/venv/bin/edge-anpr serve --config /etc/edge-anpr/config.toml"
    )
    assert (one("User"), one("Group")) == ("edge-anpr", "edge-anpr")
    assert one("WatchdogSec") == "30"
    assert one("Restart") == "on-failure"
    assert one("RestartSec") == "2"
    assert one("TimeoutStopSec") == "15"
    assert one("MemoryMax") == "800M"
    assert one("KillSignal") == "SIGTERM"
    assert one("StateDirectory") == "edge-anpr"
    assert one("ConfigurationDirectory") == "edge-anpr"
    assert "PYTHONUNBUFFERED=1" in svc["Environment"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices",
                "ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups",
                "RestrictNamespaces", "LockPersonality"):
        assert one(key) == "yes", key
    assert one("ProtectSystem") == "strict"
    assert one("CapabilityBoundingSet") == ""
    assert one("AmbientCapabilities") == ""
    assert one("DevicePolicy") == "closed"
    assert sorted(one("RestrictAddressFamilies").split()) == ["AF_INET", "AF_INET6", "AF_UNIX"]
    assert "@system-service" in svc["SystemCallFilter"]
    assert one("MemoryDenyWriteExecute") == "yes"  # measured: tests/test_systemd_sandbox.py
    assert "DynamicUser" not in svc


def test_open_files_limit_holds_the_most_http_connections_and_the_reserve() -> None:
    from edge_anpr.config import HttpConfig
    from edge_anpr.http.server import FD_RESERVE, connection_cap

    svc = parse_unit(UNIT.read_text())["Service"]
    assert "LimitNOFILE" in svc, "LimitNOFILE missing: systemd's soft default is 1024"
    limit = int(svc["LimitNOFILE"][-1])
    most = HttpConfig.__dataclass_fields__["max_connections"].metadata["hi"]
    assert connection_cap(most, limit) == most and limit >= most + FD_RESERVE
    assert connection_cap(most, 1024) == 1024 - FD_RESERVE


def test_security_exposure_stays_low() -> None:
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(UNIT)],
        capture_output=True, text=True, timeout=60,
    )
    match = re.search(r"Overall exposure level for edge-anpr\.service: ([0-9.]+)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    # 1.4 when written; systemd's scale is 0 (locked down) .. 10 (UNSAFE), <2.0 is "OK".
    assert float(match.group(1)) < 2.0


HARDENING = (
    "NoNewPrivileges", "CapabilityBoundingSet", "AmbientCapabilities", "ProtectSystem",
    "ProtectHome", "PrivateTmp", "PrivateDevices", "DevicePolicy", "ProtectKernelTunables",
    "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock",
    "ProtectHostname", "ProtectProc", "RestrictAddressFamilies", "RestrictNamespaces",
    "RestrictRealtime", "RestrictSUIDSGID", "LockPersonality", "MemoryDenyWriteExecute",
    "RemoveIPC", "UMask", "SystemCallArchitectures", "SystemCallFilter", "SystemCallErrorNumber",
)


def test_sender_template_verifies_cleanly(tmp_path: Path) -> None:
    # An instance, as systemd loads it (edge-anpr-send@1.service from the template's text).
    rc, output = verify(SEND_UNIT.read_text(), tmp_path, "edge-anpr-send@1.service")
    assert (rc, output) == (0, "")
    rc, output = verify(SEND_UNIT.read_text().replace("Type=exec", "Type=exe"), tmp_path,
                        "edge-anpr-send@2.service")
    assert "Failed to parse service type" in output


def test_sender_template_runs_send_for_its_instance_hardened_like_the_service() -> None:
    svc = parse_unit(SEND_UNIT.read_text())["Service"]
    main = parse_unit(UNIT.read_text())["Service"]
    for key in HARDENING:
        assert svc.get(key) == main[key], key
    assert svc["EnvironmentFile"] == ["/etc/edge-anpr/send/%i.env"]
    assert svc["ExecStart"] == [
        "/opt/edge-anpr/venv/bin/edge-anpr send --format sequenced --camera %i "
        "--host ${EDGE_ANPR_HOST} --port ${EDGE_ANPR_PORT} "
        "--key-file /etc/edge-anpr/send/%i.key $EDGE_ANPR_SEND_ARGS ${EDGE_ANPR_SOURCE}"
    ]
    assert (svc["User"], svc["Group"]) == (["edge-anpr"], ["edge-anpr"])
    assert svc["Restart"] == ["always"]


def test_sender_template_exposure_stays_low() -> None:
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(SEND_UNIT)],
        capture_output=True, text=True, timeout=60,
    )
    match = re.search(r"Overall exposure level for edge-anpr-send@.*: ([0-9.]+)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    assert float(match.group(1)) < 2.0  # 1.4 when written, as edge-anpr.service
