"""Traces, metrics and hooks, on each backend, through the OpenTelemetry SDK's in-memory
span exporter and metric reader (docs/observability.md)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)

from signoff import Context, Engine, RetryPolicy, hooks
from signoff.testing import FakeClock


@dataclass
class Traced:
    engine: Engine
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer: Any

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.name == name]

    def points(self, metric: str) -> list[tuple[dict[str, Any], Any]]:
        data = self.reader.get_metrics_data()
        found = []
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == metric:
                        found += [(dict(p.attributes or {}), p) for p in m.data.data_points]
        return found


@pytest.fixture
async def traced(store_url: str, clock: FakeClock) -> AsyncIterator[Traced]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    engine = Engine(
        store_url,
        clock=clock,
        poll_interval=0.01,
        lease="5s",
        tracer_provider=provider,
        meter_provider=meters,
    )
    yield Traced(engine, exporter, reader, provider.get_tracer("user-code"))
    await engine.close()
    meters.shutdown()


def register_refund(t: Traced) -> Any:
    engine = t.engine

    def load(order: str) -> int:  # sync: runs in a thread, the span goes with it
        with t.tracer.start_as_current_span("GET /orders"):  # as an instrumented client would
            return 120

    async def pay(order: str, amount: int) -> str:
        return f"paid {amount}"

    @engine.workflow(name="refund")
    async def refund(ctx: Context, order: str) -> str:
        amount = await ctx.step(load, order, name="load")
        decision = await ctx.approval("manager", summary=f"Refund {order}", proposed=amount)
        return await ctx.step(pay, order, decision.value, name="pay")

    return refund


async def test_spans_for_runs_steps_waits_and_decisions(traced: Traced, clock: FakeClock) -> None:
    engine = traced.engine
    refund = register_refund(traced)
    async with engine:
        run = await engine.start(refund, "ord-1")
        assert (await engine.settle(run.id)).status == "waiting"
        clock.advance(3600)
        await engine.approve(run.id, "manager", by="alice")
        assert await engine.result(run.id, timeout=10) == "paid 120"

    first, second = sorted(traced.named("run refund"), key=lambda s: s.start_time or 0)
    for span in (first, second):
        assert span.parent is None  # each execution is a root
        assert span.attributes is not None
        assert span.attributes["signoff.run_id"] == run.id
        assert span.attributes["signoff.workflow"] == "refund"
    assert first.attributes and first.attributes["signoff.run.outcome"] == "waiting"
    assert second.attributes and second.attributes["signoff.run.outcome"] == "completed"

    # the journaled step is not executed again on replay: one span per step
    (load,) = traced.named("step load")
    (pay,) = traced.named("step pay")
    assert load.parent is not None and load.parent.span_id == first.context.span_id
    assert pay.parent is not None and pay.parent.span_id == second.context.span_id
    assert load.attributes and load.attributes["signoff.step"] == "load"
    assert load.attributes["signoff.run_id"] == run.id
    (http,) = traced.named("GET /orders")  # the step's own client call nests under it
    assert http.parent is not None and http.parent.span_id == load.context.span_id

    (wait,) = traced.named("wait approval")
    assert wait.parent is not None and wait.parent.span_id == first.context.span_id
    assert wait.attributes and wait.attributes["signoff.approval.key"] == "manager"
    assert wait.attributes["signoff.wait.parked"] is True

    (decide,) = traced.named("decide approved")
    attrs = decide.attributes or {}
    assert attrs["signoff.approver"] == "alice"
    assert attrs["signoff.approval.key"] == "manager"
    assert attrs["signoff.run_id"] == run.id
    assert attrs["signoff.workflow"] == "refund"
    assert attrs["signoff.decision.waited"] == pytest.approx(3600, abs=1)


class LeaveOutRuns(Sampler):
    """Samples every span but the runs': what a sampler that drops some traces does."""

    def should_sample(
        self, parent_context: Any, trace_id: int, name: str, *a: Any, **k: Any
    ) -> Any:
        return SamplingResult(
            Decision.DROP if name.startswith("run ") else Decision.RECORD_AND_SAMPLE
        )

    def get_description(self) -> str:
        return "LeaveOutRuns"


async def test_a_run_the_sampler_leaves_out_starts_no_span_inside_it(
    store_url: str, clock: FakeClock
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=LeaveOutRuns())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    engine = Engine(store_url, clock=clock, poll_interval=0.01, tracer_provider=provider)
    traced = Traced(engine, exporter, InMemoryMetricReader(), provider.get_tracer("user-code"))
    refund = register_refund(traced)
    async with engine:
        run = await engine.start(refund, "ord-3")
        assert (await engine.settle(run.id)).status == "waiting"
        await engine.approve(run.id, "manager", by="alice")
        assert await engine.result(run.id, timeout=10) == "paid 120"
    names = sorted(s.name for s in traced.finished())
    # no step or wait span of its own; the step's client call is the user's business
    assert names == ["GET /orders", "decide approved"]
    (http,) = traced.named("GET /orders")
    assert http.parent is not None and not http.parent.trace_flags.sampled


async def test_a_parent_based_ratio_sampler_keeps_or_drops_whole_executions(
    store_url: str, clock: FakeClock
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.5)))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    engine = Engine(store_url, clock=clock, poll_interval=0.01, tracer_provider=provider)
    traced = Traced(engine, exporter, InMemoryMetricReader(), provider.get_tracer("user-code"))
    refund = register_refund(traced)
    async with engine:
        runs = [await engine.start(refund, f"ord-{i}") for i in range(16)]
        for run in runs:
            assert (await engine.settle(run.id)).status == "waiting"
    spans = traced.finished()
    recorded = {s.context.span_id for s in spans if s.name == "run refund"}
    assert 0 < len(recorded) < 16  # some executions kept, some dropped (p = 2 ** -15 each)
    inside = [s for s in spans if s.name != "run refund"]
    assert sorted({s.name for s in inside}) == ["GET /orders", "step load", "wait approval"]
    # every span under a run belongs to a recorded execution: no orphans of dropped runs
    steps = {s.context.span_id for s in inside if s.name == "step load"}
    for span in inside:
        assert span.parent is not None
        assert span.parent.span_id in (steps if span.name == "GET /orders" else recorded)
    assert len([s for s in inside if s.name == "wait approval"]) == len(recorded)


async def test_a_failing_step_is_an_error_span_and_counted(traced: Traced) -> None:
    engine = traced.engine

    def broken() -> None:
        raise ValueError("nope")

    @engine.workflow(name="fragile")
    async def fragile(ctx: Context) -> None:
        await ctx.step(broken, name="broken", retry=RetryPolicy(attempts=2, initial_interval=0.001))

    async with engine:
        run = await engine.start(fragile)
        assert (await engine.settle(run.id)).status == "failed"

    (step,) = traced.named("step broken")
    assert step.status.status_code == trace.StatusCode.ERROR
    assert [e.name for e in step.events].count("attempt failed") == 2
    (run_span,) = traced.named("run fragile")
    assert run_span.attributes and run_span.attributes["signoff.run.outcome"] == "failed"
    assert run_span.status.status_code == trace.StatusCode.ERROR
    failures = {p[0]["signoff.final"]: p[1].value for p in traced.points("signoff.step.failures")}
    assert failures == {False: 1, True: 1}
    (duration,) = traced.points("signoff.step.duration")
    assert duration[0]["signoff.outcome"] == "failed" and duration[1].count == 1


async def test_metrics_runs_waiting_approvals_and_time_to_decision(
    traced: Traced, clock: FakeClock
) -> None:
    engine = traced.engine
    refund = register_refund(traced)
    async with engine:
        run = await engine.start(refund, "ord-2")
        await engine.settle(run.id)
        await engine.telemetry.refresh()  # what a collection asks for when the reading is old
        waiting = traced.points("signoff.approvals.waiting")
        assert [(a, p.value) for a, p in waiting] == [({"signoff.workflow": "refund"}, 1)]
        runs = {a["signoff.status"]: p.value for a, p in traced.points("signoff.runs")}
        assert runs == {"waiting": 1}
        clock.advance("2h")
        await engine.approve(run.id, "manager", by="alice")
        await engine.result(run.id, timeout=10)

    transitions = {
        a["signoff.status"]: p.value for a, p in traced.points("signoff.run.transitions")
    }
    # created already claimed by the in-process worker: running, then waiting, completed
    assert transitions == {"running": 1, "waiting": 1, "completed": 1}
    ((attrs, point),) = traced.points("signoff.decision.duration")
    assert attrs == {
        "signoff.workflow": "refund",
        "signoff.approver": "alice",
        "signoff.status": "approved",
    }
    assert point.count == 1 and point.sum == pytest.approx(7200, abs=1)
    steps = {a["signoff.step"]: p.count for a, p in traced.points("signoff.step.duration")}
    assert steps == {"load": 1, "pay": 1}
    # the same, kept in process for /metrics
    stats = engine.telemetry.stats
    decided = stats.histograms["signoff_decision_duration_seconds"]
    assert list(decided) == [
        (("approver", "alice"), ("status", "approved"), ("workflow", "refund"))
    ]


async def test_held_histogram_records_keep_their_exemplars(traced: Traced) -> None:
    """Step durations are handed to the SDK when the reader collects, with the context
    they were recorded in: the exemplar still names the run's trace."""
    engine = traced.engine
    refund = register_refund(traced)
    async with engine:
        run = await engine.start(refund, "ord-4")
        assert (await engine.settle(run.id)).status == "waiting"
        assert len(engine.telemetry.held) == 1  # the step's duration, not yet collected
        ((attrs, point),) = traced.points("signoff.step.duration")
    assert attrs["signoff.step"] == "load" and point.count == 1
    (first,) = traced.named("run refund")
    assert [e.trace_id for e in point.exemplars] == [first.context.trace_id]


async def test_hooks_fire_in_order_once_and_never_fail_the_run(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[str, ...]] = []

    @engine.hooks.before_step
    def broken_hook(step: hooks.StepInfo) -> None:
        raise RuntimeError("a hook with a bug")

    @engine.hooks.before_step
    async def before(step: hooks.StepInfo) -> None:
        seen.append(("before", step.step, str(step.seq)))

    @engine.hooks.after_step
    def after(done: hooks.StepDone) -> None:
        seen.append(("after", done.step, str(done.result), str(done.attempts)))

    @engine.hooks.on_wait
    def waited(wait: hooks.WaitInfo) -> None:
        seen.append(("wait", wait.kind, wait.name, str(wait.answered)))

    @engine.hooks.on_complete
    async def complete(run: hooks.RunDone) -> None:
        seen.append(("complete", run.status, str(run.result)))

    @engine.hooks.on_complete
    def broken_end(run: hooks.RunDone) -> None:
        raise ValueError("also broken")

    def double(x: int) -> int:
        return 2 * x

    @engine.workflow(name="hooked")
    async def hooked(ctx: Context, x: int) -> int:
        y = await ctx.step(double, x, name="double")
        decision = await ctx.approval("go", summary="go?")
        assert decision.approved
        return await ctx.step(double, y, name="again")

    with caplog.at_level(logging.ERROR, logger="signoff.hooks"):
        async with engine:
            run = await engine.start(hooked, 5)
            await engine.settle(run.id)
            # hooks run in the worker after the write they follow: a reader may see the
            # run waiting just before `on_wait` has fired
            for _ in range(500):
                if len(seen) >= 3:
                    break
                await asyncio.sleep(0.01)
            assert seen == [
                ("before", "double", "0"),
                ("after", "double", "10", "1"),
                ("wait", "approval", "go", "False"),
            ]
            await engine.approve(run.id, "go", by="alice")
            assert await engine.result(run.id, timeout=10) == 20
    # replay passed "double" and the wait again: no hook fired for them
    assert seen[3:] == [
        ("before", "again", "2"),
        ("after", "again", "20", "1"),
        ("complete", "completed", "20"),
    ]
    failed = [r for r in caplog.records if getattr(r, "action", None) == "hook_failed"]
    assert [(r.hook, r.run_id) for r in failed] == [  # type: ignore[attr-defined]
        ("before_step", run.id),
        ("before_step", run.id),
        ("on_complete", run.id),
    ]


async def test_on_fail_and_a_failed_step_reach_their_hooks(engine: Engine) -> None:
    ended: list[hooks.RunDone] = []
    steps: list[hooks.StepDone] = []
    engine.hooks.on_fail(ended.append)
    engine.hooks.after_step(steps.append)
    engine.hooks.on_complete(lambda run: pytest.fail("a failed run is not complete"))

    def broken() -> None:
        raise KeyError("gone")

    @engine.workflow(name="doomed")
    async def doomed(ctx: Context) -> None:
        await ctx.step(broken, name="broken", retry=RetryPolicy(attempts=1))

    async with engine:
        run = await engine.start(doomed)
        assert (await engine.settle(run.id)).status == "failed"
    (step,) = steps
    assert not step.ok and step.error and step.error["type"] == "KeyError"
    (end,) = ended
    assert end.status == "failed" and end.run_id == run.id and end.error
    assert end.error["type"] == "StepError"
