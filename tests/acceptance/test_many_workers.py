"""Four worker processes on one PostgreSQL database, SIGKILLed at random moments and
restarted, while a client starts runs and approves them from another process.

Each run: a step, an approval, a durable sleep, then a side-effect step that writes an
external ledger (tables outside signoff, by its own connection) keyed by
`signoff.idempotency_key()` with ON CONFLICT DO NOTHING, plus one row per attempt. Every
step body also records (run, worker pid, start, end). Checked afterwards:
  - every run completed, with the receipt of its ledger row;
  - the ledger has each effect exactly once (attempts may exceed it: at-least-once);
  - no two workers ever executed a step of the same run at the same time;
  - each timer fired once and each approval was decided once.

N defaults to 400 runs (SIGNOFF_MANY_WORKERS_RUNS=2000 for the full-size proof).
The workers run this module: `python -m tests.acceptance.test_many_workers URL`.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

import signoff
from signoff import Context, Engine

N = int(os.environ.get("SIGNOFF_MANY_WORKERS_RUNS", "400"))

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(max(150, N // 3))]
WORKERS = 4
ROOT = Path(__file__).resolve().parents[2]

LEDGER_DDL = [
    "CREATE TABLE effects (key TEXT PRIMARY KEY, run_id TEXT NOT NULL, pid INTEGER NOT NULL)",
    "CREATE TABLE attempts (key TEXT NOT NULL, run_id TEXT NOT NULL, pid INTEGER NOT NULL)",
    "CREATE TABLE spans (id BIGSERIAL PRIMARY KEY, run_id TEXT NOT NULL, step TEXT NOT NULL, "
    "pid INTEGER NOT NULL, started DOUBLE PRECISION NOT NULL, ended DOUBLE PRECISION)",
]

# --- the worker process -------------------------------------------------------------------

_ledger: psycopg.AsyncConnection[Any] | None = None
_ledger_url = ""


async def _conn() -> psycopg.AsyncConnection[Any]:
    global _ledger
    if _ledger is None:
        _ledger = await psycopg.AsyncConnection.connect(_ledger_url, autocommit=True)
    return _ledger


async def _body(run_id: str, step: str) -> str | None:
    conn = await _conn()
    cur = await conn.execute(
        "INSERT INTO spans (run_id, step, pid, started) VALUES (%s, %s, %s, %s) RETURNING id",
        (run_id, step, os.getpid(), time.time()),
    )
    row = await cur.fetchone()
    assert row is not None
    await asyncio.sleep(random.uniform(0.002, 0.02))
    key = None
    if step == "effect":
        key = signoff.idempotency_key()
        await conn.execute(
            "INSERT INTO attempts (key, run_id, pid) VALUES (%s, %s, %s)",
            (key, run_id, os.getpid()),
        )
        await conn.execute(
            "INSERT INTO effects (key, run_id, pid) VALUES (%s, %s, %s) "
            "ON CONFLICT (key) DO NOTHING",
            (key, run_id, os.getpid()),
        )
    await conn.execute("UPDATE spans SET ended = %s WHERE id = %s", (time.time(), row[0]))
    return key


async def prepare(run_id: str, i: int) -> int:
    await _body(run_id, "prepare")
    return i * 10


async def effect(run_id: str, amount: int) -> str:
    key = await _body(run_id, "effect")
    assert key is not None
    return key


def build(url: str, **kw: Any) -> Engine:
    engine = Engine(url, **kw)

    @engine.workflow(name="mw")
    async def mw(ctx: Context, i: int) -> dict[str, Any]:
        amount = await ctx.step(prepare, ctx.run_id, i)
        decision = await ctx.approval("ok", proposed={"amount": amount})
        await ctx.sleep(0.2)
        receipt = await ctx.step(effect, ctx.run_id, decision.value["amount"])
        return {"i": i, "receipt": receipt}

    return engine


async def serve(url: str) -> None:
    global _ledger_url
    _ledger_url = url
    engine = build(url, lease="1s", poll_interval=0.1, concurrency=16)
    async with engine:
        print(f"worker {os.getpid()} ready", flush=True)
        await asyncio.Event().wait()


# --- the test -------------------------------------------------------------------------------


class Fleet:
    def __init__(self, url: str, logs: Path) -> None:
        self.url = url
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []
        self.killed_at: dict[int, float] = {}
        self.kills = 0

    def spawn(self) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"worker-{len(self.killed_at) + len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.acceptance.test_many_workers", self.url],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        log.close()
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.killed_at[proc.pid] = time.time()
        self.procs.remove(proc)

    def kill_one_and_restart(self) -> None:
        self.kill(random.choice(self.procs))
        self.kills += 1
        self.spawn()

    def stop(self) -> None:
        for proc in list(self.procs):
            self.kill(proc)

    def tail(self) -> str:
        out = []
        for path in sorted(self.logs.glob("worker-*.log")):
            lines = path.read_text(errors="replace").splitlines()
            out.append(f"--- {path.name}\n" + "\n".join(lines[-15:]))
        return "\n".join(out)


def _count(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
        return int(row[0]) if row else 0


async def test_many_workers_killed_at_random_complete_every_run_once(
    pg_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for ddl in LEDGER_DDL:
            conn.execute(ddl)
    fleet = Fleet(pg_url, tmp_path)
    client = Engine(pg_url, poll_interval=0.05)
    rng = random.Random(7)
    try:
        for _ in range(WORKERS):
            fleet.spawn()
        deadline = time.monotonic() + 30
        while "mw" not in await client.store.known_workflows():
            assert time.monotonic() < deadline, fleet.tail()
            await asyncio.sleep(0.05)

        run_ids = [f"mw-{i:04d}" for i in range(N)]
        for chunk in range(0, N, 50):
            await asyncio.gather(
                *[
                    client.start("mw", i, run_id=run_ids[i])
                    for i in range(chunk, min(N, chunk + 50))
                ]
            )

        async def approver() -> int:
            decided: set[str] = set()
            while len(decided) < N:
                pending = await client.pending_approvals(limit=200)
                todo = [a.run_id for a in pending if a.run_id not in decided]
                await asyncio.gather(*[client.approve(r, "ok", by="boss") for r in todo])
                decided.update(todo)
                if not todo:
                    await asyncio.sleep(0.05)
            return len(decided)

        async def killer(done: asyncio.Event) -> None:
            while not done.is_set() or fleet.kills < 3:
                await asyncio.sleep(rng.uniform(0.3, 1.2))
                await asyncio.to_thread(fleet.kill_one_and_restart)

        done = asyncio.Event()
        killing = asyncio.create_task(killer(done))
        approving = asyncio.create_task(approver())
        limit = time.monotonic() + 150 + N * 0.05
        completed = 0
        while completed < N:
            assert time.monotonic() < limit, f"{completed}/{N} completed\n{fleet.tail()}"
            await asyncio.sleep(0.25)
            completed = await client.store.count_runs(status="completed")
            if completed >= N * 0.9:
                done.set()
        done.set()
        assert await approving == N
        await killing
    finally:
        fleet.stop()
        await client.close()

    assert fleet.kills >= 3
    with psycopg.connect(pg_url) as conn:
        statuses = conn.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall()
        assert dict(statuses) == {"completed": N}
        results = dict(conn.execute("SELECT id, result FROM runs").fetchall())
        effects = conn.execute("SELECT key, run_id FROM effects").fetchall()
        attempts = _count(pg_url, "SELECT count(*) FROM attempts")
        history = conn.execute(
            "SELECT run_id, type, count(*) FROM history "
            "WHERE type IN ('timer_fired', 'approval_decided') GROUP BY run_id, type"
        ).fetchall()
        spans = conn.execute(
            "SELECT run_id, pid, started, ended FROM spans ORDER BY run_id, started"
        ).fetchall()

    # each effect exactly once, and it is the one the run recorded
    assert len(effects) == N
    assert sorted(r for _, r in effects) == run_ids
    receipts = {run_id: key for key, run_id in effects}
    for run_id in run_ids:
        assert json.loads(results[run_id])["receipt"] == receipts[run_id]
    assert attempts >= N
    # each timer fired once, each approval decided once
    counts = collections.Counter((run_id, type_) for run_id, type_, n in history for _ in range(n))
    assert all(counts[(r, "timer_fired")] == 1 for r in run_ids)
    assert all(counts[(r, "approval_decided")] == 1 for r in run_ids)
    # no run was executed by two workers at once
    by_run: dict[str, list[tuple[int, float, float]]] = collections.defaultdict(list)
    for run_id, pid, started, ended in spans:
        end = ended if ended is not None else fleet.killed_at[pid]
        by_run[run_id].append((pid, started, end))
    overlaps = []
    for run_id, items in by_run.items():
        for i, (pid_a, start_a, end_a) in enumerate(items):
            for pid_b, start_b, end_b in items[i + 1 :]:
                if pid_a != pid_b and start_b < end_a and start_a < end_b:
                    overlaps.append((run_id, pid_a, pid_b))
    assert not overlaps, overlaps[:5]
    print(
        f"{N} runs, {fleet.kills} kills, {attempts} effect attempts for {N} effects, "
        f"{sum(1 for s in spans if s[3] is None)} step bodies cut by a kill"
    )


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
