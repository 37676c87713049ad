"""Changing workflow code while runs wait: `ctx.patched` and `ctx.deprecate_patch`.

The worked example of the guide: a credit check is added before the approval while
refunds wait on it. Runs that passed that point before the change keep the old path on
replay; new runs take the new one; once no old run is left the patch is retired.
"""

from __future__ import annotations

from typing import Any

import pytest

from signoff import Context, Engine, RunStatus
from signoff.testing import FakeClock

DONE: list[tuple[str, str]] = []


def prepare(order: str) -> str:
    DONE.append(("prepare", order))
    return order


def check_credit(order: str) -> str:
    DONE.append(("credit", order))
    return "ok"


def pay(order: str) -> str:
    DONE.append(("pay", order))
    return f"paid {order}"


async def v1(ctx: Context, order: str) -> str:
    await ctx.step(prepare, order)
    await ctx.approval("manager")
    return await ctx.step(pay, order)


async def v2(ctx: Context, order: str) -> str:
    await ctx.step(prepare, order)
    if ctx.patched("credit-check"):
        await ctx.step(check_credit, order)
    await ctx.approval("manager")
    return await ctx.step(pay, order)


async def v2_unpatched(ctx: Context, order: str) -> str:
    await ctx.step(prepare, order)
    await ctx.step(check_credit, order)  # the change made without a patch
    await ctx.approval("manager")
    return await ctx.step(pay, order)


async def v3(ctx: Context, order: str) -> str:
    await ctx.step(prepare, order)
    ctx.deprecate_patch("credit-check")
    await ctx.step(check_credit, order)
    await ctx.approval("manager")
    return await ctx.step(pay, order)


@pytest.fixture(autouse=True)
def _clear() -> None:
    DONE.clear()


def _engine(url: str, clock: FakeClock, fn: Any) -> Engine:
    engine = Engine(url, clock=clock, poll_interval=0.01, lease="5s")
    engine.workflow("refund")(fn)
    return engine


async def _start_waiting(engine: Engine, order: str) -> str:
    async with engine:
        run = await engine.start("refund", order)
        await engine.settle(run.id)
    return run.id


async def _approve(engine: Engine, run_id: str) -> Any:
    async with engine:
        await engine.approve(run_id, "manager", by="carol")
        return await engine.result(run_id, timeout=5)


async def test_a_patch_keeps_old_runs_on_the_old_path(store_url: str, clock: FakeClock) -> None:
    old = _engine(store_url, clock, v1)
    waiting = await _start_waiting(old, "old")
    await old.close()

    new = _engine(store_url, clock, v2)
    try:
        fresh = await _start_waiting(new, "new")
        assert await _approve(new, waiting) == "paid old"
        assert await _approve(new, fresh) == "paid new"
    finally:
        await new.close()
    assert ("credit", "old") not in DONE and ("credit", "new") in DONE
    assert DONE.count(("pay", "old")) == DONE.count(("pay", "new")) == 1


async def test_without_a_patch_the_old_run_is_blocked_and_a_fixed_deploy_resumes_it(
    store_url: str, clock: FakeClock
) -> None:
    old = _engine(store_url, clock, v1)
    waiting = await _start_waiting(old, "old")
    await old.close()
    changed = _engine(store_url, clock, v2_unpatched)
    try:
        async with changed:
            await changed.approve(waiting, "manager", by="carol")
            run = await changed.settle(waiting, timeout=5)
        assert run.status is RunStatus.BLOCKED  # not failed: nothing burned, nothing lost
        assert run.error is not None and run.error["code"] == "non_determinism"
        assert run.error["seq"] == 1 and "check_credit" in run.error["found"]
        assert "approval 'manager'" in run.error["expected"]
        assert [r.id for r in await changed.list_runs(status="blocked")] == [waiting]
        assert (await changed.history(waiting))[-1].type == "run_blocked"
    finally:
        await changed.close()
    assert ("pay", "old") not in DONE and ("credit", "old") not in DONE

    fixed = _engine(store_url, clock, v2)  # the patched code replays it: a worker resumes it
    try:
        async with fixed:
            assert await fixed.result(waiting, timeout=5) == "paid old"
            types = [e.type for e in await fixed.history(waiting)]
    finally:
        await fixed.close()
    assert types[-4:] == ["run_blocked", "run_unblocked", "step_completed", "run_completed"]
    assert types.count("approval_decided") == 1  # the decision taken before, honoured
    assert DONE == [("prepare", "old"), ("pay", "old")]


async def test_a_retired_patch_replays_runs_that_recorded_it(
    store_url: str, clock: FakeClock
) -> None:
    patched = _engine(store_url, clock, v2)
    waiting = await _start_waiting(patched, "mid")
    await patched.close()
    retired = _engine(store_url, clock, v3)
    try:
        fresh = await _start_waiting(retired, "late")
        assert await _approve(retired, waiting) == "paid mid"
        assert await _approve(retired, fresh) == "paid late"
        kinds = [e.kind.value for e in await retired.store.get_journal(fresh)]
        assert "patch" not in kinds  # new runs record nothing once the patch is retired
    finally:
        await retired.close()
    assert DONE.count(("credit", "mid")) == 1 and DONE.count(("credit", "late")) == 1
