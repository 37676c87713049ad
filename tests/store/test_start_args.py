"""Arguments are checked against the workflow's signature and type hints at start, before
anything is recorded; on every store. Also the engine-wide default approval deadline."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import pydantic
import pytest

from signoff import Context, Engine, InvalidArgument, NotSerializable, RunStatus
from signoff.testing import FakeClock


class Expense(pydantic.BaseModel):
    amount: Decimal
    spent_on: date
    note: str = ""


async def no_runs(engine: Engine) -> bool:
    runs: Any = await engine.list_runs()
    return list(getattr(runs, "items", runs)) == []


def register(engine: Engine) -> Any:
    @engine.workflow(name="expense")
    async def expense(
        ctx: Context,
        report: Expense,
        approver: str,
        level: Literal["low", "high"] = "low",
        *,
        count: int = 1,
        rate: float = 1.0,
        due: datetime | None = None,
    ) -> dict[str, Any]:
        return {
            "amount": str(report.amount),
            "approver": approver,
            "types": [type(report).__name__, type(report.amount).__name__, type(due).__name__],
        }

    return expense


@pytest.mark.parametrize(
    ("args", "kwargs", "field", "says"),
    [
        (
            [{"amount": "1", "spent_on": "2024-01-01"}, "bob"],
            {"metadata": {"x": 1}},
            "metadata",
            "unexpected argument 'metadata'",
        ),
        (
            [{"amount": "x", "spent_on": "2024-01-01"}, "bob"],
            {},
            "report",
            "amount: Input should be a valid decimal",
        ),
        ([{"amount": "1"}, "bob"], {}, "report", "spent_on: Field required"),
        (["not a report", "bob"], {}, "report", "does not fit Expense"),
        (
            [{"amount": "1", "spent_on": "2024-01-01"}],
            {},
            "approver",
            "missing argument 'approver'",
        ),
        (
            [{"amount": "1", "spent_on": "2024-01-01"}, 5],
            {},
            "approver",
            "Input should be a valid string",
        ),
        (
            [{"amount": "1", "spent_on": "2024-01-01"}, "bob", "urgent"],
            {},
            "level",
            "Input should be 'low' or 'high'",
        ),
        (
            [{"amount": "1", "spent_on": "2024-01-01"}, "bob"],
            {"count": "5"},
            "count",
            "valid integer",
        ),
        (
            [{"amount": "1", "spent_on": "2024-01-01"}, "bob"],
            {"count": 2.5},
            "count",
            "valid integer",
        ),
        (
            [{"amount": "1", "spent_on": "2024-01-01"}, "bob"],
            {"due": "soon"},
            "due",
            "valid datetime",
        ),
        (
            [{"amount": "1", "spent_on": "2024-01-01"}, "bob"],
            {"approver": "al"},
            "approver",
            "given twice",
        ),
        (
            [{"amount": "1", "spent_on": "2024-01-01"}, "bob", "low", 4],
            {},
            None,
            "4 positional arguments given, but it takes at most 3",
        ),
    ],
)
async def test_bad_arguments_are_refused_before_anything_is_recorded(
    engine: Engine, args: list[Any], kwargs: dict[str, Any], field: str | None, says: str
) -> None:
    register(engine)
    with pytest.raises(InvalidArgument) as info:
        await engine.start("expense", *args, **kwargs)
    assert says in str(info.value)
    assert info.value.field == field  # type: ignore[attr-defined]
    assert info.value.workflow == "expense"  # type: ignore[attr-defined]
    assert info.value.code == "invalid_argument"
    assert "'expense'" in str(info.value)
    assert await no_runs(engine)


async def test_a_naive_datetime_given_as_text_is_refused(engine: Engine) -> None:
    register(engine)
    report = {"amount": "1", "spent_on": "2024-01-01"}
    with pytest.raises(NotSerializable, match="naive datetime") as info:
        await engine.start("expense", report, "bob", due="2024-05-01T09:00:00")
    assert info.value.field == "due"  # type: ignore[attr-defined]
    assert await no_runs(engine)


async def test_good_arguments_start_and_revive(engine: Engine) -> None:
    register(engine)
    async with engine:
        as_json = await engine.start(
            "expense",
            {"amount": "12.50", "spent_on": "2024-01-01"},
            "bob",
            "high",
            count=3,
            rate=2,
            due="2024-05-01T09:00:00Z",
        )
        typed = await engine.start(
            "expense",
            Expense(amount=Decimal("0.10"), spent_on=date(2024, 1, 2)),
            approver="carol",
            due=datetime(2024, 5, 1, tzinfo=UTC),
        )
        assert await engine.result(as_json.id, timeout=10) == {
            "amount": "12.50",
            "approver": "bob",
            "types": ["Expense", "Decimal", "datetime"],
        }
        assert (await engine.result(typed.id, timeout=10))["amount"] == "0.10"


async def test_start_keeps_run_id_and_requested_by_apart_from_the_workflows_own(
    engine: Engine,
) -> None:
    @engine.workflow(name="clash")
    async def clash(
        ctx: Context, run_id: str, workflow: str = "-", requested_by: str = "-"
    ) -> list[str]:
        return [run_id, workflow, requested_by]

    with pytest.raises(InvalidArgument, match="pass the workflow's 'run_id' positionally") as info:
        await engine.start(clash, run_id="r-1")
    assert info.value.field == "run_id"  # type: ignore[attr-defined]
    assert await no_runs(engine)
    async with engine:
        run = await engine.start(
            clash, "order-7", run_id="r-2", workflow="wf-arg", requested_by="alice"
        )
        assert run.id == "r-2" and run.requested_by == "alice"
        assert await engine.result(run.id, timeout=10) == ["order-7", "wf-arg", "-"]


async def test_workflow_keyword_is_an_ordinary_argument(engine: Engine) -> None:
    @engine.workflow(name="plain")
    async def plain(ctx: Context, order: str) -> str:
        return order

    with pytest.raises(InvalidArgument, match="unexpected argument 'workflow'") as info:
        await engine.start(plain, "o", workflow="other")
    assert info.value.field == "workflow"  # type: ignore[attr-defined]
    assert await no_runs(engine)


async def test_approval_timeout_is_validated(store_url: str, clock: FakeClock) -> None:
    eng = Engine(store_url, clock=clock, approval_timeout="7d")
    assert eng.approval_timeout == 7 * 86400
    assert Engine(store_url, clock=clock).approval_timeout is None
    assert Engine(store_url, approval_timeout=timedelta(hours=2)).approval_timeout == 7200
    with pytest.raises(InvalidArgument, match="approval_timeout"):
        Engine(store_url, approval_timeout="soon")
    with pytest.raises(InvalidArgument, match="approval_timeout"):
        Engine(store_url, approval_timeout=-1)


async def test_engine_wide_default_deadline_for_approvals(store_url: str, clock: FakeClock) -> None:
    engine = Engine(store_url, clock=clock, poll_interval=0.01, approval_timeout="7d")

    @engine.workflow
    async def two(ctx: Context) -> list[str]:
        first = await ctx.approval("default")
        second = await ctx.approval("own", timeout="1h")
        return [first.status.value, second.status.value]

    try:
        async with engine:
            run = await engine.start(two)
            assert (await engine.settle(run.id)).status is RunStatus.WAITING
            [default] = await engine.approvals(run.id)
            assert default.deadline == datetime.fromtimestamp(clock.time(), UTC) + timedelta(days=7)
            await engine.approve(run.id, "default", by="alice")
            while (await engine.get_run(run.id)).waiting_for != "approval:own":
                await engine.settle(run.id)
            own = next(a for a in await engine.approvals(run.id) if a.key == "own")
            assert own.deadline == datetime.fromtimestamp(clock.time(), UTC) + timedelta(hours=1)
    finally:
        await engine.close()
