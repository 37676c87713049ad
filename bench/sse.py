"""Live stream under load over HTTP: a benchmark, not a test.

Starts `signoff serve` (uvicorn, API and worker in one process) on 127.0.0.1, starts N
runs that each wait for one approval, opens one SSE stream per run (N concurrent
subscribers, held open), then sends the N decisions through the API (`--concurrency`
at once) and times, per run, from sending its decision to its `input_resolved` event
arriving on its stream. Prints one JSON line: decisions/s over HTTP, latency
percentiles, and the server's memory (RSS now and peak).

    .venv/bin/python bench/sse.py                     # N=1000 on SQLite
    .venv/bin/python bench/sse.py -n 200 --db postgresql://postgres@127.0.0.1/ssebench

This module is also the APP the server imports (`bench.sse:engine`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from signoff import Context, Engine

ROOT = Path(__file__).resolve().parents[1]
engine = Engine(os.environ.get("SIGNOFF_DATABASE_URL", "sqlite:///signoff.db"))


@engine.workflow("sse_bench")
async def sse_bench(ctx: Context, n: int) -> str:
    decision = await ctx.approval("ok", summary=f"item {n}")
    return decision.status.value


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_kb(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            name, value = line.split(":")
            fields[name] = int(value.split()[0])
    return fields


async def _post(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, body: bytes, auth: str
) -> None:
    """One POST on a kept-alive connection; raises unless the answer is 2xx."""
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    status = (await reader.readline()).split(b" ", 2)
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    answer = await reader.readexactly(length)
    if not status[1].startswith(b"2"):
        raise RuntimeError(f"{path}: {status[1].decode()} {answer[:200]!r}")


def _cpu_s(pid: int) -> float:
    """User and system CPU seconds of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _tokens(url: str) -> dict[str, str]:
    e = Engine(url)
    try:
        return {
            "starter": (await e.access.create_token("starter", ["read", "start"]))[1],
            "approver": (await e.access.create_token("approver", ["read", "decide"]))[1],
        }
    finally:
        await e.close()


async def _subscribe(
    port: int, token: str, run_id: str, ready: asyncio.Event, got: dict[str, float]
) -> None:
    """A raw HTTP/1.1 SSE reader (cheap enough to hold a thousand of)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    writer.write(
        f"GET /runs/{run_id}/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    event = ""
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            text = line.decode().strip()
            if text == ": connected":
                ready.set()
            elif text.startswith("event: "):
                event = text[7:]
            elif text.startswith("data: ") and event == "input_resolved":
                got[run_id] = time.perf_counter()
                return
    finally:
        writer.close()


async def _wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient() as c:
        for _ in range(400):
            with contextlib.suppress(httpx.TransportError):
                if (await c.get(f"{url}/healthz")).status_code == 200:
                    return
            if proc.poll() is not None:
                raise SystemExit("the server exited")
            await asyncio.sleep(0.05)
    raise SystemExit("the server did not come up")


async def bench(n: int, db: str, concurrency: int) -> dict[str, Any]:
    tokens = await _tokens(db)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "SIGNOFF_DATABASE_URL": db, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "signoff", "serve", "bench.sse:engine", "--port", str(port),
         "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await _wait_healthy(url, proc)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
            gate = asyncio.Semaphore(concurrency)
            starter = {"Authorization": f"Bearer {tokens['starter']}"}
            approver = {"Authorization": f"Bearer {tokens['approver']}"}

            async def start(i: int) -> str:
                async with gate:
                    res = await http.post(
                        "/runs", json={"workflow": "sse_bench", "args": [i]}, headers=starter
                    )
                    res.raise_for_status()
                    return str(res.json()["id"])

            run_ids = await asyncio.gather(*(start(i) for i in range(n)))
            while True:  # until every run waits for its approval
                res = await http.get("/approvals", params={"limit": 500}, headers=starter)
                page = res.json()
                if len(page["items"]) >= min(n, 500):
                    waiting = await _count_waiting(db)
                    if waiting >= n:
                        break
                await asyncio.sleep(0.2)

            got: dict[str, float] = {}
            readies = [asyncio.Event() for _ in run_ids]
            subscribers = [
                asyncio.create_task(_subscribe(port, tokens["starter"], r, ev, got))
                for r, ev in zip(run_ids, readies, strict=True)
            ]
            await asyncio.wait_for(asyncio.gather(*(ev.wait() for ev in readies)), 120)
            held = sum(1 for t in subscribers if not t.done())
            sent: dict[str, float] = {}

            # the decisions go over raw keep-alive HTTP/1.1 connections: httpx costs the
            # client more CPU per request than the server spends, and both share 2 cores
            todo = iter(run_ids)

            async def decider() -> None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                try:
                    for run_id in todo:
                        sent[run_id] = time.perf_counter()
                        await _post(reader, writer, f"/runs/{run_id}/approvals/ok/decision",
                                    b'{"action":"approve"}', approver["Authorization"])  # fmt: skip
                finally:
                    writer.close()

            t0 = time.perf_counter()
            cpu0, own0 = _cpu_s(proc.pid), time.process_time()
            await asyncio.gather(*(decider() for _ in range(concurrency)))
            decide_seconds = time.perf_counter() - t0
            await asyncio.wait_for(asyncio.gather(*subscribers), 120)
            all_seen = time.perf_counter() - t0
            server_cpu, client_cpu = _cpu_s(proc.pid) - cpu0, time.process_time() - own0
        latencies = sorted((got[r] - sent[r]) * 1000 for r in run_ids if r in got)
        memory = _rss_kb(proc.pid)
        return {
            "bench": "sse",
            "db": db.split("?")[0].split(":")[0],
            "runs": n,
            "subscribers_held": held,
            "decision_concurrency": concurrency,
            "decisions_per_s": round(n / decide_seconds, 1),
            "events_received": len(latencies),
            "all_events_after_s": round(all_seen, 2),
            "latency_ms_p50": round(statistics.median(latencies), 1),
            "latency_ms_p99": round(latencies[int(len(latencies) * 0.99) - 1], 1),
            "latency_ms_max": round(latencies[-1], 1),
            "server_cpu_ms_per_decision": round(1000 * server_cpu / n, 2),
            "client_cpu_ms_per_decision": round(1000 * client_cpu / n, 2),
            "server_rss_mb": round(memory["VmRSS"] / 1024, 1),
            "server_peak_rss_mb": round(memory["VmHWM"] / 1024, 1),
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _count_waiting(db: str) -> int:
    e = Engine(db)
    try:
        return await e.count_runs(status="waiting", workflow="sse_bench")
    finally:
        await e.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="runs = subscribers = decisions")
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--concurrency", type=int, default=32, help="decisions in flight")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * args.n + 256)), hard))
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or f"sqlite:///{tmp}/sse.db"
        print(json.dumps(asyncio.run(bench(args.n, db, args.concurrency))))


if __name__ == "__main__":
    main()
