"""The approval inbox, one approval, decisions (with `Idempotency-Key`) and the webhook.

The approver of a decision is the token's name, never a field of the body. A request
with an `Idempotency-Key` header is answered the same when retried: the first response
(decision or conflict) is kept under (token name, key) with a hash of the request; the
same key with a different request is refused with 422.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.responses import JSONResponse

from signoff import errors, models
from signoff.server import auth, deps, problems, schemas

router = APIRouter(tags=["approvals"])
Reader = Annotated[auth.Principal, Depends(auth.require("read"))]
Decider = Annotated[auth.Principal, Depends(auth.require("decide"))]
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)
]


@router.get("/approvals", response_model=list[schemas.ApprovalOut])
async def inbox(
    request: Request,
    who: Reader,
    workflow: Annotated[str | None, Query(max_length=200)] = None,
    run_id: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[schemas.ApprovalOut]:
    """Approvals waiting for a decision, oldest first."""
    found = await deps.engine(request).pending_approvals(
        workflow=workflow, run_id=run_id, limit=limit
    )
    return [schemas.ApprovalOut.model_validate(a) for a in found]


@router.get("/runs/{run_id}/approvals", response_model=list[schemas.ApprovalOut])
async def run_approvals(run_id: str, request: Request, who: Reader) -> list[schemas.ApprovalOut]:
    """Every approval round of the run, decided or not."""
    found = await deps.engine(request).approvals(run_id)
    return [schemas.ApprovalOut.model_validate(a) for a in found]


async def latest_approval(request: Request, run_id: str, key: str) -> models.Approval:
    rounds = [a for a in await deps.engine(request).approvals(run_id) if a.key == key]
    if not rounds:
        raise errors.ApprovalNotFound(
            f"run {run_id} has no approval {key!r}", run_id=run_id, key=key
        )
    return max(rounds, key=lambda a: a.round)


@router.get("/runs/{run_id}/approvals/{key}", response_model=schemas.ApprovalOut)
async def get_approval(run_id: str, key: str, request: Request, who: Reader) -> schemas.ApprovalOut:
    """The approval's latest round."""
    return schemas.ApprovalOut.model_validate(await latest_approval(request, run_id, key))


async def decide(
    request: Request, run_id: str, key: str, action: str, value: Any, reason: str | None, by: str
) -> models.Decision:
    engine = deps.engine(request)
    if action == "edit":
        return await engine.edit(run_id, key, value, by=by, reason=reason)
    if value is not None:
        raise problems.Problem(422, "validation_error", "`value` goes only with action `edit`")
    if action == "approve":
        return await engine.approve(run_id, key, by=by, reason=reason)
    if action == "reject":
        return await engine.reject(run_id, key, by=by, reason=reason)
    return await engine.request_changes(run_id, key, by=by, reason=reason)


async def decide_once(
    request: Request,
    who: auth.Principal,
    idempotency_key: str | None,
    fingerprint: dict[str, Any],
    run_id: str,
    key: str,
    action: str,
    value: Any,
    reason: str | None,
    by: str,
) -> JSONResponse:
    """Decide, answering a retried request (same idempotency key) as the first time."""
    engine = deps.engine(request)
    request_hash = hashlib.sha256(
        json.dumps(fingerprint, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    if idempotency_key is not None:
        stored = await engine.stored_response(who.name, idempotency_key)
        if stored is not None:
            return _replay(stored.request_hash, request_hash, stored.status, stored.body)
    try:
        decision = await decide(request, run_id, key, action, value, reason, by)
        status = 200
        body = schemas.DecisionOut.model_validate(decision).model_dump(mode="json")
    except errors.DecisionConflict as exc:
        if idempotency_key is None:
            raise
        status, body = problems.from_error(exc)
    if idempotency_key is None:
        return JSONResponse(body, status_code=status)
    stored = await engine.store_response(who.name, idempotency_key, request_hash, status, body)
    return _replay(stored.request_hash, request_hash, stored.status, stored.body, first=True)


def _replay(
    kept_hash: str, request_hash: str, status: int, body: Any, first: bool = False
) -> JSONResponse:
    if kept_hash != request_hash:
        raise problems.Problem(
            422,
            "idempotency_conflict",
            "this Idempotency-Key was used for a different request; use a new key",
        )
    media = problems.MEDIA_TYPE if status >= 400 else "application/json"
    headers = {} if first else {"Idempotent-Replayed": "true"}
    return JSONResponse(body, status_code=status, media_type=media, headers=headers)


@router.post(
    "/runs/{run_id}/approvals/{key}/decision",
    response_model=schemas.DecisionOut,
    responses={409: {"description": "already decided differently"}},
)
async def post_decision(
    run_id: str,
    key: str,
    body: schemas.Decide,
    request: Request,
    who: Decider,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Approve, reject, edit (with `value`) or request changes, as the token's name."""
    fingerprint = {"run_id": run_id, "key": key, **body.model_dump()}
    return await decide_once(
        request,
        who,
        idempotency_key,
        fingerprint,
        run_id,
        key,
        body.action,
        body.value,
        body.reason,
        who.name,
    )


@router.post("/runs/{run_id}/webhook", response_model=schemas.DecisionOut)
async def webhook(
    run_id: str,
    body: schemas.Webhook,
    request: Request,
    who: Decider,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """A decision in the shape peers' approval webhooks send. `actor` defaults to the
    token's name; naming anyone else needs the admin scope."""
    actor = body.actor or who.name
    if actor != who.name and "admin" not in who.scopes:
        raise problems.Problem(
            403, "forbidden", "deciding as another actor needs a token with the admin scope"
        )
    fingerprint = {"run_id": run_id, **body.model_dump(), "actor": actor}
    return await decide_once(
        request,
        who,
        idempotency_key,
        fingerprint,
        run_id,
        body.key,
        body.action,
        body.value,
        body.reason,
        actor,
    )
