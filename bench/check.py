"""How long the deploy preflight (`engine.check()`, `signoff check`) takes: a benchmark.

Starts N runs of a workflow (a step, a clock reading, an approval) until all wait, then
checks them twice: with the same code (all replay) and with a changed one (all would
fail, each reported). Prints one JSON line.

    .venv/bin/python bench/check.py                  # N=100000, temp SQLite
    .venv/bin/python bench/check.py -n 20000 --db postgresql://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from signoff import Context, Engine


def amount(order: str) -> int:
    return 100 + len(order)


async def refund(ctx: Context, order: str) -> str:
    total = await ctx.step(amount, order)
    ctx.now()
    decision = await ctx.approval("manager", proposed={"amount": total})
    return decision.status.value


async def refund_changed(ctx: Context, order: str) -> str:
    total = await ctx.step(amount, order)
    await ctx.step(amount, order + "!")  # a step added before the approval, unpatched
    decision = await ctx.approval("manager", proposed={"amount": total})
    return decision.status.value


async def fill(url: str, n: int) -> float:
    engine = Engine(url)
    engine.workflow("refund")(refund)
    began = time.perf_counter()
    async with engine:
        sem = asyncio.Semaphore(512)

        async def one(i: int) -> None:
            async with sem:
                await engine.start("refund", f"ord-{i}")

        await asyncio.gather(*(one(i) for i in range(n)))
        while await engine.count_runs(status="waiting") < n:
            await asyncio.sleep(0.2)
    await engine.close()
    return time.perf_counter() - began


async def check(url: str, fn: object) -> tuple[int, int, float]:
    engine = Engine(url)
    engine.workflow("refund")(fn)  # type: ignore[arg-type]
    try:
        report = await engine.check()
    finally:
        await engine.close()
    return report.checked, len(report.broken), report.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--db")
    opts = parser.parse_args()
    url = opts.db or f"sqlite:///{Path(tempfile.mkdtemp()) / 'check.db'}"
    filled = asyncio.run(fill(url, opts.n))
    same = asyncio.run(check(url, refund))
    changed = asyncio.run(check(url, refund_changed))
    print(
        json.dumps(
            {
                "store": url.split(":")[0],
                "waiting_runs": opts.n,
                "fill_seconds": round(filled, 1),
                "check_same_code": {
                    "checked": same[0],
                    "broken": same[1],
                    "seconds": round(same[2], 1),
                },
                "check_changed_code": {
                    "checked": changed[0],
                    "broken": changed[1],
                    "seconds": round(changed[2], 1),
                },
                "runs_per_second_checked": round(same[0] / max(same[2], 1e-9)),
            }
        )
    )


if __name__ == "__main__":
    main()
