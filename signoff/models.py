"""The records signoff hands to users: runs, approvals, decisions, history events.

All are frozen, keyword-only, slotted dataclasses; enum values equal the strings stored
in the database. Datetimes are always aware (UTC).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from signoff import errors


class RunStatus(enum.StrEnum):
    PENDING = "pending"  # runnable, no worker holds it
    RUNNING = "running"  # a worker holds its lease
    WAITING = "waiting"  # suspended on an approval, signal or sleep
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


class DecisionStatus(enum.StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"
    EDITED = "edited"
    CHANGES_REQUESTED = "changes_requested"
    EXPIRED = "expired"


class ApprovalStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EDITED = "edited"
    CHANGES_REQUESTED = "changes_requested"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


def from_timestamp(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """How often a failing step is tried, and how long to wait between tries.

    `attempts` counts every try (1 means no retry); the wait before try n+1 is
    `initial_interval * backoff**(n-1)`, capped at `max_interval` seconds.
    """

    attempts: int = 1
    initial_interval: float = 1.0
    backoff: float = 2.0
    max_interval: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise errors.InvalidArgument("RetryPolicy.attempts must be at least 1")
        if self.initial_interval < 0 or self.max_interval < 0 or self.backoff < 1:
            raise errors.InvalidArgument("RetryPolicy intervals must be >= 0 and backoff >= 1")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed try number `attempt` (1-based)."""
        return float(min(self.max_interval, self.initial_interval * self.backoff ** (attempt - 1)))


@dataclass(frozen=True, kw_only=True, slots=True)
class Decision:
    """A person's answer to an approval request, as the workflow receives it.

    `value` is what to act on: the proposed value when approved, the changed value when
    edited (`original` keeps the proposal). `approved` is true for approved and edited.
    """

    key: str
    status: DecisionStatus
    value: Any = None
    original: Any = None
    by: str | None = None
    reason: str | None = None
    at: datetime | None = None
    round: int = 1

    @property
    def approved(self) -> bool:
        return self.status in (DecisionStatus.APPROVED, DecisionStatus.EDITED)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "status": self.status.value,
            "value": self.value,
            "original": self.original,
            "by": self.by,
            "reason": self.reason,
            "at": self.at.timestamp() if self.at else None,
            "round": self.round,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Decision:
        return cls(
            key=data["key"],
            status=DecisionStatus(data["status"]),
            value=data.get("value"),
            original=data.get("original"),
            by=data.get("by"),
            reason=data.get("reason"),
            at=from_timestamp(data.get("at")),
            round=data.get("round", 1),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Run:
    """One execution of a workflow."""

    id: str
    workflow: str
    status: RunStatus
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    error: dict[str, Any] | None = None
    requested_by: str | None = None
    created_at: datetime
    updated_at: datetime
    waiting_for: str | None = None  # e.g. "approval:manager", "signal:docs", "sleep"
    wake_at: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Approval:
    """An approval request: what a person is asked, and its state."""

    run_id: str
    workflow: str
    key: str
    round: int
    status: ApprovalStatus
    summary: str
    proposed: Any = None
    value: Any = None
    decided_by: str | None = None
    reason: str | None = None
    requested_at: datetime
    decided_at: datetime | None = None
    deadline: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class HistoryEvent:
    """One entry of a run's append-only history."""

    id: int
    run_id: str
    at: datetime
    type: str
    actor: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
