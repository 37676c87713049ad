"""Server-sent events: one run's stream (ends with the run) and the whole inbox.

A caller is recognised by a bearer token, by a stream ticket (`?ticket=`, for
`EventSource` on another origin: tickets.py), or, on a page of this origin, by the web
inbox's session (cookie, trusted proxy or host application); every way needs `read`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from starlette.responses import StreamingResponse

from signoff.server import auth, deps, problems, stream, tickets
from signoff.server.inbox import session

router = APIRouter(tags=["stream"])
# No length limit here: a value that is not an id this API sent is 400 (`_cursor`).
LastEventId = Annotated[str | None, Header(alias="Last-Event-ID")]
TicketParam = Annotated[
    str | None, Query(description="a stream ticket (POST /stream-tickets), for EventSource")
]
AfterParam = Annotated[
    str | None,
    Query(description="as Last-Event-ID, for a new EventSource resuming with a new ticket"),
]
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


Gate = tuple[stream.Allowed | None, float]
"""The check that keeps a stream open, and the seconds between two of its checks."""


async def _caller(request: Request, ticket: str | None, target: str) -> Gate:
    """Admits the caller (401/403 otherwise) and returns the check that keeps the stream
    open. `target`: what a ticket must be for ("run:ID", or "" when none may be)."""
    recheck: float = request.app.state.token_recheck
    if ticket is not None:
        if not target:
            raise problems.Problem(401, "bad_ticket", "stream tickets are for one run or inbox")
        who, allowed = await tickets.admit(request, ticket, target)
        if not who.allows("read"):
            raise problems.Problem(403, "forbidden", "this token lacks the 'read' scope")
        return allowed, recheck
    if not request.app.state.auth:
        return None, recheck
    if "authorization" not in request.headers:  # a page of this origin: the inbox session
        viewer = await session.viewer(request)
        if viewer.name is not None:
            if not viewer.reads_all:
                raise problems.Problem(403, "forbidden", "the stream needs the 'read' scope")

            async def still() -> bool:
                again = await session.viewer(request)
                return again.name == viewer.name and again.reads_all

            return still, recheck
    if not (await auth.authenticate(request)).allows("read"):
        raise problems.Problem(403, "forbidden", "this token lacks the 'read' scope")
    checks: auth.TokenChecks = request.app.state.token_checks  # shared by a token's streams
    secret = request.headers.get("authorization", "").partition(" ")[2].strip()
    return checks.allowed(secret), checks.period


def _respond(
    request: Request, run_id: str | None, after: int | None, gate: Gate
) -> StreamingResponse:
    allowed, recheck = gate
    frames = stream.events(
        request.app.state.hub,
        run_id=run_id,
        after=after,
        heartbeat=request.app.state.heartbeat,
        allowed=allowed,
        recheck=recheck,
    )
    return StreamingResponse(frames, media_type="text/event-stream", headers=HEADERS)


@router.get(
    "/runs/{run_id:path}/stream",
    response_class=StreamingResponse,
    responses=SSE,
    operation_id="stream_run",
)
async def run_stream(
    run_id: deps.RunId,
    request: Request,
    last_event_id: LastEventId = None,
    ticket: TicketParam = None,
    after: AfterParam = None,
) -> StreamingResponse:
    """The run's events from its start (or after `Last-Event-ID`); ends when the run does.
    A bearer token with `read`, a ticket for this run, or the inbox session of this
    origin."""
    gate = await _caller(request, ticket, f"run:{run_id}")
    cursor = _cursor(last_event_id or after)
    await deps.engine(request).get_run(run_id)  # 404 before the stream starts
    return _respond(request, run_id, cursor, gate)


@router.get(
    "/approvals/stream",
    response_class=StreamingResponse,
    responses=SSE,
    operation_id="stream_approvals",
)
async def inbox_stream(
    request: Request, last_event_id: LastEventId = None, after: AfterParam = None
) -> StreamingResponse:
    """Every run's events from now on (or after `Last-Event-ID`); never ends by itself.
    A bearer token with `read`, or the inbox session of this origin (for a ticket, use
    the person's own inbox, `/inbox/stream`)."""
    gate = await _caller(request, request.query_params.get("ticket"), "")
    return _respond(request, None, _cursor(last_event_id or after), gate)
