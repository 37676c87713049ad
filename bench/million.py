"""A million waiting: cold start, memory and disk with N runs waiting on an approval.

Fills a store with N runs of `bench/hitl.py`'s workflow (two steps, then an approval),
all waiting on their approval, by direct SQL (the rows the engine writes: runs, journal,
approvals, approval_inbox, history; see `fill`). Then, in a fresh process (a worker
restarted from cold: new Python process, engine opened, worker started), it times the
first decision (approve one waiting run, wait for its result) from the process's start
and a few more, and reads that process's RSS after open and after the decisions; the same
on a store of 10,000 waiting runs is the baseline (memory must not grow with N). Last, the
disk bytes per waiting run, per table and per index. Prints one JSON line.

    .venv/bin/python bench/million.py                        # N=1,000,000, temp SQLite
    .venv/bin/python bench/million.py --db postgresql://postgres@127.0.0.1/million

Before the measurement the fill is checked against the engine (`check`): `--check-n`
runs started through the engine and as many filled by SQL, in two fresh stores, must
hold the same rows (run ids, times and history ids aside), and the filled runs must be
decided and completed by the engine, each effect once.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import hitl
import inbox

WORKFLOW = "bench_refund"  # hitl.build's workflow
NOW = float(int(time.time()))
SPACING = 0.0101  # seconds between two runs' starts
STEP = 0.00037  # seconds between a run's start, its two steps and its approval request
PROPOSED = '{"amount":120,"why":"inside the window"}'  # what `draft` returns
# The approval's policy as the engine writes it for `ctx.approval("manager", ...)` with no
# approvers (anyone may decide): the plain policy, stored as its mark "~1"
# (`signoff.store.sql.stored_policy`, migration 0013); `check` holds it to the engine's.
STORED_POLICY = "~1"


def run_id(i: int) -> str:
    """The id of filled run i: 32 hex digits, scattered like the engine's uuid4().hex."""
    return hashlib.md5(str(i).encode()).hexdigest()


def _start(n: int) -> float:
    """The first run's start: runs started SPACING apart, the last an hour ago."""
    return NOW - 3600.0 - n * SPACING + 0.123456


def _statements(dialect: str, n: int) -> list[str]:
    """INSERTs writing run i (i = 0 .. n-1) as the engine leaves it, waiting on its
    approval: started with order "o{i}" at t, its first step journaled at t+STEP (when
    the second starts), the second with the approval, requested at t+2*STEP (a step's
    record travels with the run's next write). Rows are written run after run."""
    # what the approver is shown, hashed into the approval's digest (`policy.digest`),
    # stored as its 32 bytes
    shown = '\'{"proposed":' + PROPOSED + ',"round":1,"summary":"Refund o\' || i || \'"}\''
    if dialect == "postgresql":
        src = (
            "(SELECT i, md5(CAST(i AS TEXT)) AS rid, "
            f"CAST({_start(n)} AS DOUBLE PRECISION) + i * CAST({SPACING} AS DOUBLE PRECISION) "
            f"AS t FROM generate_series(0, {n - 1}) AS g(i)) AS src"
        )
        digest = f"sha256(convert_to({shown}, 'UTF8'))"
    else:
        src = "fill_ids AS src"  # made by fill_sqlite
        digest = f"sha256({shown})"
    asked = f"t + {2 * STEP}"

    def series(k: int) -> str:
        return " UNION ALL ".join(f"SELECT {j} AS j" for j in range(k))

    return [
        "INSERT INTO runs (id, workflow, status, input, result, error, requested_by, "
        "created_at, updated_at, finished_at, lease_owner, lease_expires, fence, wait_kind, "
        "wait_name, wait_seq, wake_at, deadline, version) "
        f"SELECT rid, '{WORKFLOW}', 'waiting', "
        '\'{"args":["o\' || i || \'"],"kwargs":{}}\', NULL, NULL, NULL, '
        f"t, {asked}, NULL, NULL, NULL, 1, 'approval', 'manager', 2, NULL, NULL, NULL "
        f"FROM {src} ORDER BY i",
        "INSERT INTO journal (run_id, seq, kind, name, status, result, error, attempts, "
        "wake_at, started_at, finished_at, path) "
        "SELECT rid, j, CASE j WHEN 2 THEN 'approval' ELSE 'step' END, "
        "CASE j WHEN 0 THEN 'load' WHEN 1 THEN 'draft' ELSE 'manager' END, "
        "CASE j WHEN 2 THEN 'open' ELSE 'done' END, "
        '(CASE j WHEN 0 THEN \'{"order":"o\' || i || \'","amount":120}\' '
        f"WHEN 1 THEN '{PROPOSED}' END), NULL, 1, NULL, "
        f"t + (CASE WHEN j > 1 THEN 2 ELSE j + 1 END) * {STEP}, "
        f"CASE j WHEN 2 THEN NULL ELSE t + (j + 1) * {STEP} END, CAST(j AS TEXT) "
        f"FROM {src} CROSS JOIN ({series(3)}) AS k ORDER BY src.i, k.j",
        "INSERT INTO approvals (run_id, key, round, seq, workflow, status, summary, proposed, "
        "value, decided_by, reason, requested_at, decided_at, deadline, policy, digest, "
        "escalate_at, remind_at, timed_out) "
        f"SELECT rid, 'manager', 1, 2, '{WORKFLOW}', 'pending', 'Refund o' || i, "
        f"'{PROPOSED}', NULL, NULL, NULL, {asked}, NULL, NULL, '{STORED_POLICY}', {digest}, "
        f"NULL, NULL, 0 FROM {src} ORDER BY i",
        "INSERT INTO approval_inbox (principal, requested_at, run_id, key, round, workflow, "
        f"due) SELECT '*', {asked}, rid, 'manager', 1, '{WORKFLOW}', 1e300 "
        f"FROM {src} ORDER BY i",
        "INSERT INTO history (run_id, at, type, actor, data) "
        f"SELECT rid, t + (CASE WHEN j > 2 THEN 2 ELSE j END) * {STEP}, "
        "CASE j WHEN 0 THEN 'run_started' "
        "WHEN 3 THEN 'approval_requested' ELSE 'step_completed' END, NULL, "
        f'CASE j WHEN 0 THEN \'{{"workflow":"{WORKFLOW}"}}\' '
        'WHEN 1 THEN \'{"seq":0,"name":"load","attempts":1}\' '
        'WHEN 2 THEN \'{"seq":1,"name":"draft","attempts":1}\' '
        'ELSE \'{"key":"manager","round":1,"summary":"Refund o\' || i || '
        '\'","deadline":null}\' END '
        f"FROM {src} CROSS JOIN ({series(4)}) AS k ORDER BY src.i, k.j",
        f"INSERT INTO workflows (name, seen_at) VALUES ('{WORKFLOW}', {_start(n)}) "
        "ON CONFLICT (name) DO NOTHING",
    ]


def sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///").split("?", 1)[0]


def fill_sqlite(url: str, n: int) -> None:
    import sqlite3

    db = sqlite3.connect(sqlite_path(url), isolation_level=None)
    db.create_function("md5", 1, lambda i: run_id(i), deterministic=True)
    db.create_function(
        "sha256", 1, lambda s: hashlib.sha256(s.encode()).digest(), deterministic=True
    )
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA temp_store=MEMORY")
    db.execute("CREATE TEMP TABLE fill_ids (i INTEGER PRIMARY KEY, rid TEXT, t REAL)")
    db.execute(
        "INSERT INTO fill_ids "
        + inbox.sqlite_series(n)
        + f"SELECT i, md5(i), {_start(n)} + i * {SPACING} FROM s"
    )
    db.execute("BEGIN")
    for statement in _statements("sqlite", n):
        db.execute(statement)
    db.execute("COMMIT")
    db.execute("DROP TABLE fill_ids")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def fill_postgres(url: str, n: int) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        with db.transaction():
            for statement in _statements("postgresql", n):
                db.execute(statement)
        for table in ("runs", "journal", "approvals", "approval_inbox", "history", "workflows"):
            db.execute(f"VACUUM ANALYZE {table}")  # as autovacuum would, a while later
        db.execute("CHECKPOINT")


async def migrate(url: str) -> None:
    if url.startswith("postgresql"):
        inbox.create_postgres_db(url)
    engine = hitl.build(url, 1)
    await engine.open()
    await engine.close()


async def fill(url: str, n: int) -> float:
    """A fresh store at `url` with n runs waiting; returns the seconds the rows took."""
    await migrate(url)
    start = time.perf_counter()
    if url.startswith("postgresql"):
        await asyncio.to_thread(fill_postgres, url, n)
    else:
        await asyncio.to_thread(fill_sqlite, url, n)
    return time.perf_counter() - start


# --- the check: filled rows are the engine's rows ------------------------------------


def connect(url: str) -> Any:
    if url.startswith("postgresql"):
        import psycopg

        return psycopg.connect(url, autocommit=True)
    import sqlite3

    return sqlite3.connect(sqlite_path(url), isolation_level=None)


def tables(db: Any, url: str) -> list[str]:
    if url.startswith("postgresql"):
        sql = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1"
    return [r[0] for r in db.execute(sql).fetchall()]


ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)?")
HEX = re.compile(r"\b[0-9a-f]{64}\b")
STAMP = re.compile(r"\b1\d{9}\.\d+\b")  # a time inside JSON text (seconds since 1970)


def canonical(url: str) -> dict[str, Counter[str]]:
    """Every row of every table, as text, with what differs between two stores holding
    the same runs replaced: run ids by RUN, worker ids by WORKER, a run's times by their
    rank among its times (T0 < T1 < ...; equal times, equal labels), history ids by their
    rank in the run, ISO times and times inside JSON text by ISO and TS."""
    db = connect(url)
    dump: dict[str, list[tuple[str, list[Any]]]] = {}
    times: dict[str, set[float]] = {}
    ids: dict[str, set[int]] = {}
    for table in tables(db, url):
        cur = db.execute(f"SELECT * FROM {table}")
        cols = [d[0] for d in cur.description]
        key = "chain" if table == "audit" else "id" if table == "runs" else "run_id"
        rows = []
        for row in cur.fetchall():
            values = dict(zip(cols, row, strict=True))
            owner = values.get(key) if key in cols else None
            owner = owner if isinstance(owner, str) else ""
            for col, value in values.items():
                if isinstance(value, float) and value < 1e299:
                    times.setdefault(owner, set()).add(value)
                if table == "history" and col == "id":
                    ids.setdefault(owner, set()).add(value)
            rows.append((owner, [(col, values[col]) for col in cols]))
        dump[table] = rows
    db.close()
    run_ids = {owner for rows in dump.values() for owner, _ in rows if len(owner) == 32}
    rank_t = {o: {t: f"T{k}" for k, t in enumerate(sorted(ts))} for o, ts in times.items()}
    rank_h = {o: {h: f"H{k}" for k, h in enumerate(sorted(hs))} for o, hs in ids.items()}
    worker = re.compile(r"[\w.-]+:\d+:[0-9a-f]{8}")

    def text(value: str) -> str:
        for rid in re.findall(r"[0-9a-f]{32}", value):
            if rid in run_ids:
                value = value.replace(rid, "RUN")
        return STAMP.sub("TS", ISO.sub("ISO", worker.sub("WORKER", value)))

    out: dict[str, Counter[str]] = {}
    for table, rows in dump.items():
        counter: Counter[str] = Counter()
        for owner, values in rows:
            shown = []
            for col, value in values:
                if isinstance(value, float) and value < 1e299:
                    value = rank_t[owner][value] if owner else "T"
                elif table == "history" and col == "id":
                    value = rank_h[owner][value]
                elif isinstance(value, str):
                    value = text(value)
                shown.append(f"{col}={value!r}")
            counter[", ".join(shown)] += 1
        out[table] = counter
    return out


def differences(a: dict[str, Counter[str]], b: dict[str, Counter[str]]) -> list[str]:
    """What one store holds and the other not (hashes count as equal when both are
    64-hex: audit hashes cover run ids, which differ)."""

    def hashless(c: Counter[str]) -> Counter[str]:
        return Counter({HEX.sub("HASH", k): v for k, v in c.items()})

    out = []
    for table in sorted(set(a) | set(b)):
        if table == "schema_version":
            continue
        x, y = a.get(table, Counter()), b.get(table, Counter())
        if x != y and hashless(x) != hashless(y):
            only_a = list((hashless(x) - hashless(y)).items())[:2]
            only_b = list((hashless(y) - hashless(x)).items())[:2]
            out.append(f"{table}: engine only {only_a}; fill only {only_b}")
    return out


async def start_through_engine(url: str, n: int) -> None:
    """n runs started by the engine, orders "o0" .. "o{n-1}", until all wait."""
    await migrate(url)
    engine = hitl.build(url, 64)
    async with engine:
        ids = [(await engine.start(WORKFLOW, f"o{i}")).id for i in range(n)]
        for _ in range(600):
            runs = [await engine.get_run(i) for i in ids]
            if all(str(r.status) == "waiting" for r in runs):
                break
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError("the engine's runs did not all reach their approval")
    # the engine's order of rows over the runs is its own; start times order the runs
    db = connect(url)
    try:
        if url.startswith("sqlite"):
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            for table in ("runs", "journal", "approvals", "approval_inbox", "history"):
                db.execute(f"VACUUM ANALYZE {table}")
    finally:
        db.close()


async def decide_all(url: str, ids: list[str]) -> int:
    """Approve every run and wait for each result; returns how many were refunded."""
    hitl.LEDGER.clear()
    engine = hitl.build(url, 64)
    async with engine:
        for chunk in range(0, len(ids), 256):
            part = ids[chunk : chunk + 256]
            await asyncio.gather(*(engine.approve(r, "manager", by="bench") for r in part))
        results = [await engine.result(r, timeout=60) for r in ids]
    once = sorted(hitl.LEDGER.values()) == [1] * len(ids)
    return sum(1 for r in results if r["status"] == "refunded") if once else -1


async def check(base: str, n: int) -> dict[str, Any]:
    """Two fresh stores: one with n runs started through the engine, one with n filled;
    their rows compared; then every run of both decided by the engine, rows compared."""
    engine_url, fill_url = other_store(base, "check_engine"), other_store(base, "check_fill")
    empty_url = other_store(base, "check_empty")
    await migrate(empty_url)
    empty = disk(empty_url, n)["bytes_per_run"]  # the schema's own pages, over n
    drop(empty_url)
    await start_through_engine(engine_url, n)
    await fill(fill_url, n)
    waiting = differences(canonical(engine_url), canonical(fill_url))
    bytes_engine, bytes_fill = (
        round(disk(u, n)["bytes_per_run"] - empty, 1) for u in (engine_url, fill_url)
    )
    db = connect(engine_url)
    engine_ids = [r[0] for r in db.execute("SELECT id FROM runs").fetchall()]
    db.close()
    done_engine = await decide_all(engine_url, engine_ids)
    done_fill = await decide_all(fill_url, [run_id(i) for i in range(n)])
    decided = differences(canonical(engine_url), canonical(fill_url))
    for url in (engine_url, fill_url):
        drop(url)
    return {
        "n": n,
        "rows_identical_waiting": not waiting,
        "rows_identical_decided": not decided,
        "completed_once": {"engine": done_engine, "fill": done_fill},
        "bytes_per_run_beyond_empty_store": {"engine": bytes_engine, "fill": bytes_fill},
        **({"differences": (waiting + decided)[:6]} if waiting or decided else {}),
    }


# --- stores --------------------------------------------------------------------------


def other_store(base: str, suffix: str) -> str:
    """A store beside `base`: a sibling PostgreSQL database, or a SQLite file beside it."""
    if base.startswith("postgresql"):
        return f"{base}_{suffix}"
    return f"sqlite:///{sqlite_path(base).removesuffix('.db')}_{suffix}.db"


def drop(url: str) -> None:
    if url.startswith("postgresql"):
        import psycopg

        root, _, name = url.rpartition("/")
        with psycopg.connect(root + "/postgres", autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        for extra in ("", "-wal", "-shm"):
            Path(sqlite_path(url) + extra).unlink(missing_ok=True)


def disk(url: str, n: int) -> dict[str, Any]:
    """Bytes on disk per waiting run, by table: the table itself and each index."""
    db = connect(url)
    try:
        if url.startswith("postgresql"):
            return _disk_postgres(db, n)
        return _disk_sqlite(db, url, n)
    finally:
        db.close()


def _disk_sqlite(db: Any, url: str, n: int) -> dict[str, Any]:
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    path = sqlite_path(url)
    files = sum(os.path.getsize(path + x) for x in ("", "-wal") if os.path.exists(path + x))
    owner = dict(db.execute("SELECT name, tbl_name FROM sqlite_master").fetchall())
    owner.update(sqlite_schema="sqlite_schema", sqlite_master="sqlite_schema")
    kinds = dict(db.execute("SELECT name, type FROM sqlite_master").fetchall())
    tables: dict[str, dict[str, Any]] = {}
    for name, size, payload in db.execute(
        "SELECT name, SUM(pgsize), SUM(payload) FROM dbstat GROUP BY name"
    ).fetchall():
        table = owner.get(name, name)
        entry = tables.setdefault(table, {"bytes": 0, "table": 0, "indexes": {}})
        entry["bytes"] += size
        if kinds.get(name) == "index":
            entry["indexes"][name] = _per(size, n)
        else:
            entry["table"] = _per(size, n)
            entry["payload"] = _per(payload, n)
    return {
        "bytes_per_run": _per(files, n),
        "file_bytes": files,
        "free_bytes": db.execute("PRAGMA freelist_count").fetchone()[0]
        * db.execute("PRAGMA page_size").fetchone()[0],
        "tables": _per_table(tables, n),
    }


def _disk_postgres(db: Any, n: int) -> dict[str, Any]:
    tables: dict[str, dict[str, Any]] = {}
    rows = db.execute(
        "SELECT c.relname, pg_total_relation_size(c.oid), pg_relation_size(c.oid), "
        "pg_indexes_size(c.oid) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace "
        "WHERE s.nspname = 'public' AND c.relkind = 'r'"
    ).fetchall()
    for name, total, main, indexes in rows:
        toast = total - main - indexes  # TOAST table and its index, free space and visibility maps
        tables[name] = {"bytes": total, "table": _per(main, n), "indexes": {}}
        if toast:
            tables[name]["toast_and_maps"] = _per(toast, n)
    for table, index, size in db.execute(
        "SELECT tablename, indexname, pg_relation_size(quote_ident(indexname)::regclass) "
        "FROM pg_indexes WHERE schemaname = 'public'"
    ).fetchall():
        tables[table]["indexes"][index] = _per(size, n)
    database = db.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    return {
        "bytes_per_run": _per(sum(t["bytes"] for t in tables.values()), n),
        "database_bytes": database,
        "tables": _per_table(tables, n),
    }


def _per(size: float, n: int) -> float:
    return round(size / n, 1)


def _per_table(tables: dict[str, dict[str, Any]], n: int) -> dict[str, Any]:
    """Biggest first; tables under 1 byte per run folded into "other"."""
    out: dict[str, Any] = {}
    other = 0.0
    for name, entry in sorted(tables.items(), key=lambda kv: -kv[1]["bytes"]):
        per = _per(entry.pop("bytes"), n)
        if per < 1.0:
            other += per
            continue
        entry["indexes"] = dict(sorted(entry["indexes"].items(), key=lambda kv: -kv[1]))
        out[name] = {"total": per, **entry}
    out["other tables (schema, empty tables)"] = round(other, 1)
    return out


def columns(url: str) -> dict[str, dict[str, float]]:
    """Average stored bytes per row of each column holding something, for the tables a
    waiting run writes to (text as its bytes, numbers as stored)."""
    db = connect(url)
    out: dict[str, dict[str, float]] = {}
    try:
        for table in ("runs", "journal", "approvals", "approval_inbox", "history"):
            cols = [d[0] for d in db.execute(f"SELECT * FROM {table} LIMIT 0").description]
            if url.startswith("postgresql"):
                sizes = [f"AVG(COALESCE(pg_column_size({c}), 0))" for c in cols]
            else:
                sizes = [
                    f"AVG(CASE typeof({c}) WHEN 'text' THEN length(CAST({c} AS BLOB)) "
                    f"WHEN 'real' THEN 8 WHEN 'integer' THEN (CASE WHEN {c} IN (0, 1) THEN 0 "
                    f"WHEN abs({c}) < 128 THEN 1 ELSE 8 END) ELSE 0 END)"
                    for c in cols
                ]
            row = db.execute(f"SELECT {', '.join(sizes)} FROM {table}").fetchone()
            out[table] = {c: round(float(v), 1) for c, v in zip(cols, row, strict=True) if v}
    finally:
        db.close()
    return out


# --- the cold process ------------------------------------------------------------------


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return math.nan


async def cold(url: str, ids: list[str], spawned: float) -> dict[str, Any]:
    """The fresh process: open the engine with its worker, decide `ids` one at a time."""
    imported = time.time()
    rss_imported = rss_mb()
    engine = hitl.build(url, 16)
    await engine.start_worker()  # open (connect, schema check, clock) and the worker
    opened = time.time()
    rss_open = rss_mb()
    latencies = []
    first_done = math.nan
    for k, rid in enumerate(ids):
        start = time.perf_counter()
        await engine.approve(rid, "manager", by="bench")
        result = await engine.result(rid, timeout=60)
        assert result["status"] == "refunded", result
        latencies.append(round((time.perf_counter() - start) * 1000, 2))
        if k == 0:
            first_done = time.time()
    rss_done = rss_mb()
    idle_cpu, lag = await idle(2.0)
    await engine.close()
    return {
        "python_and_imports_s": round(imported - spawned, 3),
        "cold_open_s": round(opened - imported, 3),
        "first_decision_s_from_process_start": round(first_done - spawned, 3),
        "first_decision_s_from_open": round(first_done - opened, 3),
        "decision_ms": latencies,
        "rss_mb_after_imports": rss_imported,
        "rss_mb_after_open": rss_open,
        "rss_mb_after_decisions": rss_done,
        "idle_worker_cpu_pct": idle_cpu,
        "idle_loop_lag_ms_max": lag,
    }


async def idle(seconds: float) -> tuple[float, float]:
    """(CPU of this process while its worker idles, in % of one core; the longest the
    event loop was held meanwhile, in ms: how late a 10 ms sleep woke at worst)."""
    cpu, start = time.process_time(), time.perf_counter()
    lag = 0.0
    while time.perf_counter() - start < seconds:
        before = time.perf_counter()
        await asyncio.sleep(0.01)
        lag = max(lag, (time.perf_counter() - before - 0.01) * 1000)
    used = (time.process_time() - cpu) / (time.perf_counter() - start)
    return round(100 * used, 1), round(lag, 1)


def fresh_process(url: str, n: int, decisions: int) -> dict[str, Any]:
    """Run `cold` in a new Python process on a store of n filled runs."""
    ids = [run_id((k * 7919 + 13) % n) for k in range(decisions)]
    spawned = time.time()
    command = [sys.executable, __file__, "--cold", url, "--ids", ",".join(ids)]
    out = subprocess.run(
        [*command, "--spawned", repr(spawned)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("-n", type=int, default=1_000_000, help="waiting runs")
    parser.add_argument("--db", default=None, help="database URL (default: a temp SQLite file)")
    parser.add_argument("--baseline-n", type=int, default=10_000, help="the small store")
    parser.add_argument("--decisions", type=int, default=20, help="decided in the fresh process")
    parser.add_argument("--check-n", type=int, default=1000, help="runs in the check (0: none)")
    parser.add_argument("--keep", action="store_true", help="keep the big store")
    parser.add_argument("--cold", help=argparse.SUPPRESS)
    parser.add_argument("--ids", help=argparse.SUPPRESS)
    parser.add_argument("--spawned", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cold:
        print(json.dumps(await cold(args.cold, args.ids.split(","), args.spawned)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'million.db'}"
        report: dict[str, Any] = {"store": url.split(":", 1)[0], "n": args.n}
        if args.check_n:
            report["check"] = await check(url, args.check_n)
        baseline = other_store(url, "baseline")
        await fill(baseline, args.baseline_n)
        small = fresh_process(baseline, args.baseline_n, args.decisions)
        drop(baseline)
        report["fill_s"] = round(await fill(url, args.n), 1)
        breakdown = disk(url, args.n)
        columns_ = columns(url)
        big = fresh_process(url, args.n, args.decisions)
        later = big["decision_ms"][1:] or big["decision_ms"]
        report.update(
            {k: v for k, v in big.items() if k != "decision_ms"},
            decision_ms=big["decision_ms"],
            decision_ms_p50=round(statistics.median(later), 2),
            rss_mb_10k_baseline={
                "after_open": small["rss_mb_after_open"],
                "after_decisions": small["rss_mb_after_decisions"],
            },
            baseline={"n": args.baseline_n, **small},  # the same, on the small store
        )
        report["disk_bytes_per_waiting_run"] = breakdown.pop("bytes_per_run")
        report["disk_breakdown"] = breakdown
        report["column_bytes_per_row"] = columns_
        if not args.keep:
            drop(url)
        print(json.dumps(report))


if __name__ == "__main__":
    asyncio.run(main())
