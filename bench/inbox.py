"""Inbox query latency at scale: a benchmark, not a test.

Fills a database with N pending approvals (bulk SQL, straight into the tables the store
reads: `approvals` and `approval_inbox`), then times filtered inbox pages through
`engine.pending_approvals`, the code path users call, and the web inbox's page itself:
`GET /` rendered server-side by the app in process (httpx over ASGI, the person signed
in by the host's `identify`), most urgent first. Prints one JSON line per backend.

    .venv/bin/python bench/inbox.py                      # N=1,000,000 on SQLite
    .venv/bin/python bench/inbox.py --db postgresql://postgres@127.0.0.1/inboxbench

The mix: 20 workflows, 5 keys (2 under "refund/"), 500 people and 20 roles; every
approval names one person and one role, so a person has N/500 approvals in their inbox,
a role N/20 and a workflow N/20. Requests are 10 s apart; two in three have a deadline
(scattered over N*10 s around now: half of them past), one in three none. Each query kind
is timed `--samples` times with random arguments; "page 2..11" follows next_cursor ten
pages deep.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from signoff import Engine

NOW = float(int(time.time()))
T0 = NOW - 10_000_000.0  # requests from 10**7 s ago, 10 s apart
PEOPLE, ROLES, WORKFLOWS = 500, 20, 20
# a digest as signoff stores it, its 32 bytes: a blob literal (SQLite), a bytea in hex
DIGESTS = {"sqlite": "X'" + "ab" * 32 + "'", "postgresql": "'\\x" + "ab" * 32 + "'::bytea"}
KEYS = ("refund/manager", "refund/finance", "invoice", "offer/legal", "expense")


def _rows_sql(n: int, dialect: str) -> tuple[str, str]:
    """(approvals INSERT, approval_inbox INSERT) generating n rows from a series `s(i)`."""
    cases = " ".join(f"WHEN {k} THEN '{v}'" for k, v in enumerate(KEYS))
    keys = f"CASE (i / 7) % 5 {cases} END"
    approvals = (
        "INSERT INTO approvals (run_id, key, round, seq, workflow, status, summary, proposed, "
        "requested_at, deadline, policy, digest) "
        f"SELECT 'run-' || i, {keys}, 1, 3, 'wf' || (i % {WORKFLOWS}), 'pending', "
        "'Refund ' || i, '{\"amount\":' || i || '}', "
        f"{T0} + i * 10.0, {_deadline(n)}, "
        '\'{"approvers":["p\' || (i % '
        + str(PEOPLE)
        + ") || '\",\"role:r' || (i % "
        + str(ROLES)
        + ') || \'"],"quorum":1}\', '
        + DIGESTS[dialect]
        + " FROM s"
    )
    due = f"COALESCE({_deadline(n)}, 1e300)"
    inbox = (
        "INSERT INTO approval_inbox (principal, requested_at, run_id, key, round, workflow, due) "
        f"SELECT 'p' || (i % {PEOPLE}), {T0} + i * 10.0, 'run-' || i, {keys}, 1, "
        f"'wf' || (i % {WORKFLOWS}), {due} FROM s UNION ALL "
        f"SELECT 'role:r' || (i % {ROLES}), {T0} + i * 10.0, 'run-' || i, {keys}, 1, "
        f"'wf' || (i % {WORKFLOWS}), {due} FROM s"
    )
    return approvals, inbox


def _deadline(n: int) -> str:
    """Two in three approvals have a deadline, in a scattered order (none for i % 3 = 0)."""
    scattered = f"((CAST(i AS BIGINT) * 7919) % {n}) * 10.0"
    return f"CASE WHEN i % 3 = 0 THEN NULL ELSE {NOW} + {scattered} - {n * 5.0} END"


def sqlite_series(n: int) -> str:
    """A `WITH` clause naming the series `s(i)`, i = 0 .. n-1, on SQLite."""
    return f"WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {n - 1}) "


def postgres_series(n: int) -> str:
    """A `WITH` clause naming the series `s(i)`, i = 0 .. n-1, on PostgreSQL."""
    return f"WITH s(i) AS (SELECT generate_series(0, {n - 1})) "


def fill_sqlite(path: str, n: int) -> None:
    import sqlite3

    approvals, inbox = _rows_sql(n, "sqlite")
    series = sqlite_series(n)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    with db:
        db.execute(approvals.replace("SELECT 'run-'", series + "SELECT 'run-'", 1))
        db.execute(
            "INSERT INTO approval_inbox (principal, requested_at, run_id, key, round, workflow, "
            "due) " + series + inbox.split("round, workflow, due) ", 1)[1]
        )
    db.execute("ANALYZE")
    db.close()


def fill_postgres(url: str, n: int) -> None:
    import psycopg

    approvals, inbox = _rows_sql(n, "postgresql")
    series = postgres_series(n)
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("TRUNCATE approvals, approval_inbox")
        db.execute(series + approvals)
        db.execute(series + inbox)
        db.execute("VACUUM ANALYZE approvals")
        db.execute("VACUUM ANALYZE approval_inbox")


def create_postgres_db(url: str) -> None:
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(base + "/postgres", autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}"')
        db.execute(f'CREATE DATABASE "{name}"')


async def timed(samples: int, call: Callable[[], Awaitable[Any]]) -> dict[str, float]:
    await call()  # warm the caches and statement preparation
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2),
        "max_ms": round(times[-1], 2),
    }


async def measure(url: str, samples: int, limit: int) -> dict[str, Any]:
    rng = random.Random(7)
    engine = Engine(url)
    await engine.open()
    try:

        async def approver() -> None:
            page = await engine.pending_approvals(approver=f"p{rng.randrange(PEOPLE)}", limit=limit)
            assert len(page) == limit and page.total > 0

        async def role() -> None:
            page = await engine.pending_approvals(role=f"r{rng.randrange(ROLES)}", limit=limit)
            assert len(page) == limit

        async def workflow_prefix() -> None:
            wf = f"wf{rng.randrange(WORKFLOWS)}"
            page = await engine.pending_approvals(workflow=wf, key_prefix="refund/", limit=limit)
            assert len(page) == limit

        async def approver_older() -> None:
            who = f"p{rng.randrange(PEOPLE)}"
            page = await engine.pending_approvals(
                approver=who, older_than=f"{rng.randrange(1, 100)}d", limit=limit
            )
            assert page.total >= 0

        async def approver_urgent() -> None:
            page = await engine.pending_approvals(
                approver=f"p{rng.randrange(PEOPLE)}", order="urgent", limit=limit
            )
            assert len(page) == limit and page.total > 0

        async def approver_overdue() -> None:
            page = await engine.pending_approvals(
                approver=f"p{rng.randrange(PEOPLE)}", overdue=True, order="urgent", limit=limit
            )
            assert len(page) == limit

        deep: list[float] = []

        async def cursor_pages() -> None:
            page = await engine.pending_approvals(role=f"r{rng.randrange(ROLES)}", limit=limit)
            for _ in range(10):
                start = time.perf_counter()
                page = await engine.pending_approvals(
                    role=f"r{rng.randrange(ROLES)}", limit=limit, cursor=page.next_cursor
                )
                deep.append((time.perf_counter() - start) * 1000)

        results = {
            "approver": await timed(samples, approver),
            "role": await timed(samples, role),
            "workflow+key_prefix": await timed(samples, workflow_prefix),
            "approver+older_than": await timed(samples, approver_older),
            "approver, urgent": await timed(samples, approver_urgent),
            "approver+overdue, urgent": await timed(samples, approver_overdue),
        }
        await timed(max(1, samples // 10), cursor_pages)
        deep.sort()
        results["cursor page 2..11 (role)"] = {
            "p50_ms": round(statistics.median(deep), 2),
            "p99_ms": round(deep[min(len(deep) - 1, int(len(deep) * 0.99))], 2),
            "max_ms": round(deep[-1], 2),
        }
        results.update(await inbox_page(engine, rng, samples))
        return results
    finally:
        await engine.close()


async def inbox_page(engine: Engine, rng: random.Random, samples: int) -> dict[str, Any]:
    """The web inbox's HTML page for one approver (`GET /`, 50 rows, most urgent first,
    and its second page), rendered by the app in process; the person is who the host's
    `identify` says (the `x-bench-person` header here)."""
    import httpx

    from signoff.server import Identity, create_app

    def identify(request: Any) -> Identity:
        return Identity(request.headers["x-bench-person"])

    app = create_app(engine, run_worker=False, identify=identify)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:

        async def get(path: str) -> str:
            person = {"x-bench-person": f"p{rng.randrange(PEOPLE)}"}
            response = await http.get(path, headers=person)
            assert response.status_code == 200 and "inbox-body" in response.text
            return response.text

        async def first() -> None:
            await get("/")

        async def overdue() -> None:
            await get("/?overdue=1")

        async def second() -> None:
            html = await get("/")
            cursor = html.split('rel="next"')[0].rsplit("cursor=", 1)[1].split('"')[0]
            await get("/?cursor=" + cursor.replace("&amp;", "&"))

        return {
            "inbox page GET / (HTML)": await timed(samples, first),
            "inbox page GET /?overdue=1": await timed(samples, overdue),
            "inbox pages 1 and 2": await timed(max(1, samples // 3), second),
        }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1_000_000, help="pending approvals")
    parser.add_argument("--db", default=None, help="database URL (default: a temp SQLite file)")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--limit", type=int, default=50, help="page size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'inbox.db'}"
        if url.startswith("postgresql"):
            create_postgres_db(url)
        engine = Engine(url)
        await engine.open()  # migrate
        await engine.close()
        start = time.perf_counter()
        if url.startswith("postgresql"):
            fill_postgres(url, args.n)
        else:
            fill_sqlite(url.removeprefix("sqlite:///"), args.n)
        fill_s = time.perf_counter() - start
        results = await measure(url, args.samples, args.limit)
        backend = "postgres" if url.startswith("postgresql") else "sqlite"
        report = {"backend": backend, "pending": args.n, "fill_s": round(fill_s, 1), **results}
        print(json.dumps(report))


if __name__ == "__main__":
    asyncio.run(main())
