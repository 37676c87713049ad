"""Store operations on the audit chain (`signoff.audit`): append in the caller's
transaction, read in chain order.

Appends to a run's chain happen in transactions that hold the run's row, so they take
turns; the primary key (chain, seq) refuses a fork rather than keep one.
"""

from __future__ import annotations

from typing import Any

from signoff import audit
from signoff.store.sql import Op, Query, Result, dump_json, history, iso

COLUMNS = "chain, seq, at, type, actor, data, prev, hash"
HEAD = "SELECT seq, hash FROM audit WHERE chain = ? ORDER BY seq DESC LIMIT 1"


def head(chain: str) -> Query:
    """The chain's last entry, read ahead (`early`) by an operation that holds the run's
    row and will append: it then costs no round trip of its own."""
    return Query(HEAD, (chain,), wait=False, early=True)


def append(
    chain: str,
    at: float,
    type_: str,
    actor: str | None,
    data: dict[str, Any] | str,
    last: Result | None = None,
) -> Op[None]:
    """Append to `chain` (`data`: a dict, or its JSON text when the caller has it);
    `last`: the chain's head as `head()` read it, in this transaction, before any other
    append to it."""
    if chain == audit.TOKENS:  # no run row serializes this chain: lock a row of its own
        yield Query(
            "INSERT INTO event_keys (key, touched_at) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET touched_at = excluded.touched_at",
            ("signoff:audit:tokens", at),
        )
    res = last if last is not None else (yield Query(HEAD, (chain,)))
    seq, prev = (int(res.rows[0][0]), str(res.rows[0][1])) if res.rows else (0, audit.GENESIS)
    text = data if isinstance(data, str) else dump_json(data)
    entry = audit.make(chain, seq + 1, iso(at) or "", type_, actor, text, prev)
    yield Query(
        f"INSERT INTO audit ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (entry.chain, entry.seq, entry.at, entry.type, entry.actor, entry.data, entry.prev,
         entry.hash),
        wait=False,
    )  # fmt: skip


def entries(
    chain: str | None, after: tuple[str, int] | None, limit: int
) -> Op[list[audit.AuditEntry]]:
    """Up to `limit` entries in (chain, seq) order, of one chain or all, after `after`."""
    where: list[str] = []
    params: list[Any] = []
    if chain is not None:
        where.append("chain = ?")
        params.append(chain)
    if after is not None:
        where.append("(chain > ? OR (chain = ? AND seq > ?))")
        params.extend([after[0], after[0], after[1]])
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    res = yield Query(
        f"SELECT {COLUMNS} FROM audit{clause} ORDER BY chain, seq LIMIT ?", (*params, limit)
    )
    return [
        audit.AuditEntry(
            chain=r[0], seq=int(r[1]), at=r[2], type=r[3], actor=r[4], data=r[5], prev=r[6],
            hash=r[7],
        )
        for r in res.rows
    ]  # fmt: skip


def recorded(
    run_id: str,
    at: float,
    type_: str,
    actor: str | None,
    data: dict[str, Any],
    last: Result | None = None,
) -> Op[None]:
    """A history entry of a run that also goes on its audit chain (the same JSON text)."""
    text = dump_json(data)
    yield history(run_id, at, type_, actor, text)
    yield from append(run_id, at, type_, actor, text, last)
