"""The app the crash tests run in worker processes, and kill.

    python -m tests.acceptance.crash_app worker DB LEDGER

runs a worker on the SQLite file DB until the process is killed. The workflow's side
effect goes to LEDGER, a separate SQLite file standing for the outside world: table
`effects` gets one row per idempotency key (INSERT OR IGNORE), table `attempts` one row
per call of a step body. The tests read the ledger, not the engine's tables, to check
that every effect happened exactly once however often a step body ran.

`signoff worker tests.acceptance.crash_app:engine` works too (database and ledger from
`CRASH_DB` and `CRASH_LEDGER`).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import signoff
from signoff import Context, Engine
from tests.worker_process import run_worker

LEASE = "1s"
POLL = 0.02
SLOW = 2.0  # seconds a "slow" side-effect step spends before or after its effect

LEDGER = Path(os.environ.get("CRASH_LEDGER", "crash-ledger.db"))


def connect_ledger(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS effects (idempotency_key TEXT PRIMARY KEY, "
        "run_id TEXT NOT NULL, n INTEGER NOT NULL, at REAL NOT NULL)"
    )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS attempts (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "run_id TEXT NOT NULL, step TEXT NOT NULL, pid INTEGER NOT NULL, "
        "at REAL NOT NULL)"
    )
    return conn


def _record_attempt(step: str) -> str:
    key = signoff.idempotency_key()
    run_id = key.rsplit(":", 1)[0]
    conn = connect_ledger(LEDGER)
    try:
        conn.execute(
            "INSERT INTO attempts (run_id, step, pid, at) VALUES (?, ?, ?, ?)",
            (run_id, step, os.getpid(), time.time()),
        )
    finally:
        conn.close()
    return key


def _apply_effect(key: str, n: int) -> None:
    conn = connect_ledger(LEDGER)
    try:
        conn.execute(
            "INSERT OR IGNORE INTO effects (idempotency_key, run_id, n, at) VALUES (?, ?, ?, ?)",
            (key, key.rsplit(":", 1)[0], n, time.time()),
        )
    finally:
        conn.close()


async def prepare(n: int) -> dict[str, Any]:
    """A step before the wait: its result must never be recomputed."""
    _record_attempt("prepare")
    return {"n": n, "amount": 10 * n}


async def effect(n: int, mode: str) -> str:
    """The side effect, keyed by the step's idempotency key. In "slow" mode even runs
    apply it and then linger; odd runs linger first: a kill then finds both kinds."""
    key = _record_attempt("effect")
    if mode == "slow" and n % 2 == 1:
        await asyncio.sleep(SLOW)
    _apply_effect(key, n)
    if mode == "slow" and n % 2 == 0:
        await asyncio.sleep(SLOW)
    return key


async def crash_flow(ctx: Context, n: int, mode: str = "fast") -> dict[str, Any]:
    prepared = await ctx.step(prepare, n)
    decision = await ctx.approval(
        "manager", summary=f"apply effect {n}", proposed={"amount": prepared["amount"]}
    )
    if not decision.approved:
        return {"n": n, "status": decision.status.value}
    key = await ctx.step(effect, n, mode)
    return {"n": n, "status": "done", "key": key}


async def mail(n: int, to: str) -> str:
    """A gated side effect that lingers after it is applied (an email being sent)."""
    key = _record_attempt(f"mail:{to}")
    _apply_effect(key, n)
    await asyncio.sleep(SLOW / 2)
    return key


send_mail = signoff.gated(mail, key="mail")


async def parallel_flow(ctx: Context, n: int) -> dict[str, Any]:
    """Two gated calls started together, as an agent's parallel tool calls are."""
    keys = await asyncio.gather(send_mail(n, "legal"), send_mail(n, "finance"))
    return {"n": n, "keys": list(keys)}


def make_engine(url: str) -> Engine:
    eng = Engine(url, lease=LEASE, poll_interval=POLL)
    eng.workflow("crash_flow")(crash_flow)
    eng.workflow("parallel_flow")(parallel_flow)
    return eng


engine = make_engine(os.environ.get("CRASH_DB", "sqlite:///crash.db"))


def main(argv: list[str]) -> int:
    global LEDGER
    if len(argv) != 3 or argv[0] != "worker":
        print("usage: python -m tests.acceptance.crash_app worker DB LEDGER", file=sys.stderr)
        return 2
    db, LEDGER = Path(argv[1]), Path(argv[2])
    connect_ledger(LEDGER).close()
    asyncio.run(run_worker(make_engine(f"sqlite:///{db}"), db))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
