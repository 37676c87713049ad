"""The inbox pages: the list at `/`, one approval, decisions one at a time and in bulk."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from signoff import durations, errors, models, policy
from signoff.engine import Engine
from signoff.server.inbox import fields, pages, rules, session

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50
MAX_PAGE = 200
MAX_BULK = 100
MAX_FORM_FIELDS = 200
ACTIONS = ("approve", "reject", "request_changes", "edit", "answer")


def engine_of(request: Request) -> Engine:
    e: Engine = request.app.state.engine
    return e


async def read_form(request: Request) -> list[tuple[str, str]]:
    body = (await request.body()).decode("utf-8", "replace")
    try:
        return urllib.parse.parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError:
        return []


def message(request: Request, who: session.Viewer, status: int, title: str, text: str) -> Response:
    return pages.render(request, who, "message.html", status, title=title, text=text)


def to_sign_in(request: Request) -> Response:
    return RedirectResponse(session.base(request) + "/inbox/signin", status_code=303)


TABS = ("mine", "all", "decided")


@dataclass(frozen=True, slots=True)
class Filters:
    """The inbox's query string. The web inbox shows the most urgent first (the API and
    the CLI keep oldest first as their default); `order=oldest` switches."""

    tab: str = "mine"
    workflow: str | None = None
    role: str | None = None
    older_than: str | None = None
    cursor: str | None = None
    limit: int = PAGE_SIZE
    order: Literal["urgent", "oldest"] = "urgent"
    overdue: bool = False

    @classmethod
    def of(cls, request: Request, who: session.Viewer) -> Filters:
        q = request.query_params
        tab = q.get("tab", "mine")
        if tab not in TABS or (tab == "all" and not who.reads_all):
            tab = "mine"
        size = q.get("limit", "")
        limit = int(size) if size.isdigit() and 1 <= int(size) <= MAX_PAGE else PAGE_SIZE
        order: Literal["urgent", "oldest"] = "oldest" if q.get("order") == "oldest" else "urgent"
        return cls(
            tab, q.get("workflow") or None, q.get("role") or None,
            q.get("older_than") or None, q.get("cursor") or None, limit,
            order, q.get("overdue") in ("1", "on", "true"),
        )  # fmt: skip

    def query(self, **change: str | None) -> str:
        limit = None if self.limit == PAGE_SIZE else str(self.limit)
        values = {"tab": self.tab, "workflow": self.workflow, "role": self.role,
                  "older_than": self.older_than, "overdue": "1" if self.overdue else None,
                  "order": None if self.order == "urgent" else self.order,
                  "cursor": self.cursor, "limit": limit, **change}  # fmt: skip
        return urllib.parse.urlencode({k: v for k, v in values.items() if v})

    @property
    def narrowed(self) -> bool:
        return bool(self.workflow or self.role or self.older_than or self.overdue)


async def load_inbox(
    request: Request, who: session.Viewer, filters: Filters
) -> tuple[models.ApprovalPage | None, str | None]:
    """The page the filters ask for, or the problem with the filters."""
    engine = engine_of(request)
    try:
        if filters.tab == "decided":
            page = await engine.decided_approvals(
                by=who.decider, limit=filters.limit, cursor=filters.cursor
            )
            return page, None
        if filters.older_than is not None:
            durations.to_seconds(filters.older_than, "older than")
        if filters.cursor is not None:
            policy.decode_cursor(filters.cursor)
        page = await engine.pending_approvals(
            approver=who.inbox_of if filters.tab == "mine" else None,
            role=filters.role,
            workflow=filters.workflow,
            older_than=filters.older_than,
            overdue=filters.overdue,
            order=filters.order,
            cursor=filters.cursor,
            limit=filters.limit,
        )
    except (errors.InvalidArgument, ValueError, OverflowError) as exc:
        return None, str(exc)[:300]
    return page, None


@router.get("/")
async def inbox(request: Request) -> Response:
    """The approvals waiting for the signed-in person (or all, for readers), or those
    they decided (`tab=decided`)."""
    who = await session.viewer(request)
    if request.app.state.auth and who.name is None:
        return to_sign_in(request)
    filters = Filters.of(request, who)
    page, problem = await load_inbox(request, who, filters)
    return pages.render(
        request, who, "inbox.html", 200 if problem is None else 400,
        page=page, problem=problem, filters=filters, href=rules.href, page_size=PAGE_SIZE,
    )  # fmt: skip


@router.get("/inbox/rows")
async def inbox_rows(request: Request) -> Response:
    """The inbox's rows alone, for the page's live updates."""
    who = await session.viewer(request)
    if request.app.state.auth and who.name is None:
        return message(request, who, 401, "Signed out", "Sign in again.")
    filters = Filters.of(request, who)
    page, problem = await load_inbox(request, who, filters)
    return pages.render(
        request, who, "_rows.html", 200 if problem is None else 400,
        page=page, filters=filters, href=rules.href,
    )  # fmt: skip


@router.get("/inbox/outcome")
async def outcome(request: Request, run: str = "", key: str = "") -> Response:
    """How an approval the person may see stands (for a row that left the inbox)."""
    who = await session.viewer(request)
    engine = engine_of(request)
    approval = await rules.latest(engine, run, key)
    if (
        approval is None
        or who.scopes == frozenset()
        or not await rules.may_see(engine, who, approval)
    ):
        return JSONResponse({"detail": "not found"}, 404, headers=pages.HEADERS)
    return JSONResponse(rules.outcome(approval), headers=pages.HEADERS)


async def approval_page(
    request: Request,
    who: session.Viewer,
    approval: models.Approval,
    status: int = 200,
    **context: Any,
) -> Response:
    engine = engine_of(request)
    run = await engine.get_run(approval.run_id)
    history = await engine.history(approval.run_id)
    rounds = [a for a in await engine.approvals(approval.run_id) if a.key == approval.key]
    given: dict[str, str] = context.pop("given", {})
    return pages.render(
        request, who, "approval.html", status,
        approval=approval, run=run, history=history[-200:], rounds=rounds[:-1],
        may_decide=await rules.may_decide(engine, who, approval),
        fields=fields.form_fields(approval.proposed, given), given=given,
        answer_fields=fields.answer_fields(approval.schema, given) if approval.question else None,
        errors=context.pop("errors", {}), **context,
    )  # fmt: skip


@router.get("/inbox/approval")
async def show_approval(request: Request, run: str = "", key: str = "") -> Response:
    """One approval: what is asked, its run's timeline so far, and the decisions."""
    who = await session.viewer(request)
    if request.app.state.auth and who.name is None:
        return to_sign_in(request)
    engine = engine_of(request)
    approval = await rules.latest(engine, run, key)
    if approval is None or not await rules.may_see(engine, who, approval):
        return message(request, who, 404, "Not found", "No such request is waiting for you.")
    done = request.query_params.get("done")
    banner = "Your decision is recorded." if done == "1" else None
    return await approval_page(request, who, approval, banner=banner)


def _required(action: str, reason: str | None) -> dict[str, str]:
    if action == "reject" and not reason:
        return {"reason": "Say why you reject it."}
    if action == "request_changes" and not reason:
        return {"reason": "Say what should change."}
    return {}


async def _decide(
    engine: Engine,
    approval: models.Approval,
    who: session.Viewer,
    action: str,
    value: Any,
    reason: str | None,
    digest: str | None,
) -> models.Decision:
    run_id, key, by = approval.run_id, approval.key, who.decider
    if action == "edit":
        return await engine.edit(run_id, key, value, by=by, reason=reason, digest=digest)
    if action == "answer":
        return await engine.answer(run_id, key, value, by=by, digest=digest)
    act = {"approve": engine.approve, "reject": engine.reject}.get(action, engine.request_changes)
    return await act(run_id, key, by=by, reason=reason, digest=digest)


@router.post("/inbox/decide")
async def decide(request: Request) -> Response:
    """One decision, from the approval page's forms (with the digest of what it showed)."""
    who = await session.viewer(request)
    form = dict(await read_form(request))
    if not session.check_csrf(request, who, form.get("csrf")):
        return message(request, who, 403, "Refused", "This form did not come from this site.")
    engine = engine_of(request)
    approval = await rules.latest(engine, form.get("run", ""), form.get("key", ""))
    if approval is None or not await rules.may_see(engine, who, approval):
        return message(request, who, 404, "Not found", "No such request is waiting for you.")
    if approval.status is not models.ApprovalStatus.PENDING:
        return await approval_page(request, who, approval, 409, alert=rules.closed(approval))
    if not await rules.may_decide(engine, who, approval):
        return await approval_page(
            request, who, approval, 403, alert="You may not decide this request."
        )
    action, reason = form.get("action", ""), form.get("reason", "").strip() or None
    problems = _required(action, reason) if action in ACTIONS else {"": "Choose a decision."}
    value: Any = None
    if action == "edit":
        value, more = fields.read(approval.proposed, form)
        problems.update(more)
    elif action == "answer":
        value, more = fields.read_answer(approval.schema, form)
        problems.update(more)
    if problems:
        return await approval_page(
            request, who, approval, 422, errors=problems, given=form, open_form=action
        )
    try:
        decision = await _decide(engine, approval, who, action, value, reason, form.get("digest"))
    except errors.SignoffError as exc:
        return await _refused(request, who, approval, exc, form, action)
    done = "1" if decision.status is not models.DecisionStatus.PENDING else "vote"
    target = session.base(request) + rules.href(approval.run_id, approval.key) + f"&done={done}"
    return RedirectResponse(target, status_code=303)


async def _refused(
    request: Request,
    who: session.Viewer,
    approval: models.Approval,
    exc: errors.SignoffError,
    form: dict[str, str],
    action: str,
) -> Response:
    """The approval page again, saying why the decision was not taken."""
    current = await rules.latest(engine_of(request), approval.run_id, approval.key) or approval
    if isinstance(exc, errors.StaleDigest):
        text = "This request changed since you opened it; nothing was decided. Here it is now."
        return await approval_page(request, who, current, 409, alert=text, stale=True)
    if isinstance(exc, errors.InvalidEdit) and approval.question:
        shown = fields.answer_fields(approval.schema) or []
        names = {f.name for f in shown}
        placed = fields.place(exc.errors, None, names)
        if names == {fields.ANSWER} and "" in placed:  # a text answer's message is its own
            placed[fields.ANSWER] = placed.pop("")
        return await approval_page(
            request, who, current, 422, errors=placed, given=form, open_form=action
        )
    if isinstance(exc, errors.InvalidEdit):
        placed = fields.place(exc.errors, approval.proposed)
        return await approval_page(
            request, who, current, 422, errors=placed, given=form, open_form=action
        )
    status = 403 if isinstance(exc, errors.NotAllowedToDecide) else 409
    if isinstance(exc, errors.InvalidArgument):
        status = 422
    return await approval_page(request, who, current, status, alert=str(exc)[:500], given=form)


def _bulk_items(form: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    items = []
    for name, value in form:
        if name != "item":
            continue
        try:
            run_id, key, digest = json.loads(value)
        except (ValueError, TypeError):
            continue
        items.append((str(run_id), str(key), str(digest)))
    return items[:MAX_BULK]


@router.post("/inbox/bulk")
async def bulk(request: Request) -> Response:
    """The same decision on each selected request: each is its own decision, checked
    against its own digest and policy; the page lists which were refused and why."""
    who = await session.viewer(request)
    form = await read_form(request)
    fields_ = dict(form)
    if not session.check_csrf(request, who, fields_.get("csrf")):
        return message(request, who, 403, "Refused", "This form did not come from this site.")
    action, reason = fields_.get("action", ""), fields_.get("reason", "").strip() or None
    items = _bulk_items(form)
    if action not in ("approve", "reject") or not items or _required(action, reason):
        text = "Select requests, choose approve or reject, and give a reason to reject."
        return message(request, who, 422, "Nothing decided", text)
    engine = engine_of(request)
    results = [await _bulk_one(engine, who, *item, action, reason) for item in items]
    return pages.render(
        request, who, "bulk.html", action=action, results=results, href=rules.href,
        decided=sum(1 for r in results if r[3] is None),
    )  # fmt: skip


async def _bulk_one(
    engine: Engine,
    who: session.Viewer,
    run_id: str,
    key: str,
    digest: str,
    action: str,
    reason: str | None,
) -> tuple[str, str, str, str | None]:
    """(run id, key, summary, None when decided or else why not)."""
    approval = await rules.latest(engine, run_id, key)
    if approval is None or not await rules.may_see(engine, who, approval):
        return run_id, key, "", "not found"
    refused = None
    if approval.status is not models.ApprovalStatus.PENDING:
        refused = rules.closed(approval)
    elif not await rules.may_decide(engine, who, approval):
        refused = "you may not decide it"
    else:
        try:
            await _decide(engine, approval, who, action, None, reason, digest)
        except errors.SignoffError as exc:
            refused = str(exc)[:300]
    return run_id, key, approval.summary, refused
