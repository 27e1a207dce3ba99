"""The event stage against a real mosquitto: topics, payloads (schema-checked), status, will,
discovery, known plates and gate commands, TLS, passwords and MQTT 5."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest
import trio

from edge_anpr.config import Config, config_from_dict
from edge_anpr.publish.stage import StatsReport, run_event_stage
from edge_anpr.values import Candidate, PlateRead, PlateText

if TYPE_CHECKING:  # fixtures come from conftest.py, however tests/ is imported
    from conftest import Broker, Subscriber

SCHEMAS = Path(__file__).resolve().parents[1] / "edge_anpr" / "publish" / "schemas"
PREFIX = "edge-anpr/test"


def schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{name}.json").read_text())  # type: ignore[no-any-return]


def validate(name: str, payload: object) -> None:
    jsonschema.Draft202012Validator(schema(name)).validate(payload)


def make_cfg(
    broker: Broker, tmp_path: Path, quiet_time_s: float = 0.3, **mqtt: object
) -> Config:
    raw: dict[str, Any] = {
        "device": {"name": "test", "stats_interval_s": 0.5},
        "tracker": {"quiet_time_s": quiet_time_s},
        "cameras": {"gate": {"id": 1}},
        "mqtt": {
            "host": broker.host, "port": broker.port, "reconnect_min_s": 0.1,
            "reconnect_max_s": 0.5, "outbox_path": str(tmp_path / "outbox.sqlite"), **mqtt,
        },
        "known_plates": [
            {"name": "Alice", "plate": "AB123CD", "max_edit_distance": 1, "gate": True},
            {"name": "Vans", "plate": "V*", "match": "wildcard"},
        ],
    }
    return config_from_dict(raw)


def plate_read(text: str, t: float, camera: str = "gate", conf: float = 0.9,
               box: tuple[int, int, int, int] = (100, 200, 120, 30),
               candidates: tuple[Candidate, ...] = ()) -> PlateRead:
    return PlateRead(
        camera=camera,
        text=PlateText(text, conf, tuple(conf for _ in text),
                       candidates or (Candidate(text, conf),), "generic"),
        box_px=box, capture_time_us=1_700_000_000_000_000 + int(t * 1e6),
        frame_sequence=int(t * 10), completed_monotonic_s=time.monotonic(),
        authenticated=True,  # as from a camera with a key: only such reads open the gate
    )


async def start_stage(
    nursery: trio.Nursery, cfg: Config, **kw: Any
) -> trio.MemorySendChannel[PlateRead]:
    send, recv = trio.open_memory_channel[PlateRead](100)
    report = StatsReport(cfg.device.name)
    await nursery.start(
        lambda task_status: run_event_stage(cfg, recv, report, task_status=task_status, **kw)
    )
    nursery.start_soon(_send_stats, report, cfg.device.stats_interval_s)
    return send


async def _send_stats(report: StatsReport, interval_s: float) -> None:
    """What the app's one stats loop does with the event stage's report."""
    while True:
        await trio.sleep(interval_s)
        report.send(report.build({"frames": 7}, tick=True))


async def test_events_plate_known_gate_and_status(
    mosquitto: Broker, subscriber_factory: Callable[..., Subscriber], tmp_path: Path
) -> None:
    cfg = make_cfg(mosquitto, tmp_path)
    sub = subscriber_factory(mosquitto, [f"{PREFIX}/#"])
    printed: list[dict[str, Any]] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(sub.run)
        send = await start_stage(nursery, cfg, on_event=printed.append)
        # Alice's car, first misread by one character then read right: one event, known once,
        # one gate command; then a van (known, no gate) and a stranger.
        await send.send(plate_read("AB123CO", 0.0, conf=0.6))
        await send.send(plate_read("AB123CD", 0.1, conf=0.95))
        await send.send(plate_read("AB123CD", 0.2, conf=0.95))
        await send.send(plate_read("VAN001", 0.3, box=(600, 200, 120, 30)))
        await send.send(plate_read("ZZ999ZZ", 0.4, camera="exit"))
        ends = lambda: [m for m in sub.messages if m.topic.endswith("/event")  # noqa: E731
                        and json.loads(m.payload)["kind"] == "end"]
        await sub.wait_for(lambda: len(ends()) == 3)
        await sub.wait_for(lambda: len(sub.on(f"{PREFIX}/status/stats")) >= 1)
        nursery.cancel_scope.cancel()

    events = sub.on(f"{PREFIX}/gate/event") + sub.on(f"{PREFIX}/exit/event")
    for e in events:
        validate("event", e)
    alice = [e for e in events if e["plate"].startswith("AB123")]  # type: ignore[index]
    assert [(e["kind"], e["plate"]) for e in alice] == [  # type: ignore[index]
        ("start", "AB123CO"), ("update", "AB123CD"), ("end", "AB123CD"),
    ]
    assert len({e["event_id"] for e in alice}) == 1  # type: ignore[index]
    assert alice[-1]["known"]["name"] == "Alice"  # type: ignore[index]
    assert alice[-1]["read_count"] == 3  # type: ignore[index]

    known = sub.on(f"{PREFIX}/gate/known")
    for k in known:
        validate("known", k)
    assert sorted(k["name"] for k in known) == ["Alice", "Vans"]  # type: ignore[index]
    gate = sub.on(f"{PREFIX}/gate/gate")
    assert len(gate) == 1
    validate("gate", gate[0])
    assert gate[0]["command"] == "open"  # type: ignore[index]
    assert gate[0]["event_id"] == alice[0]["event_id"]  # type: ignore[index]
    assert sub.on(f"{PREFIX}/exit/known") == []
    assert sub.on(f"{PREFIX}/exit/gate") == []

    plates = [m for m in sub.messages if m.topic == f"{PREFIX}/gate/plate"]
    for m in plates:
        validate("plate", json.loads(m.payload))
    assert json.loads(plates[-1].payload)["plate"] == "VAN001"

    stats = sub.on(f"{PREFIX}/status/stats")[-1]
    validate("stats", stats)
    assert stats["pipeline"] == {"frames": 7}  # type: ignore[index]
    status = [m.payload for m in sub.messages if m.topic == f"{PREFIX}/status"]
    assert status[0] == b"online"
    # The stdout callback saw exactly what went to the event topics, in the same order.
    received = [json.loads(m.payload) for m in sub.messages if m.topic.endswith("/event")]
    assert [(p["event_id"], p["kind"]) for p in printed] == [
        (e["event_id"], e["kind"]) for e in received
    ]


async def test_retained_status_and_plate_for_late_subscribers(
    mosquitto: Broker, subscriber_factory: Callable[..., Subscriber], tmp_path: Path
) -> None:
    cfg = make_cfg(mosquitto, tmp_path)
    async with trio.open_nursery() as nursery:
        send = await start_stage(nursery, cfg)
        await send.send(plate_read("KL456MN", 0.0))
        late = subscriber_factory(mosquitto, [f"{PREFIX}/status", f"{PREFIX}/gate/plate"],
                                  client_id="late")
        await trio.sleep(0.5)
        await nursery.start(late.run)
        await late.wait_for(lambda: len(late.messages) >= 2)
        nursery.cancel_scope.cancel()
    got = {m.topic: m for m in late.messages}
    assert got[f"{PREFIX}/status"].retain and got[f"{PREFIX}/status"].payload == b"online"
    assert got[f"{PREFIX}/gate/plate"].retain
    assert json.loads(got[f"{PREFIX}/gate/plate"].payload)["plate"] == "KL456MN"


async def test_clean_shutdown_says_offline_and_flushes_open_events(
    mosquitto: Broker, subscriber_factory: Callable[..., Subscriber], tmp_path: Path
) -> None:
    cfg = make_cfg(mosquitto, tmp_path, quiet_time_s=60.0, flush_timeout_s=3.0)
    sub = subscriber_factory(mosquitto, [f"{PREFIX}/#"])
    async with trio.open_nursery() as outer:
        await outer.start(sub.run)
        async with trio.open_nursery() as nursery:
            send = await start_stage(nursery, cfg)
            await send.send(plate_read("KL456MN", 0.0))
            await sub.wait_for(lambda: len(sub.on(f"{PREFIX}/gate/event")) == 1)
            nursery.cancel_scope.cancel()  # the SIGTERM path: the event is still open
        await sub.wait_for(
            lambda: [m.payload for m in sub.messages if m.topic == f"{PREFIX}/status"][-1:]
            == [b"offline"]
        )
        outer.cancel_scope.cancel()
    assert [e["kind"] for e in sub.on(f"{PREFIX}/gate/event")] == ["start", "end"]  # type: ignore[index]


STAGE_SCRIPT = """
import sys, trio
from edge_anpr.config import load_config
from edge_anpr.publish.stage import run_event_stage
from pathlib import Path

async def main():
    send, recv = trio.open_memory_channel(10)
    async with trio.open_nursery() as n:
        await n.start(lambda task_status: run_event_stage(load_config(Path(sys.argv[1])), recv,
                                                          task_status=task_status))
        print("ready", flush=True)
        await trio.sleep_forever()

trio.run(main)
"""


async def test_last_will_is_offline_when_the_appliance_dies(
    mosquitto: Broker, subscriber_factory: Callable[..., Subscriber], tmp_path: Path
) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text(
        f'[device]\nname = "test"\n[mqtt]\nhost = "{mosquitto.host}"\nport = {mosquitto.port}\n'
        f'keepalive_s = 5\noutbox_path = "{tmp_path / "o.sqlite"}"\n'
    )
    sub = subscriber_factory(mosquitto, [f"{PREFIX}/status"])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", STAGE_SCRIPT, str(conf)], stdout=subprocess.PIPE, env=env
    )
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(sub.run)
            status = lambda: [m.payload for m in sub.messages]  # noqa: E731
            await sub.wait_for(lambda: status()[-1:] == [b"online"], timeout_s=15)
            proc.send_signal(signal.SIGKILL)  # no clean disconnect: the broker sends the will
            await sub.wait_for(lambda: status()[-1:] == [b"offline"], timeout_s=5)
            nursery.cancel_scope.cancel()
    finally:
        proc.kill()
        proc.wait()
    assert status() == [b"online", b"offline"]


CANCEL_SCRIPT = """
import sys, time, trio
from edge_anpr.config import load_config
from edge_anpr.publish.stage import run_event_stage
from pathlib import Path

async def main():
    cfg = load_config(Path(sys.argv[1]))
    for checkpoints in range(12):
        send, recv = trio.open_memory_channel(10)
        started = time.monotonic()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_event_stage, cfg, recv)
            for _ in range(checkpoints):
                await trio.lowlevel.checkpoint()
            nursery.cancel_scope.cancel()
        print(f"stopped after {checkpoints} checkpoints in {time.monotonic() - started:.2f} s",
              flush=True)

trio.run(main)
"""


def test_cancelled_while_starting_the_stage_still_ends(mosquitto: Broker, tmp_path: Path) -> None:
    """A pipeline cancelled in its first moments (another stage failed at start) must end.

    The publisher runs shielded so that the outbox can be flushed on the way out; a
    cancellation that reached the stage while it was still starting the publisher used to
    leave that shielded task running for ever, and the process never exited. Cancelled after
    0 to 11 checkpoints, which covers the stage's start, the stage must end every time.
    """
    conf = tmp_path / "c.toml"
    conf.write_text(
        f'[device]\nname = "test"\n[mqtt]\nhost = "{mosquitto.host}"\nport = {mosquitto.port}\n'
        f'outbox_path = "{tmp_path / "o.sqlite"}"\n'
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    try:
        done = subprocess.run(
            [sys.executable, "-c", CANCEL_SCRIPT, str(conf)], capture_output=True, text=True,
            env=env, timeout=60,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the event stage did not end after a cancellation: {exc.stdout!r}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("stopped after") == 12, done.stdout


async def test_home_assistant_discovery(
    mosquitto: Broker, subscriber_factory: Callable[..., Subscriber], tmp_path: Path
) -> None:
    cfg = make_cfg(mosquitto, tmp_path)
    sub = subscriber_factory(mosquitto, ["homeassistant/#"])
    sensor = "homeassistant/sensor/test/{}_plate/config"
    trigger = "homeassistant/device_automation/test/{}_known/config"
    async with trio.open_nursery() as nursery:
        await nursery.start(sub.run)
        send = await start_stage(nursery, cfg)
        # the configured camera is announced at start
        await sub.wait_for(lambda: len(sub.on(trigger.format("gate"))) == 1)
        assert sub.on(sensor.format("gate"))
        # a camera seen for the first time is announced when it appears
        await send.send(plate_read("ZZ999ZZ", 0.0, camera="back yard"))
        await sub.wait_for(lambda: len(sub.on(sensor.format("back_yard"))) == 1)
        # Home Assistant restarting asks for everything again
        sub.client.publish("homeassistant/status", "online")
        await sub.wait_for(lambda: len(sub.on(sensor.format("gate"))) == 2)
        await sub.wait_for(lambda: len(sub.on(sensor.format("back_yard"))) == 2)
        nursery.cancel_scope.cancel()
    for cam in ("gate", "back_yard"):
        s = sub.on(sensor.format(cam))[-1]
        validate("discovery_sensor", s)
        assert s["state_topic"] == f"{PREFIX}/{cam}/plate"  # type: ignore[index]
        assert s["availability_topic"] == f"{PREFIX}/status"  # type: ignore[index]
        t = sub.on(trigger.format(cam))[-1]
        validate("discovery_trigger", t)
        assert t["topic"] == f"{PREFIX}/{cam}/known"  # type: ignore[index]
    # retained: a Home Assistant that starts later still finds both cameras (4 entities
    # each) and the device's 5 diagnostics
    late = subscriber_factory(mosquitto, ["homeassistant/#"], client_id="late-ha")
    async with trio.open_nursery() as nursery:
        await nursery.start(late.run)
        await late.wait_for(lambda: len(late.messages) == 13)
        nursery.cancel_scope.cancel()
    assert all(m.retain for m in late.messages)
    image = "homeassistant/image/test/{}_snapshot/config"
    event = "homeassistant/event/test/{}_sighting/config"
    diagnostics = [f"homeassistant/sensor/test/{d}/config"
                   for d in ("frames_per_s", "dropped", "queue_depth", "outbox_pending")]
    assert sorted(m.topic for m in late.messages) == sorted(
        [t.format(c) for t in (sensor, trigger, image, event) for c in ("gate", "back_yard")]
        + diagnostics + ["homeassistant/binary_sensor/test/broker/config"]
    )


async def _one_event_arrives(broker: Broker, sub: Subscriber, cfg: Config) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(sub.run)
        send = await start_stage(nursery, cfg)
        await send.send(plate_read("AB123CD", 0.0))
        await sub.wait_for(lambda: len(sub.on(f"{PREFIX}/gate/gate")) == 1)
        nursery.cancel_scope.cancel()
    validate("gate", sub.on(f"{PREFIX}/gate/gate")[0])


async def test_tls_with_generated_ca(
    mosquitto_factory: Callable[..., Broker], subscriber_factory: Callable[..., Subscriber],
    tmp_path: Path,
) -> None:
    broker = mosquitto_factory(tls=True)
    cfg = make_cfg(broker, tmp_path, tls=True, ca_file=broker.ca_file)
    await _one_event_arrives(broker, subscriber_factory(broker, [f"{PREFIX}/#"]), cfg)


async def test_tls_with_an_untrusted_server_keeps_events_in_the_outbox(
    mosquitto_factory: Callable[..., Broker], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker = mosquitto_factory(tls=True)
    cfg = make_cfg(broker, tmp_path, tls=True, flush_timeout_s=0.2)  # system CAs: not ours
    async with trio.open_nursery() as nursery:
        send = await start_stage(nursery, cfg)
        await send.send(plate_read("AB123CD", 0.0))
        await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
    from edge_anpr.publish.outbox import Outbox

    box = Outbox(str(tmp_path / "outbox.sqlite"), 100)
    assert [m.topic.rsplit("/", 1)[1] for m in box.pending()] == [
        "event", "plate", "sighting", "known", "sighting", "gate", "event",
    ]
    box.close()


async def test_username_and_password(
    mosquitto_factory: Callable[..., Broker], subscriber_factory: Callable[..., Subscriber],
    tmp_path: Path,
) -> None:
    broker = mosquitto_factory(users={"anpr": "s3cret pass", "ha": "x"})
    cfg = make_cfg(broker, tmp_path, username="anpr", password="s3cret pass")
    sub = subscriber_factory(broker, [f"{PREFIX}/#"], username="ha", password="x")
    await _one_event_arrives(broker, sub, cfg)


async def test_wrong_password_is_refused_and_logged(
    mosquitto_factory: Callable[..., Broker], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker = mosquitto_factory(users={"anpr": "right"})
    cfg = make_cfg(broker, tmp_path, username="anpr", password="wrong", flush_timeout_s=0.2)
    async with trio.open_nursery() as nursery:
        send = await start_stage(nursery, cfg)
        await send.send(plate_read("AB123CD", 0.0))
        await trio.sleep(0.6)
        nursery.cancel_scope.cancel()
    refusals = [r for r in caplog.records if "refused the connection" in r.getMessage()]
    assert len(refusals) == 1, "the same refusal is logged once, not on every retry"
    assert "mqtt.username" in refusals[0].getMessage()


async def test_mqtt5(
    mosquitto: Broker, subscriber_factory: Callable[..., Subscriber], tmp_path: Path
) -> None:
    cfg = make_cfg(mosquitto, tmp_path, protocol="5")
    await _one_event_arrives(mosquitto, subscriber_factory(mosquitto, [f"{PREFIX}/#"]), cfg)


async def test_mqtt5_refused_topic_is_dropped_without_blocking_the_queue(
    mosquitto_factory: Callable[..., Broker], subscriber_factory: Callable[..., Subscriber],
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    # known and gate topics are not allowed for this client: MQTT 5 PUBACKs say so
    broker = mosquitto_factory(acl="".join(
        f"topic readwrite {t}\n" for t in (f"{PREFIX}/+/event", f"{PREFIX}/+/plate",
                                           f"{PREFIX}/+/sighting",
                                           f"{PREFIX}/status", f"{PREFIX}/status/#",
                                           "homeassistant/#")
    ))
    cfg = make_cfg(broker, tmp_path, protocol="5")
    sub = subscriber_factory(broker, [f"{PREFIX}/#"])
    async with trio.open_nursery() as nursery:
        await nursery.start(sub.run)
        send = await start_stage(nursery, cfg)
        await send.send(plate_read("AB123CD", 0.0))  # known + gate: refused
        await send.send(plate_read("ZZ999ZZ", 0.0, camera="exit"))
        await sub.wait_for(lambda: len(sub.on(f"{PREFIX}/exit/event")) == 2)
        nursery.cancel_scope.cancel()
    assert [e["kind"] for e in sub.on(f"{PREFIX}/gate/event")] == ["start", "end"]  # type: ignore[index]
    assert sub.on(f"{PREFIX}/gate/gate") == []
    rejected = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert len(rejected) == 2, [r.getMessage() for r in rejected]
    assert "authori" in rejected[0].getMessage().lower()


async def test_tls_with_client_certificate(
    mosquitto_factory: Callable[..., Broker], subscriber_factory: Callable[..., Subscriber],
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="edge_anpr.publish")
    broker = mosquitto_factory(tls=True, client_certs=True)
    # without a client certificate the broker hangs up during the handshake
    cfg = make_cfg(broker, tmp_path, tls=True, ca_file=broker.ca_file, flush_timeout_s=0.2)
    async with trio.open_nursery() as nursery:
        send = await start_stage(nursery, cfg, outbox_path=str(tmp_path / "first.sqlite"))
        await send.send(plate_read("AB123CD", 0.0))
        await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    assert "mqtt connected" not in caplog.text
    assert "mqtt connection failed" in caplog.text
    cfg = make_cfg(broker, tmp_path, tls=True, ca_file=broker.ca_file,
                   cert_file=broker.client_cert, key_file=broker.client_key)
    await _one_event_arrives(broker, subscriber_factory(broker, [f"{PREFIX}/#"]), cfg)


async def test_unusable_tls_files_name_the_keys(mosquitto: Broker, tmp_path: Path) -> None:
    # The loader refuses a missing file (tests/test_config.py); this is one that went away
    # between the check and the start of the stage.
    from edge_anpr.errors import PublishError

    checked = make_cfg(mosquitto, tmp_path)
    gone = dataclasses.replace(checked.mqtt, tls=True, ca_file=str(tmp_path / "gone.pem"))
    cfg = dataclasses.replace(checked, mqtt=gone)
    _send, recv = trio.open_memory_channel[PlateRead](1)
    with pytest.raises(PublishError, match=r"mqtt\.ca_file="):
        await run_event_stage(cfg, recv)


async def retained_now(broker: Broker, subscriber_factory: Callable[..., Subscriber],
                       topics: list[str], client_id: str) -> dict[str, bytes]:
    """The retained messages a subscriber starting now gets (topic -> payload)."""
    late = subscriber_factory(broker, topics, client_id=client_id)
    async with trio.open_nursery() as nursery:
        await nursery.start(late.run)
        await trio.sleep(0.5)  # retained messages come right after the subscription
        nursery.cancel_scope.cancel()
    return {m.topic: m.payload for m in late.messages if m.retain and m.payload}


async def test_spoofed_cameras_get_bounded_retained_state_that_expires(
    mosquitto: Broker, subscriber_factory: Callable[..., Subscriber], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """50 made-up camera ids: at most mqtt.max_unconfigured_cameras of them get discovery and
    retained plate topics, those expire after mqtt.unconfigured_expire_s quiet, a stale config
    left by an earlier run is cleared on connect, and their event lines are rate-limited."""
    caplog.set_level(logging.INFO)
    cfg = make_cfg(mosquitto, tmp_path, max_unconfigured_cameras=2, unconfigured_expire_s=1.0)
    discovery = ["homeassistant/+/test/+/config"]
    state = [f"{PREFIX}/+/plate", f"{PREFIX}/+/snapshot"]
    # an earlier run announced cam-999: its configs and retained plate are still on the broker
    seed = subscriber_factory(mosquitto, [f"{PREFIX}/none"], client_id="seed")
    stale_plate = f"{PREFIX}/cam-999/plate"
    stale_config = "homeassistant/sensor/test/cam-999_plate/config"
    async with trio.open_nursery() as nursery:
        await nursery.start(seed.run)
        seed.client.publish(stale_plate, b'{"plate": "OLD1"}', qos=1, retain=True)
        seed.client.publish(stale_config, json.dumps({"state_topic": stale_plate}), qos=1,
                            retain=True)
        await trio.sleep(0.3)
        nursery.cancel_scope.cancel()
    assert set(await retained_now(mosquitto, subscriber_factory, [stale_config, stale_plate],
                                  "check-seed")) == {stale_config, stale_plate}

    async with trio.open_nursery() as nursery:
        send = await start_stage(nursery, cfg)
        await send.send(plate_read("AB123CD", 0.0))  # the configured camera
        for n in range(50):
            await send.send(plate_read(f"SP{n:03d}X", 0.01 * n, camera=f"cam-{100 + n}"))
        await trio.sleep(0.4)  # events written and published, well before the expiry
        configs = await retained_now(mosquitto, subscriber_factory, discovery, "ha-1")
        plates = await retained_now(mosquitto, subscriber_factory, state, "state-1")
        await trio.sleep(2.0)  # quiet: the two announced made-up cameras expire
        configs_after = await retained_now(mosquitto, subscriber_factory, discovery, "ha-2")
        plates_after = await retained_now(mosquitto, subscriber_factory, state, "state-2")
        nursery.cancel_scope.cancel()

    entities = [t.split("/")[3].rsplit("_", 1) for t in configs]
    cameras = {e[0] for e in entities if e[-1] in ("plate", "snapshot", "sighting", "known")}
    assert cameras == {"gate", "cam-100", "cam-101"}, sorted(configs)
    assert len(configs) == 3 * 4 + 5  # three cameras' four entities, the five diagnostics
    assert set(plates) == {f"{PREFIX}/{c}/plate" for c in ("gate", "cam-100", "cam-101")}
    assert stale_config not in configs and stale_plate not in plates  # cleared on connect
    assert not [t for t in configs_after if "cam-1" in t], sorted(configs_after)
    assert set(plates_after) == {f"{PREFIX}/gate/plate"}
    lines = [r for r in caplog.records if "plate event" in r.getMessage()
             and "camera=cam-" in r.getMessage()]
    assert 1 <= len(lines) <= 2, [r.getMessage() for r in lines]  # 100 events (start and end)
