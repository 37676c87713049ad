"""The cost of tracing, in instructions: a benchmark, not a test.

Counts, with `valgrind --tool=callgrind` (instructions do not move with the machine's
load, as CPU seconds do on a shared machine), what a run to waiting and a decision to
completed cost in `bench/hitl.py`'s workflow on SQLite with `tune_gc`, without the
OpenTelemetry SDK and with it: traces alone with one run in ten recorded (`spans:0.1`),
then traces and metrics with one run in ten and with every run recorded. Each
configuration runs three times: warm-up only, warm-up and K starts, warm-up, K starts
and K decisions; the differences, divided by K, are the costs per run and per decision.
Metrics are collected at the end of each phase (a reader's collection: held histogram
records are handed to the SDK there). Prints one JSON line.

    .venv/bin/python bench/trace_cost.py            # K=200, warm-up 100: ~20 minutes
    .venv/bin/python bench/trace_cost.py -k 100 --configs none,0.1
    .venv/bin/python bench/trace_cost.py --dry -k 5 --warm 5   # each harness once, no valgrind
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import hitl  # bench/hitl.py: its workflow and its tracing set-up

from signoff import tune_gc

COLLECTED = re.compile(r"Collected : (\d+)")


async def cycle(url: str, warm: int, starts: int, decisions: int, collect: Any) -> None:
    engine = hitl.build(url, concurrency=512)
    # Under valgrind a second of the clock holds fifty times less work than outside it, so
    # whatever the clock drives (the idle worker's poll, this harness's looks) would weigh
    # fifty times more, and with the machine's load: the worker is woken by each start and
    # decision anyway, and polls only every 10 s here
    engine.configure(poll_interval=10.0)
    async with engine:

        async def start(i: int) -> str:
            return (await engine.start("bench_refund", f"o{i}")).id

        async def decide(run_id: str) -> None:
            await engine.approve(run_id, "manager", by="bench")

        async def settled(status: str, n: int) -> None:
            # rarely: each look is two reads, and under valgrind a phase lasts many seconds
            while await engine.count_runs(status="pending") or await engine.count_runs(
                status="running"
            ):
                await asyncio.sleep(2.0)
            assert await engine.count_runs(status=status) >= n

        warmed = await hitl.clients(64, start, range(warm))
        await settled("waiting", warm)
        await hitl.clients(64, decide, warmed)
        await settled("completed", warm)
        collect()
        if starts:
            runs = await hitl.clients(64, start, range(warm, warm + starts))
            await settled("waiting", starts)
            collect()
            if decisions:
                await hitl.clients(64, decide, runs[:decisions])
                await settled("completed", warm + decisions)
                collect()


def spans_only(ratio: float) -> None:
    """The SDK's tracer provider alone (a batch processor to an exporter that drops),
    no meter provider: what spans cost without the metrics."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    class Dropping(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
    provider.add_span_processor(BatchSpanProcessor(Dropping(), max_queue_size=65536))
    trace.set_tracer_provider(provider)


def inner(args: argparse.Namespace) -> None:
    random.seed(0)  # the trace ids, hence which runs one-in-ten sampling records
    collect: Any = lambda: None  # noqa: E731
    if args.config.startswith("spans:"):
        spans_only(float(args.config.removeprefix("spans:")))
    elif args.config != "none":
        collect = hitl.tracing(float(args.config)).collect
    with tempfile.TemporaryDirectory() as tmp:
        tune_gc()
        url = f"sqlite:///{tmp}/cost.db?synchronous=normal"
        asyncio.run(cycle(url, args.warm, args.starts, args.decisions, collect))


def counted(
    config: str, warm: int, starts: int, decisions: int, tries: int = 2, dry: bool = False
) -> int:
    """Instructions of one run of the harness under callgrind (tried again once: under
    valgrind a run is 50 times slower, and a lease or a poll may time out)."""
    with tempfile.TemporaryDirectory() as tmp:
        counter = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out"]
        command = [
            *([] if dry else counter),
            sys.executable,
            __file__,
            "--inner",
            "--config",
            config,
            "--warm",
            str(warm),
            "--starts",
            str(starts),
            "--decisions",
            str(decisions),
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        failed = f"{' '.join(command[-9:])} failed:\n{done.stderr[-3000:]}"
        if tries <= 1:
            raise SystemExit(failed)
        print(failed, file=sys.stderr)
        return counted(config, warm, starts, decisions, tries - 1, dry)
    if dry:
        return 0
    found = COLLECTED.findall(done.stderr)
    if not found:
        raise SystemExit(f"valgrind printed no count:\n{done.stderr[-2000:]}")
    return int(found[-1])


def outer(args: argparse.Namespace) -> None:
    k, warm = args.k, args.warm
    result: dict[str, Any] = {"k": k, "warm": warm, "store": "sqlite", "tune_gc": True}
    base: tuple[float, float] | None = None
    for config in args.configs.split(","):
        if args.dry:
            counted(config, warm, k, k, dry=True)
            result[config] = "ran"
            continue
        w = counted(config, warm, 0, 0)
        s = counted(config, warm, k, 0)
        d = counted(config, warm, k, k)
        per_run, per_decision = (s - w) / k, (d - s) / k
        name = "no_sdk" if config == "none" else f"ratio_{config}".replace("ratio_spans:", "spans_")
        entry: dict[str, Any] = {
            "instructions_per_run_to_waiting": round(per_run),
            "instructions_per_decision_to_completed": round(per_decision),
        }
        if config == "none":
            base = (per_run, per_decision)
        elif base is not None:
            entry["over_no_sdk_run_pct"] = round((per_run / base[0] - 1) * 100, 1)
            entry["over_no_sdk_decision_pct"] = round((per_decision / base[1] - 1) * 100, 1)
        result[name] = entry
        print(json.dumps({name: entry}), file=sys.stderr)
    print(json.dumps(result))


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", type=int, default=200, help="runs measured (default 200)")
    parser.add_argument("--warm", type=int, default=100, help="cycles to warm up first")
    parser.add_argument(
        "--configs",
        default="none,spans:0.1,0.1,1.0",
        help="none (no SDK), sampling ratios (traces and metrics), spans:RATIO (traces alone)",
    )
    parser.add_argument(
        "--dry", action="store_true", help="run each harness once without valgrind (a check)"
    )
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", default="none", help=argparse.SUPPRESS)
    parser.add_argument("--starts", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--decisions", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    inner(args) if args.inner else outer(args)


if __name__ == "__main__":
    cli()
