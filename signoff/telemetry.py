"""Traces and metrics through OpenTelemetry when it is installed (the `otel` extra), and
counters kept in this process for `/metrics`; without OpenTelemetry, no spans and no
instruments, and nothing of it is imported.

Spans (tracer "signoff"): `run WORKFLOW` per execution of a run (a root span; a run that
waits and resumes has one per execution), `step NAME` per step executed (the step runs
inside it, so the spans of instrumented clients it calls nest under it), `wait KIND` when
a wait is written down, `park` when a replayed run parks again, and `decide STATUS` per
decision made through the engine (in the process that decides). Attributes:
`signoff.run_id`, `signoff.workflow`, `signoff.step`, `signoff.approval.key`,
`signoff.approver`, `signoff.decision.waited` (seconds from request to decision), ...

Metrics (meter "signoff"): `signoff.run.transitions` (counter by workflow and status),
`signoff.runs` and `signoff.approvals.waiting` / `signoff.approvals.oldest_age`
(gauges read from the store when a reader collects), `signoff.decision.duration`
(histogram by workflow, approver and status), `signoff.step.duration` and
`signoff.step.failures`, `signoff.outbox.lag` (enqueue to delivery). docs/observability.md
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import contextvars
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from signoff import errors, logs
from signoff.store.sql_metrics import Gauges as Gauges  # what `refresh` reads

if TYPE_CHECKING:
    from signoff.outbox import Delivery
    from signoff.store.base import DecideOutcome, Store

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace as otel_trace
except ImportError:  # pragma: no cover - the `otel` extra is not installed
    otel_context = None  # type: ignore[assignment]
    otel_metrics = None  # type: ignore[assignment]
    otel_trace = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

VERSION = "0.1.0"
AVAILABLE = otel_trace is not None

STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
DECISION_BUCKETS = (
    1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 8 * 3600.0,
    86400.0, 3 * 86400.0, 7 * 86400.0, 30 * 86400.0,
)  # fmt: skip
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
GAUGE_MAX_AGE = 5.0  # seconds a store reading serves the OpenTelemetry gauges
# seconds between looks for a global tracer provider while none is set (each look reads
# the environment, a cost per step and decision for the many who never set one up)
PROVIDER_LOOK = 1.0
HELD_RECORDS = 1024  # histogram records held before they are handed to the SDK at once
_ROOT = otel_context.Context() if otel_context is not None else None  # a run span's parent
_NOTHING = contextlib.nullcontext()
# whether the span of the run executing in this context is recorded (`Telemetry.run` sets
# it): only then do its steps, waits and parks start spans (a run the sampler left out
# starts none inside it: under every standard sampler they would not be recorded either,
# and each would still cost a span's start)
_recording = contextvars.ContextVar("signoff_recording_run", default=False)

Labels = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)  # per bucket, not cumulative; +Inf last
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.buckets) + 1)
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1


class Stats:
    """Counters and histograms of this process, by metric name and labels (for `/metrics`)."""

    def __init__(self) -> None:
        self.counters: dict[str, dict[Labels, float]] = {}
        self.histograms: dict[str, dict[Labels, Histogram]] = {}

    def add(self, name: str, labels: Labels, amount: float = 1.0) -> None:
        series = self.counters.setdefault(name, {})
        series[labels] = series.get(labels, 0.0) + amount

    def observe(self, name: str, labels: Labels, value: float, buckets: tuple[float, ...]) -> None:
        series = self.histograms.setdefault(name, {})
        found = series.get(labels)
        if found is None:
            found = series[labels] = Histogram(buckets)
        found.observe(value)


class HeldRecords:
    """Histogram records on their way to the OpenTelemetry SDK, held and handed over
    together: when a reader collects (before it reads the histograms, so a collection
    includes every record made before it), when `limit` are held, or on `flush()`.

    The SDK's `Histogram.record` cleans, copies and hashes its attributes on every call;
    made one after another it costs a fraction of what it costs between a worker's other
    work. Each record keeps the context it was made in, so exemplars still point at the
    span that was current; an exemplar's time is when the record was handed over. A
    deque's `append` and `popleft` are atomic, so the worker may add while a reader's
    thread collects: each record is handed over exactly once."""

    __slots__ = ("_held", "limit")

    def __init__(self, limit: int = HELD_RECORDS) -> None:
        self._held: collections.deque[tuple[Any, float, dict[str, str], Any]] = collections.deque()
        self.limit = limit

    def __len__(self) -> int:
        return len(self._held)

    def add(self, instrument: Any, value: float, attributes: dict[str, str]) -> None:
        held = self._held
        held.append((instrument, value, attributes, otel_context.get_current()))
        if len(held) >= self.limit:
            self.flush()

    def flush(self) -> int:
        """Hand every held record to the SDK; how many were."""
        held, done = self._held, 0
        while True:
            try:
                instrument, value, attributes, context = held.popleft()
            except IndexError:
                return done
            instrument.record(value, attributes, context)
            done += 1


class RunScope:
    """`Telemetry.run`: the log context of an execution of a run, and its span when
    tracing; set `outcome` before the scope ends. (A plain class: a generator context
    manager costs as much again, once per execution.)"""

    __slots__ = ("_log", "_owner", "_recording", "_scope", "outcome", "span", "workflow")

    def __init__(self, owner: Telemetry, run_id: str, workflow: str) -> None:
        self._owner, self.workflow = owner, workflow
        self._log = logs.enter_run(run_id, workflow)
        self.outcome: str | None = None
        self.span: Any = None
        self._scope: _SpanScope | None = None
        if owner.tracing:
            attributes = {"signoff.run_id": run_id, "signoff.workflow": workflow}
            self._scope = owner._span(f"run {workflow}", attributes, root=True)
            self.span = self._scope.span
            self._recording = _recording.set(self.span.is_recording())

    def __enter__(self) -> RunScope:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        try:
            if self._scope is not None:
                _recording.reset(self._recording)
                span = self.span
                if self.outcome is not None:
                    span.set_attribute("signoff.run.outcome", self.outcome)
                if self.outcome == "failed":
                    span.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, "failed"))
                self._scope.__exit__(kind, exc, tb)
        finally:
            logs.exit_run(self._log)
        if self.outcome is not None and kind is None:
            self._owner.transition(self.workflow, self.outcome)


class Telemetry:
    """The spans, instruments and counters of one engine (`engine.telemetry`).

    `tracer_provider` / `meter_provider`: OpenTelemetry providers; default the global ones
    (set by your SDK setup, before or after the engine is made)."""

    def __init__(self, *, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self.stats = Stats()
        self.gauges: Gauges | None = None
        self._gauges_at = 0.0
        self._store: Store | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._refreshing: asyncio.Task[Any] | None = None
        self._tracer: Any = None
        self._own_provider = tracer_provider is not None
        self._traced = False
        self._look_after = 0.0  # when `tracing` may look for a global tracer provider again
        # attributes of the histograms' records, one dict per series (not one per record)
        self._step_attributes: dict[Labels, dict[str, str]] = {}
        self._decision_attributes: dict[Labels, dict[str, str]] = {}
        self.held = HeldRecords()
        if not AVAILABLE:
            return
        self._tracer = otel_trace.get_tracer("signoff", VERSION, tracer_provider=tracer_provider)
        meter = otel_metrics.get_meter("signoff", VERSION, meter_provider=meter_provider)
        # the counters are read from `stats` when a reader collects: nothing is paid per
        # transition or per failed attempt beyond the count `/metrics` keeps anyway; the
        # first callback hands the held histogram records over before the reader reads
        meter.create_observable_counter(
            "signoff.run.transitions",
            [self._hand_over, self._observe_transitions],
            unit="{run}",
            description="Runs entering each status",
        )
        self._step_duration = meter.create_histogram(
            "signoff.step.duration",
            unit="s",
            description="Time a step took, retries included",
            explicit_bucket_boundaries_advisory=list(STEP_BUCKETS),
        )
        meter.create_observable_counter(
            "signoff.step.failures",
            [self._observe_failures],
            unit="{attempt}",
            description="Failed step attempts",
        )
        self._decision = meter.create_histogram(
            "signoff.decision.duration",
            unit="s",
            description="Time from an approval's request to its decision",
            explicit_bucket_boundaries_advisory=list(DECISION_BUCKETS),
        )
        self._lag = meter.create_histogram(
            "signoff.outbox.lag",
            unit="s",
            description="Time from a notification's enqueueing to its delivery",
            explicit_bucket_boundaries_advisory=list(LAG_BUCKETS),
        )
        meter.create_observable_gauge(
            "signoff.runs", [self._observe_runs], unit="{run}", description="Runs by status"
        )
        meter.create_observable_gauge(
            "signoff.approvals.waiting",
            [self._observe_waiting],
            unit="{approval}",
            description="Approvals waiting for a decision",
        )
        meter.create_observable_gauge(
            "signoff.approvals.oldest_age",
            [self._observe_oldest],
            unit="s",
            description="Age of the oldest approval waiting for a decision",
        )

    # the store readings behind the gauges ----------------------------------------------

    def bind(self, store: Store) -> None:
        """Read gauges from `store`, on the running event loop (the engine does on open)."""
        self._store = store
        self._loop = asyncio.get_running_loop()

    async def refresh(self) -> Gauges:
        """Read the gauges from the store now (what `/metrics` shows at each scrape)."""
        if self._store is None:
            raise errors.InvalidRunState("open the engine first (`await engine.open()`)")
        self.gauges = await self._store.gauges()
        self._gauges_at = time.monotonic()
        return self.gauges

    def _stale(self) -> None:
        """A reader collects: have the gauges read again if they are old (a callback may
        not wait for the store; it reports the last reading)."""
        loop = self._loop
        if loop is None or time.monotonic() - self._gauges_at < GAUGE_MAX_AGE:
            return
        if self._refreshing is not None and not self._refreshing.done():
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(self._start_refresh)

    def _start_refresh(self) -> None:
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._refresh_quietly())

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:  # the store is down: the gauges keep their last reading
            log.debug("cannot read the gauges: %s", exc, extra={"action": "gauges_failed"})

    def _hand_over(self, options: Any) -> Iterable[Any]:
        self.held.flush()
        return ()

    def _observe_transitions(self, options: Any) -> Iterable[Any]:
        series = self.stats.counters.get("signoff_run_transitions_total", {})
        return [
            otel_metrics.Observation(n, {"signoff.workflow": w, "signoff.status": s})
            for ((_, s), (_, w)), n in list(series.items())
        ]

    def _observe_failures(self, options: Any) -> Iterable[Any]:
        series = self.stats.counters.get("signoff_step_failures_total", {})
        return [
            otel_metrics.Observation(
                n, {"signoff.workflow": w, "signoff.step": step, "signoff.final": final == "true"}
            )
            for ((_, final), (_, step), (_, w)), n in list(series.items())
        ]

    def _observe_runs(self, options: Any) -> Iterable[Any]:
        self._stale()
        runs = self.gauges.runs if self.gauges else {}
        return [
            otel_metrics.Observation(n, {"signoff.workflow": w, "signoff.status": s})
            for (w, s), n in sorted(runs.items())
        ]

    def _observe_waiting(self, options: Any) -> Iterable[Any]:
        self._stale()
        pending = self.gauges.approvals if self.gauges else {}
        return [
            otel_metrics.Observation(n, {"signoff.workflow": w})
            for w, (n, _) in sorted(pending.items())
        ]

    def _observe_oldest(self, options: Any) -> Iterable[Any]:
        pending = self.gauges.approvals if self.gauges else {}
        now = time.time()
        return [
            otel_metrics.Observation(max(0.0, now - oldest), {"signoff.workflow": w})
            for w, (_, oldest) in sorted(pending.items())
        ]

    # runs ------------------------------------------------------------------------------

    def transition(self, workflow: str, status: str) -> None:
        """A run of `workflow` entered `status` in this process."""
        self.stats.add(
            "signoff_run_transitions_total", (("status", status), ("workflow", workflow))
        )

    @property
    def tracing(self) -> bool:
        """Whether spans are recorded: a tracer provider was given, or one is set globally.
        Until then (the API alone, no SDK set up) no span is even started: a no-op span
        costs about as much as a step of a run. A global provider set after the engine
        started is seen within a second (it is looked for at most once a second), and
        since it can be set only once, once it is the answer is kept."""
        if self._traced:
            return True
        if self._tracer is None:
            return False
        now = time.monotonic()
        if now < self._look_after:  # looked less than a second ago: none was set then
            return False
        self._look_after = now + PROVIDER_LOOK
        provider = otel_trace.get_tracer_provider()
        self._traced = self._own_provider or not isinstance(
            provider, otel_trace.ProxyTracerProvider | otel_trace.NoOpTracerProvider
        )
        return self._traced

    def run(self, run_id: str, workflow: str) -> RunScope:
        """Around one execution of a run: its span (a root) and its log context; set the
        scope's `outcome` before it ends."""
        return RunScope(self, run_id, workflow)

    def _span(self, name: str, attributes: dict[str, Any], *, root: bool = False) -> _SpanScope:
        """A current span that records an `Exception` as its error (not the control flow
        that travels as BaseException: parking, cancellation)."""
        return _SpanScope(self._tracer, name, attributes, _ROOT if root else None)

    # steps and waits -------------------------------------------------------------------

    def step(
        self, run_id: str, workflow: str, step: str, seq: int
    ) -> contextlib.AbstractContextManager[None]:
        """Around a step executed (all its attempts and its journal write): its log
        context, its span when tracing, and its duration by outcome (ok, or failed by an
        Exception; a step cut off by parking or cancellation is not counted)."""
        return _StepScope(self, run_id, workflow, step, seq)

    def _stepped(self, workflow: str, step: str, outcome: str, took: float) -> None:
        labels = (("outcome", outcome), ("step", step), ("workflow", workflow))
        self.stats.observe("signoff_step_duration_seconds", labels, took, STEP_BUCKETS)
        if AVAILABLE:
            attributes = self._step_attributes.get(labels)
            if attributes is None:  # one dict per series, not one per step executed
                attributes = self._step_attributes[labels] = {
                    "signoff.workflow": workflow,
                    "signoff.step": step,
                    "signoff.outcome": outcome,
                }
            self.held.add(self._step_duration, took, attributes)

    def step_failed(self, workflow: str, step: str, *, final: bool) -> None:
        """An attempt of a step failed (`final`: its last one)."""
        labels = (("final", "true" if final else "false"), ("step", step), ("workflow", workflow))
        self.stats.add("signoff_step_failures_total", labels)
        if self.tracing:
            otel_trace.get_current_span().add_event("attempt failed", {"signoff.final": final})

    def wait(
        self, run_id: str, workflow: str, kind: str, name: str
    ) -> contextlib.AbstractContextManager[Any]:
        """Around writing a wait down; the span (or None) to note whether it parked."""
        if not _recording.get():
            return _NOTHING
        attributes = {
            "signoff.run_id": run_id,
            "signoff.workflow": workflow,
            "signoff.wait.kind": kind,
            "signoff.wait.name": name,
        }
        if kind == "approval":
            attributes["signoff.approval.key"] = name
        return self._span(f"wait {kind}", attributes)

    def park(
        self, run_id: str, workflow: str, waits: int
    ) -> contextlib.AbstractContextManager[Any]:
        """Around parking a replayed run again; the span (or None) to note whether it did."""
        if not _recording.get():
            return _NOTHING
        attributes = {
            "signoff.run_id": run_id,
            "signoff.workflow": workflow,
            "signoff.waits": waits,
        }
        return self._span("park", attributes)

    # decisions and deliveries ----------------------------------------------------------

    def decision(
        self, run_id: str, key: str, status: str, by: str | None
    ) -> contextlib.AbstractContextManager[Any]:
        """Around a decision made through the engine: its span when tracing (a child of
        the current span: the web request's, say)."""
        if not self.tracing:
            return _NOTHING
        attributes = {
            "signoff.run_id": run_id,
            "signoff.approval.key": key,
            "signoff.decision.status": status,
            "signoff.approver": by or "",
        }
        return self._span(f"decide {status}", attributes)

    def decided(self, outcome: DecideOutcome, by: str | None) -> None:
        """The store answered a decision: note its outcome, and the time it waited."""
        decision = outcome.decision
        span = otel_trace.get_current_span() if self.tracing else None
        if span is not None and not span.is_recording():
            span = None
        if span is not None:
            span.set_attribute("signoff.decision.outcome", outcome.outcome)
        if outcome.outcome != "decided" or decision is None or outcome.requested_at is None:
            return
        at = decision.at.timestamp() if decision.at else time.time()
        waited = max(0.0, at - outcome.requested_at)
        workflow = outcome.workflow or ""
        status = decision.status.value
        labels = (("approver", by or ""), ("status", status), ("workflow", workflow))
        self.stats.observe("signoff_decision_duration_seconds", labels, waited, DECISION_BUCKETS)
        if span is not None:
            span.set_attributes({"signoff.decision.waited": waited, "signoff.workflow": workflow})
        if AVAILABLE:
            attributes = self._decision_attributes.get(labels)
            if attributes is None:
                attributes = self._decision_attributes[labels] = {
                    "signoff.workflow": workflow,
                    "signoff.approver": by or "",
                    "signoff.status": status,
                }
            self.held.add(self._decision, waited, attributes)

    def delivered(self, delivery: Delivery, now: float) -> None:
        """A notification was delivered: how long after it was enqueued."""
        lag = max(0.0, now - delivery.created_at.timestamp())
        labels = (("channel", delivery.channel), ("event", delivery.event))
        self.stats.observe("signoff_outbox_lag_seconds", labels, lag, LAG_BUCKETS)
        if AVAILABLE:
            attributes = {"signoff.channel": delivery.channel, "signoff.event": delivery.event}
            self.held.add(self._lag, lag, attributes)


class _SpanScope:
    """A span started, made current while the scope lasts, and ended; as a plain class,
    since `start_as_current_span` stacks three generator context managers that cost as
    much again as the span itself, on every step of every run."""

    __slots__ = ("_token", "span")

    def __init__(self, tracer: Any, name: str, attributes: dict[str, Any], parent: Any) -> None:
        self.span = tracer.start_span(
            name,
            context=parent,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
        self._token = otel_context.attach(otel_trace.set_span_in_context(self.span))

    def __enter__(self) -> Any:
        return self.span

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        otel_context.detach(self._token)
        if isinstance(exc, Exception):
            self.span.record_exception(exc)
            self.span.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, type(exc).__name__))
        self.span.end()


class _StepScope:
    """`Telemetry.step` as a plain class: it runs around every step executed, where a
    stack of generator context managers cost as much as the step's own bookkeeping."""

    __slots__ = ("_owner", "_run_id", "_seq", "_span", "_started", "_step", "_token", "_workflow")

    def __init__(self, owner: Telemetry, run_id: str, workflow: str, step: str, seq: int) -> None:
        self._owner, self._run_id, self._workflow = owner, run_id, workflow
        self._step, self._seq = step, seq
        self._span: _SpanScope | None = None

    def __enter__(self) -> None:
        self._token = logs.enter_step(self._step)
        self._started = time.perf_counter()
        if _recording.get():
            attributes = {
                "signoff.run_id": self._run_id,
                "signoff.workflow": self._workflow,
                "signoff.step": self._step,
                "signoff.step.seq": self._seq,
            }
            self._span = self._owner._span(f"step {self._step}", attributes)
            self._span.__enter__()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        try:
            if self._span is not None:
                self._span.__exit__(kind, exc, tb)
        finally:
            logs.exit_step(self._token)
            outcome = "ok" if kind is None else "failed" if issubclass(kind, Exception) else None
            if outcome is not None:
                took = time.perf_counter() - self._started
                self._owner._stepped(self._workflow, self._step, outcome, took)
