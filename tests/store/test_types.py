"""Business types (datetime, date, time, Decimal, UUID, enums) through a whole run, on
every store: stored as exact text, revived from the type hints on the first execution
and on the replay after an approval alike."""

from __future__ import annotations

import enum
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pydantic
import pytest

from signoff import Context, Engine, RunFailed, RunStatus

PARIS = timezone(timedelta(hours=2))
ISSUED = datetime(2024, 5, 1, 9, 30, 15, 250, tzinfo=PARIS)
PAID = datetime(2024, 5, 3, 16, 0, tzinfo=UTC)
ORDER = uuid.UUID("12345678-1234-5678-1234-567812345678")
RECEIPT = uuid.UUID("87654321-4321-8765-4321-876543218765")
BIG = Decimal("98765432109876543210.000000000000000001")


class Tier(enum.Enum):
    GOLD = "gold"
    SILVER = 2


@dataclass
class Quote:
    order: uuid.UUID
    due: date
    total: Decimal
    tier: Tier
    cutoff: time
    issued: datetime
    fees: dict[str, Decimal] = field(default_factory=dict)


class Receipt(pydantic.BaseModel):
    id: uuid.UUID
    paid_at: datetime
    amounts: list[Decimal]


class Request(pydantic.BaseModel):
    order: uuid.UUID
    amount: Decimal
    needed_by: date


def make_quote(order: uuid.UUID) -> Quote:
    return Quote(
        order,
        date(2024, 6, 30),
        Decimal("129.90"),
        Tier.GOLD,
        time(17, 30),
        ISSUED,
        {"shipping": Decimal("4.99"), "tax": Decimal("0.10")},
    )


def issued_at() -> datetime:
    return ISSUED


async def exact_total() -> Decimal:
    return Decimal("0.1") + Decimal("0.2")


def big() -> Decimal:
    return BIG


def ids() -> list[uuid.UUID]:
    return [ORDER, RECEIPT]


def tier() -> Tier:
    return Tier.SILVER


def by_day() -> dict[date, Decimal]:
    return {date(2024, 1, 1): Decimal("1.00"), date(2024, 1, 2): Decimal("2.50")}


def pay(amount: Decimal) -> Receipt:
    return Receipt(id=RECEIPT, paid_at=PAID, amounts=[amount, Decimal("-0.01")])


def typed(value: Any) -> Any:
    """What the workflow saw, with the types spelled out (== alone would let a string
    `"gold"` pass for an enum or an int pass for a Decimal)."""
    if isinstance(value, list):
        return [typed(v) for v in value]
    if isinstance(value, dict):
        return {typed(k): typed(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return (type(value).__name__, value.isoformat())
    return (type(value).__name__, repr(value))


def register(engine: Engine, seen: list[Any]) -> Any:
    @engine.workflow(name="typed-pay")
    async def typed_pay(
        ctx: Context, order: uuid.UUID, request: Request, when: datetime, tiers: list[Tier]
    ) -> dict[str, Any]:
        values: dict[str, Any] = {
            "args": [order, request.amount, request.needed_by, when, tiers],
            "quote": await ctx.step(make_quote, order),
            "issued": await ctx.step(issued_at),
            "total": await ctx.step(exact_total),
            "big": await ctx.step(big),
            "ids": await ctx.step(ids),
            "tier": await ctx.step(tier),
            "by_day": await ctx.step(by_day),
        }
        seen.append(values)
        decision = await ctx.approval(
            "manager", summary="pay", proposed={"amount": values["quote"].total, "due": when}
        )
        receipt = await ctx.step(pay, values["quote"].total)
        seen.append({**values, "receipt": receipt})
        return {"receipt": receipt, "total": values["total"], "value": decision.value}

    return typed_pay


async def test_business_types_survive_the_journal_and_the_replay(engine: Engine) -> None:
    seen: list[Any] = []
    register(engine, seen)
    request = Request(order=ORDER, amount=Decimal("129.90"), needed_by=date(2024, 7, 1))
    async with engine:
        run = await engine.start("typed-pay", ORDER, request, ISSUED, [Tier.GOLD, Tier.SILVER])
        waiting = await engine.settle(run.id)
        assert waiting.status is RunStatus.WAITING, waiting.error
        [approval] = await engine.approvals(run.id)
        assert approval.proposed == {"amount": "129.90", "due": "2024-05-01T09:30:15.000250+02:00"}
        await engine.approve(run.id, "manager", by="alice")
        result = await engine.result(run.id, timeout=10)

    # seen: the first execution, the replay after the decision, then its end
    assert len(seen) == 3
    first, replayed = seen[0], seen[1]
    assert typed(replayed) == typed(first)  # identical types and values after the replay
    assert first["args"] == [
        ORDER,
        request.amount,
        date(2024, 7, 1),
        ISSUED,
        [Tier.GOLD, Tier.SILVER],
    ]
    assert typed(first["args"][:2]) == [("UUID", repr(ORDER)), ("Decimal", "Decimal('129.90')")]
    assert typed(first["args"][4]) == [
        ("Tier", "<Tier.GOLD: 'gold'>"),
        ("Tier", "<Tier.SILVER: 2>"),
    ]
    assert first["quote"] == make_quote(ORDER) and isinstance(first["quote"], Quote)
    assert typed(first["quote"].fees) == {
        ("str", "'shipping'"): ("Decimal", "Decimal('4.99')"),
        ("str", "'tax'"): ("Decimal", "Decimal('0.10')"),
    }
    assert typed(first["issued"]) == ("datetime", "2024-05-01T09:30:15.000250+02:00")
    assert typed(first["total"]) == ("Decimal", "Decimal('0.3')")
    assert typed(first["big"]) == ("Decimal", repr(BIG))
    assert typed(first["ids"]) == [("UUID", repr(ORDER)), ("UUID", repr(RECEIPT))]
    assert typed(first["tier"]) == ("Tier", "<Tier.SILVER: 2>")
    assert typed(first["by_day"]) == {
        ("date", "datetime.date(2024, 1, 1)"): ("Decimal", "Decimal('1.00')"),
        ("date", "datetime.date(2024, 1, 2)"): ("Decimal", "Decimal('2.50')"),
    }
    receipt = seen[2].pop("receipt")
    assert typed(seen[2]) == typed(first)
    assert receipt == Receipt(
        id=RECEIPT, paid_at=PAID, amounts=[Decimal("129.90"), Decimal("-0.01")]
    )
    # the run's own result has no annotation to revive from: the exact stored text
    assert result == {
        "receipt": {
            "id": str(RECEIPT),
            "paid_at": "2024-05-03T16:00:00Z",
            "amounts": ["129.90", "-0.01"],
        },
        "total": "0.3",
        "value": {"amount": "129.90", "due": "2024-05-01T09:30:15.000250+02:00"},
    }
    journal = {e.name: e.result for e in await engine.store.get_journal(run.id)}
    assert journal[issued_at.__qualname__] == '"2024-05-01T09:30:15.000250+02:00"'
    assert journal[big.__qualname__] == f'"{BIG}"'
    assert journal[tier.__qualname__] == "2"
    assert journal[by_day.__qualname__] == '{"2024-01-01":"1.00","2024-01-02":"2.50"}'
    stored = await engine.get_run(run.id)
    assert stored.args[:3] == [
        str(ORDER),
        {"order": str(ORDER), "amount": "129.90", "needed_by": "2024-07-01"},
        "2024-05-01T09:30:15.000250+02:00",
    ]


async def test_steps_run_once_across_the_replay(engine: Engine) -> None:
    calls: Counter[str] = Counter()

    def deadline() -> datetime:
        calls["deadline"] += 1
        return PAID

    def amount() -> Decimal:
        calls["amount"] += 1
        return Decimal("10.10")

    @engine.workflow(name="once")
    async def once(ctx: Context) -> list[str]:
        due = await ctx.step(deadline)
        money = await ctx.step(amount)
        assert isinstance(due, datetime) and due.tzinfo is not None
        assert isinstance(money, Decimal)
        await ctx.approval("ok", proposed={"due": due, "amount": money})
        return [due.isoformat(), str(money + Decimal("0.01"))]

    async with engine:
        run = await engine.start(once)
        assert (await engine.settle(run.id)).status is RunStatus.WAITING
        await engine.approve(run.id, "ok", by="alice")
        assert await engine.result(run.id, timeout=10) == ["2024-05-03T16:00:00+00:00", "10.11"]
    assert calls == Counter(deadline=1, amount=1)


async def test_signals_events_and_edits_take_business_types(engine: Engine) -> None:
    @engine.workflow(name="inbox")
    async def inbox(ctx: Context) -> dict[str, Any]:
        decision = await ctx.approval("manager", proposed={"amount": Decimal("5.00")})
        signal = await ctx.wait_for_signal("paid")
        event = await ctx.wait_for_event("rates")
        return {"value": decision.value, "signal": signal, "event": event}

    async with engine:
        run = await engine.start(inbox)
        assert (await engine.settle(run.id)).status is RunStatus.WAITING
        await engine.signal(run.id, "paid", {"at": PAID, "id": ORDER})
        await engine.edit(
            run.id, "manager", {"amount": Decimal("4.50"), "tier": Tier.GOLD}, by="alice"
        )
        for _ in range(100):
            if (await engine.get_run(run.id)).waiting_for == "event:rates":
                break
            await engine.settle(run.id)
        await engine.notify("rates", {Tier.GOLD: Decimal("1.0825"), "day": date(2024, 5, 1)})
        result = await engine.result(run.id, timeout=10)
    assert result == {
        "value": {"amount": "4.50", "tier": "gold"},
        "signal": {"at": "2024-05-03T16:00:00+00:00", "id": str(ORDER)},
        "event": {"gold": "1.0825", "day": "2024-05-01"},
    }


async def test_a_naive_datetime_fails_the_step_with_the_fix(engine: Engine) -> None:
    @engine.workflow(name="naive")
    async def naive(ctx: Context) -> None:
        await ctx.step(lambda: datetime(2024, 5, 1, 9, 30), name="local-now")

    async with engine:
        run = await engine.start(naive)
        with pytest.raises(RunFailed, match="naive datetime") as info:
            await engine.result(run.id, timeout=10)
    assert "datetime.now(UTC)" in str(info.value)
    assert "local-now" in str(info.value)


class Payout(pydantic.BaseModel):
    amount: Decimal
    pay_on: date
    account: uuid.UUID
    tier: Tier


async def test_approval_values_with_a_schema_take_business_types(engine: Engine) -> None:
    @engine.workflow(name="payout")
    async def payout(ctx: Context) -> list[Any]:
        proposed = Payout(
            amount=Decimal("100.00"), pay_on=date(2024, 6, 1), account=ORDER, tier=Tier.GOLD
        )
        decision = await ctx.approval("finance", proposed=proposed, schema=Payout)
        value = Payout.model_validate(decision.value)  # the edited value, typed again
        return [str(value.amount), value.pay_on.isoformat(), value.tier.name]

    async with engine:
        run = await engine.start(payout)
        assert (await engine.settle(run.id)).status is RunStatus.WAITING
        [approval] = await engine.approvals(run.id)
        assert approval.proposed == {
            "amount": "100.00",
            "pay_on": "2024-06-01",
            "account": str(ORDER),
            "tier": "gold",
        }
        edited = Payout(
            amount=Decimal("99.99"), pay_on=date(2024, 6, 2), account=RECEIPT, tier=Tier.SILVER
        )
        await engine.edit(run.id, "finance", edited, by="alice")
        assert await engine.result(run.id, timeout=10) == ["99.99", "2024-06-02", "SILVER"]


async def test_star_args_and_extra_keywords_are_revived_by_their_hints(engine: Engine) -> None:
    seen: list[Any] = []

    @engine.workflow()
    async def wf(ctx: Context, first: Decimal, *more: Decimal, **named: Tier) -> str:
        seen.append((first, more, named))
        await ctx.approval("ok")
        return "done"

    async with engine:
        run = await engine.start(wf, Decimal("1.10"), Decimal("2.20"), Decimal("3"), a=Tier.GOLD)
        await engine.settle(run.id)
        await engine.approve(run.id, "ok", by="carol")
        assert await engine.result(run.id, timeout=5) == "done"
    assert len(seen) == 2  # the first execution and the replay after the decision
    for first, more, named in seen:
        assert first == Decimal("1.10") and isinstance(first, Decimal)
        assert more == (Decimal("2.20"), Decimal("3")) and all(isinstance(m, Decimal) for m in more)
        assert named == {"a": Tier.GOLD}
