"""Live stream under load over HTTP: a benchmark, not a test.

Starts `signoff serve` (uvicorn, API and worker in one process) on 127.0.0.1, starts N
runs that each wait for one approval, opens one SSE stream per run (N concurrent
subscribers, held open), then sends the N decisions through the API (`--concurrency`
at once) and times, per run, from sending its decision to its `input_resolved` event
arriving on its stream. With `--streams inbox` the N streams are N people's inboxes
(`/inbox/stream`, opened with stream tickets) and each run names one of them, so each
event may be seen by one stream of the N. Prints one JSON line: decisions/s over HTTP,
latency percentiles (and how long after the decision's answer its event came), CPU per
decision of the server and of this client, and the server's memory (RSS now and peak).

    .venv/bin/python bench/sse.py                     # N=1000 on SQLite
    .venv/bin/python bench/sse.py -n 200 --db postgresql://postgres@127.0.0.1/ssebench
    .venv/bin/python bench/sse.py --streams inbox
    SIGNOFF_BENCH_PROFILE=/tmp/sse.prof .venv/bin/python bench/sse.py   # then pstats

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
import uuid
from pathlib import Path
from typing import Any

import httpx

from signoff import Context, Engine

ROOT = Path(__file__).resolve().parents[1]
engine = Engine(os.environ.get("SIGNOFF_DATABASE_URL", "sqlite:///signoff.db"))


@engine.workflow("sse_bench")
async def sse_bench(ctx: Context, n: int, approver: str | None = None) -> str:
    named = None if approver is None else [approver]
    decision = await ctx.approval("ok", summary=f"item {n}", approvers=named)
    return decision.status.value


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_main(argv: list[str]) -> list[str]:
    """`-m signoff ARGV`; with SIGNOFF_BENCH_PROFILE=FILE the same with cProfile on the
    event loop's thread from SIGUSR1 (sent as the decisions start) to SIGUSR2 (sent once
    every event has arrived), its stats written to FILE then."""
    profile = os.environ.get("SIGNOFF_BENCH_PROFILE")
    if not profile:
        return ["-m", "signoff", *argv]
    code = (
        "import cProfile, runpy, signal, sys\n"
        "prof = cProfile.Profile()\n"
        "signal.signal(signal.SIGUSR1, lambda *_: prof.enable())\n"
        "def stop(*_):\n"
        "    prof.disable()\n"
        f"    prof.dump_stats({profile!r})\n"
        "signal.signal(signal.SIGUSR2, stop)\n"
        f"sys.argv = ['signoff', *{argv!r}]\n"
        "runpy.run_module('signoff', run_name='__main__')\n"
    )
    return ["-c", code]


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


async def _tokens(url: str, people: int) -> dict[str, str]:
    """Secrets of the tokens "starter", "approver" and `people` people p0, p1, ...
    (scope `decide` only: their inbox streams show what they may decide, no more)."""
    e = Engine(url)
    try:
        tokens = {
            "starter": (await e.access.create_token("starter", ["read", "start"]))[1],
            "approver": (await e.access.create_token("approver", ["read", "decide"]))[1],
        }
        for i in range(people):
            tokens[f"p{i}"] = (await e.access.create_token(f"p{i}", ["decide"]))[1]
        return tokens
    finally:
        await e.close()


async def _subscribe(
    port: int, path: str, token: str | None, run_id: str, ready: asyncio.Event,
    got: dict[str, float],
) -> None:  # fmt: skip
    """A raw HTTP/1.1 SSE reader (cheap enough to hold a thousand of) of `path`, until
    the `input_resolved` of `run_id`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    bearer = "" if token is None else f"Authorization: Bearer {token}\r\n"
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{bearer}"
        "Accept: text/event-stream\r\n\r\n".encode()
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


async def _stream_paths(
    http: httpx.AsyncClient, kind: str, run_ids: list[str], tokens: dict[str, str]
) -> list[tuple[str, str | None]]:
    """(path, bearer token) of the stream watched for each run: the run's own, or the
    inbox of the person it names (opened with a stream ticket, as a page would)."""
    if kind == "run":
        return [(f"/runs/{r}/stream", tokens["starter"]) for r in run_ids]
    paths: list[tuple[str, str | None]] = []
    for i in range(len(run_ids)):
        res = await http.post(
            "/stream-tickets", json={"stream": "inbox"},
            headers={"Authorization": f"Bearer {tokens[f'p{i}']}"},
        )  # fmt: skip
        res.raise_for_status()
        paths.append((str(res.json()["url"]), None))
    return paths


async def bench(n: int, db: str, concurrency: int, streams: str = "run") -> dict[str, Any]:
    inbox = streams == "inbox"
    tokens = await _tokens(db, n if inbox else 0)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "SIGNOFF_DATABASE_URL": db, "PYTHONPATH": path}
    serve = ["serve", "bench.sse:engine", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(
        [sys.executable, *_server_main(serve)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL
    )
    try:
        await _wait_healthy(url, proc)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
            gate = asyncio.Semaphore(concurrency)
            starter = {"Authorization": f"Bearer {tokens['starter']}"}
            approver = {"Authorization": f"Bearer {tokens['approver']}"}

            async def start(i: int) -> str:
                # with an id of its own (an idempotent start), tried again when the
                # connection drops: on a loaded machine a kept-alive one sometimes does
                body = {"workflow": "sse_bench", "args": [i, f"p{i}"] if inbox else [i],
                        "run_id": uuid.uuid4().hex}  # fmt: skip
                async with gate:
                    for attempt in range(3):
                        try:
                            res = await http.post("/runs", json=body, headers=starter)
                            break
                        except httpx.TransportError:
                            if attempt == 2:
                                raise
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
            paths = await _stream_paths(http, streams, run_ids, tokens)
            subscribers = [
                asyncio.create_task(_subscribe(port, path, token, r, ev, got))
                for (path, token), r, ev in zip(paths, run_ids, readies, strict=True)
            ]
            await asyncio.wait_for(asyncio.gather(*(ev.wait() for ev in readies)), 120)
            held = sum(1 for t in subscribers if not t.done())
            sent: dict[str, float] = {}
            answered: dict[str, float] = {}

            # the decisions go over raw keep-alive HTTP/1.1 connections: httpx costs the
            # client more CPU per request than the server spends, and both share 2 cores
            todo = iter(enumerate(run_ids))

            async def decider() -> None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                try:
                    for i, run_id in todo:
                        who = f"Bearer {tokens[f'p{i}']}" if inbox else approver["Authorization"]
                        sent[run_id] = time.perf_counter()
                        await _post(reader, writer, f"/runs/{run_id}/approvals/ok/decision",
                                    b'{"action":"approve"}', who)  # fmt: skip
                        answered[run_id] = time.perf_counter()
                finally:
                    writer.close()

            profiling = bool(os.environ.get("SIGNOFF_BENCH_PROFILE"))
            if profiling:
                proc.send_signal(signal.SIGUSR1)
            t0 = time.perf_counter()
            cpu0, own0 = _cpu_s(proc.pid), time.process_time()
            await asyncio.gather(*(decider() for _ in range(concurrency)))
            decide_seconds = time.perf_counter() - t0
            await asyncio.wait_for(asyncio.gather(*subscribers), 120)
            all_seen = time.perf_counter() - t0
            server_cpu, client_cpu = _cpu_s(proc.pid) - cpu0, time.process_time() - own0
            if profiling:
                proc.send_signal(signal.SIGUSR2)
                await asyncio.sleep(1)
        latencies = sorted((got[r] - sent[r]) * 1000 for r in run_ids if r in got)
        answers = sorted((answered[r] - sent[r]) * 1000 for r in run_ids)
        # how much later than the decision's answer its event came (< 0: before it)
        after_answer = sorted((got[r] - answered[r]) * 1000 for r in run_ids if r in got)
        memory = _rss_kb(proc.pid)
        return {
            "bench": "sse",
            "db": db.split("?")[0].split(":")[0],
            "runs": n,
            "streams": streams,
            "subscribers_held": held,
            "decision_concurrency": concurrency,
            "decisions_per_s": round(n / decide_seconds, 1),
            "events_received": len(latencies),
            "all_events_after_s": round(all_seen, 2),
            "latency_ms_p50": round(statistics.median(latencies), 1),
            "latency_ms_p99": round(_p99(latencies), 1),
            "latency_ms_max": round(latencies[-1], 1),
            "answer_ms_p50": round(statistics.median(answers), 1),
            "answer_ms_p99": round(_p99(answers), 1),
            "event_after_answer_ms_p50": round(statistics.median(after_answer), 1),
            "event_after_answer_ms_p99": round(_p99(after_answer), 1),
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


def _p99(values: list[float]) -> float:
    """The 99th percentile of sorted `values`."""
    return values[int(len(values) * 0.99) - 1]


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
    parser.add_argument(
        "--streams", choices=["run", "inbox"], default="run",
        help="run: each run's own stream; inbox: N people's inbox streams, each run "
        "naming one of them (every event goes to one stream of the N)",
    )  # fmt: skip
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * args.n + 256)), hard))
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or f"sqlite:///{tmp}/sse.db"
        print(json.dumps(asyncio.run(bench(args.n, db, args.concurrency, args.streams))))


if __name__ == "__main__":
    main()
