"""Slack's button clicks: `POST /slack/interactions`, present when one of the engine's
Slack channels has a signing secret (docs/notifications.md).

A request counts only when Slack signed it: `X-Slack-Signature` is `v0=` and the
HMAC-SHA256 of `v0:{timestamp}:{raw body}` under the app's signing secret, and
`X-Slack-Request-Timestamp` is within 5 minutes (checked by `slack_sdk`'s
`SignatureVerifier`); anything else gets 401 and decides nothing. A signature is used
once (kept like a signed link's nonce), so a replayed request decides nothing either.

The clicking Slack user is mapped to a person through the engine's directory (its
`person("slack", user_id)`, as `signoff.channels.Contacts` has); the decision is the
engine's, under that name, with the round and digest the button carries: an unknown
user, one who may not decide, or a request that changed since the message was posted
gets an ephemeral reply (through the interaction's `response_url`) and nothing is
decided. Slack's retries (`X-Slack-Retry-Num`) and double clicks reach the engine's
first-decision-wins: the same decision again is no second decision. The answer to
Slack is an empty 200 at once; the message itself is updated through the outbox.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, FastAPI, Request
from starlette.background import BackgroundTask
from starlette.responses import Response

from signoff import errors, models
from signoff.channels import slack_blocks
from signoff.channels.slack import SlackChannel
from signoff.engine import Engine
from signoff.server import deps, problems, routes_approvals

log = logging.getLogger(__name__)
router = APIRouter(tags=["slack"])
SLACK_HOOKS = "hooks.slack.com"


def mount(app: FastAPI, engine: Engine) -> None:
    """Add the route when a Slack channel of `engine` has a signing secret."""
    signers = [
        c
        for c in engine.routing.channels.values()
        if isinstance(c, SlackChannel) and c.signing_secret
    ]
    if signers:
        app.state.slack = signers
        app.include_router(router)


@dataclass(frozen=True, slots=True)
class Click:
    action: str  # approve | reject
    run_id: str
    key: str
    round: int
    digest: str | None
    user: str  # the Slack user id
    response_url: str | None


@router.post("/slack/interactions", include_in_schema=False)
async def interactions(request: Request) -> Response:
    body = await request.body()
    signature = request.headers.get("x-slack-signature")
    timestamp = request.headers.get("x-slack-request-timestamp")
    signers: list[SlackChannel] = request.app.state.slack
    channel = next((c for c in signers if c.verify(body, timestamp, signature)), None)
    if channel is None or signature is None:
        return problems.response(401, "bad_signature", "not a request signed by Slack")
    click = _click(body)
    if click is None:  # another interaction (the inbox link button, ...): nothing to do
        return Response(status_code=200)
    engine = deps.engine(request)
    extra = {"action": "slack_click", "run_id": click.run_id, "slack_user": click.user}
    if request.headers.get("x-slack-retry-num"):
        extra["retry"] = request.headers["x-slack-retry-num"]
    if not await engine.access.use_link("slack:" + signature, click.run_id, click.key, click.user):
        log.warning("a Slack request was replayed; nothing decided", extra=extra)
        return Response(status_code=200)
    refusal = await _decide(request, engine, channel, click)
    log.info("Slack %s: %s", click.action, refusal or "decided", extra=extra)
    if refusal is None or not _may_reply(channel, click.response_url):
        return Response(status_code=200)
    assert click.response_url is not None
    return Response(status_code=200, background=BackgroundTask(_reply, click.response_url, refusal))


def _click(body: bytes) -> Click | None:
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True)
        payload: dict[str, Any] = json.loads(form["payload"][0])
        if payload.get("type") != "block_actions":
            return None
        action = payload["actions"][0]
        decision = slack_blocks.ACTIONS.get(action.get("action_id"))
        if decision is None:
            return None
        value = json.loads(action["value"])
        return Click(
            action=decision,
            run_id=str(value["run"]),
            key=str(value["key"]),
            round=int(value["round"]),
            digest=value.get("digest"),
            user=str(payload["user"]["id"]),
            response_url=payload.get("response_url"),
        )
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None


def person_of(directory: Any, user: str) -> str | None:
    """Who this Slack user is, through the directory's `person("slack", user_id)`."""
    lookup = getattr(directory, "person", None)
    found = lookup("slack", user) if callable(lookup) else None
    return found if isinstance(found, str) and found else None


async def _decide(
    request: Request, engine: Engine, channel: SlackChannel, click: Click
) -> str | None:
    """Decide as the person who clicked; None when decided, else what to tell them."""
    person = person_of(engine.directory, click.user)
    if person is None:
        return (
            "signoff does not know your Slack account, so nothing was decided. Ask an "
            "admin to add your Slack user id to the directory."
        )
    try:
        approval = await routes_approvals.latest_approval(request, click.run_id, click.key)
    except errors.SignoffError:
        return "This request no longer exists; nothing was decided."
    link = channel.approval_link(click.run_id, click.key)
    changed = "This request changed since this message was posted; nothing was decided." + (
        f" Open it in the inbox: {link}" if link else ""
    )
    if approval.round != click.round or (click.digest and click.digest != approval.digest):
        return changed
    if approval.status is not models.ApprovalStatus.PENDING:
        who = f" by {approval.decided_by}" if approval.decided_by else ""
        return f"This request is already {approval.status.value}{who}; nothing was decided."
    decide = engine.approve if click.action == "approve" else engine.reject
    try:
        await decide(click.run_id, click.key, by=person, digest=approval.digest)
    except errors.StaleDigest:
        return changed
    except errors.NotAllowedToDecide as exc:
        return f"You may not decide this request ({exc}); nothing was decided."
    except errors.DecisionConflict as exc:
        return f"{exc}; nothing was decided."
    except errors.SignoffError as exc:
        return f"Nothing was decided: {exc}"
    return None


def _may_reply(channel: SlackChannel, url: str | None) -> bool:
    """Reply only to Slack's own response URLs (or the stand-in the channel talks to)."""
    if not url:
        return False
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.netloc == SLACK_HOOKS:
        return True
    return parts.netloc == urlsplit(channel.base_url).netloc


async def _reply(url: str, text: str) -> None:
    """An ephemeral message to the person who clicked; a failure is only logged."""
    from slack_sdk.webhook import WebhookClient

    def send() -> None:
        client = WebhookClient(url, timeout=5)
        client.send(text=text, response_type="ephemeral", replace_original=False)

    try:
        await asyncio.to_thread(send)
    except Exception:
        log.warning("cannot reply to a Slack click", exc_info=True, extra={"action": "slack_reply"})
