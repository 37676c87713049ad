"""Histogram records held for the OpenTelemetry SDK (`signoff.telemetry.HeldRecords`):
handed over when a reader collects, when the buffer is full, and never twice or lost."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from signoff import telemetry


class Recorded:
    """A stand-in for an SDK histogram: what it was handed, in order."""

    def __init__(self) -> None:
        self.values: list[tuple[float, dict[str, str], Any]] = []

    def record(self, value: float, attributes: dict[str, str], context: Any) -> None:
        self.values.append((value, attributes, context))


def step_points(reader: InMemoryMetricReader) -> list[Any]:
    data = reader.get_metrics_data()
    return [
        point
        for rm in (data.resource_metrics if data else ())
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "signoff.step.duration"
        for point in m.data.data_points
    ]


def test_a_collection_hands_over_what_is_held_before_it_reads() -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    t = telemetry.Telemetry(meter_provider=meters)
    for took in (0.01, 0.02, 0.04):
        t._stepped("refund", "load", "ok", took)
    assert len(t.held) == 3  # nothing handed to the SDK yet
    (point,) = step_points(reader)
    assert point.count == 3 and abs(point.sum - 0.07) < 1e-9
    assert dict(point.attributes) == {
        "signoff.workflow": "refund",
        "signoff.step": "load",
        "signoff.outcome": "ok",
    }
    assert len(t.held) == 0
    meters.shutdown()


def test_the_buffer_is_bounded_and_hands_over_in_order() -> None:
    held = telemetry.HeldRecords(limit=4)
    sdk = Recorded()
    token = otel_context.attach(otel_context.set_value("marker", "at record time"))
    try:
        for i in range(10):
            held.add(sdk, float(i), {"n": str(i)})
            assert len(held) < 4
    finally:
        otel_context.detach(token)
    assert [v for v, _, _ in sdk.values] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert len(held) == 2
    assert held.flush() == 2 and len(held) == 0
    assert [v for v, _, _ in sdk.values] == [float(i) for i in range(10)]
    # each record goes with the context it was made in (exemplars point at its span)
    assert {otel_context.get_value("marker", c) for _, _, c in sdk.values} == {"at record time"}


def test_records_made_while_a_reader_collects_are_counted_once() -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    t = telemetry.Telemetry(meter_provider=meters)
    t.held.limit = 64
    done = threading.Event()
    counts: list[int] = []

    def collect() -> None:  # a periodic reader's thread
        while not done.is_set():
            counts.extend(p.count for p in step_points(reader))

    collector = threading.Thread(target=collect)
    collector.start()
    try:
        for _ in range(20_000):
            t._stepped("refund", "load", "ok", 0.001)
    finally:
        done.set()
        collector.join()
    counts.extend(p.count for p in step_points(reader))
    # cumulative points: the last one holds every record, exactly once
    assert counts[-1] == 20_000
    meters.shutdown()


def test_a_global_tracer_provider_set_after_the_engine_is_seen_within_a_second() -> None:
    # the global provider can be set once per process: this runs in a process of its own
    script = """
import time
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from signoff import telemetry

t = telemetry.Telemetry()
assert not t.tracing  # no SDK set up: no span is started
trace.set_tracer_provider(TracerProvider())
set_at = time.monotonic()
while not t.tracing:
    assert time.monotonic() - set_at < telemetry.PROVIDER_LOOK + 1.0, "never seen"
    time.sleep(0.01)
print("seen")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "seen"
