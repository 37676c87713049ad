"""Signed approval links: one named person, one decision, one approval, until expiry.
A link to a question (`ctx.ask`) answers it or declines it.

GET only shows the approval and a confirm form (mail scanners open every link); only
POST decides. A link is bound to the round and digest of the approval it was made for,
and its form carries those of the page shown: if the approval changed since (a new round
after request-changes, another proposal), posting gets 409 `stale_digest` and decides
nothing. Tokens are kept out of access logs (`server.logs`). The nonce is recorded (a
conditional insert) before deciding, so a link works once; if the decision cannot be
recorded for a reason other than a conflict, the nonce is released again. Every tampered
link gets the same 403; expired or used: 410.
"""

from __future__ import annotations

import html
import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import HTMLResponse

from signoff import errors, models
from signoff.server import auth, deps, problems, routes_approvals, routes_decisions, schemas

router = APIRouter(tags=["links"])
Admin = Annotated[auth.Principal, Depends(auth.require("admin"))]
Token = Annotated[str, Path(max_length=4096)]
HTML: dict[str, Any] = {"content": {"text/html": {"schema": {"type": "string"}}}}
PAGE_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}
FORM_FIELDS = 10
LABELS = {"approve": "Approve", "reject": "Reject", "request_changes": "Request changes"}


@router.post(
    "/runs/{run_id:path}/approvals/{key:path}/links",
    status_code=201,
    response_model=schemas.LinkOut,
    operation_id="create_link",
)
async def create_link(
    run_id: str, key: str, body: schemas.CreateLink, request: Request, who: Admin
) -> schemas.LinkOut:
    """A signed link for `approver` to take one decision (`action`, or any) on this
    approval as it is now: its round and digest are signed into the link."""
    approval = await routes_approvals.latest_approval(request, run_id, key)
    expires_at = int(time.time()) + body.expires_in
    token, _ = auth.sign_link(
        request.app.state.link_secret,
        run_id=run_id,
        key=key,
        approver=body.approver,
        action=body.action,
        expires_at=expires_at,
        round=approval.round,
        digest=approval.digest,
    )
    base = request.app.state.public_url or str(request.base_url).rstrip("/")
    return schemas.LinkOut(
        url=f"{base}/links/{token}", token=token, expires_at=datetime.fromtimestamp(expires_at, UTC)
    )


def _page(status: int, title: str, body: str) -> HTMLResponse:
    text = (
        "<!doctype html><html><head><meta charset='utf-8'><meta name='robots' "
        f"content='noindex'><title>{html.escape(title)}</title></head><body "
        "style='font-family:sans-serif;max-width:40em;margin:2em auto'>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(text, status_code=status, headers=PAGE_HEADERS)


def _message(status: int, title: str, detail: str) -> HTMLResponse:
    return _page(status, title, f"<p>{html.escape(detail)}</p>")


def _stale(approval: models.Approval) -> HTMLResponse:
    """409 `stale_digest`: the approval changed since the link (or its page) was made."""
    body = (
        "<p>This approval has changed since this link was sent; nothing was decided. Ask "
        "for a new link, or open the inbox.</p>"
        f"<p data-code='stale_digest'>stale_digest: now round {approval.round}, digest "
        f"<code>{html.escape(approval.digest or '')}</code></p>"
    )
    return _page(409, "Approval changed", body)


def _is_stale(link: auth.Link, approval: models.Approval, shown: str | None) -> bool:
    if link.round is not None and link.round != approval.round:
        return True
    return any(d is not None and d != approval.digest for d in (link.digest, shown))


async def _check(request: Request, token: str) -> auth.Link | HTMLResponse:
    try:
        link = auth.verify_link(request.app.state.link_secret, token)
    except auth.LinkInvalid:
        return _message(403, "Invalid link", "This link is not valid.")
    if time.time() >= link.expires_at:
        return _message(410, "Link expired", "This link has expired; open the inbox instead.")
    if await deps.engine(request).access.link_used(link.nonce):
        return _message(410, "Link used", "This link has already been used.")
    return link


async def _approval(request: Request, link: auth.Link) -> models.Approval | HTMLResponse:
    try:
        approval = await routes_approvals.latest_approval(request, link.run_id, link.key)
    except errors.SignoffError:
        return _message(404, "Not found", "This approval no longer exists.")
    if approval.status is not models.ApprovalStatus.PENDING:
        return _message(409, "Already decided", f"This approval is {approval.status.value}.")
    return approval


@router.get(
    "/links/{token}", response_class=HTMLResponse, responses={200: HTML}, operation_id="show_link"
)
async def show_link(token: Token, request: Request) -> HTMLResponse:
    """The approval and a confirm form; changes nothing."""
    link = await _check(request, token)
    if isinstance(link, HTMLResponse):
        return link
    approval = await _approval(request, link)
    if isinstance(approval, HTMLResponse):
        return approval
    if _is_stale(link, approval, None):
        return _stale(approval)
    actions = _actions(link, approval)
    buttons = "".join(
        f"<button type='submit' name='action' value='{a}'>{_label(a, approval)}</button> "
        for a in actions
    )
    proposed = json.dumps(approval.proposed, indent=2, ensure_ascii=False)
    shown = html.escape(approval.digest or "", quote=True)
    answer = ""
    if "answer" in actions:  # a question (ctx.ask): the answer, as text or as JSON
        what = "Your answer" if _text_answer(approval) else "Your answer (JSON)"
        answer = (
            f"<p><label>{what}<br><textarea name='answer' rows='4' cols='50'>"
            "</textarea></label></p>"
        )
    body = (
        f"<p>{html.escape(approval.summary)}</p><pre>{html.escape(proposed)}</pre>"
        f"<p>Deciding as <b>{html.escape(link.approver)}</b>.</p>"
        f"<form method='post'><input type='hidden' name='digest' value='{shown}'>"
        f"<input type='hidden' name='round' value='{approval.round}'>{answer}"
        "<p><label>Reason<br><textarea name='reason' rows='3' cols='50'>"
        f"</textarea></label></p>{buttons}</form>"
    )
    title = "Question" if approval.question else "Approval"
    return _page(200, f"{title}: {approval.key}", body)


def _actions(link: auth.Link, approval: models.Approval) -> list[str]:
    """What this link may do to this approval: a question is answered or declined."""
    if approval.question:
        return ["answer", "reject"] if link.action == "any" else []
    return list(LABELS) if link.action == "any" else [link.action]


def _label(action: str, approval: models.Approval) -> str:
    if approval.question:
        return "Send answer" if action == "answer" else "Decline"
    return LABELS[action]


def _text_answer(approval: models.Approval) -> bool:
    return (approval.schema or {}).get("type") == "string"


def _cross_site(request: Request) -> bool:
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return True
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin == "null"
    own = urlsplit(str(request.base_url))
    theirs = urlsplit(origin)
    return (theirs.scheme, theirs.netloc) != (own.scheme, own.netloc)


def _form(raw: bytes) -> dict[str, str]:
    """The form's fields (first value each); 400 before anything else for a form that is
    not one of ours (too many fields, not UTF-8)."""
    try:
        form = parse_qs(raw.decode("utf-8"), max_num_fields=FORM_FIELDS, strict_parsing=False)
    except (ValueError, UnicodeDecodeError):
        raise problems.Problem(
            400, "bad_form", f"send the link's form: at most {FORM_FIELDS} fields, UTF-8"
        ) from None
    return {name: values[0] for name, values in form.items()}


@router.post(
    "/links/{token}", response_class=HTMLResponse, responses={200: HTML}, operation_id="use_link"
)
async def use_link(token: Token, request: Request) -> HTMLResponse:
    """Take the link's decision (form fields `action`, optional `reason`, and the `digest`
    and `round` of the page shown), once."""
    if _cross_site(request):
        raise problems.Problem(403, "cross_site", "cross-site form posts are refused")
    form = _form(await request.body())
    action = form.get("action", "")
    reason = form.get("reason", "").strip()[:10_000] or None
    link = await _check(request, token)
    if isinstance(link, HTMLResponse):
        return link
    approval = await _approval(request, link)
    if isinstance(approval, HTMLResponse):
        return approval
    if action not in _actions(link, approval):
        return _message(422, "Not allowed", "This link does not allow that decision.")
    value: Any = None
    if action == "answer":
        text = form.get("answer", "")
        try:
            value = text if _text_answer(approval) else json.loads(text)
        except ValueError:
            return _message(422, "Not an answer", "Write the answer as JSON.")
    shown_round = form.get("round")
    if _is_stale(link, approval, form.get("digest")) or shown_round not in (
        None,
        str(approval.round),
    ):
        return _stale(approval)
    return await _decide(request, link, action, reason, approval, value)


async def _decide(
    request: Request,
    link: auth.Link,
    action: str,
    reason: str | None,
    shown: models.Approval,
    value: Any = None,
) -> HTMLResponse:
    engine = deps.engine(request)
    if not await engine.access.use_link(link.nonce, link.run_id, link.key, link.approver):
        return _message(410, "Link used", "This link has already been used.")
    try:
        decision = await routes_decisions.decide(
            request, link.run_id, link.key, action, value, reason, link.approver, shown.digest
        )
    except errors.InvalidEdit as exc:  # the answer does not fit: the link stays usable
        await engine.access.release_link(link.nonce)
        return _message(422, "Not an answer", "; ".join(exc.errors) or str(exc))
    except errors.StaleDigest:
        await engine.access.release_link(link.nonce)
        return _stale(await routes_approvals.latest_approval(request, link.run_id, link.key))
    except errors.DecisionConflict as exc:
        return _message(409, "Already decided", str(exc))
    except BaseException:
        await engine.access.release_link(link.nonce)
        raise
    what = decision.status.value
    if shown.question:
        what = "answered" if decision.status is models.DecisionStatus.EDITED else "declined"
    return _message(200, "Thank you", f"Recorded: {what} by {decision.by}.")
