"""Lifecycle housekeeping: finished runs older than a cutoff, read whole for an archive and
removed with every row that belongs to them; idempotency records and used link nonces
past their retention.

A run is removed only when it has finished (completed, failed or cancelled) and none of
its notifications is still waiting to be delivered. Its audit chain goes with it, and one
entry on the `audit.PURGED` chain records the chain's length and last hash, so the
removal itself stays on the record.
"""

from __future__ import annotations

from typing import Any

from signoff import audit
from signoff.store import sql_audit
from signoff.store.sql import (
    JOURNAL_COLUMNS,
    RUN_COLUMNS,
    Op,
    Query,
    digest_text,
    policy_or_none,
    row_to_run,
)

FINISHED = ("completed", "failed", "cancelled")
# the tables that hold a run's rows, by the column that names the run
_RUN_TABLES = (
    ("journal", "run_id"),
    ("history", "run_id"),
    ("approvals", "run_id"),
    ("approval_votes", "run_id"),
    ("approval_inbox", "run_id"),
    ("signals", "run_id"),
    ("event_waits", "run_id"),
    ("channel_messages", "run_id"),
)


# a run that may go: finished before the cutoff (the one parameter), nothing to deliver
_PURGEABLE = (
    f"r.status IN ({', '.join(repr(s) for s in FINISHED)}) "
    "AND r.finished_at IS NOT NULL AND r.finished_at < ? "
    "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.run_id = r.id "
    "AND o.status IN ('pending', 'delivering'))"
)


def finished_before(
    cutoff: float, workflow: str | None, after: str | None, limit: int
) -> Op[list[str]]:
    """Up to `limit` ids of runs finished before `cutoff` (in id order, after `after`)
    with no notification still to deliver."""
    where = [_PURGEABLE]
    params: list[Any] = [cutoff]
    if workflow is not None:
        where.append("r.workflow = ?")
        params.append(workflow)
    if after is not None:
        where.append("r.id > ?")
        params.append(after)
    res = yield Query(
        f"SELECT r.id FROM runs r WHERE {' AND '.join(where)} ORDER BY r.id LIMIT ?",
        (*params, limit),
    )
    return [row[0] for row in res.rows]


def records(run_ids: list[str]) -> Op[list[dict[str, Any]]]:
    """Each run whole, as the archive keeps it: the run, its journal, history, approval
    rounds with their votes, and its audit chain."""
    out = []
    for run_id in run_ids:
        run = yield Query(f"SELECT {RUN_COLUMNS}, finished_at FROM runs WHERE id = ?", (run_id,))
        if not run.rows:
            continue
        journal = yield Query(
            f"SELECT {JOURNAL_COLUMNS} FROM journal WHERE run_id = ? ORDER BY seq", (run_id,)
        )
        history = yield Query(
            "SELECT id, at, type, actor, data FROM history WHERE run_id = ? ORDER BY id",
            (run_id,),
        )
        approvals = yield Query(
            "SELECT key, round, status, summary, proposed, value, decided_by, reason, "
            "requested_at, decided_at, policy, digest FROM approvals WHERE run_id = ? "
            "ORDER BY requested_at, round",
            (run_id,),
        )
        votes = yield Query(
            "SELECT key, round, voter, vote, value, reason, at FROM approval_votes "
            "WHERE run_id = ? ORDER BY at",
            (run_id,),
        )
        chain = yield from sql_audit.entries(run_id, None, 1_000_000)
        record = row_to_run(run.rows[0])
        out.append(
            {
                "run": {
                    "id": record.id,
                    "workflow": record.workflow,
                    "status": record.status.value,
                    "input": {"args": record.args, "kwargs": record.kwargs},
                    "result": record.result,
                    "error": record.error,
                    "requested_by": record.requested_by,
                    "created_at": record.created_at.isoformat(),
                    "finished_at": run.rows[0][-1],
                },
                "journal": [_named(JOURNAL_COLUMNS, r) for r in journal.rows],
                "history": [_named("id, at, type, actor, data", r) for r in history.rows],
                "approvals": [
                    _named(
                        "key, round, status, summary, proposed, value, decided_by, reason, "
                        "requested_at, decided_at, policy, digest",
                        r,
                    )
                    for r in (
                        (*a[:10], policy_or_none(a[10]), digest_text(a[11])) for a in approvals.rows
                    )
                ],
                "votes": [
                    _named("key, round, voter, vote, value, reason, at", r) for r in votes.rows
                ],
                "audit": [e.to_json() for e in chain],
            }
        )
    return out


_VOTE_COLUMNS = "key, round, voter, vote, value, reason, at"


def _named(columns: str, row: Any) -> dict[str, Any]:
    return dict(zip([c.strip() for c in columns.split(",")], row, strict=True))


def delete_runs(run_ids: list[str], cutoff: float, now: float) -> Op[list[str]]:
    """Remove these runs and every row of theirs, if each still qualifies (finished
    before `cutoff`, nothing left to deliver); the ids removed. Each removed audit chain
    is summed up on the `audit.PURGED` chain."""
    if not run_ids:
        return []
    marks = ", ".join("?" for _ in run_ids)
    still = yield Query(
        f"SELECT r.id FROM runs r WHERE r.id IN ({marks}) AND {_PURGEABLE} ORDER BY r.id",
        (*run_ids, cutoff),
    )
    removed: list[str] = []
    for (run_id,) in still.rows:
        head = yield Query(
            "SELECT seq, hash FROM audit WHERE chain = ? ORDER BY seq DESC LIMIT 1", (run_id,)
        )
        for table, column in _RUN_TABLES:
            yield Query(f"DELETE FROM {table} WHERE {column} = ?", (run_id,), wait=False)
        yield Query(
            "DELETE FROM outbox_attempts WHERE message_id IN "
            "(SELECT id FROM outbox WHERE run_id = ?)",
            (run_id,),
            wait=False,
        )
        yield Query("DELETE FROM outbox WHERE run_id = ?", (run_id,), wait=False)
        yield Query("DELETE FROM audit WHERE chain = ?", (run_id,), wait=False)
        yield Query("DELETE FROM runs WHERE id = ?", (run_id,), wait=False)
        entries, last = (int(head.rows[0][0]), str(head.rows[0][1])) if head.rows else (0, None)
        yield from sql_audit.append(
            audit.PURGED, now, "run_purged", None,
            {"run_id": run_id, "entries": entries, "last_hash": last},
        )  # fmt: skip
        removed.append(run_id)
    return removed


def count_keys(idempotency_before: float, nonces_before: float) -> Op[tuple[int, int]]:
    """How many idempotency records and used link nonces are past their retention."""
    a = yield Query(
        "SELECT COUNT(*) FROM idempotency_keys WHERE created_at < ?", (idempotency_before,)
    )
    b = yield Query("SELECT COUNT(*) FROM link_uses WHERE used_at < ?", (nonces_before,))
    return int(a.rows[0][0]), int(b.rows[0][0])


def delete_keys(idempotency_before: float, nonces_before: float) -> Op[tuple[int, int]]:
    """Remove idempotency records and used link nonces past their retention; how many."""
    a = yield Query("DELETE FROM idempotency_keys WHERE created_at < ?", (idempotency_before,))
    b = yield Query("DELETE FROM link_uses WHERE used_at < ?", (nonces_before,))
    return a.rowcount, b.rowcount
