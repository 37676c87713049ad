"""One clock for every process on a database: the database's (RELIABILITY rule 5)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from signoff import Context, Engine, RunStatus
from signoff.clock import DatabaseClock
from signoff.store import open_store


class FastClock:
    """A machine whose clock runs two minutes ahead."""

    def time(self) -> float:
        return time.time() + 120.0


async def test_the_database_tells_its_time(store_url: str) -> None:
    store = open_store(store_url)
    try:
        before = time.time()
        told = await store.database_time()
        assert before - 5 < told < time.time() + 5
    finally:
        await store.close()


async def test_a_worker_with_a_fast_clock_judges_by_the_database(store_url: str) -> None:
    """A 60 s approval asked by a worker whose clock runs 2 minutes fast gets a deadline
    60 s after the database's now, and is not expired early."""
    clock = DatabaseClock(local=FastClock())
    engine = Engine(store_url, clock=clock, poll_interval=0.01)

    @engine.workflow()
    async def wf(ctx: Context) -> str:
        return (await ctx.approval("quick", timeout="60s")).status.value

    try:
        async with engine:
            run = await engine.start(wf)
            assert (await engine.settle(run.id)).status is RunStatus.WAITING
            assert abs(clock.offset + 120.0) < 5
            [approval] = await engine.approvals(run.id)
            assert approval.deadline is not None
            left = approval.deadline - datetime.now(UTC)
            assert 50 < left.total_seconds() <= 61
            await engine.approve(run.id, "quick", by="carol")
            assert await engine.result(run.id, timeout=5) == "approved"
    finally:
        await engine.close()
