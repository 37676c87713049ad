"""The app `signoff mcp` serves in tests/integrations/test_mcp.py (its database is given
with `--db`)."""

from __future__ import annotations

from typing import Any

from signoff import Context, Engine

engine = Engine("sqlite:///mcp-app-unused.db", poll_interval=0.02)


@engine.workflow()
async def refund(ctx: Context, order_id: str, amount: int = 120) -> dict[str, Any]:
    decision = await ctx.approval(
        "manager",
        summary=f"Refund {amount} for {order_id}",
        proposed={"amount": amount},
        schema={
            "type": "object",
            "properties": {"amount": {"type": "integer", "minimum": 0}},
            "required": ["amount"],
            "additionalProperties": False,
        },
    )
    if not decision.approved:
        return {"status": decision.status.value, "reason": decision.reason}
    return {"status": "refunded", "amount": decision.value["amount"], "by": decision.by}
