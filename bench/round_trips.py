"""Round trips to PostgreSQL per start and per decision: a benchmark, not a test.

Runs `bench/hitl.py`'s workflow one run at a time on an idle engine (worker in this
process) and counts, on the driver's side, what each phase sends: round trips (a
statement sent on its own, a pipeline sync, a pipeline's closing sync), statements and
commits. A start is counted from `start()` until the run waits on its approval; a
decision from `approve()` until `result()` returns. Reads of the run by the caller (the
benchmark polling for "waiting", `result()` reading the finished run) are counted apart,
as `client_reads`. Prints one JSON line with the medians.

    .venv/bin/python bench/round_trips.py --db postgresql://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from hitl import build  # bench/hitl.py, beside this file

from signoff.store.sql import RUN_COLUMNS

RUN_READ = "SELECT " + RUN_COLUMNS  # get_run: the caller's reads, not the run's work


class Counts:
    def __init__(self) -> None:
        self.round_trips = self.statements = self.commits = self.client_reads = 0

    def as_tuple(self) -> tuple[int, int, int, int]:
        return self.round_trips, self.statements, self.commits, self.client_reads


@contextmanager
def counting() -> Iterator[list[Counts]]:
    """Count what psycopg sends while the block runs; `[current]` is swapped per phase."""
    box = [Counts()]
    execute, sync = psycopg.AsyncCursor.execute, psycopg.AsyncPipeline.sync
    aexit = psycopg.AsyncPipeline.__aexit__

    async def counted_execute(self: Any, query: Any, params: Any = None, **kw: Any) -> Any:
        c, text = box[0], str(query).strip()
        if text.startswith(RUN_READ):
            c.client_reads += 1
        else:
            c.statements += 1
            c.commits += text.upper() == "COMMIT"
            c.round_trips += self._conn._pipeline is None  # outside a pipeline: answered now
        return await execute(self, query, params, **kw)

    async def counted_sync(self: Any) -> None:
        box[0].round_trips += 1
        await sync(self)

    async def counted_exit(self: Any, *exc: Any) -> None:
        box[0].round_trips += 1
        await aexit(self, *exc)

    psycopg.AsyncCursor.execute = counted_execute  # type: ignore[method-assign]
    psycopg.AsyncPipeline.sync = counted_sync  # type: ignore[method-assign]
    psycopg.AsyncPipeline.__aexit__ = counted_exit  # type: ignore[method-assign]
    try:
        yield box
    finally:
        psycopg.AsyncCursor.execute = execute  # type: ignore[method-assign]
        psycopg.AsyncPipeline.sync = sync  # type: ignore[method-assign]
        psycopg.AsyncPipeline.__aexit__ = aexit  # type: ignore[method-assign]


async def main(url: str, n: int) -> dict[str, Any]:
    engine = build(url, 64)
    starts: list[tuple[int, int, int, int]] = []
    decisions: list[tuple[int, int, int, int]] = []
    async with engine:
        with counting() as box:
            for i in range(n + 3):  # the first three warm the pool and the caches
                box[0] = Counts()
                run_id = (await engine.start("bench_refund", f"rt{i}-{time.time()}")).id
                while (await engine.get_run(run_id)).status != "waiting":
                    await asyncio.sleep(0.001)
                start = box[0]
                await asyncio.sleep(0.05)  # the worker goes idle
                box[0] = Counts()
                await engine.approve(run_id, "manager", by="bench")
                await engine.result(run_id, timeout=30)
                decision = box[0]
                await asyncio.sleep(0.05)
                if i >= 3:
                    starts.append(start.as_tuple())
                    decisions.append(decision.as_tuple())
    return {
        "store": "postgresql",
        "n": n,
        "per_start": _medians(starts),
        "per_decision_to_completed": _medians(decisions),
    }


def _medians(rows: list[tuple[int, int, int, int]]) -> dict[str, float]:
    return {
        name: statistics.median(r[k] for r in rows)
        for k, name in enumerate(("round_trips", "statements", "commits", "client_reads"))
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="a PostgreSQL URL")
    parser.add_argument("-n", type=int, default=30, help="runs (default 30)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.db, args.n))))
