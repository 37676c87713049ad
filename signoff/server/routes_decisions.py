"""Decisions (with `digest` and `Idempotency-Key`) and the webhook.

With auth on, the decider is the token's name, never a field of the body (`by` may only
repeat it). With auth off every caller is `local`, and `by` says who decides, so a person
can start a run and decide it on their own machine; separation of duties still applies
to whatever names are recorded.

`Idempotency-Key`: the key is reserved (a conditional insert, so of concurrent requests
exactly one holds it) before the decision is attempted, and the answer (the decision, or
the conflict) is kept under it. A retry of the same request gets that answer again; a
different request under the same key gets 422 `idempotency_conflict` and decides nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import StringConstraints, TypeAdapter, ValidationError
from starlette.responses import JSONResponse, Response

from signoff import access, errors, models
from signoff.server import auth, deps, problems, schemas

router = APIRouter(tags=["approvals"])
Decider = Annotated[auth.Principal, Depends(auth.require("decide"))]
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)
]
_IDEMPOTENCY_KEY = TypeAdapter(Annotated[str, StringConstraints(min_length=1, max_length=200)])
_DECIDE = TypeAdapter(schemas.Decide)
_PENDING_POLLS = 100  # x 50 ms: how long a retry waits for the first request's answer
CONFLICTS: dict[int | str, dict[str, Any]] = {
    409: {"description": "decided differently already, or `stale_digest` (with the current one)"}
}


def decider(request: Request, who: auth.Principal, by: str | None) -> str:
    """Who decides: the token's name with auth on; `by` (default `local`) with auth off."""
    if not request.app.state.auth:
        return by or who.name
    if by is not None and by != who.name:
        raise problems.Problem(
            403, "forbidden", "the decider is the token's name; `by` may only repeat it"
        )
    return who.name


async def decide(
    request: Request,
    run_id: str,
    key: str,
    action: str,
    value: Any,
    reason: str | None,
    by: str,
    digest: str | None = None,
) -> models.Decision:
    engine = deps.engine(request)
    if action == "edit":
        return await engine.edit(run_id, key, value, by=by, reason=reason, digest=digest)
    if action == "answer":
        return await engine.answer(run_id, key, value, by=by, digest=digest)
    if value is not None:
        raise problems.Problem(
            422, "validation_error", "`value` goes only with action `edit` or `answer`"
        )
    if action == "approve":
        return await engine.approve(run_id, key, by=by, reason=reason, digest=digest)
    if action == "reject":
        return await engine.reject(run_id, key, by=by, reason=reason, digest=digest)
    return await engine.request_changes(run_id, key, by=by, reason=reason, digest=digest)


def _check_value(action: str, given: set[str]) -> None:
    if action == "edit" and "value" not in given:
        raise problems.Problem(422, "validation_error", "action `edit` needs the changed `value`")
    if action == "answer" and "value" not in given:
        raise problems.Problem(422, "validation_error", "action `answer` needs the answer `value`")


async def decide_once(
    request: Request,
    who: auth.Principal,
    idempotency_key: str | None,
    fingerprint: Callable[[], dict[str, Any]],
    act: Callable[[], Awaitable[models.Decision]],
) -> Response:
    """Decide; under an idempotency key, once per key (see the module's docstring).
    `fingerprint()`: what makes two requests the same, asked only under a key."""
    if idempotency_key is None:
        return Response(schemas.DECISION.dump_json(await act()), media_type="application/json")
    engine = deps.engine(request)
    request_hash = hashlib.sha256(
        json.dumps(fingerprint(), sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    kept = await engine.access.reserve_response(who.name, idempotency_key, request_hash)
    if kept is not None:
        if kept.request_hash == request_hash:  # a retry: wait for the first answer
            kept = await _settled(request, who, idempotency_key, kept)
        return _replay(kept, request_hash)
    try:
        status, body = 200, schemas.DECISION.dump_python(await act(), mode="json")
    except errors.DecisionConflict as exc:
        status, body = problems.from_error(exc)
    except BaseException:
        await engine.access.release_response(who.name, idempotency_key)
        raise
    await engine.access.finish_response(who.name, idempotency_key, status, body)
    return _respond(status, body, {})


async def _settled(
    request: Request, who: auth.Principal, idempotency_key: str, kept: access.StoredResponse
) -> access.StoredResponse:
    """The kept answer, after waiting a little for one still being given."""
    engine = deps.engine(request)
    for _ in range(_PENDING_POLLS):
        if not kept.pending:
            break
        await asyncio.sleep(0.05)
        kept = await engine.access.stored_response(who.name, idempotency_key) or kept
    return kept


def _replay(kept: access.StoredResponse, request_hash: str) -> JSONResponse:
    if kept.request_hash != request_hash:
        raise problems.Problem(
            422,
            "idempotency_conflict",
            "this Idempotency-Key was used for a different request; use a new key",
        )
    if kept.pending:
        raise problems.Problem(
            409,
            "idempotency_in_progress",
            "a request with this Idempotency-Key is still being answered; retry shortly",
            headers={"Retry-After": "1"},
        )
    return _respond(kept.status, kept.body, {"Idempotent-Replayed": "true"})


def _respond(status: int, body: Any, headers: dict[str, str]) -> JSONResponse:
    media = problems.MEDIA_TYPE if status >= 400 else "application/json"
    return JSONResponse(body, status_code=status, media_type=media, headers=headers)


async def post_decision(
    run_id: deps.RunId,
    key: str,
    body: schemas.Decide,
    request: Request,
    who: Decider,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Approve, reject, edit (with `value`) or request changes; pass the `digest` you were
    shown to refuse deciding on a stale view."""
    _check_value(body.action, body.model_fields_set)
    by = decider(request, who, body.by)
    return await decide_once(
        request,
        who,
        idempotency_key,
        lambda: {"run_id": run_id, "key": key, **body.model_dump(), "by": by},
        lambda: decide(request, run_id, key, body.action, body.value, body.reason, by, body.digest),
    )


_require_decide = auth.require("decide")


async def _decision_arguments(request: Request) -> dict[str, Any]:
    """`post_decision`'s arguments, found as FastAPI's solver finds them from its
    signature, in the same order with the same answers: the run (404, or 422
    `ambiguous_run_id`), the caller (401; 403 without `decide`), then the
    `Idempotency-Key` header and the body, whose faults come back together as one 422."""
    run_id = await deps.full_run_id(request.path_params["run_id"], request)
    who = await _require_decide(request)
    faults: list[Any] = []
    idempotency_key = request.headers.get("idempotency-key")
    if idempotency_key is not None:
        _validated(_IDEMPOTENCY_KEY, idempotency_key, ("header", "Idempotency-Key"), faults)
    raw = await request.body()  # JSON or empty: the body guard refused anything else
    if raw:
        body = _validated(_DECIDE, json.loads(raw), ("body",), faults)
    else:
        body = None
        faults.append({"type": "missing", "loc": ("body",), "msg": "Field required", "input": None})
    if faults:
        raise RequestValidationError(faults, body=raw)
    return {
        "run_id": run_id,
        "key": request.path_params["key"],
        "body": body,
        "request": request,
        "who": who,
        "idempotency_key": idempotency_key,
    }


def _validated(
    adapter: TypeAdapter[Any], value: Any, where: tuple[str, ...], faults: list[Any]
) -> Any:
    """`value` validated by `adapter`; its errors, located under `where` as FastAPI
    locates them, go to `faults` (and None is returned)."""
    try:
        return adapter.validate_python(value, from_attributes=True)
    except ValidationError as exc:
        faults += [{**e, "loc": (*where, *e["loc"])} for e in exc.errors(include_url=False)]
        return None


class _DecisionRoute(APIRoute):
    """The decision route, the one a person's click and every integration's decision
    take: `post_decision`'s signature documents it (OpenAPI) as any route's does, and its
    arguments are found by `_decision_arguments`, written for this one signature, instead
    of FastAPI's generic dependency solver (about a third of the request's CPU). So
    `dependency_overrides` do not reach it; tests/server/test_decision_route.py holds its
    answers to those of the generic solver."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        async def handler(request: Request) -> Response:
            return await post_decision(**await _decision_arguments(request))

        return handler


router.add_api_route(
    "/runs/{run_id:path}/approvals/{key:path}/decision",
    post_decision,
    methods=["POST"],
    response_model=models.Decision,
    responses=CONFLICTS,
    operation_id="decide",
    route_class_override=_DecisionRoute,
)


@router.post(
    "/runs/{run_id:path}/webhook",
    response_model=models.Decision | models.Run,
    responses=CONFLICTS,
    operation_id="webhook",
)
async def webhook(
    run_id: deps.RunId,
    body: schemas.Webhook,
    request: Request,
    who: Decider,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """A decision (or `cancel`) in the shape peers' approval webhooks send. `actor`
    defaults to the token's name; naming anyone else needs the admin scope. The history
    records the actor and the token that relayed it (`webhook_relayed`)."""
    actor = body.actor or who.name
    if request.app.state.auth and actor != who.name and "admin" not in who.scopes:
        raise problems.Problem(
            403, "forbidden", "deciding as another actor needs a token with the admin scope"
        )
    engine = deps.engine(request)
    if body.action == "cancel":
        if not who.allows("start"):
            raise problems.Problem(403, "forbidden", "cancelling needs the 'start' scope")
        run = await engine.cancel(run_id, by=actor, reason=body.reason)
        await _relayed(request, run_id, who, actor, body)
        return JSONResponse(schemas.RUN.dump_python(run, mode="json"))
    key = body.key
    if key is None:
        raise problems.Problem(422, "validation_error", "`key` names the approval to decide")
    _check_value(body.action, body.model_fields_set)
    response = await decide_once(
        request,
        who,
        idempotency_key,
        lambda: {"run_id": run_id, **body.model_dump(), "actor": actor},
        lambda: decide(
            request, run_id, key, body.action, body.value, body.reason, actor, body.digest
        ),
    )
    if response.status_code < 400 and "idempotent-replayed" not in response.headers:
        await _relayed(request, run_id, who, actor, body)
    return response


async def _relayed(
    request: Request, run_id: str, who: auth.Principal, actor: str, body: schemas.Webhook
) -> None:
    data = {"key": body.key, "action": body.action, "actor": actor, "token": who.name}
    await deps.engine(request).access.record_history(run_id, "webhook_relayed", data, actor=actor)
