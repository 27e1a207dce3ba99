"""Logs as an operator meets them: journald priorities, LiteRT's chatter, the progress bar.

The journal cases run the real CLI in a child process whose stderr is a file, with
``JOURNAL_STREAM`` naming that file's ``device:inode`` exactly as systemd names the stream it
connects (``journalctl -p`` filters on the priority journald reads from the ``<N>`` prefix).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_anpr.lab.progress import show_progress
from edge_anpr.logs import syslog_priority
from edge_anpr.vision.native_stderr import native_stderr_to_log

REPO = Path(__file__).resolve().parent.parent
FRAME = REPO / "edge_anpr" / "assets" / "demo" / "frame_00.jpg"

EMIT = """
import logging, sys
from edge_anpr.logs import setup_logging
setup_logging(sys.argv[1])
log = logging.getLogger("probe")
log.debug("event=d")
log.info("event=i")
log.warning("event=w")
log.error("event=e")
try:
    raise ValueError("boom")
except ValueError:
    log.exception("event=x")
"""


def run_with_stderr_file(
    argv: list[str], stderr_path: Path, journal_of: Path | None
) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    with stderr_path.open("wb") as err:
        if journal_of is not None:
            st = os.stat(journal_of)
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        return subprocess.run(argv, stderr=err, stdout=subprocess.PIPE, env=env, timeout=120,
                              cwd=REPO)


def test_journal_lines_carry_their_priority(tmp_path: Path) -> None:
    err = tmp_path / "stderr"
    err.touch()
    proc = run_with_stderr_file([sys.executable, "-c", EMIT, "debug"], err, journal_of=err)
    assert proc.returncode == 0
    lines = err.read_text().splitlines()
    assert lines[:4] == [
        "<7>DEBUG probe event=d", "<6>INFO probe event=i",
        "<4>WARNING probe event=w", "<3>ERROR probe event=e",
    ]
    # A traceback is one record: every one of its lines keeps the record's priority.
    assert lines[4] == "<3>ERROR probe event=x"
    assert len(lines) > 6 and all(line.startswith("<3>") for line in lines[4:])
    assert lines[-1] == "<3>ValueError: boom"


def test_no_prefix_when_stderr_is_not_the_journal(tmp_path: Path) -> None:
    # The variable is inherited by children whose stderr is something else (a pipe, a file):
    # they must not write prefixes a person would then read.
    err, other = tmp_path / "stderr", tmp_path / "other"
    other.touch()
    proc = run_with_stderr_file([sys.executable, "-c", EMIT, "info"], err, journal_of=other)
    assert proc.returncode == 0
    lines = err.read_text().splitlines()
    assert not [line for line in lines if line.startswith("<")]
    assert " WARNING probe event=w" in lines[1]  # after the timestamp


def test_priority_of_each_level() -> None:
    assert [syslog_priority(lv) for lv in (5, 10, 20, 25, 30, 40, 50)] == [7, 7, 6, 6, 4, 3, 2]


@pytest.mark.parametrize("level", ["warning", "WARNING", "Info"])
def test_litert_chatter_is_below_info(tmp_path: Path, level: str) -> None:
    err = tmp_path / "stderr"
    proc = run_with_stderr_file(
        [sys.executable, "-m", "edge_anpr", "--log-level", level, "recognize", str(FRAME)],
        err, journal_of=None,
    )
    assert proc.returncode == 0, err.read_text()
    text = err.read_text()
    assert "XNNPACK" not in text
    assert ("event=recognized" in text) == (level.upper() == "INFO")


def test_litert_chatter_is_a_debug_record_in_the_journal(tmp_path: Path) -> None:
    err = tmp_path / "stderr"
    err.touch()
    proc = run_with_stderr_file(
        [sys.executable, "-m", "edge_anpr", "--log-level", "debug", "recognize", str(FRAME)],
        err, journal_of=err,
    )
    assert proc.returncode == 0, err.read_text()
    litert = [line for line in err.read_text().splitlines() if "XNNPACK" in line]
    assert litert == ['<7>DEBUG edge_anpr.vision.native_stderr event=litert '
                      'message="Created TensorFlow Lite XNNPACK delegate for CPU."']


def test_capture_passes_other_output_through(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only caplog's handler: an earlier test's setup_logging may have left a handler on a
    # stream pytest has closed since, whose "Logging error" would land in capfd.
    monkeypatch.setattr(logging.getLogger(), "handlers", [caplog.handler])
    caplog.set_level(logging.DEBUG, logger="edge_anpr.vision.native_stderr")
    with native_stderr_to_log():
        os.write(2, b"another thread's line\nINFO: chatter\nWARNING: odd op\ntail\n")
    assert capfd.readouterr().err == "another thread's line\ntail\n"
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, "event=litert message=chatter"),
        (logging.WARNING, 'event=litert message="odd op"'),
    ]


def test_progress_off_a_terminal_is_one_final_line(capsys: pytest.CaptureFixture[str]) -> None:
    for done in range(1, 4):
        show_progress(done, 3, "crops", final=done == 3)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("\n")  # redraws are \r within that line
    assert "crops: 100%" in err and "3/3" in err
