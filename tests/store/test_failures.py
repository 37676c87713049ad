"""Failures: failing steps, retry of failed runs, non-determinism, cancel, restart, history."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from signoff import (
    ApprovalClosed,
    ApprovalStatus,
    Context,
    Engine,
    InvalidRunState,
    NonDeterminismError,
    RetryPolicy,
    RunCancelled,
    RunFailed,
    RunNotFound,
    RunStatus,
    StepError,
)
from signoff.testing import FakeClock

T0 = datetime.fromtimestamp(1_800_000_000.0, UTC)


class LedgerDown(Exception):
    pass


def always_fails(order: str) -> None:
    raise LedgerDown(f"ledger unreachable for {order}")


async def test_step_failing_after_retries_fails_the_run(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> None:
        await ctx.step(always_fails, "ord-7", retry=RetryPolicy(attempts=2, initial_interval=0.01))

    async with engine:
        run = await engine.start(wf)
        with pytest.raises(RunFailed) as info:
            await engine.result(run.id, timeout=5)
    assert info.value.run_id == run.id
    assert info.value.error["type"] == "StepError"
    failed = await engine.get_run(run.id)
    assert failed.status is RunStatus.FAILED
    assert failed.error is not None
    assert failed.error["type"] == "StepError"
    assert "always_fails" in failed.error["message"]
    assert "after 2 attempts" in failed.error["message"]
    assert "LedgerDown: ledger unreachable for ord-7" in failed.error["message"]
    tb = failed.error["traceback"]
    assert "Traceback" in tb and "in always_fails" in tb
    assert "LedgerDown: ledger unreachable for ord-7" in tb

    events = await engine.history(run.id)
    types = [e.type for e in events]
    assert types == ["run_started", "step_retrying", "step_failed", "run_failed"]
    step_failed = events[2].data
    assert step_failed["name"] == always_fails.__qualname__ and step_failed["attempts"] == 2
    assert step_failed["error"]["type"] == "LedgerDown"
    assert step_failed["error"]["message"] == "ledger unreachable for ord-7"
    assert "in always_fails" in step_failed["error"]["traceback"]
    assert events[3].data["error"]["type"] == "StepError"


async def test_workflow_can_catch_a_step_error(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> dict[str, str]:
        try:
            await ctx.step(always_fails, "o")
        except StepError as exc:
            await ctx.approval("handle failure")
            return {"step": exc.step, "type": exc.error_type, "message": exc.error_message}
        return {}

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        await engine.approve(run.id, "handle failure")  # replay raises the recorded error
        assert await engine.result(run.id, timeout=5) == {
            "step": always_fails.__qualname__,
            "type": "LedgerDown",
            "message": "ledger unreachable for o",
        }


async def test_retry_resumes_a_failed_run_from_the_failed_step(engine: Engine) -> None:
    calls = {"load": 0, "charge": 0}
    broken = [True]

    def load() -> int:
        calls["load"] += 1
        return 30

    def charge(amount: int) -> str:
        calls["charge"] += 1
        if broken[0]:
            raise LedgerDown("down")
        return f"charged {amount}"

    @engine.workflow()
    async def wf(ctx: Context) -> str:
        amount = await ctx.step(load)
        d = await ctx.approval("ok", proposed=amount)
        return await ctx.step(charge, d.value)

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        await engine.approve(run.id, "ok", by="alice")
        with pytest.raises(RunFailed):
            await engine.result(run.id, timeout=5)
        assert calls == {"load": 1, "charge": 1}

        broken[0] = False
        retried = await engine.retry(run.id, by="ops")
        assert retried.status in (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.COMPLETED)
        assert await engine.result(run.id, timeout=5) == "charged 30"
        with pytest.raises(InvalidRunState, match="only failed or blocked runs"):
            await engine.retry(run.id)
    assert calls == {"load": 1, "charge": 2}
    final = await engine.get_run(run.id)
    assert final.status is RunStatus.COMPLETED and final.error is None
    events = await engine.history(run.id)
    types = [e.type for e in events]
    assert types == [
        "run_started",
        "step_completed",
        "approval_requested",
        "approval_decided",
        "step_failed",
        "run_failed",
        "run_retried",
        "step_completed",
        "run_completed",
    ]
    assert events[6].actor == "ops"
    assert [a.status for a in await engine.approvals(run.id)] == [ApprovalStatus.APPROVED]


async def test_retry_of_unknown_or_unfailed_run(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> None:
        await ctx.approval("k")

    async with engine:
        with pytest.raises(RunNotFound):
            await engine.retry("nope")
        run = await engine.start(wf)
        await engine.settle(run.id)
        with pytest.raises(InvalidRunState, match="waiting"):
            await engine.retry(run.id)
        assert (await engine.get_run(run.id)).status is RunStatus.WAITING


class PolicyViolation(Exception):
    pass


async def test_workflow_raising_its_own_exception_fails_the_run(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context, amount: int) -> None:
        await ctx.step(lambda: amount, name="check")
        raise PolicyViolation(f"amount {amount} over the limit")

    async with engine:
        run = await engine.start(wf, 10_000)
        with pytest.raises(RunFailed, match="PolicyViolation: amount 10000 over the limit"):
            await engine.result(run.id, timeout=5)
    failed = await engine.get_run(run.id)
    assert failed.error is not None
    assert failed.error["type"] == "PolicyViolation"
    assert failed.error["message"] == "amount 10000 over the limit"
    assert "raise PolicyViolation" in failed.error["traceback"]
    last = (await engine.history(run.id))[-1]
    assert last.type == "run_failed"
    assert last.data["error"] == {
        "type": "PolicyViolation",
        "message": "amount 10000 over the limit",
    }


async def _blocked_reason(engine: Engine, run_id: str) -> dict[str, Any]:
    """A replay that no longer matches blocks the run (not fails it): its reason."""
    run = await engine.settle(run_id, timeout=5)
    assert run.status is RunStatus.BLOCKED
    assert run.error is not None
    return run.error


async def test_changed_workflow_code_blocks_with_non_determinism(
    store_url: str, clock: FakeClock
) -> None:
    def lookup() -> int:
        return 1

    def fetch() -> int:
        return 2

    async def v1(ctx: Context) -> int:
        await ctx.step(lookup)
        await ctx.approval("manager")
        return 1

    async def v2(ctx: Context) -> int:  # a step inserted before the approval
        await ctx.step(fetch)
        await ctx.approval("manager")
        return 2

    old = Engine(store_url, clock=clock, poll_interval=0.01)
    old.workflow(name="flow")(v1)
    async with old:
        run = await old.start("flow")
        await old.settle(run.id)
    await old.close()

    new = Engine(store_url, clock=clock, poll_interval=0.01)
    new.workflow(name="flow")(v2)
    try:
        async with new:
            await new.approve(run.id, "manager", by="alice")
            error = await _blocked_reason(new, run.id)
    finally:
        await new.close()
    assert error["type"] == "NonDeterminismError"
    message = error["message"]
    assert run.id in message and "position 0" in message
    assert f"step {lookup.__qualname__!r}" in message  # expected (the journal)
    assert f"step {fetch.__qualname__!r}" in message  # found (the code now)
    assert message.index(lookup.__qualname__) < message.index(fetch.__qualname__)


async def test_non_determinism_cannot_be_swallowed_by_the_workflow(engine: Engine) -> None:
    flip = [False]

    @engine.workflow()
    async def wf(ctx: Context) -> str:
        with contextlib.suppress(NonDeterminismError):
            await ctx.step(lambda: 1, name="b" if flip[0] else "a")
        await ctx.approval("k")
        return "completed"

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        flip[0] = True
        await engine.approve(run.id, "k")
        assert (await _blocked_reason(engine, run.id))["type"] == "NonDeterminismError"


async def test_workflow_ending_before_its_recorded_calls_is_non_determinism(
    engine: Engine,
) -> None:
    short = [False]

    @engine.workflow()
    async def wf(ctx: Context) -> str:
        if short[0]:
            return "short"
        await ctx.approval("k")
        return "long"

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        short[0] = True
        await engine.approve(run.id, "k")
        message = (await _blocked_reason(engine, run.id))["message"]
    assert "approval 'k'" in message and "the end of the workflow" in message


async def test_cancel_a_waiting_run(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> None:
        await ctx.approval("manager", proposed=1)

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        cancelled = await engine.cancel(run.id, by="ops", reason="duplicate ticket")
        assert cancelled.status is RunStatus.CANCELLED
        assert cancelled.waiting_for is None
        [approval] = await engine.approvals(run.id)
        assert approval.status is ApprovalStatus.CANCELLED
        assert await engine.pending_approvals() == []
        with pytest.raises(ApprovalClosed) as info:
            await engine.approve(run.id, "manager", by="alice")
        assert info.value.run_id == run.id and info.value.key == "manager"
        with pytest.raises(RunCancelled):
            await engine.result(run.id, timeout=5)
        with pytest.raises(InvalidRunState, match="already finished"):
            await engine.cancel(run.id)
        with pytest.raises(InvalidRunState):
            await engine.signal(run.id, "x")
    last = (await engine.history(run.id))[-1]
    assert (last.type, last.actor, last.data) == (
        "run_cancelled",
        "ops",
        {"reason": "duplicate ticket"},
    )


async def test_cancel_a_sleeping_run_stops_its_timer(engine: Engine, clock: FakeClock) -> None:
    woke: list[int] = []

    @engine.workflow()
    async def wf(ctx: Context) -> None:
        await ctx.sleep("1h")
        await ctx.step(lambda: woke.append(1), name="wake")

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        await engine.cancel(run.id)
        clock.advance("2h")
        await asyncio.sleep(0.05)
    assert woke == []
    assert (await engine.get_run(run.id)).status is RunStatus.CANCELLED
    assert "timer_fired" not in [e.type for e in await engine.history(run.id)]


async def test_cancel_a_finished_or_unknown_run(engine: Engine) -> None:
    @engine.workflow()
    async def quick(ctx: Context) -> int:
        return 1

    async with engine:
        run = await engine.start(quick)
        await engine.result(run.id, timeout=5)
        with pytest.raises(InvalidRunState) as info:
            await engine.cancel(run.id)
        assert info.value.run_id == run.id
        with pytest.raises(RunNotFound):
            await engine.cancel("missing")
    assert (await engine.get_run(run.id)).status is RunStatus.COMPLETED


async def test_a_new_engine_resumes_waiting_runs(store_url: str, clock: FakeClock) -> None:
    calls: list[str] = []

    def prepare(n: int) -> int:
        calls.append(f"prepare {n}")
        return n * 10

    def apply(n: int) -> int:
        calls.append(f"apply {n}")
        return n + 1

    async def flow(ctx: Context, n: int) -> int:
        v = await ctx.step(prepare, n)
        d = await ctx.approval("go", proposed=v, timeout="1d")
        return await ctx.step(apply, d.value if d.approved else -1)

    first = Engine(store_url, clock=clock, poll_interval=0.01)
    first.workflow(name="flow")(flow)
    async with first:
        runs = [await first.start("flow", n) for n in range(3)]
        for run in runs:
            await first.settle(run.id)
    await first.close()
    assert sorted(calls) == ["prepare 0", "prepare 1", "prepare 2"]

    second = Engine(store_url, clock=clock, poll_interval=0.01)
    second.workflow(name="flow")(flow)
    try:
        async with second:
            assert len(await second.pending_approvals()) == 3
            await second.approve(runs[0].id, "go")
            await second.edit(runs[1].id, "go", 99)
            clock.advance("1d")  # the third one's deadline, after the restart
            results = [await second.result(r.id, timeout=5) for r in runs]
    finally:
        await second.close()
    assert results == [1, 100, 0]
    assert sorted(calls) == [
        "apply -1",
        "apply 0",
        "apply 99",
        "prepare 0",
        "prepare 1",
        "prepare 2",
    ]


async def test_history_is_the_whole_timeline(engine: Engine, clock: FakeClock) -> None:
    @engine.workflow()
    async def refund(ctx: Context, order: str) -> str:
        amount = await ctx.step(lambda: 25, name="calculate")
        d = await ctx.approval(
            "manager", summary="Refund 25", proposed={"amount": amount}, timeout="7d"
        )
        await ctx.step(lambda: "r-1", name="issue")
        return f"{order}: {d.status}"

    async with engine:
        run = await engine.start(refund, "ord-1", requested_by="support-bot")
        await engine.settle(run.id)
        clock.advance("90s")
        await engine.approve(run.id, "manager", by="alice", reason="fine")
        assert await engine.result(run.id, timeout=5) == "ord-1: approved"
    events = await engine.history(run.id)
    assert [(e.type, e.actor) for e in events] == [
        ("run_started", "support-bot"),
        ("step_completed", None),
        ("approval_requested", None),
        ("approval_decided", "alice"),
        ("step_completed", None),
        ("run_completed", None),
    ]
    assert all(e.run_id == run.id for e in events)
    assert [e.id for e in events] == sorted(e.id for e in events)
    for e in events:
        assert e.at.tzinfo is not None and e.at.utcoffset() == timedelta(0)
    assert [e.at for e in events] == [T0, T0, T0] + [T0 + timedelta(seconds=90)] * 3
    assert events[0].data == {"workflow": refund.__qualname__}
    assert events[1].data["name"] == "calculate"
    assert events[2].data == {
        "key": "manager",
        "round": 1,
        "summary": "Refund 25",
        "deadline": (T0 + timedelta(days=7)).isoformat(),
    }
    assert events[3].data["status"] == "approved" and events[3].data["reason"] == "fine"
    assert events[4].data["name"] == "issue"
    with pytest.raises(RunNotFound):
        await engine.history("missing")


async def test_cancel_during_a_step_records_nothing_more(engine: Engine) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    after: list[int] = []

    async def slow() -> int:
        started.set()
        await release.wait()
        return 1

    @engine.workflow()
    async def wf(ctx: Context) -> None:
        await ctx.step(slow)
        await ctx.step(lambda: after.append(1), name="after")

    async with engine:
        run = await engine.start(wf)
        await started.wait()
        await engine.cancel(run.id, by="ops")
        release.set()
        with pytest.raises(RunCancelled):
            await engine.result(run.id, timeout=5)
        await asyncio.sleep(0.05)
    assert after == []
    assert (await engine.get_run(run.id)).status is RunStatus.CANCELLED
    assert await engine.store.get_journal(run.id) == []
    assert [e.type for e in await engine.history(run.id)] == ["run_started", "run_cancelled"]


async def test_errors_with_nul_or_lone_surrogates_still_fail_the_run_clearly(
    engine: Engine,
) -> None:
    # Exception text is not validated by anyone; it must still be storable on every
    # store, or the run would crash-loop instead of failing.
    def flaky_bad() -> None:
        raise ValueError("bad\x00byte and half \ud800 pair")

    @engine.workflow()
    async def in_step(ctx: Context) -> None:
        await ctx.step(flaky_bad, retry=RetryPolicy(attempts=2, initial_interval=0.01))

    @engine.workflow()
    async def in_body(ctx: Context) -> None:
        raise PolicyViolation("nul\x00 \udcff")

    escaped = "bad\\x00byte and half \\ud800 pair"
    async with engine:
        run = await engine.start(in_step)
        with pytest.raises(RunFailed) as info:
            await engine.result(run.id, timeout=5)
        assert escaped in info.value.error["message"]
        events = await engine.history(run.id)
        assert [e.type for e in events] == [
            "run_started",
            "step_retrying",
            "step_failed",
            "run_failed",
        ]
        assert events[1].data["error"]["message"] == escaped
        assert events[2].data["error"]["type"] == "ValueError"
        assert events[2].data["error"]["message"] == escaped

        other = await engine.start(in_body)
        with pytest.raises(RunFailed) as info:
            await engine.result(other.id, timeout=5)
        assert info.value.error["type"] == "PolicyViolation"
        assert info.value.error["message"] == "nul\\x00 \\udcff"
