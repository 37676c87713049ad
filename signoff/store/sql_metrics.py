"""Store reads behind the gauges: runs by workflow and status, pending approvals.

One snapshot, two grouped queries: runs by (workflow, status) scans `runs` (a scrape
every 15 s or more can afford it); pending approvals use the partial index on pending
rounds. Read by `/metrics` at each scrape and by the OpenTelemetry gauges when a reader
collects (`signoff.telemetry`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from signoff.store.sql import Op, Query


@dataclass(frozen=True, slots=True)
class Gauges:
    """`runs`: (workflow, status) -> how many runs; `approvals`: workflow -> (pending
    approvals, the oldest one's request time as a Unix timestamp)."""

    runs: dict[tuple[str, str], int] = field(default_factory=dict)
    approvals: dict[str, tuple[int, float]] = field(default_factory=dict)


def gauges() -> Op[Gauges]:
    runs = yield Query("SELECT workflow, status, COUNT(*) FROM runs GROUP BY workflow, status")
    pending = yield Query(
        "SELECT workflow, COUNT(*), MIN(requested_at) FROM approvals "
        "WHERE status = 'pending' GROUP BY workflow"
    )
    return Gauges(
        runs={(str(w), str(s)): int(n) for w, s, n in runs.rows},
        approvals={str(w): (int(n), float(oldest)) for w, n, oldest in pending.rows},
    )
