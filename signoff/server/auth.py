"""Who is asking: API tokens with scopes, and signed approval links.

A request carries `Authorization: Bearer <token>`; the engine finds the token by the
SHA-256 hash of its secret. Scopes: `read` (look), `start` (start, cancel, retry, signal,
publish), `decide` (decide approvals), `admin` (everything, tokens, links, and deciding
on behalf of another actor). The decision's approver is always the token's name.

A signed link lets one named person take one decision on one approval before it
expires: its payload (run id, key, approver, action or "any", expiry, nonce) is
HMAC-SHA256-signed with the link secret, and its nonce is recorded when used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request

from signoff.engine import Engine
from signoff.server import problems

ALL_SCOPES = frozenset({"read", "start", "decide", "admin"})


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


LOCAL = Principal("local", ALL_SCOPES)


def _unauthorized(detail: str) -> problems.Problem:
    return problems.Problem(
        401, "unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="signoff"'}
    )


async def authenticate(request: Request) -> Principal:
    """The caller, from the bearer token (or `local` when auth is off)."""
    if not request.app.state.auth:
        return LOCAL
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise _unauthorized("send an API token as `Authorization: Bearer <token>`")
    engine: Engine = request.app.state.engine
    token = await engine.access.authenticate(secret.strip())
    if token is None:
        raise _unauthorized("the API token is unknown or revoked")
    return Principal(token.name, frozenset(token.scopes))


def require(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: the caller, who must hold `scope` (or admin)."""

    async def dependency(request: Request) -> Principal:
        principal = await authenticate(request)
        if not principal.allows(scope):
            raise problems.Problem(403, "forbidden", f"this token lacks the {scope!r} scope")
        return principal

    dependency.__name__ = f"require_{scope}"
    return dependency


def require_any(*scopes: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: the caller, who must hold one of `scopes` (or admin); the route
    narrows what each scope may see."""

    async def dependency(request: Request) -> Principal:
        principal = await authenticate(request)
        if not any(principal.allows(s) for s in scopes):
            wanted = " or ".join(repr(s) for s in scopes)
            raise problems.Problem(403, "forbidden", f"this token lacks the {wanted} scope")
        return principal

    dependency.__name__ = "require_" + "_or_".join(scopes)
    return dependency


# signed links ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Link:
    run_id: str
    key: str
    approver: str
    action: str  # approve, reject, request_changes or any
    expires_at: int  # unix seconds
    nonce: str
    round: int | None = None  # the round and digest of the approval the link was made for
    digest: str | None = None


class LinkInvalid(Exception):
    """Tampered, malformed or signed with another key (one answer for all, no oracle)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())


def sign_link(
    secret: bytes,
    *,
    run_id: str,
    key: str,
    approver: str,
    action: str,
    expires_at: int,
    round: int | None = None,
    digest: str | None = None,
) -> tuple[str, Link]:
    link = Link(
        run_id, key, approver, action, int(expires_at), secrets.token_urlsafe(16), round, digest
    )
    fields = [2, link.run_id, link.key, link.approver, link.action, link.expires_at, link.nonce,
              link.round, link.digest]  # fmt: skip
    payload = _b64(json.dumps(fields, separators=(",", ":")).encode())
    return f"{payload}.{_sign(secret, payload)}", link


def verify_link(secret: bytes, token: str) -> Link:
    """The link's claims if its signature holds (expiry is checked by the caller)."""
    payload, dot, signature = token.partition(".")
    if (
        not dot
        or len(token) > 4096
        or not hmac.compare_digest(
            _sign(secret, payload).encode(), signature.encode("utf-8", "replace")
        )
    ):
        raise LinkInvalid
    try:
        fields = json.loads(_unb64(payload))
        version, run_id, key, approver, action, expires_at, nonce, *bound = fields
    except (ValueError, TypeError, binascii.Error):
        raise LinkInvalid from None
    if (version, len(bound)) not in ((1, 0), (2, 2)) or not isinstance(expires_at, int):
        raise LinkInvalid
    round_, digest = bound or (None, None)
    if not isinstance(round_, int | None) or not isinstance(digest, str | None):
        raise LinkInvalid
    return Link(
        str(run_id), str(key), str(approver), str(action), expires_at, str(nonce), round_, digest
    )
