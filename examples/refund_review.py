"""The refund review: a support ticket asks for a refund; a manager signs it off.

    python examples/refund_review.py            # the demo (scripts/demo runs this)
    signoff worker examples.refund_review:engine

The workflow loads the ticket, drafts a recommendation, waits up to 7 days for the
manager's decision, issues the refund once (under an idempotency key, into a small
ledger), and returns the outcome. The demo runs it end to end on a fresh SQLite file and
prints each stage: the run paused, the pending approval, the decision, the resumed run,
the result and the run's timeline.

The database comes from `SIGNOFF_DATABASE_URL` (default `sqlite:///signoff.db` in the
current directory); the ledger is a SQLite file next to it, or `REFUND_LEDGER`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import signoff
from signoff import Context, Engine

DEFAULT_URL = "sqlite:///signoff.db"


def _ledger_path(url: str) -> Path:
    explicit = os.environ.get("REFUND_LEDGER")
    if explicit:
        return Path(explicit)
    if url.startswith("sqlite:///"):
        db = Path(url.removeprefix("sqlite:///"))
        return db.with_name(db.stem + "-ledger.db")
    return Path("refund-ledger.db")


engine = Engine(os.environ.get("SIGNOFF_DATABASE_URL", DEFAULT_URL), poll_interval=0.05)
LEDGER = _ledger_path(engine.url)

# The "external systems": a ticket desk and a payments ledger ---------------------------

TICKETS: dict[str, dict[str, Any]] = {
    "T-1042": {
        "id": "T-1042",
        "customer": "Dana Whitfield",
        "order_id": "ord-88231",
        "order_total": 12900,  # cents: money as integer minor units, never floats
        "complaint": "Blender arrived with a cracked jug; photos attached.",
        "customer_since": 2019,
        "previous_refunds": 0,
    },
}


def _ledger() -> sqlite3.Connection:
    conn = sqlite3.connect(LEDGER, timeout=30)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS refunds (idempotency_key TEXT PRIMARY KEY, "
        "order_id TEXT NOT NULL, amount INTEGER NOT NULL, issued_at REAL NOT NULL)"
    )
    return conn


def load_ticket(ticket_id: str) -> dict[str, Any]:
    """Fetch the ticket from the help desk."""
    try:
        return dict(TICKETS[ticket_id])
    except KeyError:
        raise ValueError(f"no ticket {ticket_id!r}") from None


def draft_recommendation(ticket: dict[str, Any]) -> dict[str, Any]:
    """What an assistant (or a rules engine) proposes: a full refund for a damaged item
    from a loyal customer, half otherwise."""
    damaged = any(w in ticket["complaint"].lower() for w in ("cracked", "broken", "damaged"))
    loyal = ticket["customer_since"] <= 2020 and ticket["previous_refunds"] == 0
    full = damaged and loyal
    amount = ticket["order_total"] if full else ticket["order_total"] // 2
    reason = "damaged on arrival, loyal customer" if full else "partial goodwill"
    return {"amount": amount, "reason": reason}


def issue_refund(order_id: str, amount: int) -> dict[str, Any]:
    """Pay the refund. A retried step reuses its idempotency key, so the ledger has one
    row per refund however often this runs."""
    key = signoff.idempotency_key()
    with _ledger() as conn:
        conn.execute(
            "INSERT OR IGNORE INTO refunds (idempotency_key, order_id, amount, issued_at) "
            "VALUES (?, ?, ?, ?)",
            (key, order_id, amount, time.time()),
        )
        row = conn.execute(
            "SELECT rowid, amount FROM refunds WHERE idempotency_key = ?", (key,)
        ).fetchone()
    return {"receipt": f"RF-{row[0]:05d}", "amount": row[1], "idempotency_key": key}


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


# The workflow ------------------------------------------------------------------------


@engine.workflow("refund_review")
async def refund_review(ctx: Context, ticket_id: str) -> dict[str, Any]:
    ticket = await ctx.step(load_ticket, ticket_id)
    draft = await ctx.step(draft_recommendation, ticket)
    decision = await ctx.approval(
        "manager",
        summary=(
            f"Refund {_money(draft['amount'])} to {ticket['customer']} for "
            f"{ticket['order_id']} ({draft['reason']})"
        ),
        proposed={"amount": draft["amount"]},
        timeout="7d",
    )
    if not decision.approved:
        return {
            "ticket": ticket_id,
            "status": decision.status.value,
            "by": decision.by,
            "reason": decision.reason,
        }
    refund = await ctx.step(issue_refund, ticket["order_id"], decision.value["amount"])
    return {"ticket": ticket_id, "status": "refunded", "approved_by": decision.by, **refund}


# The demo ----------------------------------------------------------------------------


def _describe(entry: signoff.HistoryEntry) -> str:
    """One line of details for the timeline."""
    d = entry.data
    if entry.type.startswith("step_"):
        tries = d.get("attempts") or d.get("attempt")
        text = f"{d.get('name')} (step #{d.get('seq')}, attempt {tries})"
        if d.get("error"):
            text += f": {d['error'].get('type')}: {d['error'].get('message')}"
        return text
    if entry.type == "approval_requested":
        return f"{d.get('key')}: {d.get('summary')}"
    if entry.type == "approval_decided":
        text = f"{d.get('key')} {d.get('status')}"
        return text + (f': "{d["reason"]}"' if d.get("reason") else "")
    shown = [f"{k}={v}" for k, v in d.items() if v not in (None, "", {})]
    return ", ".join(shown)


async def demo(eng: Engine, ticket_id: str = "T-1042") -> dict[str, Any]:
    """Run one review end to end on `eng`, printing each stage."""
    from rich.console import Console
    from rich.panel import Panel
    from rich.table import Table

    console = Console()
    console.rule("[bold]signoff: refund review")
    console.print(f"database [cyan]{eng.url}[/]")
    console.print(f"ledger   [cyan]{LEDGER}[/] (where refunds are paid)\n")
    async with eng:
        run = await eng.start(refund_review, ticket_id, requested_by="support-bot")
        console.print(f"[bold]1. started[/] run [cyan]{run.id}[/] for ticket {ticket_id}")
        run = await eng.settle(run.id, timeout=10)
        console.print(
            f"[bold]2. paused[/]  status [yellow]{run.status}[/], "
            f"waiting for [yellow]{run.waiting_for}[/]"
        )

        table = Table(title="pending approvals", title_justify="left")
        for col in ("run", "key", "summary", "proposed", "deadline"):
            table.add_column(col)
        for a in await eng.pending_approvals(run_id=run.id):
            deadline = a.deadline.strftime("%Y-%m-%d %H:%M UTC") if a.deadline else "-"
            table.add_row(a.run_id[:8], a.key, a.summary, str(a.proposed), deadline)
        console.print(table)

        decision = await eng.approve(
            run.id, "manager", by="alice", reason="photos confirm the damage"
        )
        console.print(
            f"[bold]3. decided[/] [green]{decision.status}[/] by {decision.by}: "
            f"{decision.reason!r} (value {decision.value})"
        )
        result = await eng.result(run.id, timeout=10)
        run = await eng.get_run(run.id)
        console.print(f"[bold]4. resumed[/] status [green]{run.status}[/]")
        console.print(Panel.fit("\n".join(f"{k}: {v}" for k, v in result.items()), title="result"))

        timeline = Table(title=f"timeline of run {run.id[:8]}", title_justify="left")
        for col in ("time", "event", "actor", "details"):
            timeline.add_column(col)
        for entry in await eng.history(run.id):
            timeline.add_row(
                entry.at.strftime("%H:%M:%S.%f")[:-3],
                entry.type,
                entry.actor or "",
                _describe(entry),
            )
        console.print(timeline)
    conn = _ledger()
    try:
        rows = conn.execute("SELECT COUNT(*) FROM refunds").fetchone()[0]
    finally:
        conn.close()
    console.print(f"ledger: {rows} refund row(s) in {LEDGER.name}")
    return dict(result)


def main(argv: list[str] | None = None) -> int:
    """The demo: a fresh SQLite database (and ledger) per run, removed afterwards unless
    `--db` names the file to keep."""
    global LEDGER
    parser = argparse.ArgumentParser(description="Run the refund review demo end to end.")
    parser.add_argument(
        "--db",
        help="SQLite file for the demo (deleted first if it exists); "
        "default: a fresh file in a temporary directory",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="signoff-demo-") as tmp:
        db = Path(args.db) if args.db else Path(tmp) / "demo.db"
        if db.is_dir():
            print(f"error: --db {db} is a directory; give a file path", file=sys.stderr)
            return 2
        LEDGER = db.with_name(db.stem + "-ledger.db")
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
            for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), LEDGER):
                path.unlink(missing_ok=True)
        except OSError as exc:
            print(f"error: cannot use --db {db}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        demo_engine = Engine(f"sqlite:///{db}", poll_interval=0.05)
        demo_engine.workflow("refund_review")(refund_review)
        try:
            asyncio.run(demo(demo_engine))
        except (signoff.SignoffError, sqlite3.Error) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
