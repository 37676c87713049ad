"""`@engine.workflow` in its three spellings, wrong uses refused at decoration, and
`arguments.check` on its own (no store: the engine is never opened)."""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pytest

from signoff import Context, Engine, InvalidArgument, arguments, runner


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return Engine(f"sqlite:///{tmp_path / 'unused.db'}")


def test_workflow_without_parentheses(engine: Engine) -> None:
    @engine.workflow
    async def bare(ctx: Context, order: str) -> str:
        return order

    assert engine.workflows == [bare.__qualname__]
    assert bare.__signoff_workflow__ == bare.__qualname__  # type: ignore[attr-defined]
    assert bare.__name__ == "bare"  # the function itself comes back


def test_workflow_with_parentheses_and_names(engine: Engine) -> None:
    @engine.workflow()
    async def empty(ctx: Context) -> None:
        return None

    @engine.workflow("positional-name")
    async def positional(ctx: Context) -> None:
        return None

    @engine.workflow(name="keyword-name")
    async def keyword(ctx: Context) -> None:
        return None

    assert sorted(engine.workflows) == sorted(
        [empty.__qualname__, "positional-name", "keyword-name"]
    )
    assert positional.__signoff_workflow__ == "positional-name"  # type: ignore[attr-defined]


def sync_flow(ctx: Context) -> None:
    return None


async def no_context() -> None:
    return None


async def context_by_keyword(*, ctx: Context) -> None:
    return None


async def reserved(ctx: Context, *, run_id: str) -> None:
    return None


@pytest.mark.parametrize(
    ("use", "says"),
    [
        (lambda e: e.workflow(sync_flow), "must be an async function"),
        (lambda e: e.workflow("name")(sync_flow), "must be an async function"),
        (lambda e: e.workflow(123), "takes a workflow name (a string), not 123"),
        (lambda e: e.workflow(["a"]), "use @engine.workflow, @engine.workflow()"),
        (lambda e: e.workflow("name")("not a function"), "decorates an async function"),
        (lambda e: e.workflow()(None), "decorates an async function"),
        (lambda e: e.workflow(no_context), "must take the context as its first parameter"),
        (lambda e: e.workflow(context_by_keyword), "must take the context"),
        (lambda e: e.workflow(reserved), "keyword-only parameter 'run_id'"),
    ],
)
def test_wrong_uses_fail_at_decoration(
    engine: Engine, use: Callable[[Engine], Any], says: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        use(engine)
    assert says in str(info.value)
    assert engine.workflows == []


class Kind(enum.Enum):
    A = "a"


@dataclasses.dataclass
class Item:
    sku: str
    price: Decimal


class Opaque:
    """A class pydantic cannot describe: such parameters are not checked."""


async def flow(
    ctx: Context,
    first: int,
    *items: Item,
    ratio: float = 1.0,
    pair: tuple[int, str] = (0, ""),
    kind: Kind = Kind.A,
    anything: Any = None,
    bare=None,  # unannotated: not checked
    opaque: Opaque | None = None,
    member: Literal[Kind.A] | None = None,
    **extra: uuid.UUID,
) -> None:
    return None


def check(*args: Any, **kwargs: Any) -> None:
    wf = runner.WorkflowDef.of("flow", flow)
    arguments.check("flow", wf.fn, dict(wf.params), list(args), kwargs)


def test_check_accepts_what_the_worker_reads() -> None:
    check(1)
    check(1, {"sku": "a", "price": "1.10"}, {"sku": "b", "price": 2})
    check(1, ratio=2, pair=[3, "x"], kind="a", anything={"x": [1]}, bare=object)
    check(1, opaque={"whatever": True}, ref=str(uuid.uuid4()), member="a")


@pytest.mark.parametrize(
    ("args", "kwargs", "field", "says"),
    [
        ([True], {}, "first", "valid integer"),
        (["1"], {}, "first", "valid integer"),
        ([1, {"sku": "a"}], {}, "items[0]", "price: Field required"),
        ([1, {"sku": "a", "price": "1"}, {"sku": "b", "price": "x"}], {}, "items[1]", "price: "),
        ([1], {"ratio": "2"}, "ratio", "valid number"),
        ([1], {"pair": [1, 2]}, "pair", "1: Input should be a valid string"),
        ([1], {"kind": "b"}, "kind", "Input should be 'a'"),
        ([1], {"ref": "not-a-uuid"}, "ref", "valid UUID"),
        ([], {}, "first", "missing argument 'first'"),
    ],
)
def test_check_names_the_field(
    args: list[Any], kwargs: dict[str, Any], field: str, says: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        check(*args, **kwargs)
    assert info.value.field == field  # type: ignore[attr-defined]
    assert says in str(info.value)


def test_many_problems_are_summed_up() -> None:
    @dataclasses.dataclass
    class Wide:
        a: int
        b: int
        c: int
        d: int
        e: int
        f: int
        g: int

    async def wide(ctx: Context, w: Wide) -> None:
        return None

    with pytest.raises(InvalidArgument, match="and 2 more"):
        arguments.check("wide", wide, {"w": Wide}, [{}], {})


def test_reserved_names_are_explained_only_when_start_took_them() -> None:
    async def wf(ctx: Context, run_id: str) -> None:
        return None

    with pytest.raises(InvalidArgument, match=r"engine\.start's own option"):
        arguments.check("wf", wf, {"run_id": str}, [], {}, taken=["run_id"])
    with pytest.raises(InvalidArgument, match="missing argument 'run_id'"):
        arguments.check("wf", wf, {"run_id": str}, [], {})
