"""Notifications as records: the events that leave through the outbox, a delivery and
its attempts, and the routing plan the store consults when it writes them.

A notification is written in the transaction of the change that causes it (one row per
channel it goes to), and delivered later by a worker (`signoff.channels.deliverer`) with
retries and backoff, until it is `delivered` or `dead`. Its `id` never changes across
retries: it is the `webhook-id` a receiver dedupes on.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from signoff import models

APPROVAL_REQUESTED = "approval.requested"
APPROVAL_VOTED = "approval.voted"
APPROVAL_DECIDED = "approval.decided"
APPROVAL_EXPIRED = "approval.expired"
APPROVAL_TIMED_OUT = "approval.timed_out"
APPROVAL_ESCALATED = "approval.escalated"
APPROVAL_REMINDER = "approval.reminder"
RUN_COMPLETED = "run.completed"
RUN_FAILED = "run.failed"
RUN_BLOCKED = "run.blocked"

EVENTS = (
    APPROVAL_REQUESTED,
    APPROVAL_VOTED,
    APPROVAL_DECIDED,
    APPROVAL_EXPIRED,
    APPROVAL_TIMED_OUT,
    APPROVAL_ESCALATED,
    APPROVAL_REMINDER,
    RUN_COMPLETED,
    RUN_FAILED,
    RUN_BLOCKED,
)

APPROVERS = "approvers"  # in a route's `to`: the people (and roles) who may decide
REQUESTER = "requester"  # in a route's `to`: who started the run (`requested_by`)


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its first attempt, or for the next after a failure
    DELIVERING = "delivering"  # a worker holds it (until its lease expires)
    DELIVERED = "delivered"
    DEAD = "dead"  # every attempt failed; `signoff deliveries retry ID` tries again


@dataclass(frozen=True, kw_only=True, slots=True)
class Attempt:
    """One try at delivering a message, and how it went."""

    attempt: int
    at: datetime
    worker: str
    ok: bool
    error: str | None
    took_ms: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Delivery:
    """One notification for one channel: what it says, where it stands, its attempts."""

    id: str
    channel: str
    event: str
    run_id: str
    workflow: str
    key: str | None
    recipients: tuple[str, ...]
    payload: dict[str, Any]
    status: DeliveryStatus
    attempts: int
    max_attempts: int
    created_at: datetime
    due_at: datetime
    delivered_at: datetime | None = None
    last_error: str | None = None
    history: tuple[Attempt, ...] = field(default=())


class DeliveryPage(models.Page[Delivery]):
    """One page of deliveries, newest first."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where one event goes: a channel, to whom (names, `role:X`, `approvers`,
    `requester`), how many attempts before it is dead, and the channel's digest
    interval in seconds (None: at once)."""

    channel: str
    to: tuple[str, ...] = ()
    max_attempts: int = 8
    digest: float | None = None


class Plan(Protocol):
    """What the store asks while it writes a change: where does this event go?
    (`signoff.channels.routing.Routing` answers it from the engine's routes.) Pure and
    fast: it runs inside the write transaction."""

    events: frozenset[str]  # the events any route takes: others cost nothing more

    def targets(self, event: str, workflow: str, key: str | None) -> Sequence[Target]: ...


def digest_due(now: float, every: float) -> float:
    """When a message written at `now` for a channel with a digest every `every` seconds
    is due: the end of its window. Windows are aligned to the Unix epoch (UTC), so all
    the messages of one window are due at the same moment (a daily digest at 00:00 UTC)."""
    return (math.floor(now / every) + 1) * every


def backoff(attempt: int, base: float = 5.0, cap: float = 3600.0) -> float:
    """Seconds to wait after failed attempt number `attempt` (1, 2, ...): exponential."""
    return float(min(cap, base * 2 ** max(0, attempt - 1)))
