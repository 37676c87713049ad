"""Events: ctx.wait_for_event and engine.notify, against every backend."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from signoff import (
    Context,
    Engine,
    InvalidArgument,
    NotSerializable,
    RunFailed,
    RunStatus,
    WaitTimeout,
)
from signoff.store.sql_events import matches, same_json
from signoff.testing import FakeClock


def _engine(store_url: str, clock: FakeClock, **kw: Any) -> Engine:
    return Engine(store_url, clock=clock, poll_interval=0.01, lease="5s", **kw)


async def test_notify_wakes_the_waiting_run_with_the_data(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context, order: str) -> Any:
        return await ctx.wait_for_event(f"shipped:{order}")

    async with engine:
        run = await engine.start(wf, "o-1")
        waiting = await engine.settle(run.id)
        assert waiting.status is RunStatus.WAITING
        assert waiting.waiting_for == "event:shipped:o-1"
        assert await engine.notify("shipped:o-2", {"carrier": "x"}) == []
        await asyncio.sleep(0.03)
        assert (await engine.get_run(run.id)).status is RunStatus.WAITING
        woken = await engine.notify("shipped:o-1", {"carrier": "ups", "n": [1, 2]}, by="wms")
        assert woken == [run.id]
        assert await engine.result(run.id, timeout=5) == {"carrier": "ups", "n": [1, 2]}
    events = await engine.history(run.id)
    types = [e.type for e in events]
    assert types.index("waiting_for_event") < types.index("event_received")
    received = next(e for e in events if e.type == "event_received")
    assert received.actor == "wms" and received.data["key"] == "shipped:o-1"


async def test_every_waiting_run_whose_filter_matches_is_woken(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context, region: str | None) -> Any:
        where = None if region is None else {"region": region}
        return await ctx.wait_for_event("price", where=where)

    async with engine:
        eu1, eu2, us, anyr = [await engine.start(wf, r) for r in ("eu", "eu", "us", None)]
        for r in (eu1, eu2, us, anyr):
            await engine.settle(r.id)
        woken = await engine.notify("price", {"region": "eu", "price": 10})
        assert sorted(woken) == sorted([eu1.id, eu2.id, anyr.id])
        for r in (eu1, eu2, anyr):
            assert await engine.result(r.id, timeout=5) == {"region": "eu", "price": 10}
        assert (await engine.get_run(us.id)).status is RunStatus.WAITING
        assert await engine.notify("price", {"region": "us", "price": 12}) == [us.id]
        assert await engine.result(us.id, timeout=5) == {"region": "us", "price": 12}


async def test_an_event_published_before_the_wait_is_kept_and_delivered(
    engine: Engine,
) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        await ctx.approval("go")
        return await ctx.wait_for_event("ready", where={"ok": True})

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        assert await engine.notify("ready", {"ok": True, "v": 1}) == []  # waits elsewhere
        assert await engine.notify("ready", {"ok": True, "v": 2}) == []
        assert await engine.notify("ready", {"ok": False, "v": 3}) == []  # newer, no match
        await engine.approve(run.id, "go")
        # the latest matching event kept within the window
        assert await engine.result(run.id, timeout=5) == {"ok": True, "v": 2}
    received = [e for e in await engine.history(run.id) if e.type == "event_received"]
    assert len(received) == 1 and received[0].data["kept"] is True


async def test_an_event_published_before_the_run_started_is_kept(
    store_url: str, clock: FakeClock
) -> None:
    eng = _engine(store_url, clock)

    @eng.workflow()
    async def wf(ctx: Context) -> Any:
        return await ctx.wait_for_event("k")

    try:
        assert await eng.notify("k", "early", by="sys") == []  # no worker, no run
        run = await eng.start(wf)
        async with eng:
            assert await eng.result(run.id, timeout=5) == "early"
        received = [e for e in await eng.history(run.id) if e.type == "event_received"]
        assert received[0].actor == "sys"
    finally:
        await eng.close()


async def test_retention_window_ends_and_zero_keeps_nothing(
    store_url: str, clock: FakeClock
) -> None:
    eng = _engine(store_url, clock, event_retention="1h")

    @eng.workflow()
    async def wf(ctx: Context, key: str) -> Any:
        try:
            return await ctx.wait_for_event(key, timeout="10m")
        except WaitTimeout:
            return "nothing"

    try:
        async with eng:
            await eng.notify("old", 1)
            await eng.notify("fresh", 2)
            clock.advance("59m")
            run = await eng.start(wf, "fresh")
            assert await eng.result(run.id, timeout=5) == 2
            clock.advance("2m")  # "old" is now 61 minutes old
            run = await eng.start(wf, "old")
            await eng.settle(run.id)
            clock.advance("10m")
            assert await eng.result(run.id, timeout=5) == "nothing"
    finally:
        await eng.close()

    eng0 = _engine(store_url, clock, event_retention=0)

    @eng0.workflow()
    async def wf0(ctx: Context) -> Any:
        return await ctx.wait_for_event("zero")

    try:
        async with eng0:
            await eng0.notify("zero", "missed")
            run = await eng0.start(wf0)
            assert (await eng0.settle(run.id)).status is RunStatus.WAITING
            assert await eng0.notify("zero", "caught") == [run.id]
            assert await eng0.result(run.id, timeout=5) == "caught"
    finally:
        await eng0.close()


async def test_a_run_gets_each_event_once_and_never_an_older_one(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        got = []
        for _ in range(3):
            got.append(await ctx.wait_for_event("tick"))
            await ctx.approval(f"next-{len(got)}")
        return got

    async with engine:
        await engine.notify("tick", 1)
        await engine.notify("tick", 2)
        run = await engine.start(wf)
        await engine.settle(run.id)
        await engine.approve(run.id, "next-1")  # 2 was received; 1 is older: not given
        waiting = await engine.settle(run.id)
        assert waiting.waiting_for == "event:tick"
        assert await engine.notify("tick", 3) == [run.id]
        await engine.approve(run.id, "next-2")
        await engine.settle(run.id)
        assert await engine.notify("tick", 4) == [run.id]
        await engine.approve(run.id, "next-3")
        assert await engine.result(run.id, timeout=5) == [2, 3, 4]


async def test_wait_timeout_raises_and_a_late_event_does_not_wake(
    engine: Engine, clock: FakeClock
) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        try:
            await ctx.wait_for_event("late", timeout="1h")
        except WaitTimeout as exc:
            assert exc.key == "late" and exc.run_id == ctx.run_id
            return await ctx.wait_for_event("after")
        return "arrived"

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        clock.advance("1h")
        waiting = await engine.settle(run.id)
        for _ in range(200):
            waiting = await engine.get_run(run.id)
            if waiting.waiting_for == "event:after":
                break
            await asyncio.sleep(0.01)
        assert waiting.waiting_for == "event:after"
        assert await engine.notify("late", "too late") == []
        assert await engine.notify("after", "ok") == [run.id]
        assert await engine.result(run.id, timeout=5) == "ok"
    types = [e.type for e in await engine.history(run.id)]
    assert types.count("event_timed_out") == 1 and types.count("event_received") == 1


async def test_uncaught_timeout_fails_the_run(engine: Engine, clock: FakeClock) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        return await ctx.wait_for_event("never", timeout=60)

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        clock.advance(61)
        with pytest.raises(RunFailed):
            await engine.result(run.id, timeout=5)
    failed = await engine.get_run(run.id)
    assert failed.error is not None and failed.error["type"] == "WaitTimeout"


async def test_notify_races_runs_about_to_wait_and_none_is_lost(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context, i: int) -> Any:
        await ctx.step(asyncio.sleep, 0)
        return await ctx.wait_for_event("go", where={"batch": 1})

    async with engine:
        starts = [engine.start(wf, i) for i in range(20)]
        notifies = [engine.notify("go", {"batch": 1, "n": i}) for i in range(5)]
        results = await asyncio.gather(*starts, *notifies)
        runs = results[:20]
        for r in runs:
            got = await engine.result(r.id, timeout=10)
            assert got["batch"] == 1
        woken: list[str] = [rid for ids in results[20:] for rid in ids]
        assert len(woken) == len(set(woken))  # a run is woken at most once


async def test_cancelled_waiting_run_is_not_woken(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        return await ctx.wait_for_event("k")

    async with engine:
        a, b = await engine.start(wf), await engine.start(wf)
        await engine.settle(a.id)
        await engine.settle(b.id)
        await engine.cancel(a.id)
        assert await engine.notify("k", 1) == [b.id]
        assert await engine.result(b.id, timeout=5) == 1
        assert await engine.notify("k", 2) == []
    assert (await engine.get_run(a.id)).status is RunStatus.CANCELLED


async def test_notify_from_a_process_without_a_worker(store_url: str, clock: FakeClock) -> None:
    publisher = _engine(store_url, clock)  # knows no workflows, runs no worker
    eng = _engine(store_url, clock)

    @eng.workflow()
    async def wf(ctx: Context) -> Any:
        return await ctx.wait_for_event("k")

    try:
        async with eng:
            run = await eng.start(wf)
            await eng.settle(run.id)
            assert await publisher.notify("k", {"from": "elsewhere"}) == [run.id]
            assert await eng.result(run.id, timeout=5) == {"from": "elsewhere"}
    finally:
        await publisher.close()
        await eng.close()


async def test_received_event_is_replayed_from_the_journal(engine: Engine) -> None:
    calls = []

    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        data = await ctx.wait_for_event("k")
        calls.append(data)
        await ctx.approval("then")
        return data

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        await engine.notify("k", "first")
        await engine.settle(run.id)
        await engine.notify("k", "second")  # kept, but the replay reads the journal
        await engine.approve(run.id, "then")
        assert await engine.result(run.id, timeout=5) == "first"
    assert calls == ["first", "first"]


# bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", [math.nan, math.inf, "nul\x00", {"s": {1, 2}}, {1: "int key"}, b"bytes", "\ud800"]
)
async def test_event_with_non_json_data_is_refused(engine: Engine, bad: Any) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        return await ctx.wait_for_event("k")

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        with pytest.raises(NotSerializable):
            await engine.notify("k", bad)
        with pytest.raises(NotSerializable):
            await engine.notify("k", {"nested": [bad]})
        assert (await engine.get_run(run.id)).status is RunStatus.WAITING
        assert await engine.notify("k", "clean") == [run.id]
        assert await engine.result(run.id, timeout=5) == "clean"


@pytest.mark.parametrize("bad", ["", "x" * 201, "a\x00b", 5, None, "\udfff"])
async def test_notify_refuses_an_invalid_key(engine: Engine, bad: Any) -> None:
    with pytest.raises(InvalidArgument):
        await engine.notify(bad, 1)


async def test_notify_refuses_a_bad_by(engine: Engine) -> None:
    with pytest.raises(InvalidArgument):
        await engine.notify("k", 1, by="a\x00")


@pytest.mark.parametrize(
    ("key", "where"),
    [("", None), ("x" * 201, None), ("ok", ["region"]), ("ok", {1: "x"}), ("ok", {"f": math.nan})],
)
async def test_wait_for_event_refuses_bad_key_or_filter(
    engine: Engine, key: str, where: Any
) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        return await ctx.wait_for_event(key, where=where)

    async with engine:
        run = await engine.start(wf)
        with pytest.raises(RunFailed) as info:
            await engine.result(run.id, timeout=5)
    assert info.value.error["type"] in ("InvalidArgument", "NotSerializable")


async def test_engine_refuses_a_bad_retention(store_url: str) -> None:
    with pytest.raises(InvalidArgument):
        Engine(store_url, event_retention="forever")


# the filter rule (no database) ---------------------------------------------------------


def test_filter_compares_top_level_fields_as_json() -> None:
    data = {"region": "eu", "n": 1, "flag": True, "tags": ["a"], "deep": {"x": 1}}
    assert matches(None, data) and matches({}, data) and matches({}, "not a dict")
    assert matches({"region": "eu", "n": 1.0}, data)
    assert matches({"tags": ["a"], "deep": {"x": 1}}, data)
    assert not matches({"region": "us"}, data)
    assert not matches({"missing": None}, data)
    assert not matches({"n": True}, data)  # true is not 1 in JSON
    assert not matches({"flag": 1}, data)
    assert not matches({"deep": {"x": 1, "y": 2}}, data)
    assert not matches({"region": "eu"}, ["region", "eu"])  # data that is not an object
    assert same_json(None, None) and not same_json(None, 0) and not same_json("1", 1)
