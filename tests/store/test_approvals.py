"""Approvals: every decision, rounds, timeouts, first-decision-wins, races."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from signoff import (
    ApprovalExpired,
    ApprovalStatus,
    Context,
    Decision,
    DecisionConflict,
    DecisionStatus,
    Engine,
    RunStatus,
)
from signoff.testing import FakeClock

T0 = datetime.fromtimestamp(1_800_000_000.0, UTC)


def register_refund(engine: Engine, timeout: str | timedelta | None = "7d") -> Any:
    @engine.workflow(name="refund")
    async def refund(ctx: Context, amount: int) -> dict[str, Any]:
        d = await ctx.approval(
            "manager", summary=f"Refund {amount}", proposed={"amount": amount}, timeout=timeout
        )
        return {
            "status": d.status.value,
            "approved": d.approved,
            "value": d.value,
            "original": d.original,
            "by": d.by,
            "reason": d.reason,
            "round": d.round,
            "at": d.at.timestamp() if d.at else None,
        }

    return refund


async def parked(engine: Engine, amount: int = 100, **kw: Any) -> str:
    register_refund(engine, **kw)
    run = await engine.start("refund", amount)
    settled = await engine.settle(run.id)
    assert settled.status is RunStatus.WAITING
    assert settled.waiting_for == "approval:manager"
    return run.id


async def test_approve(engine: Engine) -> None:
    async with engine:
        run_id = await parked(engine)
        d = await engine.approve(run_id, "manager", by="alice", reason="inside the window")
        assert isinstance(d, Decision)
        assert d.status is DecisionStatus.APPROVED and d.approved
        assert (d.value, d.original) == ({"amount": 100}, {"amount": 100})
        assert (d.by, d.reason, d.at, d.round) == ("alice", "inside the window", T0, 1)
        result = await engine.result(run_id, timeout=5)
    assert result == {
        "status": "approved",
        "approved": True,
        "value": {"amount": 100},
        "original": {"amount": 100},
        "by": "alice",
        "reason": "inside the window",
        "round": 1,
        "at": T0.timestamp(),
    }
    [approval] = await engine.approvals(run_id)
    assert approval.status is ApprovalStatus.APPROVED
    assert (approval.decided_by, approval.reason, approval.decided_at) == (
        "alice",
        "inside the window",
        T0,
    )
    assert approval.summary == "Refund 100" and approval.workflow == "refund"


async def test_reject(engine: Engine) -> None:
    async with engine:
        run_id = await parked(engine)
        d = await engine.reject(run_id, "manager", by="bob", reason="outside policy")
        assert d.status is DecisionStatus.REJECTED and not d.approved
        result = await engine.result(run_id, timeout=5)
    assert result["status"] == "rejected" and result["approved"] is False
    assert result["by"] == "bob" and result["reason"] == "outside policy"
    assert (await engine.approvals(run_id))[0].status is ApprovalStatus.REJECTED


async def test_edit_changes_value_and_keeps_original(engine: Engine) -> None:
    async with engine:
        run_id = await parked(engine)
        d = await engine.edit(run_id, "manager", {"amount": 60}, by="carol", reason="partial")
        assert d.status is DecisionStatus.EDITED and d.approved
        assert d.value == {"amount": 60} and d.original == {"amount": 100}
        result = await engine.result(run_id, timeout=5)
    assert result["status"] == "edited" and result["approved"] is True
    assert result["value"] == {"amount": 60} and result["original"] == {"amount": 100}
    [approval] = await engine.approvals(run_id)
    assert approval.proposed == {"amount": 100} and approval.value == {"amount": 60}
    [decided] = [e for e in await engine.history(run_id) if e.type == "approval_decided"]
    assert decided.actor == "carol"
    assert decided.data["value"] == {"amount": 60}
    assert decided.data["original"] == {"amount": 100}


async def test_request_changes_opens_a_new_round_under_the_same_key(engine: Engine) -> None:
    drafts: list[int] = []

    def draft(n: int) -> int:
        drafts.append(n)
        return 100 - 10 * n

    @engine.workflow()
    async def negotiate(ctx: Context) -> dict[str, Any]:
        n = 0
        while True:
            amount = await ctx.step(draft, n)
            d = await ctx.approval("manager", summary=f"round {n}", proposed=amount)
            if d.status is not DecisionStatus.CHANGES_REQUESTED:
                return {"status": d.status.value, "round": d.round, "value": d.value}
            n += 1

    async with engine:
        run = await engine.start(negotiate)
        await engine.settle(run.id)
        cr = await engine.request_changes(run.id, "manager", by="alice", reason="too much")
        assert cr.status is DecisionStatus.CHANGES_REQUESTED and not cr.approved
        assert cr.round == 1
        await engine.settle(run.id)
        pending = await engine.pending_approvals(run_id=run.id)
        assert [(a.key, a.round, a.proposed) for a in pending] == [("manager", 2, 90)]
        d = await engine.approve(run.id, "manager", by="alice")
        assert d.round == 2 and d.value == 90
        assert await engine.result(run.id, timeout=5) == {
            "status": "approved",
            "round": 2,
            "value": 90,
        }
    assert drafts == [0, 1]  # each draft once, despite three executions
    rounds = await engine.approvals(run.id)
    assert [(a.round, a.status, a.summary, a.proposed) for a in rounds] == [
        (1, ApprovalStatus.CHANGES_REQUESTED, "round 0", 100),
        (2, ApprovalStatus.APPROVED, "round 1", 90),
    ]
    events = await engine.history(run.id)
    requested = [e.data["round"] for e in events if e.type == "approval_requested"]
    decided = [(e.data["round"], e.data["status"]) for e in events if e.type == "approval_decided"]
    assert requested == [1, 2]
    assert decided == [(1, "changes_requested"), (2, "approved")]


async def test_timeout_expires_the_approval(engine: Engine, clock: FakeClock) -> None:
    async with engine:
        run_id = await parked(engine, timeout=timedelta(days=7))
        run = await engine.get_run(run_id)
        assert run.wake_at == T0 + timedelta(days=7)
        [approval] = await engine.pending_approvals()
        assert approval.deadline == T0 + timedelta(days=7)
        clock.advance("6d")
        await asyncio.sleep(0.05)  # several worker polls: nothing is due yet
        assert (await engine.get_run(run_id)).status is RunStatus.WAITING
        clock.advance("1d")
        result = await engine.result(run_id, timeout=5)
    assert result["status"] == "expired" and result["approved"] is False
    assert result["by"] is None
    [approval] = await engine.approvals(run_id)
    assert approval.status is ApprovalStatus.EXPIRED and approval.decided_by is None
    types = [e.type for e in await engine.history(run_id)]
    assert "approval_expired" in types and "approval_decided" not in types
    with pytest.raises(ApprovalExpired) as info:
        await engine.approve(run_id, "manager", by="late")
    assert info.value.decision.status is DecisionStatus.EXPIRED
    assert info.value.decision.timed_out  # the deadline settled it, not a person


async def test_first_decision_wins_and_conflict_carries_it(engine: Engine) -> None:
    async with engine:
        run_id = await parked(engine)
        first = await engine.approve(run_id, "manager", by="alice", reason="fine")
        with pytest.raises(DecisionConflict) as info:
            await engine.reject(run_id, "manager", by="bob", reason="no")
        err = info.value
        assert type(err) is DecisionConflict
        assert err.decision == first
        assert err.run_id == run_id and err.key == "manager"
        assert "approved" in str(err) and "alice" in str(err)
        with pytest.raises(DecisionConflict):
            await engine.edit(run_id, "manager", {"amount": 1})
        with pytest.raises(DecisionConflict):
            await engine.request_changes(run_id, "manager")
        result = await engine.result(run_id, timeout=5)
    assert result["status"] == "approved" and result["by"] == "alice"
    decided = [e for e in await engine.history(run_id) if e.type == "approval_decided"]
    assert len(decided) == 1


async def test_repeating_the_same_decision_is_acknowledged(
    engine: Engine, clock: FakeClock
) -> None:
    async with engine:
        run_id = await parked(engine)
        first = await engine.approve(run_id, "manager", by="alice", reason="ok")
        await engine.result(run_id, timeout=5)
        before = await engine.history(run_id)
        clock.advance("1m")
        again = await engine.approve(run_id, "manager", by="alice", reason="ok")
        assert again == first  # the recorded decision, time and all
        assert await engine.history(run_id) == before


async def test_repeating_the_same_edit_is_acknowledged_a_different_one_conflicts(
    engine: Engine,
) -> None:
    async with engine:
        run_id = await parked(engine)
        first = await engine.edit(run_id, "manager", {"amount": 50}, by="carol")
        assert await engine.edit(run_id, "manager", {"amount": 50}, by="carol") == first
        with pytest.raises(DecisionConflict) as info:
            await engine.edit(run_id, "manager", {"amount": 51}, by="carol")
        assert info.value.decision == first
        assert (await engine.result(run_id, timeout=5))["value"] == {"amount": 50}


async def test_decision_racing_the_timeout_never_becomes_an_approval(
    engine: Engine, clock: FakeClock
) -> None:
    async with engine:
        run_id = await parked(engine, timeout="1h")
        clock.advance("1h")  # the deadline passes; the worker may or may not have fired it
        with pytest.raises(ApprovalExpired) as info:
            await engine.approve(run_id, "manager", by="alice")
        assert info.value.decision.status is DecisionStatus.EXPIRED
        assert info.value.decision.by is None
        result = await engine.result(run_id, timeout=5)
    assert result["status"] == "expired" and result["approved"] is False
    [approval] = await engine.approvals(run_id)
    assert approval.status is ApprovalStatus.EXPIRED
    events = await engine.history(run_id)
    assert [e.type for e in events].count("approval_expired") == 1
    assert all(e.type != "approval_decided" for e in events)


async def test_decision_racing_the_timeout_without_a_worker(
    store_url: str, clock: FakeClock
) -> None:
    # no worker polls here, so the decision itself meets the passed deadline
    worker = Engine(store_url, clock=clock, poll_interval=0.01)
    client = Engine(store_url, clock=clock, poll_interval=0.01)
    try:
        async with worker:
            run_id = await parked(worker, timeout="30s")
        clock.advance("31s")
        with pytest.raises(ApprovalExpired):
            await client.reject(run_id, "manager", by="bob")
        with pytest.raises(ApprovalExpired):  # and again: still expired, nothing changes
            await client.approve(run_id, "manager", by="alice")
        async with worker:
            result = await worker.result(run_id, timeout=5)
        assert result["status"] == "expired"
    finally:
        await client.close()
        await worker.close()


async def test_concurrent_conflicting_decisions_exactly_one_wins(engine: Engine) -> None:
    async with engine:
        run_id = await parked(engine)
        calls = [engine.edit(run_id, "manager", {"amount": i}, by=f"user{i}") for i in range(20)]
        calls.append(engine.reject(run_id, "manager", by="rejecter"))
        calls.append(engine.request_changes(run_id, "manager", by="picky"))
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        wins = [o for o in outcomes if isinstance(o, Decision)]
        losses = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(wins) == 1, outcomes
        assert len(losses) == len(calls) - 1
        assert all(type(e) is DecisionConflict for e in losses), losses
        assert all(e.decision == wins[0] for e in losses if isinstance(e, DecisionConflict))
        result = await engine.result(run_id, timeout=5)
    assert result["status"] == wins[0].status.value and result["by"] == wins[0].by
    decided = [e for e in await engine.history(run_id) if e.type == "approval_decided"]
    assert len(decided) == 1 and decided[0].actor == wins[0].by


async def test_concurrent_identical_approvals_one_transition(engine: Engine) -> None:
    async with engine:
        run_id = await parked(engine)
        outcomes = await asyncio.gather(
            *[engine.approve(run_id, "manager", by="alice") for _ in range(30)]
        )
        assert all(o == outcomes[0] for o in outcomes)
        await engine.result(run_id, timeout=5)
    decided = [e for e in await engine.history(run_id) if e.type == "approval_decided"]
    assert len(decided) == 1


async def test_decision_sent_before_the_run_parks_waits_for_it(engine: Engine) -> None:
    gate = asyncio.Event()

    async def slow() -> int:
        await gate.wait()
        return 5

    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        n = await ctx.step(slow)
        return (await ctx.approval("k", proposed=n)).value

    async with engine:
        run = await engine.start(wf)
        decision = asyncio.ensure_future(engine.approve(run.id, "k", by="eager"))
        await asyncio.sleep(0.05)
        assert not decision.done()
        gate.set()
        assert (await decision).value == 5
        assert await engine.result(run.id, timeout=5) == 5


async def test_pending_approvals_lists_then_no_longer(engine: Engine, clock: FakeClock) -> None:
    @engine.workflow()
    async def two(ctx: Context, who: str) -> str:
        d = await ctx.approval("first", summary=f"first for {who}", proposed={"who": who})
        if not d.approved:
            return "stopped"
        await ctx.approval("second", summary=f"second for {who}")
        return who

    @engine.workflow()
    async def other(ctx: Context) -> None:
        await ctx.approval("solo")

    async with engine:
        a = await engine.start(two, "a")
        await engine.settle(a.id)
        clock.advance("1s")
        b = await engine.start(two, "b")
        await engine.settle(b.id)
        clock.advance("1s")
        c = await engine.start(other)
        await engine.settle(c.id)
        pending = await engine.pending_approvals()
        assert [(p.run_id, p.key) for p in pending] == [
            (a.id, "first"),
            (b.id, "first"),
            (c.id, "solo"),
        ]
        assert pending[0].status is ApprovalStatus.PENDING
        assert pending[0].summary == "first for a" and pending[0].proposed == {"who": "a"}
        assert pending[0].requested_at == T0 and pending[0].deadline is None
        assert [p.run_id for p in await engine.pending_approvals(workflow=two.__qualname__)] == [
            a.id,
            b.id,
        ]
        assert [p.key for p in await engine.pending_approvals(run_id=c.id)] == ["solo"]
        assert len(await engine.pending_approvals(limit=1)) == 1

        clock.advance("1s")
        await engine.approve(a.id, "first")
        await engine.settle(a.id)
        assert [(p.run_id, p.key) for p in await engine.pending_approvals()] == [
            (b.id, "first"),
            (c.id, "solo"),
            (a.id, "second"),
        ]
        await engine.approve(a.id, "second")
        await engine.reject(b.id, "first")
        await engine.approve(c.id, "solo")
        for run in (a, b, c):
            await engine.result(run.id, timeout=5)
        assert await engine.pending_approvals() == []


async def test_decisions_a_millisecond_either_side_of_the_deadline(
    engine: Engine, clock: FakeClock
) -> None:
    register_refund(engine, timeout="1h")
    async with engine:
        before = [await engine.start("refund", n) for n in range(5)]
        after = [await engine.start("refund", n) for n in range(5)]
        for run in before + after:
            await engine.settle(run.id)
        clock.advance(3600 - 0.001)
        won = await asyncio.gather(*[engine.approve(r.id, "manager", by="early") for r in before])
        assert all(d.status is DecisionStatus.APPROVED for d in won)
        clock.advance(0.002)
        late = await asyncio.gather(
            *[engine.approve(r.id, "manager", by="late") for r in after], return_exceptions=True
        )
        assert all(isinstance(e, ApprovalExpired) for e in late), late
        results = [await engine.result(r.id, timeout=5) for r in before + after]
    assert [r["status"] for r in results] == ["approved"] * 5 + ["expired"] * 5
    for run in before + after:
        events = [e.type for e in await engine.history(run.id)]
        assert events.count("approval_decided") + events.count("approval_expired") == 1
