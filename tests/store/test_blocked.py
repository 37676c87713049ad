"""A run whose replay no longer matches its journal is `blocked`, not failed: visible
with the reason, its decisions and signals still recorded, and resumed by code that
replays it (a worker finds it at start-up) or by `retry`.

The oracle for side effects is a ledger outside the engine (`DONE`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from signoff import Context, Engine, InvalidRunState, RunStatus, outbox
from signoff.channels import on
from signoff.testing import FakeClock

DONE: list[tuple[str, Any]] = []


def prepare(order: str) -> str:
    DONE.append(("prepare", order))
    return order


def check_credit(order: str) -> str:
    DONE.append(("credit", order))
    return "ok"


def pay(order: str, legal: str, finance: str, go: Any) -> str:
    DONE.append(("pay", order))
    return f"{order}: legal {legal}, finance {finance}, go {go}"


async def v1(ctx: Context, order: str) -> str:
    await ctx.step(prepare, order)
    legal, finance = await asyncio.gather(ctx.approval("legal"), ctx.approval("finance"))
    go = await ctx.wait_for_signal("go")
    return await ctx.step(pay, order, legal.status.value, finance.status.value, go)


async def changed(ctx: Context, order: str) -> str:  # a step put first, without a patch
    await ctx.step(check_credit, order)
    await ctx.step(prepare, order)
    legal, finance = await asyncio.gather(ctx.approval("legal"), ctx.approval("finance"))
    go = await ctx.wait_for_signal("go")
    return await ctx.step(pay, order, legal.status.value, finance.status.value, go)


@pytest.fixture(autouse=True)
def _clear() -> None:
    DONE.clear()


def _engine(url: str, clock: FakeClock, fn: Any, **kw: Any) -> Engine:
    engine = Engine(url, clock=clock, poll_interval=0.01, lease="5s", **kw)
    engine.workflow("order")(fn)
    return engine


async def _blocked_run(url: str, clock: FakeClock, **kw: Any) -> tuple[str, Engine]:
    """A run parked on two approvals under v1, then decided under changed code: blocked.
    Returns its id and the (stopped) engine with the changed code."""
    old = _engine(url, clock, v1)
    async with old:
        run_id = (await old.start("order", "o-1")).id
        await old.settle(run_id)
    await old.close()
    new = _engine(url, clock, changed, **kw)
    async with new:
        await new.approve(run_id, "legal", by="lee")
        await new.settle(run_id, timeout=5)
    return run_id, new


async def test_a_mismatch_blocks_the_run_and_a_fixed_deploy_resumes_it(
    store_url: str, clock: FakeClock
) -> None:
    run_id, broken = await _blocked_run(store_url, clock)
    try:
        run = await broken.get_run(run_id)
        assert run.status is RunStatus.BLOCKED and not run.status.finished
        reason = run.error or {}
        assert reason["type"] == "NonDeterminismError" and reason["seq"] == 0
        assert reason["expected"] == "step 'prepare'" and reason["found"] == "step 'check_credit'"
        assert [r.id for r in await broken.list_runs(status=RunStatus.BLOCKED)] == [run_id]
        assert await broken.count_runs(status="failed") == 0
        # while blocked, a decision and a signal are recorded; nothing runs
        await broken.approve(run_id, "finance", by="fran")
        await broken.signal(run_id, "go", {"when": "now"}, by="ops")
        assert (await broken.get_run(run_id)).status is RunStatus.BLOCKED
        approvals = {a.key: a.status.value for a in await broken.approvals(run_id)}
        assert approvals == {"legal": "approved", "finance": "approved"}
        types = [e.type for e in await broken.history(run_id)]
        assert "run_failed" not in types and "step_retrying" not in types
        assert types.count("run_blocked") == 1
        blocked = next(e for e in await broken.history(run_id) if e.type == "run_blocked")
        assert blocked.data["seq"] == 0 and blocked.data["found"] == "step 'check_credit'"
        assert DONE == [("prepare", "o-1")]  # the changed code ran no step of its own
    finally:
        await broken.close()

    fixed = _engine(store_url, clock, v1)  # the old code again: it replays the run
    try:
        async with fixed:
            result = await fixed.result(run_id, timeout=5)
            history = await fixed.history(run_id)
    finally:
        await fixed.close()
    assert result == "o-1: legal approved, finance approved, go {'when': 'now'}"
    assert DONE == [("prepare", "o-1"), ("pay", "o-1")]  # each side effect once
    unblocked = next(e for e in history if e.type == "run_unblocked")
    assert unblocked.actor is None and unblocked.data["worker"]
    types = [e.type for e in history]
    assert types.index("run_blocked") < types.index("run_unblocked") < types.index("run_completed")
    assert types.count("approval_decided") == 2 and types.count("signal_received") == 1


async def test_code_that_still_does_not_replay_leaves_it_blocked_and_retry_reblocks(
    store_url: str, clock: FakeClock
) -> None:
    run_id, broken = await _blocked_run(store_url, clock)
    await broken.close()
    again = _engine(store_url, clock, changed)  # another process, the same broken code
    try:
        async with again:
            assert again._worker is not None
            assert await again._worker.recheck_blocked() == 0
            before = await again.history(run_id)
            report = await again.check()  # the preflight names it too
            assert [b.run_id for b in report.broken] == [run_id]
            assert report.broken[0].status == "blocked" and report.broken[0].seq == 0
            await again.retry(run_id, by="carol")  # asked for: replayed, blocked again
            run = await again.settle(run_id, timeout=5)
            assert run.status is RunStatus.BLOCKED
            after = await again.history(run_id)
            assert [e.type for e in after[len(before) :]] == ["run_unblocked", "run_blocked"]
            assert after[len(before)].actor == "carol"
            with pytest.raises(InvalidRunState, match="only failed or blocked"):
                await again.retry((await again.start("order", "o-2")).id)
            # the worker never looks again at a run its own code blocked
            assert await again._worker.recheck_blocked() == 0
            await again.cancel(run_id, by="carol", reason="superseded")
            assert (await again.get_run(run_id)).status is RunStatus.CANCELLED
            left = {a.key: a.status.value for a in await again.approvals(run_id)}
            assert left == {"legal": "approved", "finance": "cancelled"}
    finally:
        await again.close()
    assert ("pay", "o-1") not in DONE


async def test_retry_with_code_that_replays_resumes_it(store_url: str, clock: FakeClock) -> None:
    run_id, broken = await _blocked_run(store_url, clock)
    await broken.close()
    fixed = _engine(store_url, clock, v1)
    try:
        # no worker here: the run stays blocked until asked for
        await fixed.retry(run_id, by="carol")
        assert (await fixed.get_run(run_id)).status is RunStatus.PENDING
        async with fixed:
            await fixed.approve(run_id, "finance", by="fran")
            await fixed.signal(run_id, "go", 1)
            assert (await fixed.result(run_id, timeout=5)).endswith("go 1")
    finally:
        await fixed.close()
    assert DONE.count(("pay", "o-1")) == 1


async def test_blocking_sends_a_run_blocked_notification(store_url: str, clock: FakeClock) -> None:
    seen: list[outbox.Delivery] = []

    async def record(d: outbox.Delivery) -> None:
        seen.append(d)

    run_id, broken = await _blocked_run(store_url, clock, notifications=[on("run.*", record)])
    try:
        await broken.deliver_notifications()
    finally:
        await broken.close()
    assert [(d.event, d.run_id) for d in seen] == [(outbox.RUN_BLOCKED, run_id)]
    data = seen[0].payload["data"]
    assert data["seq"] == 0 and data["error"]["type"] == "NonDeterminismError"


async def test_only_a_mismatch_blocks(engine: Engine) -> None:
    async def flaky(ctx: Context) -> None:
        raise RuntimeError("the payment service is down")

    engine.workflow("flaky")(flaky)
    async with engine:
        run = await engine.start("flaky")
        assert (await engine.settle(run.id, timeout=5)).status is RunStatus.FAILED
