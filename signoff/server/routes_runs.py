"""Runs: start, list (filters, cursor pagination), get, history, cancel, retry.

Run ids may hold `/`, so every route takes `{run_id:path}`; `tail` holds the routes whose
path ends in the id itself, and the app mounts it after every longer `/runs/...` route.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from signoff import models
from signoff.server import auth, deps, problems, schemas, views

router = APIRouter(tags=["runs"])
tail = APIRouter(tags=["runs"])
Reader = Annotated[auth.Principal, Depends(auth.require("read"))]
Starter = Annotated[auth.Principal, Depends(auth.require("start"))]
# Names `engine.start` takes itself: as workflow kwargs they could never arrive.
_RESERVED_KWARGS = frozenset({"workflow", "run_id", "requested_by"})


@router.post("/runs", status_code=201, response_model=models.Run, operation_id="start_run")
async def start_run(body: schemas.StartRun, request: Request, who: Starter) -> models.Run:
    """Start a run of a workflow by name; `run_id` makes the start idempotent. With auth
    on the requester is the token's name (another needs admin); with auth off it is
    `requested_by` or nobody."""
    clash = sorted(_RESERVED_KWARGS & body.kwargs.keys())
    if clash:
        raise problems.Problem(
            422, "validation_error", f"kwargs may not be named {', '.join(clash)}: "
            "signoff takes those names itself; rename the workflow's parameter",
        )  # fmt: skip
    requested_by = body.requested_by
    if request.app.state.auth:
        if requested_by not in (None, who.name) and "admin" not in who.scopes:
            raise problems.Problem(
                403, "forbidden", "naming another requester needs a token with the admin scope"
            )
        requested_by = requested_by or who.name
    return await deps.engine(request).start(
        body.workflow, *body.args, run_id=body.run_id, requested_by=requested_by, **body.kwargs
    )


@router.get("/runs", response_model=schemas.RunPage, operation_id="list_runs")
async def list_runs(
    request: Request, who: Reader, query: Annotated[schemas.RunQuery, Query()]
) -> schemas.RunPage:
    """Runs, newest first; pass `next_cursor` back as `cursor` for the next page. Results
    over 64 KiB of JSON are truncated (see `$truncated`)."""
    page = await deps.engine(request).list_runs(
        status=query.status, workflow=query.workflow, limit=query.limit, cursor=query.cursor
    )
    return schemas.RunPage(items=[views.clip_run(r) for r in page], next_cursor=page.next_cursor)


@router.get(
    "/runs/{run_id:path}/history",
    response_model=list[models.HistoryEntry],
    operation_id="run_history",
)
async def run_history(
    run_id: deps.RunId, request: Request, who: Reader
) -> list[models.HistoryEntry]:
    """Everything that happened to the run, oldest first."""
    return await deps.engine(request).history(run_id)


@router.post("/runs/{run_id:path}/cancel", response_model=models.Run, operation_id="cancel_run")
async def cancel_run(
    run_id: deps.RunId, request: Request, who: Starter, body: schemas.CancelRun | None = None
) -> models.Run:
    reason = body.reason if body else None
    return await deps.engine(request).cancel(run_id, by=who.name, reason=reason)


@router.post("/runs/{run_id:path}/retry", response_model=models.Run, operation_id="retry_run")
async def retry_run(run_id: deps.RunId, request: Request, who: Starter) -> models.Run:
    """Resume a failed run from its failed step."""
    return await deps.engine(request).retry(run_id, by=who.name)


@tail.get("/runs/{run_id:path}", response_model=models.Run, operation_id="get_run")
async def get_run(run_id: deps.RunId, request: Request, who: Reader) -> models.Run:
    """One run, whole."""
    return await deps.engine(request).get_run(run_id)
