"""The one progress bar of the long CLI commands (benchmarks, evaluations), drawn by tqdm.

Written to stderr, so stdout stays clean for results and JSON lines, and only when stderr is a
terminal or ``final`` is set: a log file or CI output gets one line, not hundreds of redraws.
Callers report absolute counts (``done`` of ``total``); a call with another total, or a count
that went backwards, starts a new bar.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

_bar: tqdm | None = None


def show_progress(done: int, total: int, unit: str = "", *, final: bool = False) -> None:
    """Show ``done``/``total`` with ``unit`` as the bar's label; ``final`` ends the bar."""
    global _bar
    if not (final or sys.stderr.isatty()):
        return
    done = min(done, total)
    if _bar is None or _bar.total != total or done < _bar.n:
        _close()
        _bar = tqdm(total=total, initial=done, desc=unit, file=sys.stderr, dynamic_ncols=True)
    if unit != _bar.desc:
        _bar.set_description_str(unit, refresh=False)
    _bar.update(done - _bar.n)
    if final:
        _close()


def _close() -> None:
    global _bar
    if _bar is not None:
        _bar.close()
        _bar = None
