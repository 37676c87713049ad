"""A conditional approval chain for expense claims.

    python examples/expense_chain.py
    signoff worker examples.expense_chain:engine

The manager approves every claim; finance also approves claims above 1,000; the CEO also
approves claims above 10,000. The approvals are asked one after another, each under its
own key, and the first rejection stops the chain. `main()` files three claims (500,
5,000 and 50,000), decides them as the approvers would, and prints which approvals each
one needed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import signoff
from signoff import Context, Engine

FINANCE_ABOVE = 1_000
CEO_ABOVE = 10_000

engine = Engine(os.environ.get("SIGNOFF_DATABASE_URL", "sqlite:///signoff.db"), poll_interval=0.05)


def approvers_for(amount: float) -> list[str]:
    """The approval keys a claim of `amount` needs, in the order they are asked."""
    chain = ["manager"]
    if amount > FINANCE_ABOVE:
        chain.append("finance")
    if amount > CEO_ABOVE:
        chain.append("ceo")
    return chain


def book_expense(employee: str, amount: float) -> dict[str, Any]:
    """Hand the approved claim to payroll (here: just a reference)."""
    key = signoff.idempotency_key()  # "<run id>:<step position>", stable across retries
    return {"reference": f"EXP-{key[:8]}", "employee": employee, "amount": amount}


@engine.workflow("expense_chain")
async def expense_chain(ctx: Context, employee: str, amount: float, purpose: str) -> dict[str, Any]:
    approved_by: list[str] = []
    for key in approvers_for(amount):
        decision = await ctx.approval(
            key,
            summary=f"{employee}: {amount:,.2f} for {purpose} ({key} sign-off)",
            proposed={"amount": amount},
            timeout="14d",
        )
        if not decision.approved:
            return {
                "status": decision.status.value,
                "stopped_at": key,
                "by": decision.by,
                "reason": decision.reason,
                "approved_by": approved_by,
            }
        approved_by.append(f"{key}:{decision.by}")
        amount = decision.value["amount"]  # an edit may lower it for the next approver
    booking = await ctx.step(book_expense, employee, amount)
    return {"status": "approved", "approved_by": approved_by, **booking}


# The people who decide, for the demo ---------------------------------------------------

APPROVERS = {"manager": "maria", "finance": "farid", "ceo": "chen"}

CLAIMS = [
    ("sam", 500.0, "team lunch"),
    ("sam", 5_000.0, "conference trip"),
    ("sam", 50_000.0, "new build servers"),
]


async def decide_all(
    eng: Engine, run_id: str, *, reject: dict[str, str] | None = None
) -> list[str]:
    """Decide the run's approvals as they come up, until it finishes; return the keys
    asked, in order. `reject` maps an approval key to the reason for rejecting it."""
    asked: list[str] = []
    while True:
        # a decision moves the run out of "waiting" in the same transaction, so this
        # returns at the next approval of the chain, or at the end
        run = await eng.settle(run_id, timeout=10)
        if run.status is not signoff.RunStatus.WAITING:
            return asked
        for approval in await eng.pending_approvals(run_id=run_id):
            asked.append(approval.key)
            who = APPROVERS.get(approval.key, "someone")
            if reject and approval.key in reject:
                await eng.reject(run_id, approval.key, by=who, reason=reject[approval.key])
            else:
                await eng.approve(run_id, approval.key, by=who, reason="within budget")


async def demo(eng: Engine) -> list[dict[str, Any]]:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="expense claims", title_justify="left")
    for col in ("claim", "amount", "approvals needed", "outcome"):
        table.add_column(col)
    outcomes = []
    async with eng:
        for employee, amount, purpose in CLAIMS:
            run = await eng.start(expense_chain, employee, amount, purpose)
            asked = await decide_all(eng, run.id)
            result = await eng.result(run.id, timeout=10)
            outcomes.append({"amount": amount, "asked": asked, "result": result})
            signers = ", ".join(s.split(":", 1)[1] for s in result["approved_by"])
            table.add_row(
                purpose, f"{amount:,.2f}", " -> ".join(asked), f"{result['status']} by {signers}"
            )
    console.print(table)
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run three expense claims through the chain.")
    parser.add_argument(
        "--db",
        help="SQLite file to use (deleted first if it exists); "
        "default: a fresh file in a temporary directory",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="signoff-expenses-") as tmp:
        db = Path(args.db) if args.db else Path(tmp) / "expenses.db"
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
            for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
                path.unlink(missing_ok=True)
        except OSError as exc:
            print(f"error: cannot use --db {db}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        demo_engine = Engine(f"sqlite:///{db}", poll_interval=0.05)
        demo_engine.workflow("expense_chain")(expense_chain)
        try:
            asyncio.run(demo(demo_engine))
        except signoff.SignoffError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
