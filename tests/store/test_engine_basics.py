"""Steps, replay and the deterministic helpers, against every backend."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest

import signoff
from signoff import Context, Engine, OutsideWorkflowError, RetryPolicy, RunStatus
from signoff.testing import FakeClock


@dataclass
class Quote:
    sku: str
    cents: int
    tags: list[str]


class Invoice(pydantic.BaseModel):
    number: str
    total: int
    lines: list[Quote]


def make_quote(sku: str) -> Quote:
    return Quote(sku=sku, cents=1250, tags=["a", "b"])


async def make_invoice(number: str) -> Invoice:
    return Invoice(number=number, total=2500, lines=[make_quote("x"), make_quote("y")])


async def test_sync_and_async_steps_return_their_values(engine: Engine) -> None:
    threads: list[bool] = []

    def add(a: int, b: int) -> int:
        threads.append(True)
        return a + b

    async def mul(a: int, b: int) -> int:
        return a * b

    @engine.workflow()
    async def calc(ctx: Context, x: int) -> dict[str, int]:
        s = await ctx.step(add, x, 2)
        p = await ctx.step(mul, s, b=10)
        return {"sum": s, "product": p}

    async with engine:
        run = await engine.start(calc, 3)
        assert await engine.result(run.id, timeout=5) == {"sum": 5, "product": 50}
    assert threads == [True]
    names = [e.data["name"] for e in await engine.history(run.id) if e.type == "step_completed"]
    assert names == [add.__qualname__, mul.__qualname__]


async def test_explicit_step_name_is_journaled(engine: Engine) -> None:
    @engine.workflow()
    async def named(ctx: Context) -> str:
        return await ctx.step(lambda: "hi", name="greet")

    async with engine:
        run = await engine.start(named)
        assert await engine.result(run.id, timeout=5) == "hi"
    journal = await engine.store.get_journal(run.id)
    assert [(e.kind, e.name) for e in journal] == [("step", "greet")]


async def test_recorded_steps_are_not_recomputed_on_replay(engine: Engine) -> None:
    calls = {"load": 0, "draft": 0, "issue": 0}
    executions: list[int] = []

    def load(order: str) -> dict[str, Any]:
        calls["load"] += 1
        return {"order": order, "amount": 42}

    async def draft(ticket: dict[str, Any]) -> str:
        calls["draft"] += 1
        return f"refund {ticket['amount']}"

    def issue(amount: int) -> str:
        calls["issue"] += 1
        return f"receipt-{amount}"

    @engine.workflow()
    async def refund(ctx: Context, order: str) -> dict[str, Any]:
        executions.append(1)
        ticket = await ctx.step(load, order)
        text = await ctx.step(draft, ticket)
        d1 = await ctx.approval("manager", summary=text, proposed={"amount": ticket["amount"]})
        d2 = await ctx.approval("finance", proposed=d1.value)
        receipt = await ctx.step(issue, d2.value["amount"])
        return {"text": text, "receipt": receipt}

    async with engine:
        run = await engine.start(refund, "ord-1")
        parked = await engine.settle(run.id)
        assert parked.status is RunStatus.WAITING
        assert parked.waiting_for == "approval:manager"
        assert calls == {"load": 1, "draft": 1, "issue": 0}
        await engine.approve(run.id, "manager", by="alice")
        parked = await engine.settle(run.id)
        assert parked.waiting_for == "approval:finance"
        await engine.approve(run.id, "finance", by="bob")
        assert await engine.result(run.id, timeout=5) == {
            "text": "refund 42",
            "receipt": "receipt-42",
        }
    assert calls == {"load": 1, "draft": 1, "issue": 1}
    assert len(executions) == 3  # first run, and one replay per decision


async def test_retry_policy_retries_and_history_shows_attempts(engine: Engine) -> None:
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError(f"try {len(attempts)} failed")
        return "ok"

    @engine.workflow()
    async def wf(ctx: Context) -> str:
        return await ctx.step(flaky, retry=RetryPolicy(attempts=3, initial_interval=0.01))

    async with engine:
        run = await engine.start(wf)
        assert await engine.result(run.id, timeout=5) == "ok"
    assert len(attempts) == 3
    events = await engine.history(run.id)
    retrying = [e for e in events if e.type == "step_retrying"]
    assert [e.data["attempt"] for e in retrying] == [1, 2]
    assert retrying[0].data["error"]["type"] == "ConnectionError"
    assert retrying[0].data["error"]["message"] == "try 1 failed"
    assert retrying[1].data["retry_in"] == pytest.approx(0.02)
    completed = [e for e in events if e.type == "step_completed"]
    assert len(completed) == 1 and completed[0].data["attempts"] == 3


async def test_engine_default_retry_applies_to_steps_without_policy(
    store_url: str, clock: FakeClock
) -> None:
    eng = Engine(
        store_url,
        clock=clock,
        poll_interval=0.01,
        default_retry=RetryPolicy(attempts=2, initial_interval=0.01),
    )
    tries: list[int] = []

    def once_flaky() -> int:
        tries.append(1)
        if len(tries) == 1:
            raise RuntimeError("first")
        return 7

    @eng.workflow()
    async def wf(ctx: Context) -> int:
        return await ctx.step(once_flaky)

    async with eng:
        run = await eng.start(wf)
        assert await eng.result(run.id, timeout=5) == 7
    assert len(tries) == 2


async def test_dataclass_and_pydantic_results_round_trip_typed(engine: Engine) -> None:
    seen: list[tuple[type, type, type]] = []

    @engine.workflow()
    async def typed(ctx: Context) -> dict[str, Any]:
        quote = await ctx.step(make_quote, "sku-1")
        invoice = await ctx.step(make_invoice, "inv-9")
        seen.append((type(quote), type(invoice), type(invoice.lines[0])))
        await ctx.approval("ok")
        return {"cents": quote.cents, "total": invoice.total, "first": invoice.lines[0].sku}

    async with engine:
        run = await engine.start(typed)
        await engine.settle(run.id)
        await engine.approve(run.id, "ok")
        assert await engine.result(run.id, timeout=5) == {
            "cents": 1250,
            "total": 2500,
            "first": "x",
        }
    # on the first execution and on replay (from the journal) alike
    assert seen == [(Quote, Invoice, Quote)] * 2
    stored = [e.result for e in await engine.store.get_journal(run.id) if e.kind == "step"]
    assert stored[0] == '{"sku":"sku-1","cents":1250,"tags":["a","b"]}'


async def test_typed_workflow_input_is_revived(engine: Engine) -> None:
    @engine.workflow()
    async def takes_quote(ctx: Context, quote: Quote, n: int = 1) -> int:
        assert isinstance(quote, Quote)
        return quote.cents * n

    async with engine:
        run = await engine.start(takes_quote, Quote(sku="s", cents=3, tags=[]), n=4)
        assert run.args == [{"sku": "s", "cents": 3, "tags": []}]
        assert await engine.result(run.id, timeout=5) == 12


async def test_now_uuid_random_are_identical_across_replay(
    engine: Engine, clock: FakeClock
) -> None:
    readings: list[tuple[datetime, uuid.UUID, float]] = []
    after: list[tuple[datetime, uuid.UUID, float]] = []

    @engine.workflow()
    async def deterministic(ctx: Context) -> None:
        readings.append((ctx.now(), ctx.uuid(), ctx.random()))
        await ctx.approval("go")
        after.append((ctx.now(), ctx.uuid(), ctx.random()))

    async with engine:
        run = await engine.start(deterministic)
        await engine.settle(run.id)
        clock.advance("1h")
        await engine.approve(run.id, "go")
        await engine.result(run.id, timeout=5)
    assert len(readings) == 2 and len(after) == 1
    first, replayed = readings
    assert first == replayed
    assert first[0] == datetime.fromtimestamp(1_800_000_000.0, UTC)
    assert first[0].tzinfo is not None and first[0].utcoffset() == UTC.utcoffset(None)
    assert 0.0 <= first[2] < 1.0
    # after the wait, time has moved on and the helpers give fresh values
    assert after[0][0] == datetime.fromtimestamp(1_800_003_600.0, UTC)
    assert after[0][1] != first[1]
    assert after[0][2] != first[2]


async def test_uuid_and_random_differ_between_runs(engine: Engine) -> None:
    @engine.workflow()
    async def draw(ctx: Context) -> list[Any]:
        return [str(ctx.uuid()), ctx.random()]

    async with engine:
        a = await engine.start(draw)
        b = await engine.start(draw)
        ra = await engine.result(a.id, timeout=5)
        rb = await engine.result(b.id, timeout=5)
    assert ra[0] != rb[0] and ra[1] != rb[1]
    assert uuid.UUID(ra[0]).version == 4


async def test_idempotency_key_is_stable_across_retries(engine: Engine) -> None:
    keys: list[str] = []
    ctx_keys: list[str] = []

    def charge() -> str:
        keys.append(signoff.idempotency_key())
        if len(keys) < 3:
            raise TimeoutError("gateway timeout")
        return keys[-1]

    async def second() -> str:
        return signoff.idempotency_key()

    @engine.workflow()
    async def pay(ctx: Context) -> list[str]:
        first = await ctx.step(charge, retry=RetryPolicy(attempts=3, initial_interval=0.01))

        def via_ctx() -> str:
            ctx_keys.append(ctx.idempotency_key())
            return ctx_keys[-1]

        other = await ctx.step(second)
        third = await ctx.step(via_ctx)
        return [first, other, third]

    async with engine:
        run = await engine.start(pay)
        result = await engine.result(run.id, timeout=5)
    assert keys == [f"{run.id}:0"] * 3
    assert result == [f"{run.id}:0", f"{run.id}:1", f"{run.id}:2"]
    assert ctx_keys == [f"{run.id}:2"]


async def test_idempotency_key_outside_a_step_raises(engine: Engine) -> None:
    with pytest.raises(OutsideWorkflowError):
        signoff.idempotency_key()

    @engine.workflow()
    async def wf(ctx: Context) -> str:
        try:
            ctx.idempotency_key()
        except OutsideWorkflowError as exc:
            return f"refused: {exc}"
        return "allowed"

    async with engine:
        run = await engine.start(wf)
        result = await engine.result(run.id, timeout=5)
    assert result.startswith("refused: ") and "ctx.step" in result


async def test_start_with_run_id_is_idempotent(engine: Engine) -> None:
    @engine.workflow()
    async def wf(ctx: Context, x: int) -> int:
        await ctx.approval("k")
        return x

    async with engine:
        first = await engine.start(wf, 1, run_id="fixed-id", requested_by="carol")
        again = await engine.start(wf, 1, run_id="fixed-id")
        assert first.id == again.id == "fixed-id"
        assert len(await engine.list_runs()) == 1
        with pytest.raises(signoff.InvalidRunState):
            await engine.start(wf, 2, run_id="fixed-id")
        await engine.approve("fixed-id", "k")
        assert await engine.result("fixed-id", timeout=5) == 1
    run = await engine.get_run("fixed-id")
    assert run.requested_by == "carol"
    assert run.status is RunStatus.COMPLETED


async def test_start_by_name_and_list_runs_filters(engine: Engine) -> None:
    @engine.workflow(name="greeter")
    async def wf(ctx: Context, who: str) -> str:
        if who == "wait":
            await ctx.approval("k")
        return f"hello {who}"

    async with engine:
        done = await engine.start("greeter", "ann")
        assert await engine.result(done.id, timeout=5) == "hello ann"
        waiting = await engine.start("greeter", "wait")
        await engine.settle(waiting.id)
        assert [r.id for r in await engine.list_runs(status="waiting")] == [waiting.id]
        assert [r.id for r in await engine.list_runs(status=RunStatus.COMPLETED)] == [done.id]
        assert {r.id for r in await engine.list_runs(workflow="greeter")} == {done.id, waiting.id}
        assert await engine.list_runs(workflow="other") == []
        with pytest.raises(signoff.InvalidArgument, match="unknown status"):
            await engine.list_runs(status="sleeping")
        await engine.cancel(waiting.id)


async def test_engine_without_worker_records_and_another_engine_runs(
    store_url: str, clock: FakeClock
) -> None:
    client = Engine(store_url, clock=clock, poll_interval=0.01)
    server = Engine(store_url, clock=clock, poll_interval=0.01)

    async def wf(ctx: Context, n: int) -> int:
        d = await ctx.approval("k", proposed=n)
        return int(d.value) * 2

    server.workflow(name="doubler")(wf)
    try:
        async with server:  # registers "doubler" in the database
            pass
        run = await client.start("doubler", 21)  # client has no code for it
        assert (await client.get_run(run.id)).status is RunStatus.PENDING
        async with server:
            await server.settle(run.id)
            await client.approve(run.id, "k", by="dora")
            assert await server.result(run.id, timeout=5) == 42
    finally:
        await client.close()
        await server.close()


async def test_workflow_registration_errors(engine: Engine) -> None:
    async def one(ctx: Context) -> None:
        return None

    async def two(ctx: Context) -> None:
        return None

    engine.workflow(name="flow")(one)
    engine.workflow(name="flow")(one)  # the same function again is fine
    with pytest.raises(signoff.InvalidArgument, match="already registered"):
        engine.workflow(name="flow")(two)

    def not_async(ctx: Context) -> None:
        return None

    with pytest.raises(signoff.InvalidArgument, match="async"):
        engine.workflow()(not_async)  # type: ignore[type-var]
    assert engine.workflows == ["flow"]


async def test_cancel_a_run_no_worker_has_picked_up(store_url: str, clock: FakeClock) -> None:
    ran: list[int] = []
    eng = Engine(store_url, clock=clock, poll_interval=0.01)

    @eng.workflow()
    async def wf(ctx: Context) -> None:
        ran.append(1)

    try:
        run = await eng.start(wf)
        assert (await eng.get_run(run.id)).status is RunStatus.PENDING
        assert (await eng.cancel(run.id)).status is RunStatus.CANCELLED
        async with eng:
            await asyncio.sleep(0.05)
            with pytest.raises(signoff.RunCancelled):
                await eng.result(run.id, timeout=1)
    finally:
        await eng.close()
    assert ran == []


def test_retry_policy_backoff_and_validation() -> None:
    policy = RetryPolicy(attempts=5, initial_interval=1.0, backoff=2.0, max_interval=5.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    for bad in ({"attempts": 0}, {"initial_interval": -1}, {"backoff": 0.5}, {"max_interval": -1}):
        with pytest.raises(signoff.InvalidArgument, match="RetryPolicy"):
            RetryPolicy(**bad)


async def test_a_step_runs_only_once_the_record_of_the_step_before_it_is_kept(
    engine: Engine,
) -> None:
    """A step's record may travel with the run's next write, but never behind the effect
    of a later step: the next step starts only once it is kept."""

    async def first() -> str:
        return "one"

    async def recorded(run_id: str) -> list[str]:
        return [e.name for e in await engine.store.get_journal(run_id)]

    @engine.workflow()
    async def ordered(ctx: Context) -> list[str]:
        await ctx.step(first)
        return await ctx.step(recorded, ctx.run_id)

    async with engine:
        run = await engine.start(ordered)
        assert await engine.result(run.id, timeout=5) == [first.__qualname__]


async def test_a_step_record_travels_with_the_wait_and_the_end_that_follow_it(
    engine: Engine,
) -> None:
    """A step that went well at once, then a wait (or the run's end): one write, not two;
    its journal entry and history are the same as when it was written alone."""
    writes: list[str] = []
    store = engine.store
    for name in ("record_step", "open_wait", "finish_run"):
        method = getattr(store, name)

        async def counted(*args: Any, _m: Any = method, _n: str = name, **kw: Any) -> Any:
            writes.append(_n)
            return await _m(*args, **kw)

        setattr(store, name, counted)

    async def draft() -> int:
        return 120

    async def pay(amount: int) -> str:
        return f"paid {amount}"

    @engine.workflow()
    async def refund(ctx: Context) -> str:
        amount = await ctx.step(draft)
        decision = await ctx.approval("manager", summary="Refund")
        assert decision.approved
        return await ctx.step(pay, amount)

    async with engine:
        run = await engine.start(refund)
        while (await engine.get_run(run.id)).status is not RunStatus.WAITING:
            await asyncio.sleep(0.01)
        assert writes == ["open_wait"]
        await engine.approve(run.id, "manager", by="ann")
        assert await engine.result(run.id, timeout=5) == "paid 120"
    assert writes == ["open_wait", "finish_run"]
    journal = await engine.store.get_journal(run.id)
    assert [(e.name, e.status.value) for e in journal] == [
        (draft.__qualname__, "done"),
        ("manager", "done"),
        (pay.__qualname__, "done"),
    ]
    steps = [e.data for e in await engine.history(run.id) if e.type == "step_completed"]
    assert steps == [
        {"seq": 0, "name": draft.__qualname__, "attempts": 1},
        {"seq": 2, "name": pay.__qualname__, "attempts": 1},
    ]
