"""The JSON shapes crossing HTTP: strict request models (unknown fields and type
coercion refused) and response models built from the engine's records."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from signoff import models

Action = Literal["approve", "reject", "edit", "request_changes", "answer"]
WebhookAction = Literal["approve", "reject", "edit", "request_changes", "answer", "cancel"]
LinkAction = Literal["approve", "reject", "request_changes", "any"]
Scope = Literal["read", "start", "decide", "admin"]


def _text() -> Any:
    return Field(default=None, max_length=10_000)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class StartRun(Strict):
    workflow: str = Field(min_length=1, max_length=200)
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    run_id: str | None = Field(default=None, min_length=1, max_length=200)
    requested_by: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Who asks for the run. With auth on it defaults to the token's name and "
        "may name anyone else only with the admin scope; with auth off nobody is recorded "
        "unless given.",
    )


class CancelRun(Strict):
    reason: str | None = _text()


class SendSignal(Strict):
    data: Any = None


class PublishEvent(Strict):
    key: str = Field(min_length=1, max_length=200)
    data: Any = None


def _digest() -> Any:
    return Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The `digest` of the approval as shown; a stale one is refused with 409 "
        "`stale_digest` and the current digest.",
    )


class Decide(Strict):
    """`value` is the changed value, required for (and only for) `edit`, or the answer to
    a question (`ctx.ask`), required for `answer`. `by` names the
    decider: with auth on it must be the token's name (it may be left out); with auth off
    it says who decides (default `local`)."""

    action: Action
    value: Any = None
    reason: str | None = _text()
    digest: str | None = _digest()
    by: str | None = Field(default=None, min_length=1, max_length=200)


class Webhook(Strict):
    """An approval webhook as peers send it; `actor` needs the admin scope unless it is
    the token's own name. `cancel` cancels the run (needs the start scope; no `key`)."""

    key: str | None = Field(default=None, min_length=1, max_length=1000)
    action: WebhookAction
    value: Any = None
    reason: str | None = _text()
    digest: str | None = _digest()
    actor: str | None = Field(default=None, min_length=1, max_length=200)


class InboxQuery(BaseModel):
    """The inbox's filters; unknown query parameters are refused."""

    model_config = ConfigDict(extra="forbid")

    approver: str | None = Field(default=None, min_length=1, max_length=200)
    role: str | None = Field(default=None, min_length=1, max_length=200)
    workflow: str | None = Field(default=None, min_length=1, max_length=200)
    key_prefix: str | None = Field(default=None, min_length=1, max_length=1000)
    run_id: str | None = Field(default=None, min_length=1, max_length=200)
    older_than: str | None = Field(
        default=None, max_length=50, description="a duration: `30m`, `4h`, `7d`, or seconds"
    )
    overdue: bool = Field(default=False, description="only those past their deadline")
    order: Literal["oldest", "urgent"] = Field(
        default="oldest",
        description='"oldest": oldest request first; "urgent": soonest deadline first '
        "(none last), then oldest. A cursor goes with the order of its page.",
    )
    limit: int = Field(default=100, ge=1, le=500)
    cursor: str | None = Field(default=None, max_length=2000)


class RunQuery(BaseModel):
    """The run list's filters; unknown query parameters are refused."""

    model_config = ConfigDict(extra="forbid")

    status: models.RunStatus | None = None
    workflow: str | None = Field(default=None, min_length=1, max_length=200)
    limit: int = Field(default=100, ge=1, le=500)
    cursor: str | None = Field(default=None, max_length=1000)


class CreateToken(Strict):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1, max_length=4)


class CreateLink(Strict):
    approver: str = Field(min_length=1, max_length=200)
    action: LinkAction = "any"
    expires_in: int = Field(default=7 * 86400, ge=60, le=90 * 86400)


# responses -------------------------------------------------------------------------------
# The records are the domain's dataclasses themselves (`models.Run`, `models.Approval`,
# `models.Decision`, `models.HistoryEntry`): FastAPI serves them and documents them through
# pydantic, and the client parses them back with TypeAdapters over the same dataclasses,
# so no field can go missing on one surface only.

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list; pass `next_cursor` back as `cursor` (None on the last page)."""

    items: list[T]
    next_cursor: str | None = None


class RunPage(Page[models.Run]):
    """One page of runs, newest first."""


class ApprovalPage(Page[models.Approval]):
    """One page of the inbox, oldest first."""


RUN = TypeAdapter(models.Run)
DECISION = TypeAdapter(models.Decision)


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"


class Published(BaseModel):
    woken: list[str]


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    scopes: list[str]
    created_at: datetime
    created_by: str | None = None
    revoked_at: datetime | None = None


class TokenCreated(BaseModel):
    token: TokenOut
    secret: str = Field(description="Shown once; only its SHA-256 hash is stored.")


class LinkOut(BaseModel):
    url: str
    token: str
    expires_at: datetime


class Health(BaseModel):
    """`ok`, or `degraded` when this process should run a worker and none runs. `worker`:
    `running` (in this process), `external` (this app runs none; runs need a worker
    elsewhere, e.g. `signoff worker`) or `stopped` (it should run one and does not)."""

    status: Literal["ok", "degraded"] = "ok"
    worker: Literal["running", "external", "stopped"]


class ProblemOut(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    code: str
    run_id: str | None = None
    key: str | None = None
    decision: dict[str, Any] | None = None
    current_digest: str | None = None
    errors: list[Any] | None = None
