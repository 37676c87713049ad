"""Several waits at once (asyncio.gather, ctx.all_of, ctx.any_of), on every backend.

Every wait in a group is opened at once (all approvers asked, all timers set); the run
resumes as answers come and replays identically whatever order they came in. A step in
flight beside a wait is finished and recorded before the run parks (RELIABILITY I13).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import signoff
from signoff import (
    ApprovalClosed,
    ApprovalStatus,
    Context,
    Engine,
    RunFailed,
    RunStatus,
)
from signoff.testing import FakeClock

CALLS: list[Any] = []


@pytest.fixture(autouse=True)
def _clear() -> None:
    CALLS.clear()


def email(to: str) -> str:
    CALLS.append(to)
    return f"mailed {to}"


mail = signoff.gated(email)


async def _pending_keys(engine: Engine, run_id: str) -> list[str]:
    return sorted(a.key for a in await engine.pending_approvals(run_id=run_id))


async def _settled_waiting(engine: Engine, run_id: str, waiting_for: str) -> None:
    """Wait until the run parks on `waiting_for` (after a decision it replays first)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        run = await engine.get_run(run_id)
        if run.status is RunStatus.WAITING and run.waiting_for == waiting_for:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"run {run_id} is {run.status} waiting for {run.waiting_for}")


async def test_gather_asks_every_approver_at_once(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> list[str]:
        legal, finance = await asyncio.gather(
            ctx.approval("legal", proposed={"n": 1}), ctx.approval("finance", proposed={"n": 2})
        )
        return [legal.status.value, finance.status.value]

    async with engine:
        run = await engine.start(wf)
        await _settled_waiting(engine, run.id, "approval:legal, approval:finance")
        assert await _pending_keys(engine, run.id) == ["finance", "legal"]
        await engine.reject(run.id, "finance", by="fran", reason="over budget")
        await _settled_waiting(engine, run.id, "approval:legal")
        assert await _pending_keys(engine, run.id) == ["legal"]
        await engine.approve(run.id, "legal", by="lee")
        assert await engine.result(run.id, timeout=5) == ["approved", "rejected"]


async def test_gated_calls_started_together_each_run_their_own_approved_call(
    engine: Engine,
) -> None:
    """The second call is approved first: each call still runs once, with its own
    arguments, and the replay after the first approval hands each its own result."""

    @engine.workflow()
    async def agent(ctx: Context) -> list[str]:
        return list(await asyncio.gather(mail("ann"), mail("bob")))

    async with engine:
        run = await engine.start(agent)
        await _settled_waiting(engine, run.id, "approval:gated:email:1, approval:gated:email:2")
        pending = {a.key: a.proposed for a in await engine.pending_approvals(run_id=run.id)}
        assert pending == {
            "gated:email:1": {"args": [], "kwargs": {"to": "ann"}},
            "gated:email:2": {"args": [], "kwargs": {"to": "bob"}},
        }
        await engine.approve(run.id, "gated:email:2", by="carol")
        await _settled_waiting(engine, run.id, "approval:gated:email:1")
        assert CALLS == ["bob"]
        await engine.approve(run.id, "gated:email:1", by="carol")
        assert await engine.result(run.id, timeout=5) == ["mailed ann", "mailed bob"]
    assert sorted(CALLS) == ["ann", "bob"]
    paths = {e.path: e.name for e in await engine.store.get_journal(run.id)}
    assert paths == {
        "0/0": "gated:email:1",
        "1/0": "gated:email:2",
        "0/1": "email",
        "1/1": "email",
    }


async def test_a_step_beside_a_wait_is_finished_before_the_run_parks(engine: Engine) -> None:
    started = asyncio.Event()

    async def slow_send() -> str:
        started.set()
        await asyncio.sleep(0.3)
        CALLS.append("sent")
        return "sent"

    @engine.workflow()
    async def wf(ctx: Context) -> list[Any]:
        sent, decision = await asyncio.gather(
            ctx.step(slow_send, name="slow_send"), ctx.approval("go", proposed=None)
        )
        return [sent, decision.status.value]

    async with engine:
        run = await engine.start(wf)
        await started.wait()
        await _settled_waiting(engine, run.id, "approval:go")
        journal = {e.name: e.status.value for e in await engine.store.get_journal(run.id)}
        assert journal == {"slow_send": "done", "go": "open"}  # recorded before parking
        await engine.approve(run.id, "go", by="carol")
        assert await engine.result(run.id, timeout=5) == ["sent", "approved"]
    assert CALLS == ["sent"]


async def test_asyncio_wait_first_completed_over_an_approval_and_a_sleep(
    engine: Engine, clock: FakeClock
) -> None:
    """The issue's stranded run: the timer is kept, fires, and the run goes on; the
    approval it no longer waits for leaves the inbox when the workflow ends."""

    @engine.workflow()
    async def wf(ctx: Context) -> str:
        ask = asyncio.ensure_future(ctx.approval("manager"))
        nap = asyncio.ensure_future(ctx.sleep("1h"))
        done, _ = await asyncio.wait([ask, nap], return_when=asyncio.FIRST_COMPLETED)
        return "approved" if ask in done else "slept"

    async with engine:
        run = await engine.start(wf)
        await _settled_waiting(engine, run.id, "approval:manager, sleep:sleep")
        clock.advance("2h")
        assert await engine.result(run.id, timeout=5) == "slept"
    [approval] = await engine.approvals(run.id)
    assert approval.status is ApprovalStatus.CANCELLED
    with pytest.raises(ApprovalClosed):
        await engine.approve(run.id, "manager", by="carol")


async def test_any_of_takes_the_first_answer_and_withdraws_the_rest(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> list[Any]:
        index, decision = await ctx.any_of(ctx.approval("alice-signs"), ctx.approval("bob-signs"))
        await ctx.approval("confirm")  # one more wait: the replay takes the same branch
        return [index, decision.by]

    async with engine:
        run = await engine.start(wf)
        await _settled_waiting(engine, run.id, "approval:alice-signs, approval:bob-signs")
        await engine.approve(run.id, "bob-signs", by="bob")
        await _settled_waiting(engine, run.id, "approval:confirm")
        assert await _pending_keys(engine, run.id) == ["confirm"]
        with pytest.raises(ApprovalClosed):
            await engine.approve(run.id, "alice-signs", by="alice")
        await engine.approve(run.id, "confirm", by="carol")
        assert await engine.result(run.id, timeout=5) == [1, "bob"]
    statuses = {a.key: a.status for a in await engine.approvals(run.id)}
    assert statuses["alice-signs"] is ApprovalStatus.CANCELLED
    types = [e.type for e in await engine.history(run.id)]
    assert "approval_withdrawn" in types


async def test_any_of_a_timer_wins(engine: Engine, clock: FakeClock) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> int:
        index, _ = await ctx.any_of(ctx.approval("manager"), ctx.sleep("1d"))
        return index

    async with engine:
        run = await engine.start(wf)
        waiting = await engine.settle(run.id)
        assert waiting.wake_at is not None  # the sleep's timer is set beside the approval
        clock.advance("25h")
        assert await engine.result(run.id, timeout=5) == 1
    assert await engine.pending_approvals(run_id=run.id) == []


async def test_all_of_signals_in_any_order_and_one_sent_early(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> list[Any]:
        return await ctx.all_of(
            ctx.wait_for_signal("docs"), ctx.wait_for_signal("id"), ctx.wait_for_signal("fee")
        )

    async with engine:
        run = await engine.start(wf)
        await engine.signal(run.id, "fee", 30)  # may arrive before the run waits
        await _settled_waiting(engine, run.id, "signal:docs, signal:id")
        await engine.signal(run.id, "id", "passport")
        await _settled_waiting(engine, run.id, "signal:docs")
        await engine.signal(run.id, "docs", ["a.pdf"])
        assert await engine.result(run.id, timeout=5) == [["a.pdf"], "passport", 30]


async def test_an_event_and_an_approval_together(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> list[Any]:
        paid, ok = await asyncio.gather(ctx.wait_for_event("paid:7"), ctx.approval("ship"))
        return [paid, ok.status.value]

    async with engine:
        run = await engine.start(wf)
        await _settled_waiting(engine, run.id, "event:paid:7, approval:ship")
        assert await engine.notify("paid:7", {"amount": 5}) == [run.id]
        await _settled_waiting(engine, run.id, "approval:ship")
        await engine.approve(run.id, "ship", by="sam")
        assert await engine.result(run.id, timeout=5) == [{"amount": 5}, "approved"]


async def test_cancelling_a_durable_wait_fails_the_run_saying_what_to_use(
    engine: Engine,
) -> None:
    """asyncio.wait_for cancels the approval while a step beside it still runs: a
    cancelled durable wait cannot replay, so the run fails saying what to use."""

    async def slow() -> str:
        await asyncio.sleep(0.3)
        return "done"

    async def impatient(ctx: Context) -> str:
        try:
            await asyncio.wait_for(ctx.approval("manager"), timeout=0.05)
        except TimeoutError:
            return "gave up"
        return "decided"

    @engine.workflow()
    async def wf(ctx: Context) -> list[str]:
        return list(await asyncio.gather(ctx.step(slow, name="slow"), impatient(ctx)))

    async with engine:
        run = await engine.start(wf)
        with pytest.raises(RunFailed) as failed:
            await engine.result(run.id, timeout=5)
    assert failed.value.error["type"] == "ConcurrencyError"
    assert "any_of" in failed.value.error["message"]
    assert await engine.pending_approvals(run_id=run.id) == []


async def test_a_local_timeout_around_a_parked_wait_neither_decides_nor_denies(
    engine: Engine,
) -> None:
    """The run parks before a caller's own timeout runs out; the approval stays pending
    and is never recorded as denied (RELIABILITY #15)."""

    @engine.workflow()
    async def wf(ctx: Context) -> str:
        decision = await asyncio.wait_for(ctx.approval("manager"), timeout=0.05)
        return decision.status.value

    async with engine:
        run = await engine.start(wf)
        await _settled_waiting(engine, run.id, "approval:manager")
        await asyncio.sleep(0.1)
        assert await _pending_keys(engine, run.id) == ["manager"]
        await engine.approve(run.id, "manager", by="carol")
        assert await engine.result(run.id, timeout=5) == "approved"


async def test_a_group_survives_a_new_engine(store_url: str, clock: FakeClock) -> None:
    """Parked as a group, the run is rows only: another engine (a restarted worker)
    decides and finishes it."""
    first = Engine(store_url, clock=clock, poll_interval=0.01, lease="5s")

    @first.workflow(name="pair")
    async def pair(ctx: Context) -> list[str]:
        a, b = await ctx.all_of(ctx.approval("a"), ctx.approval("b"))
        return [a.by or "", b.by or ""]

    async with first:
        run = await first.start(pair)
        await _settled_waiting(first, run.id, "approval:a, approval:b")
    await first.close()

    second = Engine(store_url, clock=clock, poll_interval=0.01, lease="5s")
    second.workflow(name="pair")(pair)
    try:
        async with second:
            await second.approve(run.id, "b", by="bea")
            await second.approve(run.id, "a", by="abe")
            assert await second.result(run.id, timeout=5) == ["abe", "bea"]
    finally:
        await second.close()
