"""The JSON shapes crossing HTTP: strict request models (unknown fields and type
coercion refused) and response models built from the engine's records."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Action = Literal["approve", "reject", "edit", "request_changes"]
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


class CancelRun(Strict):
    reason: str | None = _text()


class SendSignal(Strict):
    data: Any = None


class PublishEvent(Strict):
    key: str = Field(min_length=1, max_length=200)
    data: Any = None


class Decide(Strict):
    """`value` is the changed value, required for (and only for) `edit`."""

    action: Action
    value: Any = None
    reason: str | None = _text()


class Webhook(Strict):
    """An approval webhook as peers send it; `actor` needs the admin scope unless it is
    the token's own name."""

    key: str = Field(min_length=1, max_length=200)
    action: Action
    value: Any = None
    reason: str | None = _text()
    actor: str | None = Field(default=None, min_length=1, max_length=200)


class CreateToken(Strict):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1, max_length=4)


class CreateLink(Strict):
    approver: str = Field(min_length=1, max_length=200)
    action: LinkAction = "any"
    expires_in: int = Field(default=7 * 86400, ge=60, le=90 * 86400)


# responses -------------------------------------------------------------------------------


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class RunOut(Out):
    id: str
    workflow: str
    status: str
    args: list[Any]
    kwargs: dict[str, Any]
    result: Any = None
    error: dict[str, Any] | None = None
    requested_by: str | None = None
    created_at: datetime
    updated_at: datetime
    waiting_for: str | None = None
    wake_at: datetime | None = None


class RunPage(BaseModel):
    items: list[RunOut]
    next_cursor: str | None = None


class ApprovalOut(Out):
    run_id: str
    workflow: str
    key: str
    round: int
    status: str
    summary: str
    proposed: Any = None
    value: Any = None
    decided_by: str | None = None
    reason: str | None = None
    requested_at: datetime
    decided_at: datetime | None = None
    deadline: datetime | None = None


class DecisionOut(Out):
    key: str
    status: str
    value: Any = None
    original: Any = None
    by: str | None = None
    reason: str | None = None
    at: datetime | None = None
    round: int


class EventOut(Out):
    id: int
    run_id: str
    at: datetime
    type: str
    actor: str | None = None
    data: dict[str, Any]


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"


class Published(BaseModel):
    woken: list[str]


class TokenOut(Out):
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
    status: Literal["ok"] = "ok"


class ProblemOut(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    code: str
    run_id: str | None = None
    key: str | None = None
    decision: dict[str, Any] | None = None
    errors: list[Any] | None = None
