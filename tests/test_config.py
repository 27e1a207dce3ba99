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
        '[cameras.gate]\nid = 3\nkey = "s3cret"\n[[known_plates]]\nname = "me"\nplate = "AB12*"\n'
        'match = "wildcard"\ngate = true\n'
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


def test_readme_documents_every_key() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for line in config_reference_markdown().splitlines()[2:]:
        key = line.split("`")[1]
        assert f"`{key}`" in readme, f"README lacks config key {key}"
