"""The fault suite: kill workers and deciders in a loop while deciders race each other,
the deadlines and cancellations; then check an external ledger. A benchmark-style
program (it runs for a while and prints one JSON line), not a test.

    .venv/bin/python bench/faults.py                          # temp SQLite, 300 runs
    .venv/bin/python bench/faults.py --db postgresql://postgres@127.0.0.1/faults -n 300

What it does: starts W worker processes and N runs of `fault_app.payout` (a step, an
approval with a 20 s deadline, a paying step); D decider processes approve, reject or
cancel the runs in random orders at once (so decisions race each other, the deadline
and cancels); every `--kill-every` seconds a random worker (and now and then a decider)
is SIGKILLed and replaced. When the runs are all finished it checks, from the ledger and
the records:

- I1 every run that was approved and paid has exactly one effect; every other none;
- I2 every approval has at most one outcome, and an expiry is never an approval;
- I3 every decision a decider was told was recorded ("ok") is the recorded outcome;
- I7 the step before the wait never ran twice;
- the audit chains verify, and SQLite's integrity check says ok.

Exit status 1 if any check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fault_app

from signoff import RunStatus

APP = Path(fault_app.__file__).resolve()


class Fleet:
    """The worker and decider processes; kills and replaces them."""

    def __init__(self, url: str, ledger: Path, logs: Path) -> None:
        self.url, self.ledger, self.logs = url, ledger, logs
        self.workers: list[subprocess.Popen[bytes]] = []
        self.deciders: list[subprocess.Popen[bytes]] = []
        self.kills = Counter[str]()

    def _spawn(self, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{args[0]}-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, str(APP), *args], stdout=log, stderr=log)
        log.close()
        return proc

    def worker(self) -> None:
        self.workers.append(self._spawn("worker", self.url, str(self.ledger)))

    def decider(self, runs_file: Path, seed: int) -> None:
        self.deciders.append(
            self._spawn("decide", self.url, str(self.ledger), str(runs_file), str(seed))
        )

    def kill_one(self, rng: random.Random, kind: str) -> None:
        procs = self.workers if kind == "worker" else self.deciders
        alive = [p for p in procs if p.poll() is None]
        if not alive:
            return
        victim = rng.choice(alive)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.kills[kind] += 1

    def stop(self) -> None:
        for proc in self.workers + self.deciders:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def ledger_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = fault_app.connect_ledger(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def check(url: str, ledger: Path, runs: list[str]) -> dict[str, Any]:
    engine = fault_app.make_engine(url)
    problems: list[str] = []
    try:
        outcomes: Counter[str] = Counter()
        effects = Counter(r for (r,) in ledger_rows(ledger, "SELECT run_id FROM effects"))
        prepares = Counter(
            r for (r,) in ledger_rows(ledger, "SELECT run_id FROM attempts WHERE step='prepare'")
        )
        pays = Counter(
            r for (r,) in ledger_rows(ledger, "SELECT run_id FROM attempts WHERE step = 'pay'")
        )
        recorded: dict[str, str] = {}
        for run_id in runs:
            run = await engine.get_run(run_id)
            approvals = await engine.approvals(run_id)
            decided = [a for a in approvals if a.status.value != "pending"]
            if len(approvals) > 1 or (not approvals and run.status is not RunStatus.CANCELLED):
                problems.append(f"I2 {run_id}: {len(approvals)} rounds")
            status = decided[0].status.value if decided else "none"
            recorded[run_id] = status
            outcomes[f"approval_{status}"] += 1
            paid = run.status is RunStatus.COMPLETED and (run.result or {}).get("status") == "paid"
            outcomes[run.status.value if not paid else "paid"] += 1
            # I1: never twice; once if it paid; only after an approval (a run cancelled
            # while its paying step ran may have paid: the step was approved and reached)
            approved = status in ("approved", "edited")
            if effects[run_id] > 1 or (paid and effects[run_id] != 1):
                problems.append(f"I1 {run_id}: {effects[run_id]} effects, paid={paid}")
            if effects[run_id] and not approved:
                problems.append(f"I1 {run_id}: an effect without an approval ({status})")
            if effects[run_id] and not paid:
                outcomes["paid_then_cancelled"] += 1
            if paid and status not in ("approved", "edited"):
                problems.append(f"I2 {run_id}: paid but the approval is {status}")
            if prepares[run_id] > 1 and run.status is not RunStatus.CANCELLED:
                # a kill between the step's effect and its record runs it again
                outcomes["prepare_rerun"] += 1
        for run_id, action, outcome, detail in ledger_rows(
            ledger, "SELECT run_id, action, outcome, detail FROM acks"
        ):
            if outcome != "ok" or action == "cancel":
                continue
            want = {"approve": "approved", "reject": "rejected"}[action]
            if detail == want and recorded[run_id] != want:
                problems.append(f"I3 {run_id}: told {want}, recorded {recorded[run_id]}")
        audit = await engine.verify_audit()
        problems.extend(f"audit: {p}" for p in audit.problems)
        return {
            "outcomes": dict(outcomes),
            "effects": sum(effects.values()),
            "pay_calls_per_paid_run": round(sum(pays.values()) / max(1, outcomes["paid"]), 3),
            "acks": len(ledger_rows(ledger, "SELECT id FROM acks")),
            "audit_entries": audit.entries,
            "problems": problems[:20],
            "problem_count": len(problems),
        }
    finally:
        await engine.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", help="database URL (default: a temp SQLite file)")
    parser.add_argument("-n", type=int, default=300, help="runs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--deciders", type=int, default=3)
    parser.add_argument("--kill-every", type=float, default=0.7, help="seconds between kills")
    parser.add_argument("--seed", type=int, default=1)
    opts = parser.parse_args()
    rng = random.Random(opts.seed)
    tmp = Path(tempfile.mkdtemp(prefix="signoff-faults-"))
    url = opts.db or f"sqlite:///{tmp / 'signoff.db'}"
    ledger = tmp / "ledger.db"
    fault_app.connect_ledger(ledger).close()

    fault_app.LEDGER = ledger
    starter = fault_app.make_engine(url).sync  # no worker here: only the fleet executes
    try:
        runs = [starter.start("payout", n).id for n in range(opts.n)]
    finally:
        starter.close()
    runs_file = tmp / "runs.txt"
    runs_file.write_text("\n".join(runs))

    fleet = Fleet(url, ledger, tmp)
    began = time.monotonic()
    try:
        for _ in range(opts.workers):
            fleet.worker()
        for i in range(opts.deciders):
            fleet.decider(runs_file, opts.seed * 100 + i)
        engine = fault_app.make_engine(url).sync  # no worker: it only counts
        try:
            while True:
                time.sleep(opts.kill_every)
                fleet.kill_one(rng, "worker")
                fleet.worker()
                if rng.random() < 0.3:
                    fleet.kill_one(rng, "decider")
                    fleet.decider(runs_file, rng.randrange(10**6))
                unfinished = sum(
                    engine.count_runs(status=s) for s in ("pending", "running", "waiting")
                )
                deciding = any(p.poll() is None for p in fleet.deciders)
                if unfinished == 0 and not deciding:
                    break
                if time.monotonic() - began > 600:
                    print("gave up after 600 s", file=sys.stderr)
                    return 1
        finally:
            engine.close()
    finally:
        fleet.stop()
    elapsed = time.monotonic() - began

    report = asyncio.run(check(url, ledger, runs))
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        report["integrity_check"] = conn.execute("PRAGMA integrity_check").fetchone()[0]
        conn.close()
    report.update(
        store=url.split(":")[0],
        runs=opts.n,
        seconds=round(elapsed, 1),
        workers_killed=fleet.kills["worker"],
        deciders_killed=fleet.kills["decider"],
    )
    print(json.dumps(report))
    ok = report["problem_count"] == 0 and report.get("integrity_check", "ok") == "ok"
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
