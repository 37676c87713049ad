"""Signals to one run, and events published to whoever waits on a key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from signoff.server import auth, deps, schemas

router = APIRouter(tags=["signals"])
Starter = Annotated[auth.Principal, Depends(auth.require("start"))]


@router.post(
    "/runs/{run_id:path}/signals/{name}",
    status_code=202,
    response_model=schemas.Accepted,
    operation_id="send_signal",
)
async def send_signal(
    run_id: deps.RunId,
    name: Annotated[str, Path(min_length=1, max_length=200)],
    request: Request,
    who: Starter,
    body: schemas.SendSignal | None = None,
) -> schemas.Accepted:
    """Send `data` to the run under `name`; kept until the run waits for it."""
    await deps.engine(request).signal(run_id, name, body.data if body else None, by=who.name)
    return schemas.Accepted()


@router.post("/events", response_model=schemas.Published, operation_id="publish_event")
async def publish_event(
    body: schemas.PublishEvent, request: Request, who: Starter
) -> schemas.Published:
    """Publish an event on `key`; runs waiting on it resume (see `engine.notify`)."""
    woken = await deps.engine(request).notify(body.key, body.data, by=who.name)
    return schemas.Published(woken=woken)
