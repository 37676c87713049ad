"""Who is asking: API tokens with scopes, and signed approval links.

A request carries `Authorization: Bearer <token>`; the engine finds the token by the
SHA-256 hash of its secret. Scopes: `read` (look), `start` (start, cancel, retry, signal,
publish), `decide` (decide approvals), `admin` (everything, tokens, links, and deciding
on behalf of another actor). The decision's approver is always the token's name.

A signed link lets one named person take one decision on one approval before it
expires: its payload (run id, key, approver, action or "any", expiry, nonce) is
HMAC-SHA256-signed with the link secret, and its nonce is recorded when used.

The web inbox may also learn who is looking from outside signoff (docs/inbox.md): a
reverse proxy's header, believed only from the proxy's addresses (`ProxyAuth`), or the
host application's own authentication, a callable returning an `Identity` (`Identify`).
The API itself keeps to bearer tokens.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

from fastapi import Request

from signoff import access, errors
from signoff.engine import Engine
from signoff.server import problems, sealed

ALL_SCOPES = frozenset({"read", "start", "decide", "admin"})


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


LOCAL = Principal("local", ALL_SCOPES)
logger = logging.getLogger(__name__)


def _scopes(given: Iterable[str], what: str) -> frozenset[str]:
    scopes = frozenset(given)
    unknown = scopes - ALL_SCOPES
    if unknown:
        raise errors.InvalidArgument(
            f"{what} has unknown scopes {sorted(unknown)}; use {sorted(ALL_SCOPES)}"
        )
    return scopes


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a request comes from, as the host application (or a trusted proxy) says:
    their name (the decider recorded) and what they may do in the inbox (`scopes`, as an
    API token's: `decide` by default; `read` for the *All pending* tab and run pages,
    `start` to cancel and retry). Approvals naming `role:X` are resolved by the engine's
    `Directory`, so a role must be known there to count."""

    name: str
    scopes: Collection[str] = frozenset({"decide"})

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or len(self.name) > 200:
            raise errors.InvalidArgument("an Identity's name must be 1 to 200 characters")
        object.__setattr__(self, "scopes", _scopes(self.scopes, "the Identity"))


Identify = Callable[[Request], "Awaitable[Identity | None] | Identity | None"]
"""The host application's authentication: `async def identify(request) -> Identity | None`
(or a plain function; None: not signed in there, and the inbox offers token sign-in)."""


@dataclass(frozen=True, slots=True)
class ProxyAuth:
    """A reverse proxy that signs people in and passes on who they are.

    `header` names the person (e.g. `X-Forwarded-User`); it is believed only on requests
    whose peer address (`request.client.host`) is in `trusted` (addresses or CIDR
    blocks), and ignored from anywhere else. `roles_header` (optional) lists their
    groups, separated by commas; `role_scopes` maps a group to the scopes it adds to
    `scopes`, which everyone signed in by the proxy has."""

    header: str
    trusted: Collection[str]
    roles_header: str | None = None
    role_scopes: Mapping[str, Collection[str]] = field(default_factory=dict)
    scopes: Collection[str] = ("decide",)
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        init=False, default=()
    )

    def __post_init__(self) -> None:
        if not isinstance(self.header, str) or not self.header.strip():
            raise errors.InvalidArgument("ProxyAuth needs the header that names the person")
        if isinstance(self.trusted, str) or not self.trusted:
            raise errors.InvalidArgument(
                "ProxyAuth needs the proxy's addresses: trusted=['127.0.0.1/32', ...]"
            )
        try:
            networks = tuple(ipaddress.ip_network(t.strip(), strict=False) for t in self.trusted)
        except ValueError as exc:
            raise errors.InvalidArgument(f"a trusted proxy address is not valid: {exc}") from None
        object.__setattr__(self, "networks", networks)
        object.__setattr__(self, "scopes", _scopes(self.scopes, "ProxyAuth.scopes"))
        for role, scopes in self.role_scopes.items():
            _scopes(scopes, f"ProxyAuth.role_scopes[{role!r}]")

    def trusts(self, host: str | None) -> bool:
        try:
            address = ipaddress.ip_address(host or "")
        except ValueError:  # no peer address (a Unix socket): not a trusted proxy
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
        return any(address in network for network in self.networks)

    def identity(self, request: Request) -> Identity | None:
        """Who the proxy says sent `request`; None without the header, or when the
        request did not come from a trusted proxy (the header is then ignored)."""
        name = request.headers.get(self.header, "").strip()
        if not name:
            return None
        host = request.client.host if request.client else None
        if not self.trusts(host):
            logger.warning(
                "ignored %s from %s, which is not a trusted proxy",
                self.header,
                host,
                extra={"action": "proxy_header_untrusted"},
            )
            return None
        scopes = set(self.scopes)
        if self.roles_header:
            for role in request.headers.get(self.roles_header, "").split(","):
                scopes.update(self.role_scopes.get(role.strip(), ()))
        try:
            return Identity(name, frozenset(scopes))
        except errors.InvalidArgument:
            return None


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


class TokenChecks:
    """Whether the token behind open streams still reads, looked up in the database at
    most once every `recheck / 4` seconds per token however many streams hold it (a
    lookup under way is shared, and outlives a stream that gives up waiting for it): a
    thousand streams of one token cost one lookup, not a thousand. A stream asks every
    `period` (`recheck` less that quarter), so a revoked token's streams still end within
    `recheck` seconds of the revocation."""

    _KEEP = 64  # lookups kept before the stale ones are dropped

    def __init__(self, engine: Engine, recheck: float) -> None:
        self.engine = engine
        self.fresh = recheck / 4
        self.period = recheck - self.fresh
        self._lookups: dict[str, tuple[float, asyncio.Future[Principal | None]]] = {}

    def allowed(self, secret: str) -> Callable[[], Awaitable[bool]]:
        """The check of a stream opened with the bearer token `secret`: True while the
        token is active and may read (also while the database cannot be asked: the next
        check decides)."""
        token_hash = access.token_hash(secret)

        async def reads() -> bool:
            try:
                who = await asyncio.shield(self._lookup(token_hash))
            except Exception:  # a store outage: keep the stream
                return True
            return who is not None and who.allows("read")

        return reads

    def _lookup(self, token_hash: str) -> asyncio.Future[Principal | None]:
        loop = asyncio.get_running_loop()
        now = loop.time()
        kept = self._lookups.get(token_hash)
        if kept is not None and now - kept[0] < self.fresh and kept[1].get_loop() is loop:
            return kept[1]
        if len(self._lookups) >= self._KEEP:
            for stale in [h for h, (at, _) in self._lookups.items() if now - at >= self.fresh]:
                del self._lookups[stale]
        lookup = loop.create_task(self._principal(token_hash))
        lookup.add_done_callback(_retrieved)  # a failure is every asker's, or nobody's
        self._lookups[token_hash] = (now, lookup)
        return lookup

    async def _principal(self, token_hash: str) -> Principal | None:
        """The active token's holder, or None (revoked or gone)."""
        token = await self.engine.store.token_by_hash(token_hash)
        if token is None or not token.active:
            return None
        return Principal(token.name, frozenset(token.scopes))


def _retrieved(task: asyncio.Future[Principal | None]) -> None:
    if not task.cancelled():
        task.exception()


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
    return sealed.seal(secret, fields), link


def verify_link(secret: bytes, token: str) -> Link:
    """The link's claims if its signature holds (expiry is checked by the caller)."""
    fields = sealed.unseal(secret, token, max_length=4096)
    if fields is None or len(fields) < 7:
        raise LinkInvalid
    version, run_id, key, approver, action, expires_at, nonce, *bound = fields
    if (version, len(bound)) not in ((1, 0), (2, 2)) or not isinstance(expires_at, int):
        raise LinkInvalid
    round_, digest = bound or (None, None)
    if not isinstance(round_, int | None) or not isinstance(digest, str | None):
        raise LinkInvalid
    return Link(
        str(run_id), str(key), str(approver), str(action), expires_at, str(nonce), round_, digest
    )
