"""The one progress bar of the long CLI commands (benchmarks, evaluations).

Written to stderr, so stdout stays clean for results and JSON lines, and only when stderr is a
terminal or ``final`` is set: a log file or CI output gets one line, not hundreds of redraws.
"""

from __future__ import annotations

import sys


def show_progress(done: int, total: int, unit: str = "", *, final: bool = False) -> None:
    """Draw ``[####....] done/total unit``; ``final`` ends the line."""
    if not (final or sys.stderr.isatty()):
        return
    width = 30
    filled = int(width * min(done, total) / max(total, 1))
    label = f" {unit}" if unit else ""
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}{label}")
    if final:
        sys.stderr.write("\n")
    sys.stderr.flush()
