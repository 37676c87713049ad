"""Server-sent events: one run's stream (ends with the run) and the whole inbox."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from starlette.responses import StreamingResponse

from signoff.server import auth, deps, problems, stream

router = APIRouter(tags=["stream"])
Reader = Annotated[auth.Principal, Depends(auth.require("read"))]
# No length limit here: a value that is not an id this API sent is 400 (`_cursor`).
LastEventId = Annotated[str | None, Header(alias="Last-Event-ID")]
SSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}
}
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _cursor(value: str | None) -> int | None:
    try:
        return stream.parse_last_event_id(value)
    except ValueError:
        raise problems.Problem(
            400, "bad_last_event_id", "Last-Event-ID must be an event id this API sent"
        ) from None


def _still_allowed(request: Request) -> stream.Allowed | None:
    """Whether the caller's token still reads (revoked or gone: the stream ends)."""
    if not request.app.state.auth:
        return None
    secret = request.headers.get("authorization", "").partition(" ")[2].strip()
    engine = deps.engine(request)

    async def allowed() -> bool:
        try:
            token = await engine.access.authenticate(secret)
        except Exception:  # a store outage: keep the stream; the next check decides
            return True
        return token is not None and auth.Principal(token.name, frozenset(token.scopes)).allows(
            "read"
        )

    return allowed


def _respond(request: Request, run_id: str | None, after: int | None) -> StreamingResponse:
    frames = stream.events(
        request.app.state.hub,
        run_id=run_id,
        after=after,
        heartbeat=request.app.state.heartbeat,
        allowed=_still_allowed(request),
        recheck=request.app.state.token_recheck,
    )
    return StreamingResponse(frames, media_type="text/event-stream", headers=HEADERS)


@router.get(
    "/runs/{run_id:path}/stream",
    response_class=StreamingResponse,
    responses=SSE,
    operation_id="stream_run",
)
async def run_stream(
    run_id: deps.RunId, request: Request, who: Reader, last_event_id: LastEventId = None
) -> StreamingResponse:
    """The run's events from its start (or after `Last-Event-ID`); ends when the run does."""
    after = _cursor(last_event_id)
    await deps.engine(request).get_run(run_id)  # 404 before the stream starts
    return _respond(request, run_id, after)


@router.get(
    "/approvals/stream",
    response_class=StreamingResponse,
    responses=SSE,
    operation_id="stream_approvals",
)
async def inbox_stream(
    request: Request, who: Reader, last_event_id: LastEventId = None
) -> StreamingResponse:
    """Every run's events from now on (or after `Last-Event-ID`); never ends by itself."""
    return _respond(request, None, _cursor(last_event_id))
