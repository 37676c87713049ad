"""What the HTTP API needs besides the engine's domain operations, held by the engine
as `engine.access`: the tail of the history (for the live streams), API tokens,
idempotency records and signed-link uses.

They go through the store like every other operation. The engine's old spellings of
the public ones (`engine.create_token`, `engine.events`, ...) are deprecated aliases,
kept for one release (`Moved`).
"""

from __future__ import annotations

import hashlib
import inspect
import secrets
import warnings
from collections.abc import Callable, Coroutine
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    ParamSpec,
    Protocol,
    TypeVar,
    overload,
)

from signoff import clock, errors, serialization
from signoff.store import sql_api

if TYPE_CHECKING:
    from signoff import models
    from signoff.store.base import Store

TOKEN_SCOPES = ("read", "start", "decide", "admin")
LINK_MAX_AGE = 90 * 86400  # the longest a signed link may live; its used nonce outlives it
StoredResponse = sql_api.StoredResponse
T = TypeVar("T")
P = ParamSpec("P")


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Access:
    """Operations the HTTP server (and `signoff tokens`) use: `engine.access`."""

    def __init__(self, store: Store, clock_: clock.Clock) -> None:
        self.store = store
        self.clock = clock_

    async def history_since(
        self, after: int = 0, *, run_id: str | None = None, limit: int = 500
    ) -> list[models.HistoryEntry]:
        """History entries with an id above `after`, oldest first (of one run, or all
        runs); the ids increase, so the last id seen is a cursor for the next call."""
        serialization.check_texts((run_id, "run_id"))
        return await self.store.history_after(after_id=after, run_id=run_id, limit=limit)

    async def last_history_id(self) -> int:
        """The id of the newest history entry (0 when there is none)."""
        return await self.store.last_history_id()

    async def inbox_principals(self, run_id: str, key: str) -> list[str]:
        """Whose inbox holds the pending approval `key` of `run_id` (the live inbox
        stream's audience): names, `role:NAME`, `*` for anyone, `!NAME` for anyone but
        NAME. Empty once it is decided."""
        serialization.check_texts((run_id, "run_id"), (key, "key"))
        return await self.store.inbox_principals(run_id, key)

    async def create_token(
        self, name: str, scopes: list[str], *, by: str | None = None
    ) -> tuple[sql_api.ApiToken, str]:
        """Create an API token; returns it and its secret, which is shown only now (the
        database keeps its SHA-256 hash). Scopes: read, start, decide, admin."""
        serialization.check_texts((name, "token name"), (by, "by"))
        if not name or len(name) > 200:
            raise errors.InvalidArgument("a token needs a name of 1 to 200 characters")
        bad = sorted(set(scopes) - set(TOKEN_SCOPES))
        if bad or not scopes:
            raise errors.InvalidArgument(
                f"unknown scopes {bad}; use some of: {', '.join(TOKEN_SCOPES)}"
                if bad
                else f"a token needs at least one scope: {', '.join(TOKEN_SCOPES)}"
            )
        token_id = secrets.token_hex(6)
        secret = f"so_{token_id}_{secrets.token_urlsafe(32)}"
        token = await self.store.create_token(
            id=token_id,
            name=name,
            hash=token_hash(secret),
            scopes=[s for s in TOKEN_SCOPES if s in scopes],
            by=by,
            now=self.clock.time(),
        )
        return token, secret

    async def list_tokens(self) -> list[sql_api.ApiToken]:
        return await self.store.list_tokens()

    async def revoke_token(self, token_id: str, *, by: str | None = None) -> sql_api.ApiToken:
        """Revoke a token at once (repeating it is harmless); `by` goes on the audit chain."""
        serialization.check_texts((token_id, "token id"), (by, "by"))
        token = await self.store.revoke_token(id=token_id, now=self.clock.time(), by=by)
        if token is None:
            raise errors.InvalidArgument(
                f"no token with id {token_id!r}; see `signoff tokens list`"
            )
        return token

    async def authenticate(self, secret: str) -> sql_api.ApiToken | None:
        """The active token with this secret, or None."""
        if not isinstance(secret, str) or not secret.isascii() or len(secret) > 500:
            return None
        token = await self.store.token_by_hash(token_hash(secret))
        return token if token is not None and token.active else None

    async def stored_response(self, subject: str, key: str) -> sql_api.StoredResponse | None:
        """The response kept for a request under this idempotency key, if any."""
        return await self.store.get_response(subject=subject, key=key)

    async def reserve_response(
        self, subject: str, key: str, request_hash: str, *, stale_after: float = 60.0
    ) -> sql_api.StoredResponse | None:
        """Reserve an idempotency key before acting on a request: None when this request
        now holds it (of concurrent requests exactly one does), else what is kept under it
        (`pending` while its request is still being answered)."""
        return await self.store.reserve_response(
            subject=subject,
            key=key,
            request_hash=request_hash,
            now=self.clock.time(),
            stale_after=stale_after,
        )

    async def finish_response(self, subject: str, key: str, status: int, body: Any) -> None:
        """Keep the answer of the request that reserved the key."""
        await self.store.finish_response(subject=subject, key=key, status=status, body=body)

    async def release_response(self, subject: str, key: str) -> None:
        """Give up a reservation whose request failed before anything was recorded."""
        await self.store.release_response(subject=subject, key=key)

    async def record_history(
        self, run_id: str, type: str, data: dict[str, Any], *, actor: str | None = None
    ) -> None:
        """Append an entry to a run's history (e.g. which token relayed a decision)."""
        serialization.check_texts((run_id, "run_id"), (actor, "actor"))
        await self.store.record_history(
            run_id=run_id, type=type, actor=actor, data=data, now=self.clock.time()
        )

    async def use_link(self, nonce: str, run_id: str, key: str, approver: str) -> bool:
        """Mark a signed link's nonce used; False when it was used before."""
        return await self.store.use_link(
            nonce=nonce, run_id=run_id, key=key, approver=approver, now=self.clock.time()
        )

    async def link_used(self, nonce: str) -> bool:
        return await self.store.link_used(nonce)

    async def release_link(self, nonce: str) -> None:
        """Make a link usable again (its decision could not be recorded)."""
        await self.store.release_link(nonce)


# deprecated spellings on `Engine`, kept for one release ------------------------------


class _HasAccess(Protocol):
    access: Access


class Moved(Generic[P, T]):
    """An `Engine` attribute that moved to `engine.access`: calling it warns
    (`DeprecationWarning` naming the new spelling), then calls `method` on the access."""

    def __init__(
        self, method: Callable[Concatenate[Access, P], Coroutine[Any, Any, T]], new: str
    ) -> None:
        self.method, self.new, self.name = method, new, method.__name__
        self.__doc__ = f"Deprecated: use `{new}`."
        signature = inspect.signature(method)
        self.signature = signature.replace(parameters=list(signature.parameters.values())[1:])

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, engine: None, owner: type[Any]) -> Moved[P, T]: ...
    @overload
    def __get__(
        self, engine: _HasAccess, owner: type[Any]
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...
    def __get__(
        self, engine: _HasAccess | None, owner: type[Any]
    ) -> Moved[P, T] | Callable[P, Coroutine[Any, Any, T]]:
        if engine is None:
            return self
        method, message = self.method, f"engine.{self.name}() is deprecated; use {self.new}()"

        def call(*args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, T]:
            warnings.warn(message, DeprecationWarning, stacklevel=2)
            return method(engine.access, *args, **kwargs)

        call.__name__ = call.__qualname__ = self.name
        call.__doc__ = self.__doc__
        call.__signature__ = self.signature  # type: ignore[attr-defined]
        return call


async def old_events(
    access: Access, after_id: int = 0, *, run_id: str | None = None, limit: int = 500
) -> list[models.HistoryEntry]:
    return await access.history_since(after_id, run_id=run_id, limit=limit)


async def old_last_event_id(access: Access) -> int:
    return await access.last_history_id()
