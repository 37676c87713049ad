"""Human-in-the-loop throughput and latency: a benchmark, not a test.

Starts N runs of a workflow with two steps, an approval and a side-effect step, until
all wait; decides them all, until all complete; then decides a sample one at a time to
measure decision-to-completion latency. Prints one JSON line.

    .venv/bin/python bench/hitl.py                    # N=10000, SQLite, synchronous=NORMAL
    .venv/bin/python bench/hitl.py -n 2000 --db sqlite:///b.db?synchronous=full
    .venv/bin/python bench/hitl.py --db postgresql://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from signoff import Context, Engine, idempotency_key

LEDGER: dict[str, int] = {}


async def load(order: str) -> dict[str, Any]:
    return {"order": order, "amount": 120}


async def draft(ticket: dict[str, Any]) -> dict[str, Any]:
    return {"amount": ticket["amount"], "why": "inside the window"}


async def pay(order: str, amount: int) -> str:
    key = idempotency_key()
    LEDGER[key] = LEDGER.get(key, 0) + 1
    return key


def build(url: str, concurrency: int) -> Engine:
    engine = Engine(url, concurrency=concurrency)

    @engine.workflow(name="bench_refund")
    async def refund(ctx: Context, order: str) -> dict[str, Any]:
        ticket = await ctx.step(load, order)
        proposal = await ctx.step(draft, ticket)
        decision = await ctx.approval("manager", summary=f"Refund {order}", proposed=proposal)
        if not decision.approved:
            return {"status": str(decision.status)}
        receipt = await ctx.step(pay, order, decision.value["amount"])
        return {"status": "refunded", "receipt": receipt}

    return engine


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def db_bytes(url: str) -> int | None:
    if not url.startswith("sqlite:///"):
        return None
    path = Path(url.removeprefix("sqlite:///").split("?")[0])
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def clients(k: int, fn: Callable[[Any], Awaitable[Any]], items: Iterable[Any]) -> list[Any]:
    """Call `fn` on every item with `k` calls in flight; results in item order."""
    todo = list(enumerate(items))
    out: list[Any] = [None] * len(todo)
    feed = iter(todo)

    async def client() -> None:
        for i, item in feed:
            out[i] = await fn(item)

    await asyncio.gather(*(client() for _ in range(k)))
    return out


async def until_settled(engine: Engine, status: str, n: int) -> None:
    """Wait until no run is pending or running (cheap: those sets are small), then check
    that `n` runs have `status`."""
    while await engine.count_runs(status="pending") or await engine.count_runs(status="running"):
        await asyncio.sleep(0.002)
    count = await engine.count_runs(status=status)
    assert count >= n, f"{count} runs {status}, expected {n}"


async def main(args: argparse.Namespace) -> dict[str, Any]:
    engine = build(args.db, args.concurrency)
    async with engine:

        async def start(i: int) -> str:
            return (await engine.start("bench_refund", f"o{i}")).id

        async def decide(run_id: str) -> None:
            await engine.approve(run_id, "manager", by="bench")

        # Runs to waiting, in two halves: the second half's memory growth (after the
        # first half has warmed every cache and arena) is what a waiting run costs.
        half = args.n // 2
        cpu0 = cpu_seconds()
        t0 = time.perf_counter()
        runs = await clients(args.clients, start, range(half))
        await until_settled(engine, "waiting", half)
        t_first = time.perf_counter() - t0
        gc.collect()
        rss_half = rss_bytes()
        t1 = time.perf_counter()
        runs += await clients(args.clients, start, range(half, args.n))
        await until_settled(engine, "waiting", args.n)
        t_wait = t_first + time.perf_counter() - t1
        cpu_wait = cpu_seconds() - cpu0
        gc.collect()
        rss_waiting = rss_bytes()

        cpu2 = cpu_seconds()
        t2 = time.perf_counter()
        await clients(args.clients, decide, runs)
        await until_settled(engine, "completed", args.n)
        t_done = time.perf_counter() - t2
        cpu_done = cpu_seconds() - cpu2

        sample = await clients(args.clients, start, range(args.n, args.n + args.sample))
        await until_settled(engine, "waiting", args.sample)
        await asyncio.sleep(0.2)  # let the worker go idle
        latencies = []
        for r in sample:
            s = time.perf_counter()
            await engine.approve(r, "manager", by="bench")
            await engine.result(r, timeout=60)
            latencies.append((time.perf_counter() - s) * 1000)
    effects = sum(LEDGER.values())
    total = args.n + args.sample
    disk = db_bytes(args.db)
    return {
        "store": args.db.split(":", 1)[0],
        "url": args.db,
        "n": args.n,
        "runs_per_s_to_waiting": round(args.n / t_wait, 1),
        "decisions_per_s_to_completed": round(args.n / t_done, 1),
        "cpu_us_per_run_to_waiting": round(cpu_wait / args.n * 1e6, 1),
        "cpu_us_per_decision_to_completed": round(cpu_done / args.n * 1e6, 1),
        "latency_ms_p50": round(statistics.median(latencies), 3),
        "latency_ms_p99": round(pct(latencies, 0.99), 3),
        "latency_sample": args.sample,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_bytes_per_waiting_run": round((rss_waiting - rss_half) / (args.n - half), 1),
        "disk_bytes_per_run": None if disk is None else round(disk / total, 1),
        "effects": effects,
        "effects_exactly_once": effects == total and all(v == 1 for v in LEDGER.values()),
    }


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000, help="runs (default 10000)")
    parser.add_argument("--db", default=None, help="database URL (default: temp SQLite, NORMAL)")
    parser.add_argument("--sample", type=int, default=200, help="runs decided one at a time")
    parser.add_argument("--concurrency", type=int, default=512, help="worker concurrency")
    parser.add_argument("--clients", type=int, default=512, help="starts/decisions in flight")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.db is None:
            args.db = f"sqlite:///{tmp}/bench.db?synchronous=normal"
        print(json.dumps(asyncio.run(main(args))))


if __name__ == "__main__":
    cli()
