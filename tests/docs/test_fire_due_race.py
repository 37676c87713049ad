"""`fire_due_timers` beside a worker that polls all the time: each due run is reported."""

from __future__ import annotations

from signoff import Context, Engine
from signoff.testing import FakeClock, fire_due_timers


async def test_fire_due_timers_reports_runs_a_busy_worker_could_fire_first(
    store_url: str,
) -> None:
    clock = FakeClock(start=1_800_000_000.0)
    engine = Engine(store_url, clock=clock, poll_interval=0.0005, lease="5s")

    @engine.workflow()
    async def nap(ctx: Context) -> str:
        await ctx.sleep("1h")
        return "rested"

    async with engine:
        for _ in range(20):
            run = await engine.start(nap)
            await engine.settle(run.id)
            assert await fire_due_timers(engine) == []  # a poll may queue behind this call
            clock.advance("1h")
            assert await fire_due_timers(engine) == [run.id]
            assert (await engine.get_run(run.id)).result == "rested"
