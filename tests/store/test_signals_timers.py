"""Signals (kept, delivered, timing out) and durable sleeps, against every backend."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from signoff import (
    Context,
    Engine,
    InvalidArgument,
    InvalidRunState,
    RunFailed,
    RunNotFound,
    RunStatus,
    WaitTimeout,
)
from signoff.testing import FakeClock

T0 = datetime.fromtimestamp(1_800_000_000.0, UTC)


async def test_signal_sent_before_the_wait_is_kept_and_delivered(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        await ctx.approval("go")
        return await ctx.wait_for_signal("docs")

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        await engine.signal(run.id, "docs", {"pages": 3}, by="scanner")
        assert (await engine.get_run(run.id)).waiting_for == "approval:go"
        await engine.approve(run.id, "go")
        assert await engine.result(run.id, timeout=5) == {"pages": 3}
    received = [e for e in await engine.history(run.id) if e.type == "signal_received"]
    assert len(received) == 1 and received[0].actor == "scanner"
    assert received[0].data == {"name": "docs"}


async def test_signal_sent_before_the_run_is_executed_is_kept(
    store_url: str, clock: FakeClock
) -> None:
    eng = Engine(store_url, clock=clock, poll_interval=0.01)

    @eng.workflow()
    async def wf(ctx: Context) -> Any:
        return [await ctx.wait_for_signal("x"), await ctx.wait_for_signal("x")]

    try:
        run = await eng.start(wf)  # no worker yet: the run is pending
        await eng.signal(run.id, "x", 1)
        await eng.signal(run.id, "x", 2)
        await eng.signal(run.id, "unrelated", 3)
        async with eng:
            assert await eng.result(run.id, timeout=5) == [1, 2]  # in the order sent
    finally:
        await eng.close()


async def test_signal_sent_while_waiting_wakes_the_run(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        data = await ctx.wait_for_signal("payment")
        return {"got": data}

    async with engine:
        run = await engine.start(wf)
        waiting = await engine.settle(run.id)
        assert waiting.status is RunStatus.WAITING
        assert waiting.waiting_for == "signal:payment"
        assert waiting.wake_at is None
        await engine.signal(run.id, "other", "ignored")
        await asyncio.sleep(0.05)
        assert (await engine.get_run(run.id)).status is RunStatus.WAITING
        await engine.signal(run.id, "payment", [1, "two", None])
        assert await engine.result(run.id, timeout=5) == {"got": [1, "two", None]}


async def test_signal_without_data_delivers_none(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        return {"data": await ctx.wait_for_signal("ping")}

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        await engine.signal(run.id, "ping")
        assert await engine.result(run.id, timeout=5) == {"data": None}


async def test_wait_for_signal_timeout_raises_inside_the_workflow(
    engine: Engine, clock: FakeClock
) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> str:
        try:
            await ctx.wait_for_signal("docs", timeout="2h")
        except WaitTimeout as exc:
            assert exc.key == "docs" and exc.run_id == ctx.run_id
            return "timed out"
        return "arrived"

    async with engine:
        run = await engine.start(wf)
        waiting = await engine.settle(run.id)
        assert waiting.wake_at == T0 + timedelta(hours=2)
        clock.advance("2h")
        assert await engine.result(run.id, timeout=5) == "timed out"
        types = [e.type for e in await engine.history(run.id)]
        assert "signal_timed_out" in types
        with pytest.raises(InvalidRunState):
            await engine.signal(run.id, "docs", "too late")


async def test_uncaught_wait_timeout_fails_the_run(engine: Engine, clock: FakeClock) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        return await ctx.wait_for_signal("docs", timeout=timedelta(minutes=5))

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        clock.advance("5m")
        with pytest.raises(RunFailed):
            await engine.result(run.id, timeout=5)
    finished = await engine.get_run(run.id)
    assert finished.status is RunStatus.FAILED
    assert finished.error is not None and finished.error["type"] == "WaitTimeout"


async def test_signal_before_the_timeout_wins(engine: Engine, clock: FakeClock) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        return await ctx.wait_for_signal("docs", timeout="1h")

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        await engine.signal(run.id, "docs", "here")
        assert await engine.result(run.id, timeout=5) == "here"
        clock.advance("2h")
        await asyncio.sleep(0.05)
    events = [e.type for e in await engine.history(run.id)]
    assert "signal_timed_out" not in events
    assert (await engine.get_run(run.id)).result == "here"


async def test_signal_to_a_finished_run_raises_invalid_run_state(engine: Engine) -> None:
    @engine.workflow()
    async def quick(ctx: Context) -> int:
        return 1

    async with engine:
        run = await engine.start(quick)
        await engine.result(run.id, timeout=5)
        before = await engine.history(run.id)
        with pytest.raises(InvalidRunState, match="completed"):
            await engine.signal(run.id, "late", {"x": 1})
        assert await engine.history(run.id) == before


async def test_signal_to_an_unknown_run_raises_run_not_found(engine: Engine) -> None:
    with pytest.raises(RunNotFound) as info:
        await engine.signal("no-such-run", "x", 1)
    assert info.value.run_id == "no-such-run"
    with pytest.raises(InvalidArgument):
        await engine.signal("no-such-run", "", 1)


async def test_sleep_is_durable_and_fires_after_the_clock_moves(
    engine: Engine, clock: FakeClock
) -> None:
    ticks: list[int] = []

    def tick() -> int:
        ticks.append(1)
        return len(ticks)

    @engine.workflow()
    async def napper(ctx: Context) -> list[Any]:
        before = await ctx.step(tick)
        start = ctx.now()
        await ctx.sleep("1d")
        return [before, (ctx.now() - start).total_seconds()]

    async with engine:
        run = await engine.start(napper)
        waiting = await engine.settle(run.id)
        assert waiting.status is RunStatus.WAITING and waiting.waiting_for == "sleep"
        assert waiting.wake_at == T0 + timedelta(days=1)
        clock.advance("23h")
        await asyncio.sleep(0.05)
        assert (await engine.get_run(run.id)).status is RunStatus.WAITING
        clock.advance("1h")
        assert await engine.result(run.id, timeout=5) == [1, 86400.0]
    assert ticks == [1]
    types = [e.type for e in await engine.history(run.id)]
    assert types.count("sleep_started") == 1 and types.count("timer_fired") == 1


async def test_zero_sleep_does_not_park(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> str:
        await ctx.sleep(0)
        await ctx.sleep(timedelta(0))
        return "done"

    async with engine:
        run = await engine.start(wf)
        assert await engine.result(run.id, timeout=5) == "done"


async def test_sleep_survives_an_engine_restart(store_url: str, clock: FakeClock) -> None:
    calls: list[str] = []

    def effect(tag: str) -> str:
        calls.append(tag)
        return tag

    async def sleeper(ctx: Context) -> list[str]:
        a = await ctx.step(effect, "before")
        await ctx.sleep("7d")
        b = await ctx.step(effect, "after")
        return [a, b]

    first = Engine(store_url, clock=clock, poll_interval=0.01)
    first.workflow(name="sleeper")(sleeper)
    async with first:
        run = await first.start("sleeper")
        assert (await first.settle(run.id)).waiting_for == "sleep"
    await first.close()

    clock.advance("3d")  # time passes while no engine is running
    second = Engine(store_url, clock=clock, poll_interval=0.01)
    second.workflow(name="sleeper")(sleeper)
    try:
        async with second:
            await asyncio.sleep(0.05)
            assert (await second.get_run(run.id)).status is RunStatus.WAITING
            clock.advance("4d")
            assert await second.result(run.id, timeout=5) == ["before", "after"]
    finally:
        await second.close()
    assert calls == ["before", "after"]


async def test_timers_overdue_while_no_engine_ran_fire_on_start(
    store_url: str, clock: FakeClock
) -> None:
    async def waits(ctx: Context) -> list[str]:
        d = await ctx.approval("manager", timeout="1h")
        try:
            await ctx.wait_for_signal("docs", timeout="1h")
        except WaitTimeout:
            return [d.status.value, "no docs"]
        return [d.status.value, "docs"]

    first = Engine(store_url, clock=clock, poll_interval=0.01)
    first.workflow(name="waits")(waits)
    async with first:
        run = await first.start("waits")
        await first.settle(run.id)
    await first.close()
    clock.advance("1d")  # the approval's deadline passes while nothing runs

    second = Engine(store_url, clock=clock, poll_interval=0.01)
    second.workflow(name="waits")(waits)
    try:
        async with second:
            parked = await second.settle(run.id)
            while parked.waiting_for != "signal:docs":
                await asyncio.sleep(0.01)
                parked = await second.settle(run.id)
            assert parked.wake_at == T0 + timedelta(days=1, hours=1)
            clock.advance("1h")
            assert await second.result(run.id, timeout=5) == ["expired", "no docs"]
    finally:
        await second.close()
