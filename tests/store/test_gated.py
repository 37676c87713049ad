"""Gated calls (signoff.gated), against every backend, and the agent example."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import signoff
from signoff import (
    ApprovalStatus,
    CallRejected,
    Context,
    Engine,
    InvalidArgument,
    InvalidEdit,
    OutsideWorkflowError,
    RunFailed,
    RunStatus,
)
from signoff.gated import arguments_schema
from signoff.testing import FakeClock

CALLS: list[tuple[str, Any]] = []


def transfer(to: str, amount: float, memo: str = "") -> dict[str, Any]:
    CALLS.append(("transfer", (to, amount, memo)))
    return {"to": to, "amount": amount, "memo": memo}


async def lookup(name: str) -> str:  # a parameter called `name` must not clash with step()
    CALLS.append(("lookup", name))
    return name.upper()


@dataclass
class Money:
    amount: float
    currency: str


def pay(money: Money, /, to: str, *, urgent: bool = False) -> str:
    CALLS.append(("pay", (money, to, urgent)))
    assert isinstance(money, Money)
    return f"{money.amount} {money.currency} to {to}{' now' if urgent else ''}"


send = signoff.gated(
    transfer,
    requires_approval=lambda to, amount, memo="": amount > 100,
    describe=lambda to, amount, memo="": f"Transfer {amount} to {to}",
)
find = signoff.gated(lookup, requires_approval=False)
pay_gate = signoff.gated(pay, key="payment")


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    CALLS.clear()


async def test_a_call_the_predicate_lets_through_runs_at_once(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        return [await send("ann", 50), await find("bob")]

    async with engine:
        run = await engine.start(wf)
        assert await engine.result(run.id, timeout=5) == [
            {"to": "ann", "amount": 50, "memo": ""},
            "BOB",
        ]
    assert await engine.approvals(run.id) == []
    assert CALLS == [("transfer", ("ann", 50, "")), ("lookup", "bob")]
    steps = [e.name for e in await engine.store.get_journal(run.id)]
    assert steps == ["transfer", "lookup"]


async def test_a_gated_call_waits_for_approval_then_runs_once(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        first = await send("ann", 500, memo="rent")
        await ctx.approval("after")  # a later wait: the replay must not pay again
        return first

    async with engine:
        run = await engine.start(wf)
        waiting = await engine.settle(run.id)
        assert waiting.waiting_for == "approval:gated:transfer:1"
        [pending] = await engine.pending_approvals(run_id=run.id)
        assert pending.summary == "Transfer 500 to ann"
        assert pending.proposed == {
            "args": [],
            "kwargs": {"to": "ann", "amount": 500, "memo": "rent"},
        }
        assert CALLS == []
        await engine.approve(run.id, pending.key, by="carol")
        await engine.settle(run.id)
        await engine.approve(run.id, "after")
        assert await engine.result(run.id, timeout=5) == {
            "to": "ann",
            "amount": 500,
            "memo": "rent",
        }
    assert CALLS == [("transfer", ("ann", 500, "rent"))]


async def test_edited_arguments_are_what_runs(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        return await pay_gate(Money(900, "EUR"), to="dan", urgent=True)

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        [pending] = await engine.pending_approvals(run_id=run.id)
        assert pending.key == "payment:1"
        assert pending.proposed == {
            "args": [{"amount": 900, "currency": "EUR"}],
            "kwargs": {"to": "dan", "urgent": True},
        }
        edit = {"args": [{"amount": 300, "currency": "EUR"}], "kwargs": {"to": "dan"}}
        decision = await engine.edit(run.id, "payment:1", edit, by="eve")
        assert decision.original == pending.proposed
        assert await engine.result(run.id, timeout=5) == "300.0 EUR to dan"
    # the dataclass argument came back typed (per fn's hints)
    assert [("pay", (Money(300, "EUR"), "dan", False))] == CALLS


async def test_an_edit_may_be_a_plain_mapping_of_argument_names(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        return [
            await send("ann", 500, memo="rent"),
            await pay_gate(Money(900, "EUR"), to="dan", urgent=True),
        ]

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        await engine.edit(run.id, "gated:transfer:1", {"to": "bea", "amount": 200}, by="eve")
        await engine.settle(run.id)
        # positional-only parameters are named too; the dataclass comes back typed
        edit = {"money": {"amount": 300, "currency": "EUR"}, "to": "dan"}
        await engine.edit(run.id, "payment:1", edit, by="eve")
        first, second = await engine.result(run.id, timeout=5)
    assert first == {"to": "bea", "amount": 200, "memo": ""}
    assert second == "300.0 EUR to dan"
    paid = ("pay", (Money(300, "EUR"), "dan", False))
    assert [("transfer", ("bea", 200, "")), paid] == CALLS


async def test_a_decider_without_the_code_takes_a_plain_mapping(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        return await send("ann", 500)

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        with monkeypatch.context() as m:
            m.setattr(engine, "edit_checks", {})
            await engine.edit(run.id, "gated:transfer:1", {"to": "ann", "amount": 7}, by="eve")
        assert (await engine.result(run.id, timeout=5))["amount"] == 7
    assert CALLS == [("transfer", ("ann", 7, ""))]


def test_a_plain_mapping_edit_is_checked_against_the_signature() -> None:
    def loose(a: int, /, b: int, *rest: int, flag: bool = False, **extra: Any) -> None: ...

    def both(args: list[int], kwargs: dict[str, int]) -> None: ...

    gate = signoff.gated(loose)
    assert gate.check({"a": 1, "b": 2, "colour": "red"}) == ([1], {"b": 2, "colour": "red"})
    with pytest.raises(InvalidEdit, match=r"\*rest"):
        gate.check({"a": 1, "b": 2, "rest": [3]})
    with pytest.raises(InvalidEdit, match="missing a required argument"):
        gate.check({"b": 2})
    # a function whose parameters are named args and kwargs: the explicit form wins
    explicit = signoff.gated(both).check({"args": [[1]], "kwargs": {"kwargs": {}}})
    assert explicit == ([[1]], {"kwargs": {}})
    assert signoff.gated(both).check({"args": {}, "kwargs": {}}) == ([], {"args": {}, "kwargs": {}})


async def test_a_rejected_call_does_not_run_and_raises(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        try:
            await send("mallory", 10_000)
        except CallRejected as exc:
            assert exc.decision is not None and exc.key == "gated:transfer:1"
            assert exc.run_id == ctx.run_id
            return {"rejected": str(exc.decision.status), "reason": exc.decision.reason}
        return "paid"

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        await engine.reject(run.id, "gated:transfer:1", by="carol", reason="fraud")
        assert await engine.result(run.id, timeout=5) == {"rejected": "rejected", "reason": "fraud"}
    assert CALLS == []


async def test_an_uncaught_rejection_fails_the_run_clearly(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        return await send("mallory", 10_000)

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        await engine.reject(run.id, "gated:transfer:1", by="carol", reason="no")
        with pytest.raises(RunFailed) as info:
            await engine.result(run.id, timeout=5)
    error = info.value.error
    assert error["type"] == "CallRejected" and error["code"] == "call_rejected"
    assert "Transfer 10000 to mallory" in error["message"] and "carol" in error["message"]
    assert CALLS == []


async def test_an_expired_call_does_not_run(store_url: str, clock: FakeClock) -> None:
    eng = Engine(store_url, clock=clock, poll_interval=0.01)
    slow = signoff.gated(transfer, key="slow", timeout="1h")

    @eng.workflow()
    async def wf(ctx: Context) -> Any:
        try:
            return await slow("ann", 1)
        except CallRejected as exc:
            assert exc.decision is not None
            return str(exc.decision.status)

    try:
        async with eng:
            run = await eng.start(wf)
            await eng.settle(run.id)
            clock.advance("1h")
            assert await eng.result(run.id, timeout=5) == "expired"
    finally:
        await eng.close()
    assert CALLS == []


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (
            {"args": [], "kwargs": {"recipient": "x", "amount": 1}},
            "unknown argument names: 'recipient'",
        ),
        ({"args": [], "kwargs": {"to": "x"}}, "missing a required argument: 'amount'"),
        (
            {"args": [], "kwargs": {"to": "x", "amount": 1, "fee": 2}},
            "unknown argument names: 'fee'",
        ),
        ({"args": ["x", 1, "m", "extra"], "kwargs": {}}, "too many positional"),
        ({"to": "x", "amount": 1, "fee": 2}, "unknown argument names: 'fee'"),
        ({"recipient": "x", "amount": 1}, "unknown argument names: 'recipient'"),
        ({"to": "x"}, "missing a required argument: 'amount'"),
        ({"args": {}, "kwargs": {}}, '{"args": [...], "kwargs": {...}}'),
        ({"args": [], "kwargs": {}, "to": "x"}, '{"args": [...], "kwargs": {...}}'),
        ("just text", "a mapping of argument names to values"),
    ],
)
async def test_an_edit_that_does_not_fit_the_function_is_refused_and_stays_pending(
    engine: Engine, edit: Any, words: str
) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        return await send("ann", 500)

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        with pytest.raises(InvalidEdit) as info:
            await engine.edit(run.id, "gated:transfer:1", edit, by="eve")
        assert words in str(info.value)
        [pending] = await engine.pending_approvals(run_id=run.id)
        assert pending.status is ApprovalStatus.PENDING
        assert (await engine.get_run(run.id)).status is RunStatus.WAITING
        ok = {"args": [], "kwargs": {"to": "ann", "amount": 200}}
        await engine.edit(run.id, "gated:transfer:1", ok, by="eve")
        assert (await engine.result(run.id, timeout=5))["amount"] == 200
    assert CALLS == [("transfer", ("ann", 200, ""))]


@pytest.mark.parametrize(
    "edit",
    [
        {"args": [], "kwargs": {"recipient": "x", "amount": 1}},
        {"args": [], "kwargs": {"to": "x"}},
        {"args": ["x"], "kwargs": {"to": "x", "amount": 1}},
        {"kwargs": {"to": "x", "amount": 1}},
        {"to": "x", "amount": 1, "fee": 2},
        {"amount": 1},
    ],
)
async def test_a_decider_without_the_code_refuses_the_same_edits(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, edit: Any
) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        return await send("ann", 500)

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        with monkeypatch.context() as m:  # as if deciding from a process without `send`
            m.setattr(engine, "edit_checks", {})
            with pytest.raises(InvalidEdit) as info:
                await engine.edit(run.id, "gated:transfer:1", edit, by="eve")
            assert info.value.errors
            [pending] = await engine.pending_approvals(run_id=run.id)
            assert pending.status is ApprovalStatus.PENDING
            ok = {"args": [], "kwargs": {"to": "ann", "amount": 7}}
            await engine.edit(run.id, "gated:transfer:1", ok, by="eve")
        assert (await engine.result(run.id, timeout=5))["amount"] == 7


async def test_each_call_needing_approval_gets_its_own_key(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        out = [await send("a", 1)]  # let through: no key used
        out.append(await send("b", 200))
        out.append(await send("c", 300))
        return [o["to"] for o in out]

    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        await engine.approve(run.id, "gated:transfer:1")
        await engine.settle(run.id)
        await engine.approve(run.id, "gated:transfer:2")
        assert await engine.result(run.id, timeout=5) == ["a", "b", "c"]
    keys = [a.key for a in await engine.approvals(run.id)]
    assert keys == ["gated:transfer:1", "gated:transfer:2"]
    assert [c[1][0] for c in CALLS] == ["a", "b", "c"]


async def test_bad_calls_are_refused(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context, case: str) -> Any:
        if case == "args":
            return await send("x", 1, 2, 3)
        return await signoff.gated(transfer, describe=lambda *a, **k: 42)("x", 1)

    async with engine:
        for case, message in [("args", "too many positional"), ("describe", "must return")]:
            run = await engine.start(wf, case)
            with pytest.raises(RunFailed) as info:
                await engine.result(run.id, timeout=5)
            assert info.value.error["type"] == "InvalidArgument"
            assert message in info.value.error["message"]
    assert CALLS == []


async def test_outside_a_workflow_and_bad_setup() -> None:
    with pytest.raises(OutsideWorkflowError):
        await send("x", 1)
    with pytest.raises(InvalidArgument):
        signoff.gated("not callable")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        signoff.gated(transfer, requires_approval="yes")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        signoff.gated(transfer, key="")
    with pytest.raises(InvalidArgument):
        signoff.gated(transfer, timeout="soon")
    assert issubclass(CallRejected, signoff.SignoffError)


def test_arguments_schema_names_the_parameters() -> None:
    schema, plain = arguments_schema(inspect.signature(pay))["anyOf"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["args"] == {"type": "array", "minItems": 1, "maxItems": 1}
    kwargs = schema["properties"]["kwargs"]
    assert set(kwargs["properties"]) == {"to", "urgent"}
    assert kwargs["required"] == ["to"] and kwargs["additionalProperties"] is False
    assert set(plain["properties"]) == {"money", "to", "urgent"}
    assert plain["required"] == ["money", "to"] and plain["additionalProperties"] is False

    def loose(a: int, *rest: int, flag: bool, **extra: Any) -> None: ...

    loose_schema, loose_plain = arguments_schema(inspect.signature(loose))["anyOf"]
    assert "maxItems" not in loose_schema["properties"]["args"]
    assert loose_schema["properties"]["kwargs"]["required"] == ["flag"]
    assert loose_schema["properties"]["kwargs"]["additionalProperties"] is True
    assert loose_plain["required"] == ["a", "flag"] and loose_plain["additionalProperties"]


# the agent example ---------------------------------------------------------------------


def test_agent_example_runs_end_to_end(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from examples import agent_tools

    monkeypatch.setenv("SIGNOFF_DATABASE_URL", f"sqlite:///{tmp_path / 'agent.db'}")
    agent_tools.SENT.clear()
    assert agent_tools.main() == 0
    out = capsys.readouterr().out
    assert "globex paused: gated:send_payment:1: Pay 2500.00 to globex (invoice)" in out
    assert "'outcome': 'rejected', 'reason': 'invoice disputed'" in out
    sent = [(p["to"], p["amount"]) for p in agent_tools.SENT]
    assert sent == [("acme", 40.0), ("globex", 1000.0)]  # initech was never paid


async def test_two_engines_keep_their_own_edit_checks(engine: Engine, store_url: str) -> None:
    """No process-wide registry: the engine that ran a gated call checks its edits; another
    engine in the same process knows nothing of it (it still checks the JSON Schema)."""
    other = Engine(store_url)

    @engine.workflow()
    async def wf(ctx: Context) -> Any:
        return await send("ann", 500)

    try:
        async with engine:
            run = await engine.start(wf)
            await engine.settle(run.id)
        assert set(engine.edit_checks) == {"gated:transfer"}
        assert other.edit_checks == {}
        with pytest.raises(InvalidEdit):
            await engine.edit(run.id, "gated:transfer:1", {"args": [], "kwargs": {}}, by="eve")
    finally:
        await other.close()
