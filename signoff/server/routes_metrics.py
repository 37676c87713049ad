"""`GET /metrics`: Prometheus text exposition (format 0.0.4), rendered here; no client
library needed. Off unless `create_app(metrics=True)` (`signoff serve --metrics`); with
authentication on it takes a token with the `read` scope (Prometheus:
`authorization: {credentials_file: ...}`).

What the store holds is read at each scrape (runs by workflow and status, approvals
waiting and the age of the oldest, per workflow): the same for every process. Counters
and histograms (run transitions, step durations and failures, time to decision, outbox
lag) are this process's own, since it started, as Prometheus expects of each target.
Labels are workflow, step, status, approver and channel names: no ids, no payloads, no
secrets.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import PlainTextResponse

from signoff import models, telemetry
from signoff.server import auth, deps

router = APIRouter(tags=["meta"])
MEDIA_TYPE = "text/plain; version=0.0.4; charset=utf-8"

HELP = {
    "signoff_runs": ("gauge", "Runs by workflow and status (from the store)."),
    "signoff_approvals_waiting": ("gauge", "Approvals waiting for a decision, by workflow."),
    "signoff_approvals_oldest_age_seconds": (
        "gauge",
        "Age of the oldest approval waiting for a decision, by workflow.",
    ),
    "signoff_run_transitions_total": ("counter", "Runs entering each status in this process."),
    "signoff_step_failures_total": ("counter", "Failed step attempts (final: the last one)."),
    "signoff_step_duration_seconds": ("histogram", "Time a step took, retries included."),
    "signoff_decision_duration_seconds": (
        "histogram",
        "Time from an approval's request to its decision, by workflow and approver.",
    ),
    "signoff_outbox_lag_seconds": (
        "histogram",
        "Time from a notification's enqueueing to its delivery.",
    ),
}


async def _scraper(request: Request) -> None:
    if request.app.state.auth:
        await auth.require("read")(request)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, _: Annotated[None, Depends(_scraper)]) -> PlainTextResponse:
    engine = deps.engine(request)
    gauges = await engine.telemetry.refresh()
    return PlainTextResponse(render(gauges, engine.telemetry.stats), media_type=MEDIA_TYPE)


def render(gauges: telemetry.Gauges, stats: telemetry.Stats, now: float | None = None) -> str:
    """The exposition text of the store's gauges and this process's counters."""
    now = time.time() if now is None else now
    out: list[str] = []
    workflows = sorted({w for w, _ in gauges.runs})
    statuses = [s.value for s in models.RunStatus]
    runs = [
        ((("status", s), ("workflow", w)), float(gauges.runs.get((w, s), 0)))
        for w in workflows
        for s in sorted({*statuses, *(s for x, s in gauges.runs if x == w)})
    ]
    _family(out, "signoff_runs", runs)
    pending = sorted(gauges.approvals.items())
    _family(out, "signoff_approvals_waiting", [((("workflow", w),), n) for w, (n, _) in pending])
    _family(
        out,
        "signoff_approvals_oldest_age_seconds",
        [((("workflow", w),), max(0.0, now - oldest)) for w, (_, oldest) in pending],
    )
    for name in ("signoff_run_transitions_total", "signoff_step_failures_total"):
        _family(out, name, sorted(stats.counters.get(name, {}).items()))
    for name in (
        "signoff_step_duration_seconds",
        "signoff_decision_duration_seconds",
        "signoff_outbox_lag_seconds",
    ):
        _histogram(out, name, sorted(stats.histograms.get(name, {}).items()))
    return "\n".join(out) + "\n"


def _head(out: list[str], name: str) -> None:
    kind, text = HELP[name]
    out.append(f"# HELP {name} {text}")
    out.append(f"# TYPE {name} {kind}")


def _family(out: list[str], name: str, series: Sequence[tuple[telemetry.Labels, float]]) -> None:
    _head(out, name)
    for labels, value in series:
        out.append(f"{name}{_labels(labels)} {_number(float(value))}")


def _histogram(
    out: list[str], name: str, series: list[tuple[telemetry.Labels, telemetry.Histogram]]
) -> None:
    _head(out, name)
    for labels, h in series:
        cumulative = 0
        counts = h.counts or [0] * (len(h.buckets) + 1)
        for bound, count in zip((*h.buckets, math.inf), counts, strict=True):
            cumulative += count
            le = "+Inf" if bound == math.inf else _number(bound)
            out.append(f"{name}_bucket{_labels((*labels, ('le', le)))} {cumulative}")
        out.append(f"{name}_sum{_labels(labels)} {_number(h.total)}")
        out.append(f"{name}_count{_labels(labels)} {h.count}")


def _labels(labels: telemetry.Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))
