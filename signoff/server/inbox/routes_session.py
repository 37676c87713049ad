"""Sign-in and sign-out, and the inbox's live stream (same origin, by session cookie).

The stream is the API's server-sent events, filtered for the person (inbox/live.py): an
approval event goes out only when they may see that approval, reduced to its run, key,
status and who decided; other events only to readers of everything, reduced to their
run and type. A page of another origin opens it with
a stream ticket for the inbox (`?ticket=`, tickets.py) instead of the cookie.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from signoff.server import stream, tickets
from signoff.server.inbox import live, pages, routes, session

router = APIRouter(include_in_schema=False)


@router.get("/inbox/signin")
async def sign_in_page(request: Request) -> Response:
    who = await session.viewer(request)
    return pages.render(request, who, "signin.html")


@router.post("/inbox/signin")
async def sign_in(request: Request) -> Response:
    """An API token (or, with auth off, a name) becomes a session cookie; the token
    itself is not kept in the cookie and never appears in a URL."""
    who = await session.viewer(request)
    form = dict(await routes.read_form(request))
    if not session.check_csrf(request, who, form.get("csrf")):
        return routes.message(request, who, 403, "Refused", "This form did not come from here.")
    if request.app.state.auth:
        new = await session.sign_in(request, form.get("token", ""))
    else:
        name = form.get("name", "").strip()[:200]
        new = session.fresh(name or None)
    if new is None:
        problem = "That token is unknown or revoked."
        return pages.render(request, who, "signin.html", 401, problem=problem)
    response = RedirectResponse(session.base(request) + "/", status_code=303)
    session.set_cookie(request, response, new)
    return response


@router.post("/inbox/signout")
async def sign_out(request: Request) -> Response:
    who = await session.viewer(request)
    form = dict(await routes.read_form(request))
    if not session.check_csrf(request, who, form.get("csrf")):
        return routes.message(request, who, 403, "Refused", "This form did not come from here.")
    response = RedirectResponse(session.base(request) + "/inbox/signin", status_code=303)
    session.set_cookie(request, response, None)
    return response


def _still_signed_in(request: Request, who: session.Viewer) -> stream.Allowed:
    async def allowed() -> bool:
        again = await session.viewer(request)
        return again.name == who.name and again.scopes == who.scopes

    return allowed


@router.get("/inbox/stream")
async def live_stream(request: Request) -> Response:
    """The person's inbox events, live (resumes after `Last-Event-ID`, or
    `?last_event_id=` for a new ticket's stream)."""
    q = request.query_params
    ticket = q.get("ticket")
    if ticket is not None:
        principal, allowed = await tickets.admit(request, ticket, tickets.INBOX)
        who = session.Viewer(principal.name, principal.scopes, session.fresh(), "", "ticket")
    else:
        who = await session.viewer(request)
        if request.app.state.auth and who.name is None:
            return routes.message(request, who, 401, "Signed out", "Sign in again.")
        allowed = _still_signed_in(request, who)
    try:
        after = stream.parse_last_event_id(
            request.headers.get("last-event-id") or q.get("last_event_id")
        )
    except ValueError:
        after = None
    frames = stream.events(
        request.app.state.hub,
        after=after,
        heartbeat=request.app.state.heartbeat,
        allowed=allowed if request.app.state.auth else None,
        recheck=request.app.state.token_recheck,
        fanout=_fanout(request),
        viewer=who,
    )
    headers = {**pages.HEADERS, "X-Accel-Buffering": "no"}
    return StreamingResponse(frames, media_type="text/event-stream", headers=headers)


def _fanout(request: Request) -> live.InboxFanout:
    """The app's one inbox fanout (made with its first inbox stream)."""
    state = request.app.state
    fanout: live.InboxFanout | None = getattr(state, "inbox_fanout", None)
    if fanout is None:
        fanout = state.inbox_fanout = live.InboxFanout(routes.engine_of(request))
    return fanout
