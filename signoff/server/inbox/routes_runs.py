"""Run pages for operators (the `read` scope): the list with search, one run's timeline,
and cancel and retry (the `start` scope)."""

from __future__ import annotations

import datetime
import urllib.parse
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from signoff import errors, models
from signoff.server.inbox import pages, routes, rules, session

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50
STATUSES = [s.value for s in models.RunStatus]


def run_href(run_id: str) -> str:
    return "/inbox/run?" + urllib.parse.urlencode({"id": run_id})


def _before(request: Request) -> tuple[float, str] | None:
    """Where the page starts: `after` (a cursor "TIME ID") or `created_before` (a date)."""
    q = request.query_params
    cursor, day = q.get("after", ""), q.get("created_before", "")
    if cursor:
        at, _, run_id = cursor.partition(" ")
        return float(at), run_id
    if day:
        start = datetime.datetime.fromisoformat(day).replace(tzinfo=datetime.UTC)
        return start.timestamp(), ""
    return None


async def _find(request: Request, who: session.Viewer, prefix: str) -> Response:
    engine = routes.engine_of(request)
    try:
        run_id = await engine.resolve_run_id(prefix)
    except errors.SignoffError as exc:
        return routes.message(request, who, 404, "No such run", str(exc)[:300])
    return RedirectResponse(session.base(request) + run_href(run_id), status_code=303)


@router.get("/inbox/runs")
async def runs(request: Request) -> Response:
    """Runs, newest first, by status, workflow and creation date; or one by id prefix."""
    who = await session.viewer(request)
    if request.app.state.auth and who.name is None:
        return routes.to_sign_in(request)
    if not who.reads_all:
        return routes.message(request, who, 403, "Runs", "Run pages need the 'read' scope.")
    q = request.query_params
    if q.get("id"):
        return await _find(request, who, q["id"].strip())
    status, workflow = q.get("status") or None, q.get("workflow") or None
    problem, found = None, list[models.Run]()
    try:
        found = await routes.engine_of(request).list_runs(
            status=status, workflow=workflow, limit=PAGE_SIZE + 1, before=_before(request)
        )
    except (errors.SignoffError, ValueError, OverflowError) as exc:
        problem = str(exc)[:300]
    shown, more = found[:PAGE_SIZE], len(found) > PAGE_SIZE
    after = f"{shown[-1].created_at.timestamp()!r} {shown[-1].id}" if more and shown else None
    keep = {k: v for k, v in q.items() if k in ("status", "workflow") and v}
    next_href = "/inbox/runs?" + urllib.parse.urlencode({**keep, "after": after}) if after else None
    return pages.render(
        request, who, "runs.html", 200 if problem is None else 400,
        runs=shown, problem=problem, statuses=STATUSES, query=q, run_href=run_href,
        next_href=next_href,
    )  # fmt: skip


async def _run_context(request: Request, run_id: str) -> dict[str, Any] | None:
    engine = routes.engine_of(request)
    try:
        run = await engine.get_run(run_id)
    except (errors.RunNotFound, errors.InvalidArgument):
        return None
    history = await engine.history(run_id)
    approvals = await engine.approvals(run_id)
    return {"run": run, "history": history[-1000:], "approvals": approvals}


@router.get("/inbox/run")
async def run_page(request: Request, id: str = "") -> Response:
    """One run: its status, input, result or error, approvals and full timeline."""
    who = await session.viewer(request)
    if request.app.state.auth and who.name is None:
        return routes.to_sign_in(request)
    context = await _run_context(request, id) if who.reads_all else None
    if context is None:
        return routes.message(request, who, 404, "Not found", "No such run.")
    fragment = request.query_params.get("part") == "timeline"
    return pages.render(
        request, who, "_run_live.html" if fragment else "run.html",
        may_operate="start" in who.scopes or "admin" in who.scopes,
        href=rules.href, **context,
    )  # fmt: skip


@router.post("/inbox/run")
async def operate(request: Request) -> Response:
    """Cancel or retry a run (the `start` scope), from the run page."""
    who = await session.viewer(request)
    form = dict(await routes.read_form(request))
    if not session.check_csrf(request, who, form.get("csrf")):
        return routes.message(request, who, 403, "Refused", "This form did not come from here.")
    if not ("start" in who.scopes or "admin" in who.scopes):
        return routes.message(request, who, 403, "Refused", "This needs the 'start' scope.")
    engine, run_id, action = routes.engine_of(request), form.get("id", ""), form.get("action")
    try:
        if action == "cancel":
            await engine.cancel(run_id, by=who.decider, reason=form.get("reason") or None)
        elif action == "retry":
            await engine.retry(run_id, by=who.decider)
        else:
            return routes.message(request, who, 422, "Refused", "Choose cancel or retry.")
    except errors.SignoffError as exc:
        return routes.message(request, who, exc.status, "Refused", str(exc)[:300])
    return RedirectResponse(session.base(request) + run_href(run_id), status_code=303)
