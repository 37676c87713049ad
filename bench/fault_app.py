"""The app `bench/faults.py` runs in worker and decider processes, and kills.

    python bench/fault_app.py worker URL LEDGER
    python bench/fault_app.py decide URL LEDGER RUNS_FILE SEED

A worker executes runs until killed. A decider races the others: it approves, rejects
or cancels runs in a random order and writes every answer it was given to the ledger
(`acks`), so the checker can hold each acknowledged decision against what was recorded.
The workflow's side effect goes to the ledger too (`effects`, one row per idempotency
key; `attempts`, one row per call of the step body): the ledger, not the engine's
tables, tells whether an effect happened once.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import signoff
from signoff import Context, Engine

LEDGER = Path(os.environ.get("FAULT_LEDGER", "fault-ledger.db"))


def connect_ledger(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=60, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA busy_timeout = 60000")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS effects (key TEXT PRIMARY KEY, run_id TEXT NOT NULL, "
        "amount INTEGER NOT NULL)"
    )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS attempts (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, "
        "step TEXT NOT NULL, pid INTEGER NOT NULL)"
    )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS acks (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, "
        "action TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT)"
    )
    return conn


def _ledger(sql: str, params: tuple[Any, ...]) -> None:
    conn = connect_ledger(LEDGER)
    try:
        conn.execute(sql, params)
    finally:
        conn.close()


async def prepare(n: int) -> int:
    key = signoff.idempotency_key()
    _ledger(
        "INSERT INTO attempts (run_id, step, pid) VALUES (?, ?, ?)",
        (key.split(":")[0], "prepare", os.getpid()),
    )
    return 100 * n


async def pay(amount: int) -> str:
    """The side effect: slow enough that kills land inside it."""
    key = signoff.idempotency_key()
    run_id = key.split(":")[0]
    _ledger(
        "INSERT INTO attempts (run_id, step, pid) VALUES (?, ?, ?)", (run_id, "pay", os.getpid())
    )
    await asyncio.sleep(random.random() * 0.2)
    _ledger(
        "INSERT OR IGNORE INTO effects (key, run_id, amount) VALUES (?, ?, ?)",
        (key, run_id, amount),
    )
    await asyncio.sleep(random.random() * 0.2)
    return key


async def payout(ctx: Context, n: int) -> dict[str, Any]:
    amount = await ctx.step(prepare, n)
    decision = await ctx.approval(
        "pay", proposed={"amount": amount}, timeout="20s", approvers=["d0", "d1", "d2", "d3"]
    )
    if not decision.approved:
        return {"status": decision.status.value}
    key = await ctx.step(pay, decision.value["amount"])
    return {"status": "paid", "key": key}


def make_engine(url: str) -> Engine:
    engine = Engine(url, lease="1s", poll_interval=0.02)
    engine.workflow("payout")(payout)
    return engine


async def _work(url: str) -> None:
    engine = make_engine(url)
    await engine.start_worker()
    await asyncio.Event().wait()  # until killed


def _decide(url: str, runs_file: Path, seed: int) -> None:
    """Decide every run once, in a random order; runs not at their approval yet (their
    workers keep dying) come round again. A decider runs no worker."""
    rng = random.Random(seed)
    todo = runs_file.read_text().split()
    me = f"d{seed % 4}"
    engine = make_engine(url).sync
    try:
        while todo:
            rng.shuffle(todo)
            later = []
            for run_id in todo:
                action = rng.choices(["approve", "reject", "cancel"], [6, 3, 1])[0]
                try:
                    if action == "cancel":
                        engine.cancel(run_id, by=me)
                        outcome, detail = "ok", "cancelled"
                    else:
                        decision = getattr(engine, action)(run_id, "pay", by=me)
                        outcome, detail = "ok", decision.status.value
                except signoff.SignoffError as exc:
                    outcome, detail = "refused", exc.code
                    done = engine.get_run(run_id).status.finished
                    if exc.code == "approval_not_found" and not done:
                        later.append(run_id)  # not at its approval yet: come back to it
                _ledger(
                    "INSERT INTO acks (run_id, action, outcome, detail) VALUES (?, ?, ?, ?)",
                    (run_id, action, outcome, detail),
                )
                time.sleep(rng.random() * 0.01)
            todo = later
    finally:
        engine.close()


def main(argv: list[str]) -> int:
    global LEDGER
    if len(argv) >= 3 and argv[0] == "worker":
        LEDGER = Path(argv[2])
        connect_ledger(LEDGER).close()
        asyncio.run(_work(argv[1]))
        return 0
    if len(argv) == 5 and argv[0] == "decide":
        LEDGER = Path(argv[2])
        _decide(argv[1], Path(argv[3]), int(argv[4]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
