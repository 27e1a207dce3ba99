import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_anpr.cli import main
from edge_anpr.config import Config, config_from_dict, config_reference_markdown, load_config
from edge_anpr.errors import ConfigError


def test_defaults_need_no_file() -> None:
    cfg = load_config(None)
    assert cfg.ingest.port == 6112
    assert cfg.ingest.max_frame_bytes == 4 * 1024 * 1024


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"ingest": {"prot": 1}}, "unknown key 'ingest.prot'"),
        ({"ingest": {"port": "x"}}, "ingest.port must be an integer"),
        ({"ingest": {"port": 70000}}, "ingest.port must be at most 65535"),
        ({"mqtt": {"protocol": "4"}}, "mqtt.protocol must be one of"),
        ({"cameras": {"gate": {"id": True}}}, "cameras.gate.id must be an integer"),
        ({"cameras": {"a": {"id": 1}, "b": {"id": 1}}}, "cameras.b.id 1 is already used"),
        ({"known_plates": [{"plate": "(", "match": "regex"}]}, "known_plates[0].plate"),
        ({"detector": {"min_plate_width_px": 500, "max_plate_width_px": 100}}, "min_plate"),
        ({"reader": {"regions": ["br", "atlantis"]}}, "reader.regions: unknown plate region"),
        ({"cameras": {"gate": {"regions": ["xx"]}}}, "cameras.gate.regions: unknown plate"),
    ],
)
def test_bad_values_name_the_key(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        config_from_dict(raw)


def test_good_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[cameras.gate]\nid = 3\nkey = "s3cret-s3cret-s3cret"\n'
        '[[known_plates]]\nname = "me"\nplate = "AB12*"\nmatch = "wildcard"\ngate = true\n'
    )
    cfg = load_config(path)
    assert cfg.cameras["gate"].id == 3
    assert cfg.known_plates[0].gate is True
    assert isinstance(cfg, Config)


def test_cli_bad_config_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[ingest]\nmax_frame_bytes = -1\n")
    assert main(["config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    expected = f"{path}: ingest.max_frame_bytes must be at least 1024, got -1"
    assert err == [f"edge-anpr: error: {expected}"]


TABLE_START = "<!-- edge-anpr config --markdown: start -->"
TABLE_END = "<!-- edge-anpr config --markdown: end -->"


def test_the_key_table_is_the_generated_one() -> None:
    """docs/configuration.md (or README.md, before it moved) holds exactly the table
    ``edge-anpr config --markdown`` prints, between the markers."""
    repo = Path(__file__).parent.parent
    doc = repo / "docs" / "configuration.md"
    text = (doc if doc.exists() else repo / "README.md").read_text()
    table = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]
    assert table.strip() == config_reference_markdown().strip()


@pytest.mark.parametrize(
    ("raw", "moved_to"),
    [
        ({"detector": {"min_read_confidence": 0.9}}, "reader.min_plate_confidence"),
        ({"detector": {"min_fitting_read_confidence": 0.8}},
         "reader.min_fitting_plate_confidence"),
        ({"reader": {"models_dir": "/opt/edge-anpr/models"}}, "models.dir"),
    ],
)
def test_renamed_keys_say_where_they_went(raw: dict[str, object], moved_to: str) -> None:
    (section,) = raw
    (old,) = raw[section]  # type: ignore[misc]
    with pytest.raises(ConfigError, match=rf"^config: {section}\.{old} moved to {moved_to}: "):
        config_from_dict(raw)


# --- the loader is the only validator: `config FILE` rejects exactly what `serve` would ---------

EDGE_ANPR = [sys.executable, "-m", "edge_anpr"]


def _bad_cases(tmp: Path) -> list[tuple[str, str]]:
    """(TOML, the key the one-line error must name) for every check `serve` relies on."""
    not_pem = tmp / "not-a-cert.pem"
    not_pem.write_text("this is not a certificate\n")
    empty_models = tmp / "empty-models"
    empty_models.mkdir(exist_ok=True)
    a_file = tmp / "a-file"
    a_file.write_text("")
    return [
        ('[mqtt]\ntls = true\nca_file = "/nonexistent/ca.pem"\n', "mqtt.ca_file"),
        (f'[mqtt]\ntls = true\ncert_file = "{tmp}"\n', "mqtt.cert_file"),
        (f'[mqtt]\ntls = true\nca_file = "{not_pem}"\n', "mqtt.ca_file"),
        (f'[mqtt]\ntls = true\ncert_file = "{not_pem}"\n', "mqtt.ca_file/cert_file/key_file"),
        ('[mqtt]\ntopic_prefix = "site/+/gate"\n', "mqtt.topic_prefix"),
        ('[mqtt]\ntopic_prefix = "$SYS/x"\n', "mqtt.topic_prefix"),
        ('[mqtt]\nhomeassistant_prefix = "ha/#"\n', "mqtt.homeassistant_prefix"),
        ('[device]\nname = "box#1"\n', "device.name"),
        ('[device]\nname = ""\n', "device.name"),
        ('[device]\nlog_level = "loud"\n', "device.log_level"),
        ('[ingest]\nbind = "localhost"\n', "ingest.bind"),
        ('[ingest]\nbind = "300.1.1.1"\n', "ingest.bind"),
        ("[ingest]\nport = 70000\n", "ingest.port"),
        ("[mqtt]\nport = 0\n", "mqtt.port"),
        ('[ingest]\nkey = "short"\n', "ingest.key"),
        ('[cameras.gate]\nid = 1\nkey = "fifteen-bytes!!"\n', "cameras.gate.key"),
        ('[models]\ndir = "/nonexistent/models"\n', "models.dir"),
        (f'[models]\ndir = "{empty_models}"\n', "models.dir"),
        ('[[known_plates]]\nplate = "AB.*"\nmatch = "regex"\nmax_edit_distance = 2\n',
         "known_plates[0].max_edit_distance"),
        # the outbox is used with MQTT off too (serve --no-mqtt), so it is always checked
        (f'[mqtt]\noutbox_path = "{tmp}"\n', "mqtt.outbox_path"),
        (f'[mqtt]\noutbox_path = "{a_file}/outbox.sqlite"\n', "mqtt.outbox_path"),
        # TOML has nan and inf: no key takes them (serve crashed on a sleep of nan seconds)
        ("[device]\nstats_interval_s = nan\n", "device.stats_interval_s"),
        ("[ingest]\nreplay_window_s = inf\n", "ingest.replay_window_s"),
        ("[detector]\nscore_threshold = -inf\n", "detector.score_threshold"),
        ("[tracker]\nparked_iou = nan\n", "tracker.parked_iou"),
        ("[mqtt]\nreconnect_min_s = inf\n", "mqtt.reconnect_min_s"),
        # a legacy camera's address is matched as text: it must be one, written as the kernel does
        ('[cameras.gate]\nsource = "192.168.1.300"\n', "cameras.gate.source"),
        ('[cameras.gate]\nsource = "gate.lan"\n', "cameras.gate.source"),
        ('[cameras.gate]\nsource = "FD00::30"\n', "cameras.gate.source"),
    ]


@pytest.mark.parametrize("index", range(29))
def test_config_command_rejects_what_serve_would(
    tmp_path: Path, index: int, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = _bad_cases(tmp_path)
    assert len(cases) == 29
    text, key = cases[index]
    path = tmp_path / "c.toml"
    path.write_text(text)
    assert main(["config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and key in err[0], err


def _serve(args: list[str], timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NOTIFY_SOCKET": "", "WATCHDOG_USEC": ""}
    return subprocess.run(
        [*EDGE_ANPR, *args], capture_output=True, text=True, timeout=timeout_s, env=env,
    )


@pytest.fixture
def held_udp_port() -> Iterator[int]:
    """A UDP port this test holds: a serve that got as far as binding it would exit 1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", 0))
        yield s.getsockname()[1]


def test_serve_rejects_each_bad_config_before_binding(
    tmp_path: Path, held_udp_port: int
) -> None:
    for i, (text, key) in enumerate(_bad_cases(tmp_path)):
        path = tmp_path / f"c{i}.toml"
        path.write_text(text)
        done = _serve(["serve", "--config", str(path), "--no-mqtt", "--port", str(held_udp_port)])
        err = done.stderr.strip().splitlines()
        assert done.returncode == 2, (text, done.stderr)
        assert len(err) == 1 and key in err[0], (text, err)


def test_serve_port_override_is_checked_like_the_file(held_udp_port: int) -> None:
    done = _serve(["serve", "--no-mqtt", "--port", "70000"])
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "edge-anpr: error: --port: ingest.port must be at most 65535, got 70000"
    ]


def test_serve_processes_override_is_checked_like_the_file(held_udp_port: int) -> None:
    for value, problem in (("65", "at most 64, got 65"), ("-1", "at least 0, got -1")):
        done = _serve(["serve", "--no-mqtt", "--port", str(held_udp_port), "--processes", value])
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().splitlines() == [
            f"edge-anpr: error: --port, --processes: workers.processes must be {problem}"
        ]
    done = _serve(["serve", "--no-mqtt", "--processes", "two"])
    assert done.returncode == 2 and "--processes: invalid int value: 'two'" in done.stderr


def test_with_overrides_uses_the_same_checks() -> None:
    from edge_anpr.config import with_overrides

    cfg = with_overrides(Config(), port=0, mqtt=False)
    assert cfg.ingest.port == 0 and cfg.mqtt.enabled is False
    assert with_overrides(Config(), processes=3).workers.processes == 3
    assert with_overrides(cfg, processes=None).workers.processes == Config().workers.processes
    with pytest.raises(ConfigError, match=r"^--port: ingest\.port must be at least 0, got -1$"):
        with_overrides(Config(), port=-1, source="--port")


def test_non_utf8_file_is_one_line_for_config_and_serve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], held_udp_port: int
) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[device]\nname = "caf\u00e9"\n'.encode("latin-1"))
    assert main(["config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not UTF-8" in err[0] and str(path) in err[0]
    done = _serve(["serve", "--config", str(path), "--no-mqtt", "--port", str(held_udp_port)])
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == err


@pytest.mark.parametrize("level", ["debug", "Info", "WARNING"])
def test_log_levels_in_any_case(
    tmp_path: Path, level: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--log-level", level, "config"]) == 0
    path = tmp_path / "c.toml"
    path.write_text(f'[device]\nlog_level = "{level}"\n')
    assert load_config(path).device.log_level == level.upper()
    assert main(["config", str(path)]) == 0


def test_bad_log_level_option_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--log-level", "loud", "config"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--log-level must be one of debug, info" in err[0]


def test_log_level_debug_reaches_serve(tmp_path: Path, held_udp_port: int) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[ingest]\nkey = "short"\n')
    done = _serve(["--log-level", "debug", "serve", "--config", str(path), "--no-mqtt"])
    assert done.returncode == 2 and "ingest.key must be at least 16 bytes" in done.stderr


def test_unreadable_tls_file_names_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (as root every file is readable, so the permission is taken away in the check itself)
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    monkeypatch.setattr(os, "access", lambda path, mode: str(path) != str(ca))
    with pytest.raises(ConfigError, match=r"mqtt\.ca_file: .* is not readable"):
        config_from_dict({"mqtt": {"tls": True, "ca_file": str(ca)}})


def test_unwritable_outbox_folder_or_file_names_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (as root everything is writable, so the permission is taken away in the check itself)
    box = tmp_path / "box"
    box.mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: str(path) != str(box))
    with pytest.raises(ConfigError, match=r"mqtt\.outbox_path: folder .* is not writable"):
        config_from_dict({"mqtt": {"outbox_path": str(box / "sub" / "outbox.sqlite")}})
    (box / "outbox.sqlite").write_text("")
    monkeypatch.setattr(os, "access", lambda path, mode: not str(path).endswith(".sqlite"))
    with pytest.raises(ConfigError, match=r"mqtt\.outbox_path: .* is not writable"):
        config_from_dict({"mqtt": {"outbox_path": str(box / "outbox.sqlite")}})


def test_outbox_on_a_read_only_file_system_names_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class ReadOnly:
        f_flag = os.ST_RDONLY

    monkeypatch.setattr(os, "statvfs", lambda path: ReadOnly())
    with pytest.raises(ConfigError, match=r"mqtt\.outbox_path: .* read-only file system"):
        config_from_dict({"mqtt": {"outbox_path": str(tmp_path / "outbox.sqlite")}})


def test_outbox_paths_that_serve_can_use_pass(tmp_path: Path) -> None:
    for path in ("", ":memory:", str(tmp_path / "new" / "folders" / "outbox.sqlite"),
                 "relative-outbox.sqlite"):
        assert config_from_dict({"mqtt": {"outbox_path": path}}).mqtt.outbox_path == path


def test_tls_files_are_only_checked_when_used() -> None:
    off = {"tls": False, "ca_file": "/nonexistent/ca.pem"}
    assert config_from_dict({"mqtt": off}).mqtt.ca_file == "/nonexistent/ca.pem"
    disabled = {"enabled": False, "tls": True, "ca_file": "/nonexistent/ca.pem"}
    assert config_from_dict({"mqtt": disabled}).mqtt.tls is True


def test_good_keys_addresses_and_models_dir_pass() -> None:
    from edge_anpr.models import bundled_models_dir

    cfg = config_from_dict({
        "ingest": {"bind": "::", "key": "sixteen-bytes-ok"},
        "cameras": {"gate": {"id": 1, "key": "\u00e9" * 8}},  # 16 UTF-8 bytes
        "models": {"dir": str(bundled_models_dir())},
        "mqtt": {"topic_prefix": "site/a/"},
    })
    assert cfg.ingest.bind == "::"


def test_reader_model_file_names_match_the_reader() -> None:
    from edge_anpr.config import READER_MODEL_FILES
    from edge_anpr.vision.reader import CLASSIFIER_FILE, SEGMENTER_FILE

    assert set(READER_MODEL_FILES) == {SEGMENTER_FILE, CLASSIFIER_FILE}


def test_root_checks_the_files_of_a_staged_system(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge_anpr.models import bundled_models_dir

    staged = tmp_path / "opt" / "edge-anpr" / "models"
    staged.mkdir(parents=True)
    for model in bundled_models_dir().glob("*.tflite"):
        (staged / model.name).write_bytes(model.read_bytes())
    path = tmp_path / "c.toml"
    path.write_text('[models]\ndir = "/opt/edge-anpr/models"\n')
    assert main(["config", str(path)]) == 2
    assert main(["config", "--root", str(tmp_path), str(path)]) == 0
