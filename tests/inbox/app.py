"""APP for `signoff serve tests.inbox.app:engine` in the browser tests.

Workflows whose approvals name their approvers (alice, bob, role:finance), one with a
schema for edits, and one that asks again when changes are requested.
"""

from __future__ import annotations

import os
from typing import Any

from signoff import Context, Directory, Engine

SCHEMA = {
    "type": "object",
    "properties": {
        "amount": {"type": "integer", "minimum": 0, "maximum": 1000},
        "currency": {"type": "string", "enum": ["EUR", "USD"]},
        "note": {"type": "string"},
    },
    "required": ["amount", "currency"],
    "additionalProperties": False,
}


def make_engine(url: str) -> Engine:
    engine = Engine(
        url,
        poll_interval=0.02,
        lease="5s",
        directory=Directory({"finance": ["alice", "carol"]}),
    )

    @engine.workflow("refund")
    async def refund(
        ctx: Context, order: str, amount: int = 40, approvers: list[str] | None = None
    ) -> dict[str, Any]:
        d = await ctx.approval(
            "manager",
            summary=f"Refund {amount} EUR for order {order}",
            proposed={"amount": amount, "currency": "EUR", "note": f"order {order}"},
            approvers=approvers or ["alice", "bob"],
            schema=SCHEMA,
            timeout="2d",
        )
        return {"status": d.status.value, "value": d.value}

    @engine.workflow("payload")
    async def payload(ctx: Context, proposed: Any, summary: str) -> str:
        d = await ctx.approval("review", summary=summary, proposed=proposed, approvers=["alice"])
        return d.status.value

    @engine.workflow("revised")
    async def revised(ctx: Context, amounts: list[int]) -> str:
        for amount in amounts:
            d = await ctx.approval(
                "manager", summary=f"Pay {amount}", proposed={"amount": amount},
                approvers=["role:finance"],
            )  # fmt: skip
            if d.status.value != "changes_requested":
                return d.status.value
        return "gave up"

    @engine.workflow("question")
    async def question(ctx: Context, order: str) -> Any:
        return await ctx.ask(f"Which warehouse ships order {order}?", key="where",
                             to=["alice"], details={"order": order})  # fmt: skip

    @engine.workflow("timed")
    async def timed(
        ctx: Context, summary: str, timeout: str = "never", escalate_after: str | None = None
    ) -> str:
        d = await ctx.approval(
            "check", summary=summary, approvers=["carol"], timeout=timeout,
            escalate_after=escalate_after, escalate_to=["olga"] if escalate_after else None,
        )  # fmt: skip
        return d.status.value

    @engine.workflow("boom")
    async def boom(ctx: Context, message: str) -> None:
        raise RuntimeError(message)

    return engine


engine = make_engine(os.environ.get("SIGNOFF_DATABASE_URL", "sqlite:///signoff.db"))
