"""Shared fixtures: a real mosquitto broker on a free loopback port.

``mosquitto`` (function scope) gives a plain broker: ``listener <port> 127.0.0.1``, anonymous,
no persistence. ``mosquitto_factory(tls=..., users=..., persistence=...)`` makes variants:

- ``tls=True``: a CA and a server certificate for 127.0.0.1/localhost are generated with
  ``openssl`` at test time; ``broker.ca_file`` is the CA to trust; with
  ``client_certs=True`` the broker also requires a client certificate
  (``broker.client_cert``/``broker.client_key``, signed by that CA);
- ``users={"name": "password"}``: a ``password_file`` made with ``mosquitto_passwd -b`` and
  anonymous access off;
- ``acl="topic readwrite a/#\n..."``: an ``acl_file`` with that text (allow-list);
- ``extra=("max_packet_size 2000", ...)``: more config lines;
- ``persistence=True``: the broker saves sessions and queued messages in its temp folder on a
  clean stop, so ``broker.restart()`` keeps persistent subscriber sessions (what a real
  broker restart does).

Every broker object has ``host``, ``port``, ``stop()``, ``start()`` and ``restart()`` (same port)
and is killed at teardown. Tests that need mosquitto skip when it is not installed.

Packaging: ``wheel`` (session scope) is the wheel of this checkout, built once per run;
``wheelhouse`` is a folder holding that wheel's dependencies as wheels, kept between runs in
pytest's cache, so a fresh venv installs offline (``pip install --no-index --find-links``).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

LONGEST_FIRST = ("test_ansible_role.py", "test_arm64_root.py")
"""The longest modules (minutes each), collected first: ``make test`` runs the suite on two
workers, one module per worker at a time (``-n 2 --dist loadscope --no-loadscope-reorder``),
and the first two modules go one to each worker, so these two run side by side instead of one
after the other at the end."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within each module and among the rest is kept


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """Each test leaves the root logger as it found it. A test that runs the CLI in-process
    configures logging onto the stderr pytest captured for it; that stream is closed after the
    test, and every later log line then printed a 'Logging error' traceback."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """One mosquitto process and its temp config; restartable on the same port."""

    def __init__(
        self,
        workdir: Path,
        *,
        tls: bool = False,
        users: dict[str, str] | None = None,
        persistence: bool = False,
        acl: str = "",
        client_certs: bool = False,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.host = "127.0.0.1"
        self.port = free_tcp_port()
        self.workdir = workdir
        self.tls = tls
        self.ca_file = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "mosquitto.log"
        lines = [
            f"listener {self.port} {self.host}",
            "per_listener_settings false",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {workdir}/",
            "autosave_interval 0",
            "user root",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_dest stderr",
            "max_queued_messages 10000",
        ]
        if users:
            pw = workdir / "passwords"
            pw.write_text("")
            for name, password in users.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(pw), name, password],
                    check=True, capture_output=True,
                )
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines.append("allow_anonymous true")
        lines += extra
        if acl:
            (workdir / "acl").write_text(acl)
            lines.append(f"acl_file {workdir / 'acl'}")
        self.client_cert = self.client_key = ""
        if tls:
            ca, cert, key = make_certificates(workdir)
            self.ca_file = str(ca)
            lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
            if client_certs:
                cert, key = make_client_certificate(workdir)
                self.client_cert, self.client_key = str(cert), str(key)
                lines += ["require_certificate true"]
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self, timeout_s: float = 5.0) -> None:
        assert self.proc is None, "broker already running"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log, stdin=subprocess.DEVNULL
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with {self.proc.returncode}: {self.log_path.read_text()}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen on {self.port}: {self.log_path.read_text()}")

    def stop(self) -> None:
        """A clean stop (SIGTERM): what ``systemctl restart mosquitto`` does."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        self.proc.send_signal(signal.SIGCONT)  # in case it was frozen
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def freeze(self) -> None:
        """SIGSTOP: the broker stops reading; what clients send waits unacknowledged."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def kill(self) -> None:
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def wait_log(
        self, text: str | tuple[str, ...], count: int = 1, timeout_s: float = 5.0
    ) -> None:
        """Wait until the broker's log has ``text`` (or, given several, any of them, summed) at
        least ``count`` times."""
        import trio

        texts = (text,) if isinstance(text, str) else text
        with trio.fail_after(timeout_s):
            while sum(self.log_text().count(t) for t in texts) < count:
                await trio.sleep(0.01)


def write_serve_config(
    path: Path, port: int, token: str, outbox: Path, *, workers: int = 1, http: str = "",
) -> Path:
    """A ``serve`` config at ``path`` for a test of the HTTP API: UDP ingest on a loopback
    port of the system's choosing, ``workers`` recognition workers, MQTT off with its outbox at
    ``outbox``, the API on 127.0.0.1:``port`` with ``token``, and ``http``'s lines added to its
    ``[http]`` section."""
    path.write_text(f"""
[ingest]
bind = "127.0.0.1"
port = 0

[workers]
count = {workers}

[mqtt]
enabled = false
outbox_path = "{outbox}"

[http]
port = {port}
token = "{token}"
{http}
""")
    return path


def serve_http(
    config: Path, port: int, log_path: Path, *, timeout_s: float = 90.0,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.Popen[bytes]:
    """A real ``edge-anpr serve --config config`` whose HTTP API on 127.0.0.1:``port`` has
    answered ``/health`` 200 (its log in ``log_path``); the caller stops it. Fails with the
    log when the service exits or is not up within ``timeout_s``."""
    import urllib.error
    import urllib.request

    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_anpr", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=log_path.open("wb"), preexec_fn=preexec_fn,
    )
    deadline = time.monotonic() + timeout_s
    while True:
        assert proc.poll() is None, log_path.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
                if reply.status == 200:
                    return proc
        except (OSError, urllib.error.URLError):
            pass
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.2)


def make_certificates(workdir: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost, made by openssl."""
    ca_key, ca = workdir / "ca.key", workdir / "ca.crt"
    key, csr, cert = workdir / "server.key", workdir / "server.csr", workdir / "server.crt"
    ext = workdir / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
        "-days", "2", "-subj", "/CN=edge-anpr test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return ca, cert, key


def make_client_certificate(workdir: Path) -> tuple[Path, Path]:
    """A client certificate signed by the CA of ``make_certificates`` (same folder)."""
    key, csr, cert = workdir / "client.key", workdir / "client.csr", workdir / "client.crt"
    for args in (
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
         "-subj", "/CN=edge-anpr-client"],
        ["x509", "-req", "-in", str(csr), "-CA", str(workdir / "ca.crt"), "-CAkey",
         str(workdir / "ca.key"), "-CAcreateserial", "-out", str(cert), "-days", "2"],
    ):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    return cert, key


def _require_mosquitto() -> None:
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed (scripts/ensure-system-packages installs it)")


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """Make and start brokers (variants per keyword); all are killed at teardown."""
    _require_mosquitto()
    brokers: list[Broker] = []

    def make(**kwargs: object) -> Broker:
        workdir = tmp_path / f"broker{len(brokers)}"
        workdir.mkdir()
        broker = Broker(workdir, **kwargs)  # type: ignore[arg-type]
        brokers.append(broker)
        broker.start()
        return broker

    yield make
    for broker in brokers:
        broker.kill()


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., Broker]) -> Broker:
    """A plain anonymous broker on a free 127.0.0.1 port."""
    return mosquitto_factory()


class Subscriber:
    """A paho subscriber driven without threads: ``loop(timeout=0)`` polled from a trio task.

    It reconnects on its own (every 50 ms) after the broker goes away; with ``clean=False`` it
    keeps a persistent session, so it also gets what was queued for it while it was offline.
    """

    def __init__(
        self,
        broker: Broker,
        topics: list[str],
        *,
        client_id: str = "test-subscriber",
        clean: bool = True,
        username: str = "",
        password: str = "",
    ) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.broker = broker
        self.topics = topics
        self.messages: list[paho.MQTTMessage] = []
        self.connects = 0
        self.subscribed = False
        self.paused = False
        self.offline = False
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean,
            protocol=paho.MQTTv311,
        )
        if username:
            self.client.username_pw_set(username, password)
        if broker.ca_file:
            self.client.tls_set(ca_certs=broker.ca_file, certfile=broker.client_cert or None,
                                keyfile=broker.client_key or None)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = lambda c, u, m: self.messages.append(m)

    def _on_connect(self, client: object, userdata: object, flags: object, rc: object,
                    props: object) -> None:
        self.connects += 1
        for topic in self.topics:
            self.client.subscribe(topic, qos=1)

    def _on_subscribe(self, *args: object) -> None:
        self.subscribed = True

    async def run(self, *, task_status: object = None) -> None:
        import trio

        started = False
        connected = False
        while True:
            if self.paused:
                if connected:
                    self.client.disconnect()  # clean: PUBACKs already sent go first
                    while self.client.loop(timeout=0) == 0 and self.client.socket() is not None:
                        await trio.sleep(0.001)
                    connected = False
                    self.offline = True
                await trio.sleep(0.01)
                continue
            self.offline = False
            if not connected:
                try:
                    if self.connects == 0:
                        self.client.connect(self.broker.host, self.broker.port, keepalive=10)
                    else:
                        self.client.reconnect()
                    connected = True
                except OSError:
                    await trio.sleep(0.05)
                    continue
            rc = self.client.loop(timeout=0)
            if rc != 0:
                connected = False
                await trio.sleep(0.05)
                continue
            if not started and self.subscribed:
                started = True
                if task_status is not None:
                    task_status.started()  # type: ignore[attr-defined]
            # Wake as soon as the broker sends something, so PUBACKs go back at once (a
            # slow subscriber widens the window in which a broker restart redelivers).
            sock = self.client.socket()
            with trio.move_on_after(0.02):
                if sock is not None and sock.fileno() >= 0 and not self.client.want_write():
                    await trio.lowlevel.wait_readable(sock)
                else:
                    await trio.sleep(0.001)

    async def pause(self) -> None:
        """Disconnect cleanly and stay away (the persistent session queues for us)."""
        self.paused = True
        await self.wait_for(lambda: self.offline, 5.0)

    def resume(self) -> None:
        self.paused = False

    def on(self, topic: str) -> list[object]:
        """Payloads received on one topic, in order: parsed JSON, or the text when not JSON
        (``<prefix>/status`` is plain ``online``/``offline``)."""
        import json

        out: list[object] = []
        for m in self.messages:
            if m.topic == topic:
                try:
                    out.append(json.loads(m.payload))
                except ValueError:
                    out.append(m.payload.decode("utf-8", "replace"))
        return out

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        import trio

        with trio.fail_after(timeout_s):
            while not predicate():
                await trio.sleep(0.01)


@pytest.fixture
def subscriber_factory() -> Iterator[Callable[..., Subscriber]]:
    """``subscriber_factory(broker, ["topic/#"], clean=False, ...)``; start with nursery.start."""
    made: list[Subscriber] = []

    def make(broker: Broker, topics: list[str], **kwargs: object) -> Subscriber:
        sub = Subscriber(broker, topics, **kwargs)  # type: ignore[arg-type]
        made.append(sub)
        return sub

    yield make
    for sub in made:
        sub.client.disconnect()
        sub.client.loop(timeout=0)
        if sub.client.socket() is not None:
            sub.client.socket().close()


REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout (``pip wheel --no-deps``), built from a snapshot so that the
    build writes nothing into the checkout and concurrent edits cannot change it mid-run."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src)
    shutil.copytree(REPO / "edge_anpr", src / "edge_anpr",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if (REPO / "edge_anpr.egg-info").is_dir():
        # as in a user's checkout after `make`: its file list must not bring training back
        shutil.copytree(REPO / "edge_anpr.egg-info", src / "edge_anpr.egg-info")
    dist = base / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(dist), str(src)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "SOURCE_DATE_EPOCH": "315532800"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (built,) = dist.glob("edge_anpr-*.whl")
    return built


@pytest.fixture(scope="session")
def wheelhouse(request: pytest.FixtureRequest, wheel: Path) -> Path:
    """A folder with every run-time dependency of ``wheel`` as a wheel (not ``wheel`` itself).

    Filled from the package index on first use and kept in pytest's cache folder: later runs
    download only what changed. A site with no index copies such a folder to the Pi (the
    Ansible role's ``edge_anpr_wheelhouse``)."""
    folder = Path(request.config.cache.mkdir("wheelhouse"))
    # One filler at a time: the workers of a parallel run (pytest -n) share this folder.
    with (folder.parent / "wheelhouse.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
             "--dest", str(folder), "--find-links", str(folder), str(wheel)],
            capture_output=True, text=True, timeout=900,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        for own in folder.glob("edge_anpr-*.whl"):
            own.unlink()
    return folder
