"""What runs after an approval is what was approved (RELIABILITY I12), on every backend.

The "model" below answers differently on every call and is deliberately called outside a
step, as a careless agent loop would: the replay after the decision proposes something
nobody saw. The run must be blocked (not go on) with a non-determinism error naming both
proposals, and the gated function must not run with the new arguments.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

import signoff
from signoff import Context, Engine, RunStatus

SENT: list[str] = []


def send_email(to: str) -> str:
    SENT.append(to)
    return f"sent to {to}"


send = signoff.gated(send_email)


@pytest.fixture(autouse=True)
def _clear() -> None:
    SENT.clear()


def fickle_model() -> Any:
    counter = itertools.count(641, 73)
    return lambda: f"someone-{next(counter)}"


async def _blocked_naming_both(engine: Engine, run_id: str, first: str, second: str) -> None:
    run = await engine.settle(run_id, timeout=5)
    assert run.status is RunStatus.BLOCKED
    error = run.error or {}
    assert error["type"] == "NonDeterminismError"
    assert first in error["message"] and second in error["message"]


async def test_a_gated_call_never_runs_arguments_nobody_approved(engine: Engine) -> None:
    model = fickle_model()

    @engine.workflow()
    async def agent(ctx: Context) -> str:
        return await send(model())  # not a step: every replay asks the model again

    async with engine:
        run = await engine.start(agent)
        await engine.settle(run.id)
        [pending] = await engine.pending_approvals(run_id=run.id)
        assert pending.proposed == {"args": [], "kwargs": {"to": "someone-641"}}
        await engine.approve(run.id, pending.key, by="carol")
        await _blocked_naming_both(engine, run.id, "someone-641", "someone-714")
    assert SENT == []


async def test_an_edited_gated_call_is_blocked_too_when_the_proposal_changed(
    engine: Engine,
) -> None:
    model = fickle_model()

    @engine.workflow()
    async def agent(ctx: Context) -> str:
        return await send(model())

    async with engine:
        run = await engine.start(agent)
        await engine.settle(run.id)
        [pending] = await engine.pending_approvals(run_id=run.id)
        await engine.edit(run.id, pending.key, {"args": [], "kwargs": {"to": "x"}}, by="carol")
        await _blocked_naming_both(engine, run.id, "someone-641", "someone-714")
    assert SENT == []


async def test_an_approval_whose_proposal_changes_on_replay_is_blocked(engine: Engine) -> None:
    model = fickle_model()
    acted: list[Any] = []

    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        decision = await ctx.approval("send", proposed={"to": model()})
        acted.append(decision.value)
        return decision.value

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        await engine.approve(run.id, "send", by="carol")
        await _blocked_naming_both(engine, run.id, "someone-641", "someone-714")
    assert acted == []


async def test_json_equal_is_not_python_equal(engine: Engine) -> None:
    """`True == 1` in Python; a proposal of `true` replayed as `1` is a change."""
    answers = iter([True, 1])

    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        return (await ctx.approval("flag", proposed={"on": next(answers)})).value

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        await engine.approve(run.id, "flag", by="carol")
        await _blocked_naming_both(engine, run.id, "true", "1")


async def test_a_deterministic_proposal_replays_and_acts_once(engine: Engine) -> None:
    @engine.workflow()
    async def agent(ctx: Context) -> Any:
        to = await ctx.step(lambda: "someone-641", name="model")
        first = await send(to)
        await ctx.approval("after", proposed={"to": to})  # replays the gated call again
        return first

    async with engine:
        run = await engine.start(agent)
        await engine.settle(run.id)
        [pending] = await engine.pending_approvals(run_id=run.id)
        await engine.approve(run.id, pending.key, by="carol")
        await engine.settle(run.id)
        await engine.approve(run.id, "after", by="dave")
        assert await engine.result(run.id, timeout=5) == "sent to someone-641"
    assert SENT == ["someone-641"]
