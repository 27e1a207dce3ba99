import itertools

import trio

from edge_anpr.errors import ConfigError
from edge_anpr.system.supervise import RestartPolicy, supervise


async def test_crashing_stage_is_restarted_with_growing_delay_and_sibling_runs() -> None:
    runs: list[float] = []
    crashes: list[str] = []
    sibling_ticks = 0

    async def flaky() -> None:
        runs.append(trio.current_time())
        if len(runs) == 1:
            raise ConfigError("bad TLS file")
        if len(runs) < 4:
            raise RuntimeError("boom")

    async def sibling() -> None:
        nonlocal sibling_ticks
        while True:
            sibling_ticks += 1
            await trio.sleep(0.01)

    policy = RestartPolicy(first_delay_s=0.02, max_delay_s=1.0, healthy_after_s=10.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sibling)
        await supervise("flaky", flaky, policy, on_crash=crashes.append)
        nursery.cancel_scope.cancel()

    assert len(runs) == 4
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    assert gaps[0] >= 0.02 and gaps[1] >= 0.04 and gaps[2] >= 0.08
    assert crashes == ["flaky"] * 3
    assert sibling_ticks > 5


async def test_cancellation_is_not_swallowed() -> None:
    async def forever() -> None:
        await trio.sleep_forever()

    with trio.move_on_after(0.05) as scope:
        await supervise("forever", forever)
    assert scope.cancelled_caught
