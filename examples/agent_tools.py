"""An AI agent's tool calls, gated: payments over a limit wait for a person.

    python examples/agent_tools.py

The "agent" is a scripted stand-in for a language model: given a task, it decides which
tool to call next from what it has seen so far. It has two tools: `lookup` (read-only,
never gated) and `send_payment` (gated when the amount is over 100). The workflow is the
agent loop: each tool call goes through signoff, so a call that needs approval pauses
the run (for days if need be) with the call's arguments and a one-line description shown
to the approver, then runs exactly once with the approved or edited arguments. A
rejected payment is not sent; the agent is told and carries on.

`main()` runs it end to end on a fresh SQLite file: one small payment that goes through
at once, one large payment that a person edits down, and one that is rejected.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import signoff
from signoff import CallRejected, Context, Engine

engine = Engine(os.environ.get("SIGNOFF_DATABASE_URL", "sqlite:///signoff.db"), poll_interval=0.02)

LIMIT = 100.0

# The tools ------------------------------------------------------------------------------

ACCOUNTS = {
    "acme": {"iban": "DE44 5001 0517 5407 3249 31", "owed": 40.0},
    "globex": {"iban": "FR14 2004 1010 0505 0001 3M02 606", "owed": 2500.0},
    "initech": {"iban": "GB29 NWBK 6016 1331 9268 19", "owed": 900.0},
}
SENT: list[dict[str, Any]] = []  # the "bank": every payment actually sent


def lookup(name: str) -> dict[str, Any]:
    """Read-only: the supplier's account and what we owe them."""
    return dict(ACCOUNTS[name])


def send_payment(to: str, amount: float, memo: str = "") -> dict[str, Any]:
    """Move money. Runs once per approved call (its step is journaled)."""
    payment = {"to": to, "amount": amount, "memo": memo, "ref": signoff.idempotency_key()}
    if not any(p["ref"] == payment["ref"] for p in SENT):
        SENT.append(payment)
    return {"status": "sent", **payment}


TOOLS = {
    "lookup": signoff.gated(lookup, requires_approval=False),
    "send_payment": signoff.gated(
        send_payment,
        requires_approval=lambda to, amount, memo="": amount > LIMIT,
        describe=lambda to, amount, memo="": f"Pay {amount:.2f} to {to} ({memo or 'no memo'})",
        timeout="3d",
    ),
}

# The "model" ----------------------------------------------------------------------------


def next_action(task: str, seen: list[dict[str, Any]]) -> dict[str, Any]:
    """A scripted planner in place of an LLM: look the supplier up, then pay what is owed,
    then stop. Deterministic, so the workflow replays the same way."""
    if not seen:
        return {"tool": "lookup", "args": {"name": task}}
    last = seen[-1]
    if last["tool"] == "lookup":
        owed = last["result"]["owed"]
        return {"tool": "send_payment", "args": {"to": task, "amount": owed, "memo": "invoice"}}
    return {"done": True, "answer": last["result"]}


@engine.workflow("pay_supplier")
async def pay_supplier(ctx: Context, supplier: str) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []
    for _ in range(5):  # the agent loop, bounded
        action = next_action(supplier, seen)
        if action.get("done"):
            return {"outcome": "done", "last": action["answer"], "steps": len(seen)}
        tool = TOOLS[action["tool"]]
        try:
            result = await tool(**action["args"])
        except CallRejected as exc:
            decision = exc.decision
            reason = decision.reason if decision is not None else None
            return {"outcome": "rejected", "reason": reason, "steps": len(seen)}
        seen.append({"tool": action["tool"], "result": result})
    return {"outcome": "gave up", "steps": len(seen)}


# The demo -------------------------------------------------------------------------------


async def demo(url: str) -> list[dict[str, Any]]:
    engine.configure(url=url)
    results = []
    async with engine:
        small = await engine.start(pay_supplier, "acme")
        results.append(await engine.result(small.id, timeout=30))
        print(f"acme: {results[-1]}")

        big = await engine.start(pay_supplier, "globex")
        await engine.settle(big.id)
        [pending] = await engine.pending_approvals(run_id=big.id)
        print(f"globex paused: {pending.key}: {pending.summary}; proposed {pending.proposed}")
        edited = {"args": [], "kwargs": {**pending.proposed["kwargs"], "amount": 1000.0}}
        await engine.edit(big.id, pending.key, edited, by="cfo", reason="first instalment")
        results.append(await engine.result(big.id, timeout=30))
        print(f"globex: {results[-1]}")

        other = await engine.start(pay_supplier, "initech")
        await engine.settle(other.id)
        [pending] = await engine.pending_approvals(run_id=other.id)
        print(f"initech paused: {pending.summary}")
        await engine.reject(other.id, pending.key, by="cfo", reason="invoice disputed")
        results.append(await engine.result(other.id, timeout=30))
        print(f"initech: {results[-1]}")
    print(f"payments sent: {[(p['to'], p['amount']) for p in SENT]}")
    return results


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        url = os.environ.get("SIGNOFF_DATABASE_URL") or f"sqlite:///{Path(tmp) / 'agent.db'}"
        asyncio.run(demo(url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
