"""A whole-run deadline: `@engine.workflow(timeout=...)`, so a run nobody answers does
not wait forever. Past it the run fails with `RunTimedOut`, whatever it waits for, and
its open approvals leave the inboxes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from signoff import Context, Engine, RunFailed, RunStatus
from signoff.testing import FakeClock


async def test_a_run_that_waits_past_its_deadline_fails_and_withdraws(
    engine: Engine, clock: FakeClock
) -> None:
    @engine.workflow(timeout="1d")
    async def wf(ctx: Context) -> str:
        first, _ = await ctx.all_of(ctx.approval("a"), ctx.approval("b", timeout="30d"))
        return first.status.value

    async with engine:
        run = await engine.start(wf)
        waiting = await engine.settle(run.id)
        assert waiting.deadline == run.created_at + timedelta(days=1)
        assert waiting.wake_at == waiting.deadline  # the run's deadline comes first
        await engine.approve(run.id, "a", by="carol")
        clock.advance("23h")
        await asyncio.sleep(0.05)
        assert (await engine.get_run(run.id)).status is RunStatus.WAITING
        clock.advance("2h")
        with pytest.raises(RunFailed) as failed:
            await engine.result(run.id, timeout=5)
    assert failed.value.error["type"] == "RunTimedOut"
    assert await engine.pending_approvals(run_id=run.id) == []
    types = [e.type for e in await engine.history(run.id)]
    assert "approval_withdrawn" in types and types[-1] == "run_failed"


async def test_a_run_that_finishes_in_time_is_not_touched(engine: Engine, clock: FakeClock) -> None:
    @engine.workflow(timeout="1h")
    async def wf(ctx: Context) -> str:
        return (await ctx.approval("quick")).status.value

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        clock.advance("30m")
        await engine.approve(run.id, "quick", by="carol")
        assert await engine.result(run.id, timeout=5) == "approved"


async def test_a_sleep_past_the_deadline_ends_at_the_deadline(
    engine: Engine, clock: FakeClock
) -> None:
    @engine.workflow(timeout="2h")
    async def wf(ctx: Context) -> str:
        await ctx.sleep("1d")
        return "woke"

    async with engine:
        run = await engine.start(wf)
        waiting = await engine.settle(run.id)
        assert waiting.wake_at == run.created_at + timedelta(hours=2)
        clock.advance("3h")
        with pytest.raises(RunFailed, match="deadline"):
            await engine.result(run.id, timeout=5)
