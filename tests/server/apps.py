"""The workflows the server tests drive (importable by a uvicorn subprocess too)."""

from __future__ import annotations

import os
from typing import Any

from signoff import Context, Engine, Stage


def calc(order_id: str, amount: int) -> int:
    return amount


def make_engine(url: str, **kw: Any) -> Engine:
    kw.setdefault("poll_interval", 0.01)
    kw.setdefault("lease", "5s")
    engine = Engine(url, **kw)

    @engine.workflow("refund")
    async def refund(ctx: Context, order_id: str, amount: int = 100) -> dict[str, Any]:
        value = await ctx.step(calc, order_id, amount)
        d = await ctx.approval(
            "manager", summary=f"Refund {order_id}", proposed={"amount": value}, timeout="7d"
        )
        return {"status": d.status.value, "by": d.by, "value": d.value}

    @engine.workflow("tool_call")
    async def tool_call(ctx: Context, meta: dict[str, Any]) -> Any:
        d = await ctx.approval("call", proposed={"to": "a@b.c"}, metadata=meta)
        return d.status.value

    @engine.workflow("question")
    async def question(ctx: Context) -> Any:
        return await ctx.ask("How many units?", key="units", schema={"type": "integer"})

    @engine.workflow("docs")
    async def docs(ctx: Context) -> Any:
        return await ctx.wait_for_signal("docs")

    @engine.workflow("named")
    async def named(ctx: Context) -> str:
        d = await ctx.approval("lead", summary="only alice", approvers=["alice"])
        return str(d.by)

    @engine.workflow("panel")
    async def panel(ctx: Context, amount: int = 10) -> dict[str, Any]:
        d = await ctx.approval(
            "board",
            summary="two of three",
            proposed={"amount": amount},
            approvers=["alice", "bob", "carol"],
            quorum=2,
        )
        return {"status": d.status.value, "voters": sorted(v.by for v in d.votes)}

    @engine.workflow("chain")
    async def chain(ctx: Context) -> str:
        d = await ctx.approval_chain(
            "refund",
            [Stage(name="manager", approvers=["alice"]), Stage(name="finance")],
            summary="chain",
            proposed={"amount": 5},
        )
        return d.status.value

    @engine.workflow("revised")
    async def revised(ctx: Context, amounts: list[int]) -> dict[str, Any]:
        """Asks again with the next amount each time changes are requested."""
        for amount in amounts:
            d = await ctx.approval("manager", summary=f"{amount}", proposed={"amount": amount})
            if d.status.value != "changes_requested":
                return {"status": d.status.value, "value": d.value}
        return {"status": "gave up"}

    @engine.workflow("big")
    async def big(ctx: Context, size: int) -> str:
        d = await ctx.approval("manager", summary="big", proposed={"blob": "x" * size})
        return d.status.value

    @engine.workflow("boom")
    async def boom(ctx: Context) -> None:
        raise RuntimeError("boom")

    return engine


# For `uvicorn tests.server.apps:app --factory`-less use by the subprocess test: the
# engine and app are built from the environment on import.
def build_app() -> Any:
    from signoff.server import create_app

    engine = make_engine(os.environ["SIGNOFF_DATABASE_URL"])
    return create_app(engine, link_secret="x" * 32, run_worker=True, heartbeat=1.0)
