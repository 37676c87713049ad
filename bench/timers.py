"""Timer storms: a benchmark, not a test.

N runs each wait on an approval whose deadline falls in the same second. The benchmark
measures the time from the start of that second until every one of them has expired and
its run has moved on (a side-effect step after the expiry, then the end of the run),
and, while the storm fires, the latency of decisions sent one at a time to other
waiting runs (no deadline), from `approve()` to `result()`. Prints one JSON line.

    .venv/bin/python bench/timers.py                  # N=100000, temp SQLite, synchronous=NORMAL
    .venv/bin/python bench/timers.py -n 2000 --db sqlite:///t.db?synchronous=full
    .venv/bin/python bench/timers.py --db postgresql://postgres@127.0.0.1/bench

The engine's clock is real time moved on by a shift: the N runs are filled (timed, not
counted in the storm) with their deadlines a day ahead; then the clock jumps to a few
seconds (`--lead`) before that day's second, and from there real time flows as usual.
The jump stands in for the day of waiting; the storm itself is all real time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import statistics
import tempfile
import time
from typing import Any

from hitl import clients, pct, until_settled  # bench/hitl.py, beside this file

from signoff import Context, Engine, hooks, idempotency_key

LEDGER: dict[str, int] = {}


async def effect(order: str, outcome: str) -> str:
    """The side effect after the approval's outcome, counted by its idempotency key."""
    key = idempotency_key()
    LEDGER[key] = LEDGER.get(key, 0) + 1
    return key


class ShiftedClock:
    """Real time, moved on by `shift` seconds."""

    def __init__(self) -> None:
        self.shift = 0.0

    def time(self) -> float:
        return time.time() + self.shift


def build(url: str, concurrency: int, clock: ShiftedClock) -> Engine:
    engine = Engine(url, concurrency=concurrency, clock=clock)

    @engine.workflow(name="bench_timed")
    async def timed(ctx: Context, order: str, deadline: float | None) -> dict[str, Any]:
        # the deadline is absolute (all in one second); on replay the wait is journaled
        # and its timeout no longer matters
        timeout = "never" if deadline is None else max(0.0, deadline - clock.time())
        decision = await ctx.approval("manager", summary=f"Refund {order}", timeout=timeout)
        receipt = await ctx.step(effect, order, str(decision.status))
        return {"status": str(decision.status), "receipt": receipt}

    return engine


async def main(args: argparse.Namespace) -> dict[str, Any]:
    clock = ShiftedClock()
    engine = build(args.db, args.concurrency, clock)
    done_at: dict[str, float] = {}  # run id -> perf_counter time it completed
    results: dict[str, str] = {}
    storm_ids: set[str] = set()
    storm_done = asyncio.Event()
    storm_count = 0

    def completed(event: hooks.RunDone) -> None:
        nonlocal storm_count
        done_at[event.run_id] = time.perf_counter()
        results[event.run_id] = (event.result or {}).get("status", "?")
        if event.run_id in storm_ids:
            storm_count += 1
            if storm_count == args.n:
                storm_done.set()

    engine.hooks.on_complete(completed)
    async with engine:

        async def start(i: int, deadline: float | None) -> str:
            return (await engine.start("bench_timed", f"o{i}", deadline)).id

        # 1. the runs decided during the storm (no deadline)
        sample = await clients(args.clients, lambda i: start(i, None), range(args.sample))
        await until_settled(engine, "waiting", args.sample)

        # 2. the N runs, deadlines spread over one second a day ahead (clock time)
        second = math.ceil(clock.time()) + 86_400
        t1 = time.perf_counter()
        ids = await clients(
            args.clients,
            lambda i: start(i, second + (i % 1000) / 1000),
            range(args.sample, args.sample + args.n),
        )
        storm_ids.update(ids)
        await until_settled(engine, "waiting", args.sample + args.n)
        fill_s = time.perf_counter() - t1
        await asyncio.sleep(0.5)  # let the worker go idle
        # the engine's clock moves on to `lead` seconds before that second (real time
        # flows on from there: the one jump stands in for a day of waiting)
        clock.shift += second - args.lead - clock.time()

        # 3. wait for the second, then decide the sample one at a time while it storms
        await asyncio.sleep(max(0.0, second - clock.time()))
        profile = None
        if args.profile:
            import cProfile

            profile = cProfile.Profile()
            profile.enable()
        t_second = time.perf_counter() - (clock.time() - second)
        latencies: list[float] = []
        decided: list[str] = []
        for run_id in sample:
            if storm_done.is_set():
                break
            s = time.perf_counter()
            await engine.approve(run_id, "manager", by="bench")
            await engine.result(run_id, timeout=60)
            latencies.append((time.perf_counter() - s) * 1000)
            decided.append(run_id)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(storm_done.wait(), args.storm_timeout)
        t_end = time.perf_counter()
        if profile is not None:
            profile.disable()
            profile.dump_stats(args.profile)
        storm = [done_at[r] for r in ids if r in done_at]
        storm_s = (max(storm) if storm else t_end) - t_second

        # 4. decide the rest of the sample (their effects are counted too)
        rest = [r for r in sample if r not in set(decided)]

        async def decide(run_id: str) -> None:
            await engine.approve(run_id, "manager", by="bench")
            await engine.result(run_id, timeout=60)

        await clients(args.clients, decide, rest)
        expired = sum(1 for r in ids if results.get(r) == "expired")
        approved = sum(1 for r in sample if results.get(r) == "approved")

    effects = sum(LEDGER.values())
    total = args.n + args.sample
    return {
        "store": args.db.split(":", 1)[0],
        "url": args.db,
        "n": args.n,
        "concurrency": args.concurrency,
        "fill_s": round(fill_s, 1),
        "fill_runs_per_s": round(args.n / fill_s, 1),
        "storm_s_to_all_expired": round(storm_s, 2),
        "storm_s_to_first_expired": round(min(storm) - t_second, 3) if storm else None,
        "expired_per_s": round(len(storm) / storm_s, 1) if storm_s > 0 else None,
        "decisions_during_storm": len(latencies),
        "decision_p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "decision_p99_ms": round(pct(latencies, 0.99), 2) if latencies else None,
        "decision_max_ms": round(max(latencies), 2) if latencies else None,
        "all_expired": expired == args.n,
        "others_approved": approved == args.sample,
        "effects": effects,
        "effects_exactly_once": effects == total and all(v == 1 for v in LEDGER.values()),
    }


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000, help="runs in the storm (100000)")
    parser.add_argument("--db", default=None, help="database URL (default: temp SQLite, NORMAL)")
    parser.add_argument(
        "--sample", type=int, default=2000, help="other runs, decided one at a time (2000)"
    )
    parser.add_argument("--concurrency", type=int, default=512, help="worker concurrency")
    parser.add_argument("--clients", type=int, default=512, help="starts in flight")
    parser.add_argument(
        "--lead", type=float, default=3.0, help="seconds from the clock's jump to the deadline"
    )
    parser.add_argument("--profile", help="write a cProfile of the storm to this file")
    parser.add_argument("--storm-timeout", type=float, default=600.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.db is None:
            args.db = f"sqlite:///{tmp}/bench.db?synchronous=normal"
        print(json.dumps(asyncio.run(main(args))))


if __name__ == "__main__":
    cli()
