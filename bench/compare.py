#!/usr/bin/env python3
"""signoff beside its peers: runs the same human-in-the-loop workload on each, in turn.

For each store, one after the other and never two at once: signoff's `bench/hitl.py`,
LangGraph's `langgraph_hitl.py` and the bare-SQL limit `limit_raw.py` (a transaction per
transition; on PostgreSQL also group commit) from the peers folder, each in its own
virtualenv. Maps each one's JSON onto common figures, prints a table to stderr and one
JSON line on stdout with every system's figures and the ratios signoff / system.

    .venv/bin/python bench/compare.py                  # SQLite N=10000, PostgreSQL N=1000
    .venv/bin/python bench/compare.py --store sqlite -n 2000 --langgraph-n 1000
    .venv/bin/python bench/compare.py --store pg --peers-dir ../shared/peers

The whole sequence holds an exclusive lock on /tmp/bench.lock, so it never overlaps
another benchmark that takes the same lock. A peer whose virtualenv is missing is
reported as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")

# The common figures, and where each system's JSON keeps them.
FIELDS = ("runs_per_s", "decisions_per_s", "p50_ms", "p99_ms", "kb_per_waiting")
SIGNOFF_KEYS = {
    "runs_per_s": "runs_per_s_to_waiting",
    "decisions_per_s": "decisions_per_s_to_completed",
    "p50_ms": "latency_ms_p50",
    "p99_ms": "latency_ms_p99",
}
PEER_KEYS = {
    "runs_per_s": "start_wf_per_s",
    "decisions_per_s": "decide_per_s",
    "p50_ms": "lat_p50_ms",
    "p99_ms": "lat_p99_ms",
    "kb_per_waiting": "rss_per_paused_kb",
}


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


@contextlib.contextmanager
def locked(path: str) -> Iterator[None]:
    """Hold an exclusive flock on `path` (waiting for whoever holds it)."""
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for {path} (another benchmark is running)")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_json(argv: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run a benchmark; its last JSON line on stdout, with the wall time it took. stderr
    passes through."""
    log("$", " ".join(argv))
    t0 = time.perf_counter()
    proc = subprocess.run(
        argv, stdout=subprocess.PIPE, text=True, env=env, timeout=timeout, check=False
    )
    lines = [line for line in proc.stdout.splitlines() if line.lstrip().startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"exit status {proc.returncode}, {len(lines)} JSON lines")
    record: dict[str, Any] = json.loads(lines[-1])
    record["_wall_s"] = round(time.perf_counter() - t0, 1)
    return record


def figures(record: dict[str, Any], keys: dict[str, str]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for field, key in keys.items():
        value = record.get(key)
        out[field] = None if value is None else round(float(value), 3)
    return out


def signoff(args: argparse.Namespace, store: str, n: int, env: dict[str, str]) -> dict[str, Any]:
    python = REPO / ".venv" / "bin" / "python"
    argv = [str(python if python.exists() else sys.executable), str(REPO / "bench" / "hitl.py")]
    argv += ["-n", str(n), "--sample", str(args.sample)]
    if store == "pg":
        recreate_db(argv[0], args.pg_db)
        argv += ["--db", ADMIN.rsplit("/", 1)[0] + "/" + args.pg_db]
    record = run_json(argv, env, args.timeout)
    common = figures(record, SIGNOFF_KEYS)
    per_run = record.get("rss_bytes_per_waiting_run")
    common["kb_per_waiting"] = None if per_run is None else round(per_run / 1024, 3)
    ok = bool(record.get("effects_exactly_once"))
    return {"n": n, **common, "ok": ok, "wall_s": record.pop("_wall_s"), "raw": record}


def recreate_db(python: str, name: str) -> None:
    """Drop and create signoff's PostgreSQL database (with the psycopg of its venv)."""
    code = (
        "import psycopg, sys\n"
        "with psycopg.connect(sys.argv[1], autocommit=True) as c:\n"
        "    c.execute(f'DROP DATABASE IF EXISTS \"{sys.argv[2]}\" WITH (FORCE)')\n"
        "    c.execute(f'CREATE DATABASE \"{sys.argv[2]}\"')\n"
    )
    subprocess.run([python, "-c", code, ADMIN, name], check=True)


def peer(
    args: argparse.Namespace, venv: str, script: str, extra: list[str], n: int, env: dict[str, str]
) -> dict[str, Any]:
    python = Path(args.venvs) / venv / "bin" / "python"
    path = Path(args.peers_dir) / script
    if not python.exists():
        return {
            "n": n,
            "skipped": f"no virtualenv at {python.parent.parent} (see the peers' README)",
        }
    if not path.exists():
        return {"n": n, "skipped": f"no {path}"}
    argv = [str(python), str(path), *extra, "--n", str(n), "--lat", str(args.sample)]
    record = run_json(argv, env, args.timeout)
    ok = record.get("completed") == n
    return {
        "n": n,
        **figures(record, PEER_KEYS),
        "ok": ok,
        "wall_s": record.pop("_wall_s"),
        "raw": record,
    }


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or not b:
        return None
    return float(f"{a / b:.3g}")


def one_store(args: argparse.Namespace, store: str, env: dict[str, str]) -> dict[str, Any]:
    n = args.n or (10_000 if store == "sqlite" else 1_000)
    lg_n = args.langgraph_n or n
    backend = ["--backend", store]
    txn, batch = [*backend, "--mode", "txn"], [*backend, "--mode", "batch"]
    jobs: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("signoff", lambda: signoff(args, store, n, env)),
        ("langgraph", lambda: peer(args, "langgraph", "langgraph_hitl.py", backend, lg_n, env)),
        ("limit-txn", lambda: peer(args, "raw", "limit_raw.py", txn, n, env)),
    ]
    if store == "pg":  # on SQLite the limit is a transaction per transition, as in the README
        jobs.append(("limit-batch", lambda: peer(args, "raw", "limit_raw.py", batch, n, env)))
    runs: dict[str, Any] = {}
    for name, job in jobs:
        try:
            runs[name] = job()
        except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as exc:
            runs[name] = {"skipped": f"failed: {exc}"}  # reported, not raised
        if "skipped" in runs[name]:
            log(f"{name}: skipped: {runs[name]['skipped']}")
    base = runs["signoff"]
    ratios = {
        f"signoff/{name}": {f: ratio(base.get(f), fig.get(f)) for f in FIELDS}
        for name, fig in runs.items()
        if name != "signoff" and "skipped" not in fig and "skipped" not in base
    }
    notes = []
    if lg_n != n:
        notes.append(f"LangGraph at N={lg_n}, the others at N={n}")
    return {"n": n, "systems": runs, "ratios": ratios, "notes": notes}


def table(results: dict[str, Any]) -> str:
    heads = ("runs/s", "decisions/s", "p50 ms", "p99 ms", "KB/waiting")
    rows = [f"{'store':<7}{'system':<13}{'N':>7}" + "".join(f"{h:>13}" for h in heads)]
    for store, res in results.items():
        for name, fig in res["systems"].items():
            start = f"{store:<7}{name:<13}{fig.get('n', ''):>7}"
            if "skipped" in fig:
                rows.append(f"{start}  skipped: {fig['skipped']}")
                continue
            rows.append(start + "".join(f"{fmt(fig[f]):>13}" for f in FIELDS))
        for name, rat in res["ratios"].items():
            rows.append(
                f"{store:<7}{name:<20}" + "".join(f"{fmt(rat[f], 'x'):>13}" for f in FIELDS)
            )
        rows += [f"{store:<7}note: {note}" for note in res["notes"]]
    return "\n".join(rows)


def fmt(value: float | None, suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.3g}{suffix}" if abs(value) < 100 else f"{value:,.0f}{suffix}"


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "pg", "both"], default="both")
    parser.add_argument(
        "-n", type=int, default=None, help="runs (default 10000 on SQLite, 1000 on PostgreSQL)"
    )
    parser.add_argument("--langgraph-n", type=int, default=None, help="LangGraph's N (default N)")
    parser.add_argument(
        "--sample", type=int, default=200, help="decided one at a time for latency (all systems)"
    )
    parser.add_argument(
        "--peers-dir", default=str(REPO.parent / "shared" / "peers"), help="the peer scripts"
    )
    parser.add_argument(
        "--venvs",
        default=os.environ.get("PEERS_VENVS") or str(Path.home() / ".cache" / "signoff-peers"),
        help="the peers' virtualenvs (default $PEERS_VENVS or ~/.cache/signoff-peers)",
    )
    parser.add_argument("--pg-db", default="bench_compare", help="signoff's PostgreSQL database")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per system")
    parser.add_argument("--lock", default="/tmp/bench.lock", help="the lock all benchmarks take")
    args = parser.parse_args()
    stores = ["sqlite", "pg"] if args.store == "both" else [args.store]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as data, locked(args.lock):
        env = {**os.environ, "PEERS_DATA": data, "BENCH_PG_ADMIN": ADMIN}
        t0 = time.perf_counter()
        for store in stores:
            results[store] = one_store(args, store, env)
        wall = round(time.perf_counter() - t0, 1)
    log(table(results))
    print(json.dumps({"date": time.strftime("%Y-%m-%d"), "wall_s": wall, "stores": results}))


if __name__ == "__main__":
    cli()
