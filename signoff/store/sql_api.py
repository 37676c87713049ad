"""Store operations behind the HTTP API: tokens, idempotency records, link uses and the
history tail that feeds the live stream. Written once for every SQL backend."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from signoff import audit, models
from signoff.store import sql_audit
from signoff.store.sql import Op, Query, dump_json, history


@dataclass(frozen=True, kw_only=True, slots=True)
class ApiToken:
    """An API token as stored: its secret is kept only as a SHA-256 hash."""

    id: str
    name: str
    scopes: tuple[str, ...] = field(default_factory=tuple)
    created_at: datetime
    created_by: str | None = None
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The answer given to the first request under an idempotency key; `status` 0 while
    that request is still being answered (the key is reserved)."""

    request_hash: str
    status: int
    body: Any

    @property
    def pending(self) -> bool:
        return self.status == 0


_TOKEN_COLUMNS = "id, name, scopes, created_at, created_by, revoked_at"


def _token(row: tuple[Any, ...]) -> ApiToken:
    return ApiToken(
        id=row[0],
        name=row[1],
        scopes=tuple(s for s in row[2].split(",") if s),
        created_at=models.from_timestamp(row[3]),  # type: ignore[arg-type]
        created_by=row[4],
        revoked_at=models.from_timestamp(row[5]),
    )


# tokens --------------------------------------------------------------------------------


def create_token(
    *, id: str, name: str, hash: str, scopes: list[str], by: str | None, now: float
) -> Op[ApiToken]:
    yield Query(
        "INSERT INTO api_tokens (id, name, hash, scopes, created_at, created_by) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (id, name, hash, ",".join(scopes), now, by),
        wait=False,
    )
    data = {"id": id, "name": name, "scopes": scopes}
    yield from sql_audit.append(audit.TOKENS, now, "token_created", by, data)
    return ApiToken(
        id=id,
        name=name,
        scopes=tuple(scopes),
        created_at=models.from_timestamp(now),  # type: ignore[arg-type]
        created_by=by,
    )


def token_by_hash(hash: str) -> Op[ApiToken | None]:
    res = yield Query(f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE hash = ?", (hash,))
    return _token(res.rows[0]) if res.rows else None


def list_tokens() -> Op[list[ApiToken]]:
    res = yield Query(f"SELECT {_TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at, id")
    return [_token(r) for r in res.rows]


def revoke_token(*, id: str, now: float, by: str | None = None) -> Op[ApiToken | None]:
    done = yield Query(
        "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now, id)
    )
    res = yield Query(f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE id = ?", (id,))
    if done.rowcount and res.rows:
        data = {"id": id, "name": res.rows[0][1]}
        yield from sql_audit.append(audit.TOKENS, now, "token_revoked", by, data)
    return _token(res.rows[0]) if res.rows else None


# idempotency records --------------------------------------------------------------------


def get_response(*, subject: str, key: str) -> Op[StoredResponse | None]:
    res = yield Query(
        "SELECT request_hash, status, response FROM idempotency_keys WHERE subject = ? AND key = ?",
        (subject, key),
    )
    if not res.rows:
        return None
    row = res.rows[0]
    return StoredResponse(row[0], int(row[1]), json.loads(row[2]))


def save_response(
    *, subject: str, key: str, request_hash: str, status: int, body: Any, now: float
) -> Op[StoredResponse]:
    """Keep the response unless one is kept already; return the one that is kept."""
    yield Query(
        "INSERT INTO idempotency_keys (subject, key, request_hash, status, response, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (subject, key) DO NOTHING",
        (subject, key, request_hash, status, dump_json(body), now),
        wait=False,
    )
    stored = yield from get_response(subject=subject, key=key)
    assert stored is not None
    return stored


def reserve_response(
    *, subject: str, key: str, request_hash: str, now: float, stale_after: float
) -> Op[StoredResponse | None]:
    """Reserve the key for this request: None when it is now ours (a conditional insert,
    so of concurrent requests exactly one wins), else what is kept under it. A reservation
    left by a request that never finished (its process died) is taken over by the same
    request after `stale_after` seconds."""
    res = yield Query(
        "INSERT INTO idempotency_keys (subject, key, request_hash, status, response, created_at) "
        "VALUES (?, ?, ?, 0, 'null', ?) ON CONFLICT (subject, key) DO NOTHING",
        (subject, key, request_hash, now),
    )
    if res.rowcount == 1:
        return None
    kept = yield Query(
        "SELECT request_hash, status, response, created_at FROM idempotency_keys "
        "WHERE subject = ? AND key = ?",
        (subject, key),
    )
    kept_hash, status, body, created_at = kept.rows[0]
    if int(status) == 0 and kept_hash == request_hash and created_at < now - stale_after:
        taken = yield Query(
            "UPDATE idempotency_keys SET created_at = ? "
            "WHERE subject = ? AND key = ? AND status = 0 AND created_at = ?",
            (now, subject, key, created_at),
        )
        if taken.rowcount == 1:
            return None
    return StoredResponse(kept_hash, int(status), json.loads(body))


def finish_response(*, subject: str, key: str, status: int, body: Any) -> Op[None]:
    """Keep the answer of the request that reserved the key."""
    yield Query(
        "UPDATE idempotency_keys SET status = ?, response = ? "
        "WHERE subject = ? AND key = ? AND status = 0",
        (status, dump_json(body), subject, key),
        wait=False,
    )


def release_response(*, subject: str, key: str) -> Op[None]:
    """Give a reserved key up (its request failed before anything was recorded)."""
    yield Query(
        "DELETE FROM idempotency_keys WHERE subject = ? AND key = ? AND status = 0",
        (subject, key),
        wait=False,
    )


def record_history(
    *, run_id: str, type: str, actor: str | None, data: dict[str, Any], now: float
) -> Op[None]:
    """Append an entry to a run's history (for example who relayed a webhook)."""
    yield history(run_id, now, type, actor, data)


# signed-link uses ------------------------------------------------------------------------


def use_link(*, nonce: str, run_id: str, key: str, approver: str, now: float) -> Op[bool]:
    """Record that a link was used; False if it was used before (conditional insert)."""
    res = yield Query(
        "INSERT INTO link_uses (nonce, run_id, key, approver, used_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (nonce) DO NOTHING",
        (nonce, run_id, key, approver, now),
    )
    return res.rowcount == 1


def link_used(nonce: str) -> Op[bool]:
    res = yield Query("SELECT 1 FROM link_uses WHERE nonce = ?", (nonce,))
    return bool(res.rows)


def release_link(nonce: str) -> Op[None]:
    yield Query("DELETE FROM link_uses WHERE nonce = ?", (nonce,), wait=False)


# history tail ----------------------------------------------------------------------------


def history_after(
    *, after_id: int, run_id: str | None, limit: int
) -> Op[list[models.HistoryEntry]]:
    """History entries with an id above `after_id`, oldest first (of one run, or all)."""
    if run_id is None:
        res = yield Query(
            "SELECT id, run_id, at, type, actor, data FROM history WHERE id > ? "
            "ORDER BY id LIMIT ?",
            (after_id, limit),
        )
    else:
        res = yield Query(
            "SELECT id, run_id, at, type, actor, data FROM history WHERE run_id = ? AND id > ? "
            "ORDER BY id LIMIT ?",
            (run_id, after_id, limit),
        )
    return [
        models.HistoryEntry(
            id=int(r[0]),
            run_id=r[1],
            at=models.from_timestamp(r[2]),  # type: ignore[arg-type]
            type=r[3],
            actor=r[4],
            data=json.loads(r[5]) if r[5] else {},
        )
        for r in res.rows
    ]


def last_history_id() -> Op[int]:
    res = yield Query("SELECT MAX(id) FROM history")
    return int(res.rows[0][0] or 0)


def inbox_principals(run_id: str, key: str) -> Op[list[str]]:
    """The inbox rows of a pending approval: people, `role:NAME`, `*` (anyone) and
    `!NAME` (anyone but NAME)."""
    res = yield Query(
        "SELECT principal FROM approval_inbox WHERE run_id = ? AND key = ?", (run_id, key)
    )
    return [str(principal) for (principal,) in res.rows]
