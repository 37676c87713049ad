"""The helpers the guide's "Testing your flows" shows, on every backend."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from signoff import Context, Directory, Engine, RunFailed, WaitTimeout, WorkflowNotFound
from signoff.testing import FakeClock, copy_engine, fire_due_timers


async def test_fire_due_timers_escalates_wakes_and_times_out(
    engine: Engine, clock: FakeClock
) -> None:
    engine.directory = Directory({"cfo": ["dana"]})

    @engine.workflow()
    async def wf(ctx: Context) -> list[Any]:
        await ctx.sleep("1h")
        with contextlib.suppress(WaitTimeout):
            await ctx.wait_for_signal("docs", timeout="1h")
        d = await ctx.approval("ok", timeout="3d", escalate_after="1d", escalate_to=["role:cfo"])
        return [d.status.value]

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        assert await fire_due_timers(engine) == []  # nothing due yet
        clock.advance("1h")
        assert await fire_due_timers(engine) == [run.id]  # the sleep ends
        assert (await engine.get_run(run.id)).waiting_for == "signal:docs"
        clock.advance("1h")
        await fire_due_timers(engine)  # the signal's timeout
        assert (await engine.get_run(run.id)).waiting_for == "approval:ok"
        clock.advance("1d")
        await fire_due_timers(engine)  # an escalation wakes nothing, but is done
        [asked] = await engine.pending_approvals(approver="dana")
        assert "role:cfo" in asked.approvers
        clock.advance("2d")
        await fire_due_timers(engine)
        run = await engine.get_run(run.id)
        assert run.result == ["expired"]


async def test_copy_engine_runs_the_apps_workflows(store_url: str) -> None:
    app = Engine("sqlite:///never-opened.db", approval_timeout="2d")

    @app.workflow(name="ask", timeout="30d")
    async def ask(ctx: Context) -> str:
        return (await ctx.approval("manager")).status.value

    clock = FakeClock(start=1_800_000_000.0)
    plain = Engine(store_url, clock=clock)
    try:
        with pytest.raises(WorkflowNotFound):
            await plain.start(ask)
    finally:
        await plain.close()
    test_engine = copy_engine(app, store_url, clock=clock)
    try:
        async with test_engine:
            run = await test_engine.start(ask)
            waiting = await test_engine.settle(run.id)
            assert waiting.wake_at is not None  # the app's default deadline came along
            clock.advance("2d")
            await fire_due_timers(test_engine)
            assert await test_engine.result(run.id, timeout=5) == "expired"
            second = await test_engine.start(ask)
            assert second.deadline is not None  # the workflow's own timeout came along
            await test_engine.settle(second.id)
            clock.advance("31d")
            await fire_due_timers(test_engine)
            with pytest.raises(RunFailed, match="RunTimedOut"):
                await test_engine.result(second.id, timeout=5)
    finally:
        await test_engine.close()
    assert not app.store.opened
