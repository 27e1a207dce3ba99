"""The Ansible role: lint-clean, and a real apply into a throwaway root that is idempotent.

The apply runs ``ansible-playbook`` on localhost (local connection, no become) with
``edge_anpr_root`` pointing at a temporary folder and ``edge_anpr_manage_os=false``. The
virtual environment is really created and the package really installed, as on an offline site:
from the ``wheel`` fixture (this checkout's wheel, models inside) with its dependencies from the
``wheelhouse`` fixture (``edge_anpr_wheelhouse``: ``pip --no-index``). The installed
``edge-anpr`` then reads a demo frame with the installed configuration. One test installs from
the checkout instead (the role builds the wheel on the controller).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import tomllib

REPO = Path(__file__).resolve().parent.parent
ANSIBLE_DIR = REPO / "ansible"
BIN = Path(sys.executable).parent
PLAYBOOK = shutil.which("ansible-playbook", path=str(BIN)) or shutil.which("ansible-playbook")
LINT = shutil.which("ansible-lint", path=str(BIN)) or shutil.which("ansible-lint")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        PLAYBOOK is None or LINT is None,
        reason="ansible-core and ansible-lint come with the test extra: pip install -e '.[test]'",
    ),
]


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Deployment:
    """One throwaway target: a source snapshot, a root folder, and the variables to apply."""

    def __init__(self, base: Path, wheel: Path, wheelhouse: Path) -> None:
        self.base = base
        self.src = base / "src"
        self.root = base / "root"
        self.src.mkdir()
        # A snapshot, so concurrent edits to the working tree cannot make the second apply
        # see a different wheel, and nothing is built inside the checkout.
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            shutil.copy(REPO / name, self.src)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(REPO / "edge_anpr", self.src / "edge_anpr", ignore=ignore)
        # A models folder of the user's own (the shipped files and a probe), for the test of
        # edge_anpr_models_src; by default the service reads the models inside the wheel.
        self.models = base / "models"
        shutil.copytree(REPO / "edge_anpr" / "models", self.models, ignore=ignore)
        (self.models / "deploy-probe.txt").write_text("model bytes\n")
        self.mosquitto_port = free_tcp_port()
        self.inventory = base / "inventory.ini"
        self.inventory.write_text(
            "[edge_anpr]\n"
            f"localhost ansible_connection=local ansible_become=false "
            f"ansible_python_interpreter={sys.executable}\n"
        )
        self.vars: dict[str, Any] = {
            "edge_anpr_root": str(self.root),
            "edge_anpr_manage_os": False,
            "edge_anpr_source": str(wheel),
            "edge_anpr_wheelhouse": str(wheelhouse),
            "edge_anpr_build_dir": str(base / "build"),
            "edge_anpr_build_python": sys.executable,
            "edge_anpr_build_isolation": False,
            "edge_anpr_python": getattr(sys, "_base_executable", sys.executable),
            "edge_anpr_pip_no_deps": False,
            "edge_anpr_device_name": "gatebox",
            "edge_anpr_cameras": {
                "gate": {"id": 1, "key": 'k"ey\\with-escapes'},
                "old cam": {"source": "192.168.1.50", "roi": [0, 0, 640, 480]},
            },
            "edge_anpr_mqtt_host": "broker.lan",
            "edge_anpr_mqtt_port": 8883,
            "edge_anpr_mqtt_tls": True,
            "edge_anpr_mqtt_username": "anpr",
            "edge_anpr_mqtt_password": "p@ss wörd \"quoted\"",
            "edge_anpr_known_plates": [
                {"name": "Alice", "plate": "AB12CDE", "max_edit_distance": 1, "gate": True},
                {"name": "Fleet", "plate": "VAN*", "match": "wildcard"},
            ],
            "edge_anpr_config_extra": {"tracker": {"quiet_time_s": 5.0}},
            "edge_anpr_local_mosquitto": True,
            "edge_anpr_mosquitto_port": self.mosquitto_port,
            "edge_anpr_firewall": "nftables",
            "edge_anpr_firewall_sources": ["192.168.1.0/24", "fd00::/8"],
            "edge_anpr_camera_streams": [
                {"camera": "gate", "url": 'rtsp://viewer:p"w@192.168.1.60/stream1', "fps": 5},
            ],
        }

    def apply(self, *flags: str, **overrides: Any) -> dict[str, Any]:
        """Run the playbook; returns ``rc``, per-task results and the recap (see ``parse``)."""
        extra = self.base / f"vars-{time.monotonic_ns()}.json"
        extra.write_text(json.dumps({**self.vars, **overrides}))
        env = {
            **os.environ,
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default",
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_NOCOLOR": "1",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        proc = subprocess.run(
            [str(PLAYBOOK), "-i", str(self.inventory), str(ANSIBLE_DIR / "playbook.yml"),
             "-e", f"@{extra}", *flags],
            capture_output=True, text=True, timeout=240, env=env, cwd=self.base,
        )
        report = parse(proc.stdout)
        if not report["stats"]:
            pytest.fail(f"no recap (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        report["rc"] = proc.returncode
        report["output"] = proc.stdout + proc.stderr
        return report

    def path(self, target_path: str) -> Path:
        return self.root / target_path.lstrip("/")


_HEADER = re.compile(r"^(?:TASK|RUNNING HANDLER) \[(?:edge_anpr : )?(.*?)\] \**$")
_STATUS = re.compile(r"^(ok|changed|skipping|fatal|failed): \[localhost\]")
_RECAP = re.compile(r"^localhost\s+:\s+(.*)$")


def parse(output: str) -> dict[str, Any]:
    """The default callback's text: task name -> {status: True, "text": lines}, and the recap.

    (ansible-core has no machine-readable stdout callback of its own; ``json`` lives in the
    ansible.posix collection, which is not installed here.)
    """
    tasks: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    recap: dict[str, int] = {}
    for line in output.splitlines():
        if m := _HEADER.match(line):
            current = tasks[m.group(1)] = {"text": ""}
        elif (m := _STATUS.match(line)) and current is not None:
            status = {"skipping": "skipped", "fatal": "failed"}.get(m.group(1), m.group(1))
            current[status] = True
            current["text"] += line + "\n"
        elif m := _RECAP.match(line):
            recap = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}
        elif current is not None:
            current["text"] += line + "\n"
    return {"tasks": tasks, "stats": recap}


def stats(report: dict[str, Any]) -> dict[str, int]:
    result: dict[str, int] = report["stats"]
    return result


def task_results(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Task name -> result flags (the last run when a name repeats)."""
    result: dict[str, dict[str, Any]] = report["tasks"]
    return result


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, wheel: Path, wheelhouse: Path
) -> Deployment:
    return Deployment(tmp_path_factory.mktemp("deploy"), wheel, wheelhouse)


@pytest.fixture(scope="module")
def first_apply(deployment: Deployment) -> dict[str, Any]:
    report = deployment.apply()
    assert report["rc"] == 0, report["output"][-6000:]
    return report


def test_first_apply_installs_everything(
    deployment: Deployment, first_apply: dict[str, Any]
) -> None:
    assert stats(first_apply)["failed"] == 0
    assert stats(first_apply)["changed"] > 0
    results = task_results(first_apply)
    assert results["Install this exact build of the package"]["changed"]
    assert results["Install the package and its dependencies"]["changed"]
    # The OS is not ours here: no package, user or service task ran.
    for name in (
        "Install the OS packages", "Create the service user (no login, no home of its own)",
        "Enable and start the service", "Enable and start mosquitto",
        "Enable and start the senders", "Include the table from /etc/nftables.conf",
    ):
        assert results[name].get("skipped"), name
    # Handlers were notified by the changes but must not touch this machine's systemd.
    for name in ("Reload systemd", "Restart edge-anpr", "Restart mosquitto",
                 "Load the edge-anpr nftables table", "Restart the camera senders"):
        assert results[name].get("skipped"), name


def test_installed_cli_accepts_the_rendered_config(
    deployment: Deployment, first_apply: dict[str, Any]
) -> None:
    venv = deployment.path("/opt/edge-anpr/venv")
    config = deployment.path("/etc/edge-anpr/config.toml")
    # --root: the models folder it names is checked where this throwaway apply put it.
    proc = subprocess.run(
        [str(venv / "bin" / "edge-anpr"), "config", "--root", str(deployment.root), str(config)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{config}: ok"
    # The package really lives in the deployed venv, not in the checkout it was built from.
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import edge_anpr; print(edge_anpr.__file__)"],
        capture_output=True, text=True, timeout=60, cwd=deployment.base,  # not the checkout
    )
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).is_relative_to(venv)


def test_config_file_holds_the_variables(
    deployment: Deployment, first_apply: dict[str, Any]
) -> None:
    config = deployment.path("/etc/edge-anpr/config.toml")
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o750
    data = tomllib.loads(config.read_text())
    assert data["device"]["name"] == "gatebox"
    assert data["cameras"]["gate"] == {"id": 1, "key": 'k"ey\\with-escapes'}
    assert data["cameras"]["old cam"] == {"source": "192.168.1.50", "roi": [0, 0, 640, 480]}
    assert data["mqtt"]["host"] == "broker.lan"
    assert data["mqtt"]["port"] == 8883
    assert data["mqtt"]["tls"] is True
    assert data["mqtt"]["password"] == "p@ss wörd \"quoted\""
    assert "models" not in data  # the wheel's own models
    assert data["tracker"]["quiet_time_s"] == 5.0
    assert data["known_plates"] == [
        {"name": "Alice", "plate": "AB12CDE", "max_edit_distance": 1, "gate": True},
        {"name": "Fleet", "plate": "VAN*", "match": "wildcard"},
    ]


def test_unit_is_installed_and_the_wheel_brings_the_models(
    deployment: Deployment, first_apply: dict[str, Any]
) -> None:
    unit = deployment.path("/etc/systemd/system/edge-anpr.service")
    # With default paths the role renders exactly the unit shipped (and verified) in systemd/.
    assert unit.read_text() == (REPO / "systemd" / "edge-anpr.service").read_text()
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    assert not deployment.path("/opt/edge-anpr/models").exists()
    # Offline: the dependencies came from the copied wheelhouse.
    assert {p.name for p in deployment.path("/opt/edge-anpr/wheelhouse").iterdir()} == {
        p.name for p in Path(deployment.vars["edge_anpr_wheelhouse"]).iterdir()
    }


def test_installed_edge_anpr_reads_a_demo_frame_with_the_installed_config(
    deployment: Deployment, first_apply: dict[str, Any], tmp_path: Path
) -> None:
    frame = tmp_path / "frame.jpg"
    shutil.copy(REPO / "edge_anpr" / "assets" / "demo" / "frame_01.jpg", frame)
    expected = json.loads((REPO / "edge_anpr" / "assets" / "demo" / "expected.json").read_text())
    proc = subprocess.run(
        [str(deployment.path("/opt/edge-anpr/venv/bin/edge-anpr")), "recognize", "--json",
         "--config", str(deployment.path("/etc/edge-anpr/config.toml")), frame.name],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    plates = [p.get("plate", p.get("text")) for p in json.loads(line)["plates"]]
    assert plates == expected["frame_01.jpg"]["plates"]


def test_camera_stream_sender_is_installed(
    deployment: Deployment, first_apply: dict[str, Any]
) -> None:
    unit = deployment.path("/etc/systemd/system/edge-anpr-send@.service")
    assert unit.read_text() == (REPO / "systemd" / "edge-anpr-send@.service").read_text()
    env = deployment.path("/etc/edge-anpr/send/1.env")
    key = deployment.path("/etc/edge-anpr/send/1.key")
    for path in (env, key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
    assert stat.S_IMODE(env.parent.stat().st_mode) == 0o750
    assert key.read_text() == 'k"ey\\with-escapes\n'
    lines = env.read_text().splitlines()
    assert 'EDGE_ANPR_SOURCE="rtsp://viewer:p\\"w@192.168.1.60/stream1"' in lines
    assert {"EDGE_ANPR_HOST=127.0.0.1", "EDGE_ANPR_PORT=6112",
            'EDGE_ANPR_SEND_ARGS="--fps 5"'} <= set(lines)


def test_sender_environment_reads_back(
    deployment: Deployment, first_apply: dict[str, Any]
) -> None:
    # EnvironmentFile= takes double quotes and backslash escapes as a shell does, so bash reads
    # back what systemd will pass: the URL whole, quote and all.
    env = deployment.path("/etc/edge-anpr/send/1.env")
    script = (
        "set -a; . /dev/stdin; set +a; "
        'printf "%s\\n" "$EDGE_ANPR_SOURCE" "$EDGE_ANPR_SEND_ARGS"'
    )
    proc = subprocess.run(["bash", "-c", script], input=env.read_text(), capture_output=True,
                          text=True, timeout=30)
    assert proc.stdout.splitlines() == ['rtsp://viewer:p"w@192.168.1.60/stream1', "--fps 5"]


def test_firewall_table_is_rendered(deployment: Deployment, first_apply: dict[str, Any]) -> None:
    table = deployment.path("/etc/nftables.d/edge-anpr.nft").read_text()
    assert "udp dport 6112 ip saddr { 192.168.1.0/24 } accept" in table
    assert "udp dport 6112 ip6 saddr { fd00::/8 } accept" in table
    assert table.rstrip().endswith("udp dport 6112 counter drop\n    }\n}".rstrip())
    nft = shutil.which("nft") or shutil.which("nft", path="/usr/sbin")
    if nft is not None:
        path = deployment.path("/etc/nftables.d/edge-anpr.nft")
        proc = subprocess.run([nft, "-c", "-f", str(path)], capture_output=True, text=True,
                              timeout=30)
        assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_deployed_unit_verifies_against_the_deployed_venv(
    deployment: Deployment, first_apply: dict[str, Any], tmp_path: Path
) -> None:
    # A copy of the deployed tree plus systemd's stock targets: ExecStart must resolve to the
    # edge-anpr the role installed (no stand-in executable).
    root = tmp_path / "root"
    shutil.copytree(deployment.root, root, symlinks=True)
    stock = root / "usr" / "lib" / "systemd" / "system"
    stock.mkdir(parents=True)
    for target in Path("/usr/lib/systemd/system").glob("*.target"):
        if target.is_file():
            shutil.copy(target, stock)
    unit = root / "etc" / "systemd" / "system" / "edge-anpr.service"
    assert (root / "opt/edge-anpr/venv/bin/edge-anpr").is_file()
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}", str(unit)],
        capture_output=True, text=True, timeout=60,
    )
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")
    (root / "opt/edge-anpr/venv/bin/edge-anpr").unlink()
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}", str(unit)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0 and "is not executable" in proc.stderr


def test_local_mosquitto_config_is_loadable(
    deployment: Deployment, first_apply: dict[str, Any]
) -> None:
    mosquitto = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if mosquitto is None:
        pytest.skip("mosquitto is not installed (make test installs it)")
    conf = deployment.path("/etc/mosquitto/conf.d/edge-anpr.conf")
    assert f"listener {deployment.mosquitto_port} 127.0.0.1" in conf.read_text()
    proc = subprocess.Popen([mosquitto, "-c", str(conf)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", deployment.mosquitto_port), 1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read() if proc.stderr else ""
                    pytest.fail(f"mosquitto did not listen: {err}")
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_second_apply_changes_nothing(deployment: Deployment, first_apply: dict[str, Any]) -> None:
    report = deployment.apply()
    assert report["rc"] == 0, report["output"][-6000:]
    assert stats(report)["changed"] == 0, [
        name for name, res in task_results(report).items() if res.get("changed")
    ]


def test_check_mode_sees_nothing_to_do(deployment: Deployment, first_apply: dict[str, Any]) -> None:
    report = deployment.apply("--check", "--diff")
    assert report["rc"] == 0, report["output"][-6000:]
    assert stats(report)["changed"] == 0, [
        name for name, res in task_results(report).items() if res.get("changed")
    ]
    # Secrets in the config never reach the --diff output.
    assert deployment.vars["edge_anpr_mqtt_password"] not in report["output"]


def test_check_mode_on_a_fresh_target_does_not_fail(
    tmp_path: Path, wheel: Path, wheelhouse: Path
) -> None:
    fresh = Deployment(tmp_path, wheel, wheelhouse)
    report = fresh.apply("--check")
    assert report["rc"] == 0, report["output"][-6000:]
    assert stats(report)["changed"] > 0
    assert not fresh.root.exists()  # --check wrote nothing on the target


def test_changed_source_is_reinstalled_once(
    deployment: Deployment, first_apply: dict[str, Any]
) -> None:
    # From the checkout this time: the role builds its wheel on the controller.
    (deployment.src / "edge_anpr" / "deploy_probe.py").write_text("VALUE = 42\n")
    try:
        report = deployment.apply(edge_anpr_source=str(deployment.src))
        assert report["rc"] == 0, report["output"][-6000:]
        results = task_results(report)
        assert results["Install this exact build of the package"]["changed"]
        assert results["Restart edge-anpr"].get("skipped")  # notified, not run: manage_os off
        venv_python = deployment.path("/opt/edge-anpr/venv/bin/python")
        proc = subprocess.run(
            [str(venv_python), "-c", "import edge_anpr.deploy_probe as p; print(p.VALUE)"],
            capture_output=True, text=True, timeout=60, cwd=deployment.base,
        )
        assert proc.stdout.strip() == "42", proc.stderr
        same = deployment.apply(edge_anpr_source=str(deployment.src))
        assert stats(same)["changed"] == 0
    finally:
        (deployment.src / "edge_anpr" / "deploy_probe.py").unlink()
    back = deployment.apply()  # the wheel again: reinstalled once, then nothing to do
    assert task_results(back)["Install this exact build of the package"]["changed"]
    assert stats(deployment.apply())["changed"] == 0


def test_bad_variable_never_lands(deployment: Deployment, first_apply: dict[str, Any]) -> None:
    config = deployment.path("/etc/edge-anpr/config.toml")
    before = config.read_bytes()
    # A wrong type is stopped by meta/argument_specs.yml before any task runs...
    report = deployment.apply(edge_anpr_mqtt_port="x")
    assert report["rc"] != 0 and stats(report)["failed"] == 1
    (name, failed), = [(n, r) for n, r in task_results(report).items() if r.get("failed")]
    assert name.startswith("Validating arguments against arg spec")
    assert "edge_anpr_mqtt_port" in failed["text"]
    # ...and a bad value inside a table by the installed edge-anpr, before the file is replaced.
    report = deployment.apply(edge_anpr_config_extra={"mqtt": {"port": "x"}})
    assert report["rc"] != 0 and stats(report)["failed"] == 1
    failed = task_results(report)["Write the configuration"]
    assert failed.get("failed")
    assert "mqtt.port must be an integer" in failed["text"]
    assert config.read_bytes() == before


def test_32_bit_arm_is_refused_with_a_reason(
    deployment: Deployment, first_apply: dict[str, Any]
) -> None:
    # What a 32-bit Raspberry Pi OS python3 answers (an armhf interpreter on an arm64 kernel
    # says armv8l, as pip sees it; armv7l on an armv7 kernel).
    fake = deployment.base / "python-armhf"
    fake.write_text("#!/bin/sh\nprintf 'armv8l\\n3.11\\n'\n")
    fake.chmod(0o755)
    report = deployment.apply(edge_anpr_python=str(fake))
    assert report["rc"] != 0 and stats(report)["failed"] == 1
    failed = task_results(report)["Check that the target can run edge-anpr"]
    assert failed.get("failed")
    text = " ".join(failed["text"].split())
    assert "Python 3.11 on armv8l" in text and "install the 64-bit Raspberry Pi OS" in text
    assert stats(report)["changed"] == 0  # stopped before touching anything


def test_a_stream_needs_a_camera_with_id_and_key(
    deployment: Deployment, first_apply: dict[str, Any]
) -> None:
    report = deployment.apply(
        edge_anpr_camera_streams=[{"camera": "old cam", "url": "rtsp://192.168.1.50/"}]
    )
    assert report["rc"] != 0
    failed = task_results(report)["Check the camera streams"]
    assert failed.get("failed") and "an entry of edge_anpr_cameras with an id and a key" in (
        " ".join(failed["text"].split())
    )


def test_models_of_your_own_are_copied_and_named(
    deployment: Deployment, first_apply: dict[str, Any]
) -> None:
    config = deployment.path("/etc/edge-anpr/config.toml")
    try:
        report = deployment.apply(edge_anpr_models_src=str(deployment.models))
        assert report["rc"] == 0, report["output"][-6000:]
        assert tomllib.loads(config.read_text())["models"]["dir"] == "/opt/edge-anpr/models"
        probe = deployment.path("/opt/edge-anpr/models/deploy-probe.txt")
        assert probe.read_text() == "model bytes\n"
        assert stat.S_IMODE(probe.stat().st_mode) == 0o644
    finally:
        assert deployment.apply()["rc"] == 0
    assert "models" not in tomllib.loads(config.read_text())


def test_broker_off_loopback_asks_for_a_password(
    deployment: Deployment, first_apply: dict[str, Any]
) -> None:
    mosquitto = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if mosquitto is None or shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto is not installed (make test installs it)")
    import paho.mqtt.client as mqtt

    report = deployment.apply(edge_anpr_mosquitto_bind="0.0.0.0", edge_anpr_mqtt_username="anpr")
    assert report["rc"] == 0, report["output"][-6000:]
    try:
        again = deployment.apply(edge_anpr_mosquitto_bind="0.0.0.0", edge_anpr_mqtt_username="anpr")
        assert stats(again)["changed"] == 0  # the salted hashes are not made again
        conf = deployment.path("/etc/mosquitto/conf.d/edge-anpr.conf")
        text = conf.read_text()
        assert "allow_anonymous false" in text.splitlines()
        passwd = deployment.path("/etc/mosquitto/edge-anpr.passwd")
        assert stat.S_IMODE(passwd.stat().st_mode) == 0o640
        assert passwd.read_text().startswith("anpr:$")  # hashed, never the password
        assert not deployment.path("/etc/mosquitto/edge-anpr.passwd.new").exists()
        running = deployment.base / "mosquitto-auth.conf"
        # Run as this test's user (root would drop to the mosquitto user, which may not read
        # the throwaway root), with the password file where this apply put it.
        running.write_text(text.replace("/etc/mosquitto/", f"{passwd.parent}/") + "user root\n")
        proc = subprocess.Popen([mosquitto, "-c", str(running)], stderr=subprocess.PIPE)
        try:
            wait_for_port(deployment.mosquitto_port, proc)
            port = deployment.mosquitto_port
            password = deployment.vars["edge_anpr_mqtt_password"]
            assert accepted(mqtt, port, "anpr", password)
            assert not accepted(mqtt, port, "anpr", "wrong")
            assert not accepted(mqtt, port, None, None)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    finally:
        assert deployment.apply()["rc"] == 0
    assert "allow_anonymous true" in conf.read_text().splitlines()


def accepted(mqtt: Any, port: int, username: str | None, password: str | None) -> bool:
    """Whether the broker on ``port`` accepts this login (its CONNACK says success)."""
    outcome: list[bool] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda _c, _u, _f, rc, _p: outcome.append(not rc.is_failure)
    if username is not None:
        client.username_pw_set(username, password)
    client.connect("127.0.0.1", port, 5)
    deadline = time.monotonic() + 5
    while not outcome and time.monotonic() < deadline:
        client.loop(0.1)
    client.disconnect()
    assert outcome, "no CONNACK"
    return outcome == [True]


def wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"mosquitto did not listen: {err}")
            time.sleep(0.1)


def test_ansible_lint_production_profile_passes() -> None:
    proc = run_lint(ANSIBLE_DIR)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Profile 'production' was required, and it passed" in proc.stdout + proc.stderr


def test_ansible_lint_catches_a_violation(tmp_path: Path) -> None:
    copy = tmp_path / "ansible"
    shutil.copytree(ANSIBLE_DIR, copy)
    tasks = copy / "roles" / "edge_anpr" / "tasks" / "os.yml"
    # A short module name and a command that always reports a change: both production errors.
    tasks.write_text(tasks.read_text() + "\n- name: Say hello\n  command: echo hello\n")
    proc = run_lint(copy)
    assert proc.returncode != 0
    assert "fqcn" in proc.stdout + proc.stderr


def run_lint(folder: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "NO_COLOR": "1",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return subprocess.run(
        [str(LINT), "--offline", "--profile", "production", "--nocolor"],
        capture_output=True, text=True, timeout=180, env=env, cwd=folder,
    )
