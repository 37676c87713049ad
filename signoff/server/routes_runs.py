"""Runs: start, list (filters, cursor pagination), get, history, cancel, retry."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from signoff import models
from signoff.server import auth, deps, problems, schemas

router = APIRouter(tags=["runs"])
Reader = Annotated[auth.Principal, Depends(auth.require("read"))]
Starter = Annotated[auth.Principal, Depends(auth.require("start"))]
RunId = Annotated[str, "run id"]
_SLACK = 8


def _run(run: models.Run) -> schemas.RunOut:
    return schemas.RunOut.model_validate(run)


@router.post("/runs", status_code=201, response_model=schemas.RunOut)
async def start_run(body: schemas.StartRun, request: Request, who: Starter) -> schemas.RunOut:
    """Start a run of a workflow by name; `run_id` makes the start idempotent."""
    run = await deps.engine(request).start(
        body.workflow, *body.args, run_id=body.run_id, requested_by=who.name, **body.kwargs
    )
    return _run(run)


def encode_cursor(run: models.Run) -> str:
    raw = json.dumps([run.created_at.timestamp(), run.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        created, run_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(created, int | float) or not isinstance(run_id, str):
            raise ValueError(cursor)
        return float(created), run_id
    except (ValueError, TypeError, binascii.Error):
        raise problems.Problem(
            400, "bad_cursor", "the cursor is not one this API handed out"
        ) from None


@router.get("/runs", response_model=schemas.RunPage)
async def list_runs(
    request: Request,
    who: Reader,
    status: Annotated[models.RunStatus | None, Query()] = None,
    workflow: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> schemas.RunPage:
    """Runs, newest first; pass `next_cursor` back as `cursor` for the next page."""
    before = decode_cursor(cursor) if cursor else None
    # Timestamps travel with microsecond precision: ask from just past the cursor and
    # drop what is not strictly older than it.
    runs = await deps.engine(request).list_runs(
        status=status,
        workflow=workflow,
        limit=limit + 1 + (_SLACK if before else 0),
        before=None if before is None else (before[0] + 1e-6, "\U0010ffff"),
    )
    if before is not None:
        at = datetime.fromtimestamp(before[0], UTC)
        runs = [r for r in runs if (r.created_at, r.id) < (at, before[1])]
    page = runs[:limit]
    more = len(runs) > limit
    return schemas.RunPage(
        items=[_run(r) for r in page], next_cursor=encode_cursor(page[-1]) if more else None
    )


@router.get("/runs/{run_id}", response_model=schemas.RunOut)
async def get_run(run_id: RunId, request: Request, who: Reader) -> schemas.RunOut:
    return _run(await deps.engine(request).get_run(run_id))


@router.get("/runs/{run_id}/history", response_model=list[schemas.EventOut])
async def run_history(run_id: RunId, request: Request, who: Reader) -> list[schemas.EventOut]:
    """Everything that happened to the run, oldest first."""
    events = await deps.engine(request).history(run_id)
    return [schemas.EventOut.model_validate(e) for e in events]


@router.post("/runs/{run_id}/cancel", response_model=schemas.RunOut)
async def cancel_run(
    run_id: RunId, request: Request, who: Starter, body: schemas.CancelRun | None = None
) -> schemas.RunOut:
    reason = body.reason if body else None
    return _run(await deps.engine(request).cancel(run_id, by=who.name, reason=reason))


@router.post("/runs/{run_id}/retry", response_model=schemas.RunOut)
async def retry_run(run_id: RunId, request: Request, who: Starter) -> schemas.RunOut:
    """Resume a failed run from its failed step."""
    return _run(await deps.engine(request).retry(run_id, by=who.name))
