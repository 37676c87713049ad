"""Small helpers shared by the routes."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Request

from signoff.engine import Engine
from signoff.server import auth


def engine(request: Request) -> Engine:
    e: Engine = request.app.state.engine
    return e


_WHOLE_ID = re.compile(r"[0-9a-f]{32}")  # the shape of a generated run id


async def full_run_id(run_id: str, request: Request) -> str:
    """The run the path names: its id, or a unique start of it (6 characters or more, as
    the CLI and the demo show ids shortened). 404 for none, 422 `ambiguous_run_id` for several."""
    if _WHOLE_ID.fullmatch(run_id):
        return run_id  # the common case costs no lookup
    await auth.authenticate(request)  # nothing is told about runs before the caller is known
    return await engine(request).resolve_run_id(run_id)


RunId = Annotated[str, Depends(full_run_id)]
