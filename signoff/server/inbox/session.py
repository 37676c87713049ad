"""Who is looking at the inbox: a signed session cookie, and CSRF checks.

The cookie (`signoff_session`, HttpOnly, SameSite=Strict, Secure over https) holds the
person's name, the SHA-256 hash of the API token they signed in with (never the token),
an expiry and a random nonce, signed with HMAC-SHA256. Every request looks the token up
again by its hash, so revoking the token ends the session at once. With `auth=False`
the cookie holds only a chosen name (or none: see everything, decide as `local`).

The person may instead come from outside signoff: a trusted reverse proxy's header
(`auth.ProxyAuth`) or the host application's `identify` callable; either one is asked
first, and token sign-in remains for whoever they do not name.

Mounted under a path prefix (`scope["root_path"]`), links, redirects and the cookie's
path start with it (`base`).

CSRF: an unsafe request must come from this origin (`Sec-Fetch-Site` same-origin or
none, and `Origin`, when sent, equal to the request's own) and carry the form token,
an HMAC of the session's nonce; a cross-site form post fails both.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import os
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from fastapi import Request
from starlette.responses import Response

from signoff import access
from signoff.engine import Engine
from signoff.server import auth, sealed

COOKIE = "signoff_session"
LIFETIME = 12 * 3600
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
Via = Literal["token", "proxy", "host", "local", "ticket"]


@dataclass(frozen=True, slots=True)
class Session:
    name: str | None  # None: not signed in (auth on) or no name chosen (auth off)
    token_hash: str | None
    expires: int
    nonce: str


@dataclass(frozen=True, slots=True)
class Viewer:
    """The person behind a request, as the inbox sees them."""

    name: str | None
    scopes: frozenset[str]
    session: Session
    csrf: str
    via: Via = "token"  # how they were recognised (no sign-out unless by token)

    @property
    def decider(self) -> str:
        return self.name or auth.LOCAL.name

    @property
    def reads_all(self) -> bool:
        return "read" in self.scopes or "admin" in self.scopes

    @property
    def may_decide(self) -> bool:
        return "decide" in self.scopes or "admin" in self.scopes

    @property
    def inbox_of(self) -> str | None:
        """Whose inbox `/` shows: the person's own (None: everything, auth off unnamed)."""
        return self.name


def secret_key(configured: bytes | None) -> bytes:
    """The session key: `SIGNOFF_SESSION_SECRET`, else the link secret, else random
    (sessions then end when the process restarts and are not shared between processes)."""
    env = os.environ.get("SIGNOFF_SESSION_SECRET")
    if env:
        return hashlib.sha256(b"signoff-session:" + env.encode()).digest()
    if configured:
        return hashlib.sha256(b"signoff-session:" + configured).digest()
    return secrets.token_bytes(32)


def encode(key: bytes, session: Session) -> str:
    return sealed.seal(key, [1, session.name, session.token_hash, session.expires, session.nonce])


def decode(key: bytes, value: str | None) -> Session | None:
    """The session in a cookie, if signed with `key` and not expired."""
    claims = None if not value else sealed.unseal(key, value, max_length=2048)
    if claims is None or len(claims) != 5:
        return None
    version, name, token_hash, expires, nonce = claims
    if version != 1 or not isinstance(expires, int) or expires < time.time():
        return None
    return Session(name, token_hash, expires, str(nonce))


def fresh(name: str | None = None, token_hash: str | None = None) -> Session:
    return Session(name, token_hash, int(time.time()) + LIFETIME, secrets.token_urlsafe(16))


def csrf_token(key: bytes, session: Session) -> str:
    return sealed.mac(key, "csrf:" + session.nonce)


def base(request: Request) -> str:
    """The path prefix the app is mounted under ("" at the root)."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


def set_cookie(request: Request, response: Response, session: Session | None) -> None:
    """Store `session` in the cookie (None: remove it); its path is the mount's."""
    path = base(request) or "/"
    if session is None:
        response.delete_cookie(COOKIE, path=path, httponly=True, samesite="strict")
        return
    response.set_cookie(
        COOKIE,
        encode(request.app.state.inbox_key, session),
        max_age=max(0, session.expires - int(time.time())),
        path=path,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


async def viewer(request: Request) -> Viewer:
    """The person behind `request`; not signed in: `name` None and no scopes (auth on).

    A new anonymous session is made when the cookie is missing or invalid; the caller
    sets it on the response (see `pages.render`)."""
    key: bytes = request.app.state.inbox_key
    session = decode(key, request.cookies.get(COOKIE))
    if session is None:
        session = fresh()
        request.state.new_session = session
    csrf = csrf_token(key, session)
    if not request.app.state.auth:
        return Viewer(session.name, auth.ALL_SCOPES, session, csrf, "local")
    outside = await identified(request)
    if outside is not None:
        identity, via = outside
        return Viewer(identity.name, frozenset(identity.scopes), session, csrf, via)
    if session.name is None or session.token_hash is None:
        return Viewer(None, frozenset(), session, csrf)
    engine: Engine = request.app.state.engine
    token = await engine.store.token_by_hash(session.token_hash)
    if token is None or not token.active or token.name != session.name:
        return Viewer(None, frozenset(), session, csrf)  # revoked: signed out
    return Viewer(token.name, frozenset(token.scopes), session, csrf)


async def identified(request: Request) -> tuple[auth.Identity, Via] | None:
    """Who a trusted proxy or the host application says sent `request`, if anyone."""
    proxy: auth.ProxyAuth | None = request.app.state.proxy_auth
    if proxy is not None:
        identity = proxy.identity(request)
        if identity is not None:
            return identity, "proxy"
    identify: auth.Identify | None = request.app.state.identify
    if identify is None:
        return None
    found: object = identify(request)
    if inspect.isawaitable(found):
        found = await found
    if found is None:
        return None
    if not isinstance(found, auth.Identity):
        raise TypeError(
            f"identify(request) returned {type(found).__name__}; return a "
            "signoff.server.Identity (or None when the caller is not signed in)"
        )
    return found, "host"


async def sign_in(request: Request, secret: str) -> Session | None:
    """A session for the API token `secret`, or None when it is unknown or revoked."""
    engine: Engine = request.app.state.engine
    token = await engine.access.authenticate(secret.strip())
    if token is None:
        return None
    return fresh(token.name, access.token_hash(secret.strip()))


def same_origin(request: Request) -> bool:
    """Whether an unsafe request comes from a page of this origin (browsers send
    `Sec-Fetch-Site`; older ones at least `Origin` on a cross-site post)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    # either scheme: behind a proxy that ends TLS the server itself sees http
    allowed = {f"http://{host}", f"https://{host}"}
    public = request.app.state.public_url
    if public:
        allowed.add("/".join(public.split("/")[:3]))
    return origin in allowed


def check_csrf(request: Request, who: Viewer, token: str | None) -> bool:
    """Whether an unsafe request passes both checks (origin, and the form token)."""
    if request.method not in _UNSAFE:
        return True
    if not same_origin(request) or not token:
        return False
    return hmac.compare_digest(token.encode("utf-8", "replace"), who.csrf.encode())
