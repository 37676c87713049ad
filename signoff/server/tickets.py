"""Stream tickets: how a page on another origin opens a live stream.

A browser's `EventSource` cannot send an `Authorization` header, and a long-lived token
must not travel in a URL (URLs land in logs, histories and Referer headers). So a front
end asks with its token, `POST /stream-tickets`, for a ticket: short-lived (60 s to
connect), read-only, good for one stream only (one run's, `/runs/{id}/stream`, or the
person's inbox, `/inbox/stream`), and useless anywhere else. It opens the stream with
`?ticket=`; access logs show `ticket=[redacted]` (`logs.py`).

A ticket is stateless: its claims (purpose, the stream, the person, the SHA-256 hash of
their token, expiry, nonce) signed with HMAC-SHA256 under a key derived from the session
key, so it is not interchangeable with a session cookie or an approval link. An open
stream re-checks the token behind it: revoking the token ends the stream. A ticket may
connect again while it lasts (`EventSource` reconnects by itself); after that the page
asks for a new one and resumes with `?last_event_id=`.
"""

from __future__ import annotations

import datetime
import hashlib
import secrets
import time
import urllib.parse
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from signoff import access
from signoff.engine import Engine
from signoff.server import auth, problems, sealed, stream

LIFETIME = 60
PURPOSE = "stream"
INBOX = "inbox"
router = APIRouter(tags=["stream"])


@dataclass(frozen=True, slots=True)
class Ticket:
    target: str  # "inbox", or "run:" + the run id
    name: str
    token_hash: str | None  # None with auth off
    expires: int
    nonce: str


class TicketIn(BaseModel):
    """`stream`: `run` (give `run_id`; needs the `read` scope) or `inbox` (the caller's
    own inbox, filtered as the web inbox filters it; `read` or `decide`)."""

    model_config = ConfigDict(extra="forbid")
    stream: Literal["run", "inbox"]
    run_id: str | None = Field(default=None, min_length=1, max_length=200)


class TicketOut(BaseModel):
    ticket: str
    expires_at: datetime.datetime
    url: str  # the stream's path (under the app's mount prefix) with the ticket


def _key(request: Request) -> bytes:
    inbox_key: bytes = request.app.state.inbox_key
    return hashlib.sha256(b"signoff-stream-ticket:" + inbox_key).digest()


def encode(key: bytes, ticket: Ticket) -> str:
    return sealed.seal(key, [1, PURPOSE, ticket.target, ticket.name, ticket.token_hash,
                             ticket.expires, ticket.nonce])  # fmt: skip


def decode(key: bytes, value: str) -> Ticket | None:
    """The ticket's claims if its signature holds and it has not expired."""
    claims = sealed.unseal(key, value, max_length=2048)
    if claims is None or len(claims) != 7:
        return None
    version, purpose, target, name, token_hash, expires, nonce = claims
    if version != 1 or purpose != PURPOSE or not isinstance(expires, int):
        return None
    if expires < time.time():
        return None
    return Ticket(str(target), str(name), token_hash, expires, str(nonce))


def _refused(detail: str) -> problems.Problem:
    return problems.Problem(401, "bad_ticket", detail)


async def admit(request: Request, value: str, target: str) -> tuple[auth.Principal, stream.Allowed]:
    """The person a ticket for `target` stands for, and the check that keeps their stream
    open (their token still valid); 401 for a ticket that is forged, expired, for another
    stream, or whose token was revoked."""
    ticket = decode(_key(request), value)
    if ticket is None or ticket.target != target:
        raise _refused("the stream ticket is invalid, expired or for another stream")
    engine: Engine = request.app.state.engine

    async def principal() -> auth.Principal | None:
        if ticket.token_hash is None:
            return auth.LOCAL if not request.app.state.auth else None
        token = await engine.store.token_by_hash(ticket.token_hash)
        if token is None or not token.active or token.name != ticket.name:
            return None
        return auth.Principal(token.name, frozenset(token.scopes))

    who = await principal()
    if who is None:
        raise _refused("the token behind this stream ticket is revoked")

    async def allowed() -> bool:
        try:
            return await principal() == who
        except Exception:  # a store outage: keep the stream; the next check decides
            return True

    return who, allowed


async def _issuer(request: Request) -> tuple[auth.Principal, str | None]:
    principal = await auth.authenticate(request)
    if not request.app.state.auth:
        return principal, None
    secret = request.headers.get("authorization", "").partition(" ")[2].strip()
    return principal, access.token_hash(secret)


@router.post("/stream-tickets", response_model=TicketOut, operation_id="create_stream_ticket")
async def create_ticket(
    body: TicketIn,
    request: Request,
    caller: Annotated[tuple[auth.Principal, str | None], Depends(_issuer)],
) -> TicketOut:
    """A short-lived, read-only ticket for one stream (for `EventSource`, which cannot
    send `Authorization`): open `url` (the stream with `?ticket=`) within 60 seconds."""
    who, token_hash = caller
    if body.stream == "run":
        if body.run_id is None:
            raise problems.Problem(422, "invalid_argument", "a run stream needs run_id")
        if not who.allows("read"):
            raise problems.Problem(403, "forbidden", "this token lacks the 'read' scope")
        await request.app.state.engine.get_run(body.run_id)  # 404 for an unknown run
        target, path = f"run:{body.run_id}", f"/runs/{urllib.parse.quote(body.run_id)}/stream"
    else:
        if not (who.allows("read") or who.allows("decide")):
            raise problems.Problem(403, "forbidden", "this token lacks the 'decide' scope")
        target, path = INBOX, "/inbox/stream"
    expires = int(time.time()) + LIFETIME
    ticket = Ticket(target, who.name, token_hash, expires, secrets.token_urlsafe(12))
    value = encode(_key(request), ticket)
    at = datetime.datetime.fromtimestamp(expires, datetime.UTC)
    base = request.scope.get("root_path", "").rstrip("/")
    return TicketOut(ticket=value, expires_at=at, url=f"{base}{path}?ticket={value}")
