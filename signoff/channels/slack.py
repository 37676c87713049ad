"""Slack: a Block Kit message per approval and person, with Approve / Reject buttons,
updated in place as the approval moves on ("approved by X", escalated, expired).

Each recipient's address is their Slack user id (the directory's `slack` address; the
message goes to their direct messages with the app), or the whole channel posts to one
conversation (`conversation="C0123..."`). The Web API is `slack_sdk`'s `WebClient`, in a
thread; `base_url` points it elsewhere (a test's stand-in for Slack).

Where a message is posted (its conversation and `ts`) is kept in the store, one row per
approval round and address (`channel_messages`), so any later event of that round
updates the same message with `chat.update`. A row is reserved before posting, so two
deliveries never both post to one person; an update is the same call when repeated, so
a retried delivery changes nothing. An update never takes a message back to an earlier
state (a late "voted" after "decided" is skipped). A worker killed after Slack accepted
a post but before its `ts` was recorded posts once more when the delivery is retried:
Slack's `chat.postMessage` has no idempotency key.

The buttons carry the run id, key, round and digest; the interactivity endpoint
(`signoff.server.routes_slack`) checks Slack's signature and decides through the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from signoff import errors, outbox
from signoff.channels import slack_blocks as blocks
from signoff.channels.base import Channel, DeliveryError, Message

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from signoff.store.base import Store
    from signoff.store.sql_outbox import PostedMessage

SLACK_API = "https://slack.com/api/"
_GIVE_UP = 600.0  # seconds after which a message still not posted never will be
_CLOSING = (outbox.APPROVAL_DECIDED, outbox.APPROVAL_TIMED_OUT, outbox.APPROVAL_EXPIRED)
_POSTING = (outbox.APPROVAL_REQUESTED, outbox.APPROVAL_REMINDER, outbox.APPROVAL_ESCALATED)
# Slack errors no later attempt can fix (https://docs.slack.dev/reference/methods/chat.postMessage)
_PERMANENT = {
    "channel_not_found",
    "is_archived",
    "not_in_channel",
    "user_not_found",
    "cannot_dm_bot",
    "message_not_found",
    "cant_update_message",
    "invalid_blocks",
    "msg_too_long",
}


class SlackChannel(Channel):
    """Post approvals to Slack with buttons, and keep the messages up to date.

    `token`: the app's bot token (`xoxb-...`, scope `chat:write`). `signing_secret`: the
    app's signing secret; with it the server (`signoff serve`, `create_app`) answers
    Slack's button clicks at `/slack/interactions`. `inbox_url`: the server's public URL,
    for the "Open in the inbox" button. `conversation`: post everything to this one
    conversation (a channel id) instead of to each recipient.
    """

    def __init__(
        self,
        name: str = "slack",
        *,
        token: str,
        signing_secret: str | None = None,
        inbox_url: str | None = None,
        conversation: str | None = None,
        base_url: str = SLACK_API,
        timeout: float = 10.0,
    ) -> None:
        where = f"slack channel {name!r}"
        if not isinstance(token, str) or not token.startswith(("xoxb-", "xoxp-")):
            raise errors.InvalidArgument(
                f"{where}: token must be the app's bot token (xoxb-..., with the chat:write "
                "scope), from the Slack app's OAuth & Permissions page"
            )
        if signing_secret is not None and (
            not isinstance(signing_secret, str) or len(signing_secret.strip()) < 16
        ):
            raise errors.InvalidArgument(
                f"{where}: signing_secret is the app's Signing Secret (Basic Information page)"
            )
        self.base_url = _url(base_url, f"{where}: base_url")
        self.inbox_url = _url(inbox_url, f"{where}: inbox_url").rstrip("/") if inbox_url else None
        if conversation is not None and (not isinstance(conversation, str) or not conversation):
            raise errors.InvalidArgument(f"{where}: conversation is a Slack channel id")
        self.name = name
        self.signing_secret = signing_secret
        self.conversation = conversation
        self.address_kind = None if conversation else "slack"
        self.timeout = timeout
        self._token = token
        self._client: WebClient = _client(token, self.base_url, timeout, where)
        self._store: Store | None = None
        self._locks: dict[tuple[str, str, int], asyncio.Lock] = {}

    def __repr__(self) -> str:
        return f"SlackChannel({self.name!r}, base_url={self.base_url!r})"

    def secrets(self) -> Sequence[str]:
        return [s for s in (self._token, self.signing_secret) if s]

    def attach(self, store: Store) -> None:
        self._store = store

    def verify(self, body: bytes, timestamp: str | None, signature: str | None) -> bool:
        """Whether Slack signed this request (v0, within 5 minutes of now)."""
        from slack_sdk.signature import SignatureVerifier

        if not self.signing_secret or not timestamp or not timestamp.isdigit():
            return False
        return SignatureVerifier(self.signing_secret).is_valid(body, timestamp, signature)

    def approval_link(self, run_id: str, key: str) -> str | None:
        if self.inbox_url is None:
            return None
        return f"{self.inbox_url}/inbox/approval?{urlencode({'run': run_id, 'key': key})}"

    # delivering ----------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        d = message.delivery
        addresses = [self.conversation] if self.conversation else list(message.addresses.values())
        data: dict[str, Any] = d.payload.get("data", {})
        if d.key is None:  # a run event: a plain message, nothing to update later
            text, shown = blocks.run_blocks(d.event, data)
            for address in addresses:
                await self._call("chat_postMessage", channel=address, text=text, blocks=shown)
            return
        round_ = int(data.get("round") or (data.get("decision") or {}).get("round") or 1)
        async with self._lock(d.run_id, d.key, round_):
            await self._approval_event(d, data, round_, addresses)

    @contextlib.asynccontextmanager
    async def _lock(self, run_id: str, key: str, round_: int) -> AsyncIterator[None]:
        """One event of an approval round at a time in this process, in order."""
        lock = self._locks.setdefault((run_id, key, round_), asyncio.Lock())
        async with lock:
            yield
        if not lock.locked() and len(self._locks) > 1000:
            self._locks.pop((run_id, key, round_), None)

    async def _approval_event(
        self, d: outbox.Delivery, data: dict[str, Any], round_: int, addresses: list[str]
    ) -> None:
        store = self._require_store()
        assert d.key is not None
        posted = await store.posted_messages(
            channel=self.name, run_id=d.run_id, key=d.key, round=round_
        )
        view = self._view(d, data, round_, posted)
        state = blocks.CLOSED if d.event in _CLOSING else blocks.OPEN
        outcome = data.get("decision") if state == blocks.CLOSED else None
        failed: list[DeliveryError] = []
        if d.event in _POSTING or state == blocks.CLOSED:
            # a place this delivery took but did not post to (a failed attempt): post now
            known = {p.recipient for p in posted if p.ref is not None or p.delivery_id != d.id}
            for address in addresses:
                if address not in known:
                    await _collect(failed, self._post(d, address, round_, view, state, outcome))
        if d.event != outbox.APPROVAL_REQUESTED:
            for row in posted:
                await _collect(failed, self._update(d, row, view, state, outcome))
        if failed:  # the others are out; a retry redoes only these
            raise DeliveryError(
                "; ".join(str(e) for e in failed)[:900],
                permanent=all(e.permanent for e in failed),
            )

    def _view(
        self, d: outbox.Delivery, data: dict[str, Any], round_: int, posted: list[PostedMessage]
    ) -> dict[str, Any]:
        """What the messages of this round show: the request (from this event, or from a
        message already posted), and the notes of this event."""
        assert d.key is not None
        base = next((p.view for p in posted), None)
        if base is None or d.event == outbox.APPROVAL_REQUESTED:
            base = {
                "run_id": d.run_id,
                "workflow": d.workflow,
                "key": d.key,
                "round": round_,
                "summary": data.get("summary") or d.key,
                "proposed": data.get("proposed"),
                "digest": data.get("digest"),
                "deadline": data.get("deadline"),
                "link": self.approval_link(d.run_id, d.key),
                "notes": {},
                **({"question": True} if data.get("question") else {}),
            }
        notes = dict(base.get("notes", {}))
        if d.event == outbox.APPROVAL_ESCALATED:
            added = ", ".join(blocks.escape(str(p)) for p in data.get("added") or ())
            notes["escalated"] = f":arrow_up: Escalated to {added or 'more people'}"
        elif d.event == outbox.APPROVAL_VOTED:
            notes["votes"] = (
                f":ballot_box_with_ballot: {blocks.escape(str(data.get('by')))} voted "
                f"{data.get('status')}: {data.get('approvals')} of {data.get('quorum')} needed"
            )
        return {**base, "notes": notes}

    async def _post(
        self,
        d: outbox.Delivery,
        address: str,
        round_: int,
        view: dict[str, Any],
        state: int,
        outcome: dict[str, Any] | None,
    ) -> None:
        assert d.key is not None
        row = await self._require_store().reserve_channel_message(
            channel=self.name,
            run_id=d.run_id,
            key=d.key,
            round=round_,
            recipient=address,
            delivery_id=d.id,
            state=state,
            view=view,
            now=_now(),
        )
        if row.delivery_id != d.id or row.ref is not None:
            return  # another delivery posts it (and later updates reach it), or posted
        answer = await self._call(
            "chat_postMessage",
            channel=address,
            text=_fallback(view, state, outcome),
            blocks=blocks.approval_blocks(view, state, outcome),
            unfurl_links=False,
        )
        await self._record(
            row, {"channel": answer["channel"], "ts": answer["ts"]}, state, view, outcome
        )

    async def _update(
        self,
        d: outbox.Delivery,
        row: PostedMessage,
        view: dict[str, Any],
        state: int,
        outcome: dict[str, Any] | None,
    ) -> None:
        if row.state > state:
            return  # it shows a later state already
        if row.ref is None:
            if row.delivery_id == d.id or row.updated_at < _now() - _GIVE_UP:
                return  # posted by this delivery (as this event shows), or never will be
            raise DeliveryError(
                f"the message to {row.recipient} is still being posted; updating it later"
            )
        if state == blocks.OPEN and row.state == state and row.view == view:
            return  # shows this already
        if state == blocks.CLOSED and outcome is None:
            outcome = row.view.get("outcome")
        await self._call(
            "chat_update",
            channel=row.ref["channel"],
            ts=row.ref["ts"],
            text=_fallback(view, state, outcome),
            blocks=blocks.approval_blocks(view, state, outcome),
        )
        await self._record(row, row.ref, state, view, outcome)

    async def _record(
        self,
        row: PostedMessage,
        ref: dict[str, Any],
        state: int,
        view: dict[str, Any],
        outcome: dict[str, Any] | None,
    ) -> None:
        await self._require_store().record_channel_message(
            channel=row.channel,
            run_id=row.run_id,
            key=row.key,
            round=row.round,
            recipient=row.recipient,
            ref=ref,
            state=state,
            view={**view, **({"outcome": outcome} if outcome else {})},
            now=_now(),
        )

    def _require_store(self) -> Store:
        if self._store is None:
            raise DeliveryError("the Slack channel was not attached to an engine's store")
        return self._store

    async def _call(self, method: str, **kw: Any) -> dict[str, Any]:
        """One Web API call in a thread; Slack's failures as `DeliveryError`."""
        from slack_sdk.errors import SlackApiError

        host = urlsplit(self.base_url).netloc
        try:
            response = await asyncio.to_thread(getattr(self._client, method), **kw)
        except SlackApiError as exc:
            code = str(exc.response.get("error") or exc.response.status_code)
            where = kw.get("channel", "")
            raise DeliveryError(
                f"Slack answered {method.replace('_', '.')} for {where}: {code}",
                permanent=code in _PERMANENT,
            ) from None
        except (OSError, ValueError) as exc:  # urllib's URLError and timeouts are OSErrors
            raise DeliveryError(f"cannot reach Slack at {host}: {type(exc).__name__}") from None
        return dict(response.data) if isinstance(response.data, dict) else {}


async def _collect(failed: list[DeliveryError], call: Awaitable[None]) -> None:
    try:
        await call
    except DeliveryError as exc:
        failed.append(exc)


def _fallback(view: dict[str, Any], state: int, outcome: dict[str, Any] | None) -> str:
    """The notification text (and what screen readers say)."""
    summary = str(view.get("summary") or view.get("key"))
    if state == blocks.CLOSED:
        status = str((outcome or {}).get("status") or "decided").replace("_", " ")
        return f"{summary}: {status}"
    return f"{'Question for you' if view.get('question') else 'Approval needed'}: {summary}"


def _url(value: str, what: str) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise errors.InvalidArgument(f"{what} must be an http(s)://host/... URL, not {value!r:.80}")
    return value if value.endswith("/") else value + "/"


def _client(token: str, base_url: str, timeout: float, where: str) -> WebClient:
    try:
        from slack_sdk import WebClient
    except ImportError:
        raise errors.InvalidArgument(
            f"{where} needs the slack-sdk package: pip install 'signoff[slack]'"
        ) from None
    # No retries of its own: a retried post could post twice; the outbox retries.
    return WebClient(
        token=token, base_url=base_url, timeout=int(max(1, timeout)), retry_handlers=[]
    )


def _now() -> float:
    return time.time()
