"""The workflows the server tests drive (importable by a uvicorn subprocess too)."""

from __future__ import annotations

import os
from typing import Any

from signoff import Context, Engine


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

    @engine.workflow("docs")
    async def docs(ctx: Context) -> Any:
        return await ctx.wait_for_signal("docs")

    @engine.workflow("named")
    async def named(ctx: Context) -> str:
        d = await ctx.approval("lead", summary="only alice", approvers=["alice"])
        return str(d.by)

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
