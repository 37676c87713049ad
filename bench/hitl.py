"""Human-in-the-loop throughput and latency: a benchmark, not a test.

Starts N runs of a workflow with two steps, an approval and a side-effect step, until
all wait; decides them all, until all complete; then decides a sample one at a time to
measure decision-to-completion latency. Prints one JSON line.

    .venv/bin/python bench/hitl.py                    # N=10000, SQLite, synchronous=NORMAL
    .venv/bin/python bench/hitl.py -n 2000 --db sqlite:///b.db?synchronous=full
    .venv/bin/python bench/hitl.py --db postgresql://postgres@127.0.0.1/bench
    .venv/bin/python bench/hitl.py --db postgresql://... --workers 4   # 4 worker processes

With `--workers K` the runs execute in K separate worker processes (started and stopped
by the benchmark) and this process only starts runs and decides, as an API process would.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from signoff import Context, Engine, idempotency_key, tune_gc
from signoff.channels import Route, WebhookChannel

LEDGER: dict[str, int] = {}


async def load(order: str) -> dict[str, Any]:
    return {"order": order, "amount": 120}


async def draft(ticket: dict[str, Any]) -> dict[str, Any]:
    return {"amount": ticket["amount"], "why": "inside the window"}


async def pay(order: str, amount: int) -> str:
    key = idempotency_key()
    LEDGER[key] = LEDGER.get(key, 0) + 1
    return key


def build(url: str, concurrency: int, webhook: str | None = None) -> Engine:
    notifications = []
    if webhook is not None:  # every event of every run, signed, to the receiver
        secret = "whsec_" + base64.b64encode(b"b" * 32).decode()
        notifications.append(Route(WebhookChannel("bench", url=webhook, secret=secret)))
    engine = Engine(url, concurrency=concurrency, notifications=notifications)

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


async def worker_main(url: str, ledger_file: str, concurrency: int) -> None:
    """A worker process: execute runs until SIGTERM, then write the ledger it kept."""
    engine = build(url, concurrency)
    tune_gc()  # as `signoff worker` does
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with engine:
        print("ready", flush=True)
        await stop.wait()
    Path(ledger_file).write_text(json.dumps(LEDGER))


def spawn_workers(args: argparse.Namespace, tmp: str) -> list[subprocess.Popen[str]]:
    procs = []
    for i in range(args.workers):
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--worker-of",
                    args.db,
                    "--ledger",
                    f"{tmp}/ledger{i}.json",
                    "--concurrency",
                    str(args.concurrency),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return procs


def stop_workers(procs: list[subprocess.Popen[str]], tmp: str) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for i, proc in enumerate(procs):
        proc.wait(timeout=60)
        if proc.stdout is not None:
            proc.stdout.close()
        for key, count in json.loads(Path(f"{tmp}/ledger{i}.json").read_text()).items():
            LEDGER[key] = LEDGER.get(key, 0) + count


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


def spawn_receiver() -> tuple[subprocess.Popen[str], str]:
    receiver = Path(__file__).with_name("webhook_receiver.py")
    proc = subprocess.Popen([sys.executable, str(receiver)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = proc.stdout.readline().split()[1]
    return proc, f"http://127.0.0.1:{port}/hooks"


async def drained(engine: Engine) -> float:
    """Wait until no notification is left to deliver; seconds waited."""
    t0 = time.perf_counter()
    while (await engine.deliveries(status="pending", limit=1)) or (
        await engine.deliveries(status="delivering", limit=1)
    ):
        await asyncio.sleep(0.05)
    return time.perf_counter() - t0


async def main(args: argparse.Namespace, tmp: str, traced: Traced | None = None) -> dict[str, Any]:
    collect = traced.collect if traced is not None else lambda: None
    receiver, hook_url = spawn_receiver() if args.webhook else (None, None)
    engine = build(args.db, args.concurrency, hook_url)
    procs = spawn_workers(args, tmp) if args.workers else []
    if procs:
        await engine.open()
    async with contextlib.AsyncExitStack() as stack:
        if not procs:
            await stack.enter_async_context(engine)

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
        collect()
        t_wait = t_first + time.perf_counter() - t1
        cpu_wait = cpu_seconds() - cpu0
        gc.collect()
        rss_waiting = rss_bytes()

        cpu2 = cpu_seconds()
        t2 = time.perf_counter()
        await clients(args.clients, decide, runs)
        await until_settled(engine, "completed", args.n)
        collect()
        t_done = time.perf_counter() - t2
        cpu_done = cpu_seconds() - cpu2

        sample = await clients(args.clients, start, range(args.n, args.n + args.sample))
        await until_settled(engine, "waiting", args.sample)
        await asyncio.sleep(0.2)  # let the worker go idle
        latencies = []
        for r in sample:
            s = time.perf_counter()
            await engine.approve(r, "manager", by="bench")
            if procs:  # completion happens in another process: look every millisecond
                while (await engine.get_run(r)).status != "completed":
                    await asyncio.sleep(0.001)
            else:
                await engine.result(r, timeout=60)
            latencies.append((time.perf_counter() - s) * 1000)
        drain_s = await drained(engine) if receiver is not None else None
    if procs:
        stop_workers(procs, tmp)
        await engine.close()
    hooks: dict[str, Any] = {}
    if receiver is not None:
        receiver.send_signal(signal.SIGTERM)
        out, _ = receiver.communicate(timeout=30)
        hooks = json.loads(out.strip().splitlines()[-1])
        hooks = {
            "webhooks_expected": 3 * (args.n + args.sample),  # requested, decided, completed
            "webhooks_delivered": hooks["distinct"],
            "webhook_posts": hooks["posts"],
            "webhook_drain_s_after_last_run": round(drain_s or 0.0, 2),
        }
    effects = sum(LEDGER.values())
    total = args.n + args.sample
    disk = db_bytes(args.db)
    return {
        "store": args.db.split(":", 1)[0],
        "url": args.db,
        "n": args.n,
        "workers": args.workers or "in-process",
        "tune_gc": bool(args.tune_gc or args.workers),
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
        **hooks,
    }


class Traced:
    """What `tracing` set up: `collect()` the metrics (as a periodic reader would), and
    `spans()`: how many were exported, once the batch processor has flushed."""

    def __init__(self, collect: Callable[[], Any], spans: Callable[[], int]) -> None:
        self.collect, self.spans = collect, spans


def tracing(ratio: float = 1.0) -> Traced:
    """Set the global OpenTelemetry SDK providers: spans go through a batch processor to an
    exporter that counts and drops them; metrics aggregate in process, collected at the end
    of each phase, inside its CPU time (histogram records the engine still holds are
    handed to the SDK then)."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Counting(SpanExporter):
        count = 0

        def export(self, spans: Any) -> SpanExportResult:
            Counting.count += len(spans)
            return SpanExportResult.SUCCESS

    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
    provider.add_span_processor(BatchSpanProcessor(Counting(), max_queue_size=65536))
    trace.set_tracer_provider(provider)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return Traced(reader.get_metrics_data, lambda: provider.force_flush() and Counting.count)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000, help="runs (default 10000)")
    parser.add_argument("--db", default=None, help="database URL (default: temp SQLite, NORMAL)")
    parser.add_argument("--sample", type=int, default=200, help="runs decided one at a time")
    parser.add_argument("--concurrency", type=int, default=512, help="worker concurrency")
    parser.add_argument("--clients", type=int, default=512, help="starts/decisions in flight")
    parser.add_argument("--workers", type=int, default=0, help="worker processes (0: in-process)")
    parser.add_argument(
        "--webhook", action="store_true", help="a webhook channel on every event, to a receiver"
    )
    parser.add_argument(
        "--trace", action="store_true", help="OpenTelemetry SDK tracer and meter (spans dropped)"
    )
    parser.add_argument(
        "--trace-ratio", type=float, default=1.0, help="with --trace: the share of runs sampled"
    )
    parser.add_argument(
        "--tune-gc",
        action="store_true",
        help="in-process: signoff.tune_gc() first, as `signoff worker` and `serve` do",
    )
    parser.add_argument("--worker-of", help=argparse.SUPPRESS)
    parser.add_argument("--ledger", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_of:
        asyncio.run(worker_main(args.worker_of, args.ledger, args.concurrency))
        return
    with tempfile.TemporaryDirectory() as tmp:
        if args.db is None:
            args.db = f"sqlite:///{tmp}/bench.db?synchronous=normal"
        traced = tracing(args.trace_ratio) if args.trace else None
        if args.tune_gc:
            tune_gc()
        result = asyncio.run(main(args, tmp, traced))
        if traced is not None:
            result["spans"] = traced.spans()
        print(json.dumps(result))


if __name__ == "__main__":
    cli()
