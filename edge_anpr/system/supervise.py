"""Restart a crashing stage with backoff, without touching its siblings.

A bug in one stage (an OpenCV assertion on a strange frame, a broken MQTT callback) must not take
the appliance down: the stage is logged with its traceback and started again after an
exponentially growing, capped delay, reset once the stage has run healthily for a while.
Cancellation is never caught: it is the shutdown path. ``EdgeAnprError`` from a stage is a user
problem (bad TLS file, missing model) and is logged as one line rather than a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from edge_anpr.errors import EdgeAnprError
from edge_anpr.logs import fields

log = logging.getLogger(__name__)


@dataclass
class RestartPolicy:
    first_delay_s: float = 0.5
    max_delay_s: float = 30.0
    healthy_after_s: float = 60.0
    """A run that lasted this long resets the delay to ``first_delay_s``."""


async def supervise(
    name: str,
    stage: Callable[[], Awaitable[None]],
    policy: RestartPolicy | None = None,
    on_crash: Callable[[str], None] | None = None,
) -> None:
    """Run ``stage`` until it returns; restart it when it raises."""
    policy = policy or RestartPolicy()
    delay = 0.0
    while True:
        started = trio.current_time()
        try:
            await stage()
            return
        except EdgeAnprError as exc:
            delay = _next_delay(policy, delay, trio.current_time() - started)
            log.error("stage failed %s", fields(stage=name, error=exc, restart_in_s=delay))
        except Exception:
            delay = _next_delay(policy, delay, trio.current_time() - started)
            log.exception("stage crashed %s", fields(stage=name, restart_in_s=delay))
        if on_crash is not None:
            on_crash(name)
        await trio.sleep(delay)


def _next_delay(policy: RestartPolicy, last_delay_s: float, ran_for_s: float) -> float:
    if last_delay_s == 0.0 or ran_for_s >= policy.healthy_after_s:
        return policy.first_delay_s
    return min(last_delay_s * 2, policy.max_delay_s)
