"""The records signoff hands to users: runs, approvals, decisions, history entries.

All are frozen, keyword-only, slotted dataclasses; enum values equal the strings stored
in the database. Datetimes are always aware (UTC).
"""

from __future__ import annotations

import dataclasses
import enum
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from signoff import errors

T = TypeVar("T")


class RunStatus(enum.StrEnum):
    PENDING = "pending"  # runnable, no worker holds it
    RUNNING = "running"  # a worker holds its lease
    WAITING = "waiting"  # suspended on an approval, signal or sleep
    # replay no longer matches the journal (the code changed under the run): it waits
    # for code that replays it (`error` says where); decisions and signals still land
    BLOCKED = "blocked"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


class DecisionStatus(enum.StrEnum):
    PENDING = "pending"  # a vote was recorded; the approval waits for more (quorum)
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


# value -> member, for rows and JSON read back (a dict lookup; calling the enum costs three
# Python calls); a value not found falls back to the call, which raises as it always did
RUN_STATUS_OF: dict[str, RunStatus] = {s.value: s for s in RunStatus}
DECISION_STATUS_OF: dict[str, DecisionStatus] = {s.value: s for s in DecisionStatus}


def quick_init(cls: type[T]) -> type[T]:
    """Give a frozen, slotted dataclass an `__init__` that fills its slots through their
    descriptors: a third of the cost of the generated one, which goes through
    `object.__setattr__` field by field (a record made per statement or per journal
    entry paid more for that than for anything else it did). The class stays frozen,
    and the signature, defaults and default factories are the dataclass's own. For
    records without `__post_init__`; apply it above `@dataclass`."""
    fields = [f for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    assert not hasattr(cls, "__post_init__") and len(fields) == len(cls.__slots__)  # type: ignore[attr-defined]
    scope: dict[str, Any] = {"_MISSING": _MISSING}
    params: list[str] = []
    kw: list[str] = []
    body: list[str] = []
    for f in fields:
        scope[f"_set_{f.name}"] = getattr(cls, f.name).__set__
        if f.default is not dataclasses.MISSING:
            scope[f"_d_{f.name}"] = f.default
            param = f"{f.name}=_d_{f.name}"
        elif f.default_factory is not dataclasses.MISSING:
            scope[f"_f_{f.name}"] = f.default_factory
            param = f"{f.name}=_MISSING"
            body.append(f"    if {f.name} is _MISSING: {f.name} = _f_{f.name}()")
        else:
            param = f.name
        (kw if f.kw_only else params).append(param)
        body.append(f"    _set_{f.name}(self, {f.name})")
    signature = ", ".join(["self", *params, *(["*", *kw] if kw else [])])
    exec(f"def __init__({signature}):\n" + "\n".join(body), scope)
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    setattr(cls, "__init__", init)  # noqa: B010 (mypy refuses assigning a method)
    return cls


_MISSING = object()  # a default factory's field that was not given


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


@quick_init
@dataclass(frozen=True, kw_only=True, slots=True)
class Vote:
    """One person's vote on an approval round (several are needed under a quorum)."""

    by: str
    status: DecisionStatus
    reason: str | None = None
    at: datetime | None = None
    value: Any = None

    def to_json(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "status": self.status.value,
            "reason": self.reason,
            "at": self.at.timestamp() if self.at else None,
            "value": self.value,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Vote:
        return cls(
            by=data["by"],
            status=DECISION_STATUS_OF.get(data["status"]) or DecisionStatus(data["status"]),
            reason=data.get("reason"),
            at=from_timestamp(data.get("at")),
            value=data.get("value"),
        )


@quick_init
@dataclass(frozen=True, kw_only=True, slots=True)
class Decision:
    """A person's answer to an approval request, as the workflow receives it.

    `value` is what to act on: the proposed value when approved, the changed value when
    edited (`original` keeps the proposal). `approved` is true for approved and edited.
    `votes` lists every vote of the round; `timed_out` marks an outcome the approval's
    `on_timeout` policy chose (then `by` is "timeout policy", never a person).
    """

    key: str
    status: DecisionStatus
    value: Any = None
    original: Any = None
    by: str | None = None
    reason: str | None = None
    at: datetime | None = None
    round: int = 1
    votes: tuple[Vote, ...] = ()
    timed_out: bool = False

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
            "votes": [v.to_json() for v in self.votes],
            "timed_out": self.timed_out,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Decision:
        return cls(
            key=data["key"],
            status=DECISION_STATUS_OF.get(data["status"]) or DecisionStatus(data["status"]),
            value=data.get("value"),
            original=data.get("original"),
            by=data.get("by"),
            reason=data.get("reason"),
            at=from_timestamp(data.get("at")),
            round=data.get("round", 1),
            votes=tuple(Vote.from_json(v) for v in data.get("votes") or ()),
            timed_out=bool(data.get("timed_out", False)),
        )


@quick_init
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
    deadline: datetime | None = None  # the run's own (`@engine.workflow(timeout=)`)
    version: str | None = None  # of its workflow (`@engine.workflow(version=)`), if declared


@dataclass(frozen=True, kw_only=True, slots=True)
class Approval:
    """An approval request: what a person is asked, and its state.

    `approvers` are who was named (people and `role:NAME`, escalation targets added once
    it escalated; empty: anyone may decide), `quorum` how many approvals it needs, `votes`
    the votes so far, `digest` the sha256 of what is shown (pass it back when deciding),
    `stage` the stage of a chain and `stages` every stage with its status. `question`:
    asked with `ctx.ask`, answered rather than approved (`engine.answer`); `edits`: False
    when it may be approved or rejected but not edited; `schema`: the JSON Schema an edit
    (or an answer) must fit, if any; `metadata`: context the workflow gave for the
    person (`ctx.approval(metadata=...)`), not part of what is approved. Under an
    escalation policy (`escalate_after`, `escalate_to`): `escalates_at` when it escalates
    (or did), `escalate_to` to whom, `escalated` whether it has.
    """

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
    approvers: list[str] = field(default_factory=list)
    quorum: int = 1
    votes: list[Vote] = field(default_factory=list)
    digest: str | None = None
    stage: str | None = None
    stages: list[dict[str, Any]] = field(default_factory=list)
    question: bool = False
    edits: bool = True
    schema: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    escalates_at: datetime | None = None
    escalate_to: list[str] = field(default_factory=list)
    escalated: bool = False


class Page(list[T]):
    """One page of a list, the same shape everywhere: a list of the items, plus
    `next_cursor` (pass it as `cursor=` for the next page; None on the last page)."""

    def __init__(self, items: list[T], *, next_cursor: str | None = None) -> None:
        super().__init__(items)
        self.next_cursor = next_cursor

    @property
    def items(self) -> list[T]:
        return list(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self)!r}, next_cursor={self.next_cursor!r})"


class ApprovalPage(Page[Approval]):
    """One page of the inbox, with `total`: how many approvals match, over all pages."""

    def __init__(
        self, items: list[Approval], *, next_cursor: str | None = None, total: int = 0
    ) -> None:
        super().__init__(items, next_cursor=next_cursor)
        self.total = total

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, total={self.total})"


class RunPage(Page[Run]):
    """One page of runs, newest first."""


@dataclass(frozen=True, kw_only=True, slots=True)
class HistoryEntry:
    """One entry of a run's append-only history (`engine.history(run_id)`). Not to be
    confused with an event, which `engine.notify` publishes to waiting runs."""

    id: int
    run_id: str
    at: datetime
    type: str
    actor: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class PurgeReport:
    """What `engine.purge` removed (or, with `dry_run`, would remove): finished runs with
    every row of theirs, idempotency records and used link nonces past retention, and
    how many runs went to the archive first."""

    runs: int
    idempotency_records: int
    link_nonces: int
    archived: int = 0
    dry_run: bool = False


if TYPE_CHECKING:
    HistoryEvent = HistoryEntry  # deprecated; at run time `__getattr__` warns


def __getattr__(name: str) -> Any:
    if name == "HistoryEvent":  # the old name, kept for one release
        warnings.warn(
            "signoff.models.HistoryEvent is deprecated; use signoff.models.HistoryEntry",
            DeprecationWarning,
            stacklevel=2,
        )
        return HistoryEntry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
