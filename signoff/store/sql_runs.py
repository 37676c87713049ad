"""Store operations on runs: create, claim, lease, record steps, finish, cancel, retry, query.

Each function is one operation (see `signoff.store.sql`); the store runs each in one
transaction. Writes made on behalf of an execution carry its fencing token and change
nothing when the token is stale.
"""

from __future__ import annotations

import json
from typing import Any

from signoff import models, outbox
from signoff.journal import EntryKind, EntryStatus, JournalEntry
from signoff.store import sql_audit, sql_outbox
from signoff.store.sql import (
    JOURNAL_COLUMNS,
    RUN_COLUMNS,
    Claim,
    LeaseLost,
    Op,
    Query,
    history,
    insert_entry,
    iso,
    load_claims,
    row_to_entry,
    row_to_run,
    wake,
)

FINISHED = ("completed", "failed", "cancelled")


def create_run(
    *,
    run_id: str,
    workflow: str,
    input_json: str,
    requested_by: str | None,
    now: float,
    claim_for: str | None,
    lease_until: float,
    deadline: float | None = None,
    version: str | None = None,
) -> Op[tuple[models.Run, Claim | None, bool]]:
    """Insert a new run (claimed by `claim_for` if given). Idempotent on `run_id`.
    `deadline`: past it the run fails, whatever it waits for; `version`: of the workflow
    it starts on.

    Returns the run, the claim, and whether it was created now (False: it existed).
    """
    status = "running" if claim_for else "pending"
    res = yield Query(
        "INSERT INTO runs (id, workflow, status, input, requested_by, created_at, updated_at, "
        "lease_owner, lease_expires, fence, deadline, version) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO NOTHING",
        (
            run_id,
            workflow,
            status,
            input_json,
            requested_by,
            now,
            now,
            claim_for,
            lease_until if claim_for else None,
            1 if claim_for else 0,
            deadline,
            version,
        ),
    )
    if res.rowcount == 0:
        existing = yield Query(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        return row_to_run(existing.rows[0]), None, False
    started: dict[str, Any] = {"workflow": workflow}
    if version is not None:
        started["version"] = version
    yield history(run_id, now, "run_started", requested_by, started)
    inputs = json.loads(input_json)
    at = models.from_timestamp(now)
    assert at is not None
    run = models.Run(
        id=run_id,
        workflow=workflow,
        status=models.RunStatus(status),
        args=inputs.get("args", []),
        kwargs=inputs.get("kwargs", {}),
        requested_by=requested_by,
        created_at=at,
        updated_at=at,
        deadline=models.from_timestamp(deadline),
        version=version,
    )
    return run, (Claim(run, 1, []) if claim_for else None), True


def claim_runnable(
    *, owner: str, workflows: list[str], limit: int, now: float, lease_until: float
) -> Op[list[Claim]]:
    """Take up to `limit` runnable runs: pending ones, and running ones whose lease expired."""
    if not workflows or limit <= 0:
        return []
    marks = ", ".join("?" for _ in workflows)
    res = yield Query(
        f"SELECT id FROM runs WHERE status = 'pending' AND workflow IN ({marks}) "
        "ORDER BY updated_at LIMIT ?{skip_locked}",
        (*workflows, limit),
    )
    ids = [r[0] for r in res.rows]
    if len(ids) < limit:
        res = yield Query(
            # Never our own: a live worker's runs are not lost, whatever the clock says.
            f"SELECT id, lease_owner, lease_expires FROM runs WHERE status = 'running' "
            f"AND lease_expires < ? AND lease_owner <> ? "
            f"AND workflow IN ({marks}) ORDER BY lease_expires LIMIT ?{{skip_locked}}",
            (now, owner, *workflows, limit - len(ids)),
        )
        for run_id, previous, expired in res.rows:  # its worker died or stalled mid-run
            ids.append(run_id)
            data = {"from": previous, "to": owner, "lease_expired_at": iso(expired)}
            yield history(run_id, now, "run_taken_over", None, data)
    return (yield from load_claims(ids, owner, lease_until, now, last=True))


def poll(*, workflows: list[str], now: float, owner: str) -> Op[tuple[bool, bool]]:
    """(whether a timer is due, whether a run could be claimed by `owner`), in one
    statement: an idle worker asks this a few times a second."""
    if not workflows:
        return False, False
    marks = ", ".join("?" for _ in workflows)
    res = yield Query(
        "SELECT "
        "EXISTS (SELECT 1 FROM runs{by_wake} WHERE status = 'waiting' AND wake_at IS NOT NULL "
        "AND wake_at <= ?), "
        f"EXISTS (SELECT 1 FROM runs WHERE status = 'pending' AND workflow IN ({marks})), "
        "EXISTS (SELECT 1 FROM runs WHERE status = 'running' AND lease_expires < ? "
        f"AND lease_owner <> ? AND workflow IN ({marks}))",
        (now, *workflows, now, owner, *workflows),
    )
    due, pending, expired = res.rows[0]
    return bool(due), bool(pending) or bool(expired)


def heartbeat(*, owner: str, lease_until: float) -> Op[int]:
    """Extend `owner`'s leases. On PostgreSQL a run whose row another transaction holds
    (this worker parking or finishing it, most likely) is skipped, not waited for: a
    heartbeat that waited would lock many rows in no particular order and could
    deadlock with a batch of writes. The next heartbeat, a third of a lease later,
    extends it."""
    res = yield Query(
        "UPDATE runs SET lease_expires = ? WHERE id IN (SELECT id FROM runs "
        "WHERE lease_owner = ? AND status = 'running'{skip_locked})",
        (lease_until, owner),
    )
    return res.rowcount


def release(*, owner: str, run_ids: list[str], now: float) -> Op[int]:
    """Give back held runs so that any worker may take them at once."""
    count = 0
    for run_id in run_ids:
        res = yield Query(
            "UPDATE runs SET status = 'pending', lease_owner = NULL, lease_expires = NULL, "
            "updated_at = ? WHERE id = ? AND lease_owner = ? AND status = 'running'",
            (now, run_id, owner),
        )
        count += res.rowcount
    return count


def fenced(run_id: str, fence: int, now: float, returning: str = "") -> Query:
    """Lock the run's row and check it still runs under `fence` (else `LeaseLost`, before
    the operation commits; PostgreSQL does not wait for the answer to go on). With
    `returning` (columns of the run), an early read of them."""
    return Query(
        "UPDATE runs SET updated_at = ? WHERE id = ? AND fence = ? AND status = 'running'"
        + (f" RETURNING {returning}" if returning else ""),
        (now, run_id, fence),
        wait=False,
        early=bool(returning),
        fence=run_id,
    )


def check_fence(run_id: str, fence: int, now: float) -> Op[None]:
    yield fenced(run_id, fence, now)


def insert_entries(run_id: str, entries: list[JournalEntry], now: float) -> Op[None]:
    """Entries a run's execution noted since its last write: readings of the clock, and
    the records of steps that went well at their first attempt (with their history)."""
    for entry in entries:
        yield insert_entry(run_id, entry, now)
        if entry.kind is EntryKind.STEP:
            yield step_history(run_id, entry, 1, now)


def step_history(run_id: str, entry: JournalEntry, attempts: int, now: float) -> Query:
    """The history entry of a step's record: completed, or failed with its error."""
    data: dict[str, Any] = {"seq": entry.seq, "name": entry.name, "attempts": attempts}
    if entry.status is EntryStatus.FAILED:
        data["error"] = json.loads(entry.error or "{}")
        return history(run_id, now, "step_failed", None, data)
    return history(run_id, now, "step_completed", None, data)


def record_step(
    *,
    run_id: str,
    fence: int,
    entry: JournalEntry,
    attempts: int,
    extra: list[JournalEntry],
    now: float,
) -> Op[None]:
    """Journal a step's result (or final error) under the run's fencing token."""
    yield from check_fence(run_id, fence, now)
    yield from insert_entries(run_id, extra, now)
    yield insert_entry(run_id, entry, now, attempts=attempts)
    yield step_history(run_id, entry, attempts, now)


def record_attempt_failure(
    *,
    run_id: str,
    fence: int,
    seq: int,
    name: str,
    attempt: int,
    error: dict[str, Any],
    retry_in: float,
    now: float,
) -> Op[None]:
    yield from check_fence(run_id, fence, now)
    yield history(
        run_id,
        now,
        "step_retrying",
        None,
        {"seq": seq, "name": name, "attempt": attempt, "error": error, "retry_in": retry_in},
    )


def finish_run(
    *,
    run_id: str,
    fence: int,
    status: str,
    result_json: str | None,
    error: dict[str, Any] | None,
    extra: list[JournalEntry],
    now: float,
) -> Op[None]:
    """Mark the run completed or failed, under its fencing token."""
    yield from insert_entries(run_id, extra, now)
    error_json = None if error is None else json.dumps(error)
    yield Query(
        "UPDATE runs SET status = ?, result = ?, error = ?, finished_at = ?, updated_at = ?, "
        "lease_owner = NULL, lease_expires = NULL WHERE id = ? AND fence = ? "
        "AND status = 'running'",
        (status, result_json, error_json, now, now, run_id, fence),
        wait=False,
        fence=run_id,
    )
    if status == "completed":
        yield history(run_id, now, "run_completed", None, {})
        yield from sql_outbox.enqueue(run_id, outbox.RUN_COMPLETED, now, {})
    else:
        yield history(run_id, now, "run_failed", None, {"error": _summary(error)})
        yield from sql_outbox.enqueue(run_id, outbox.RUN_FAILED, now, {"error": _summary(error)})


BLOCK_DETAIL = ("seq", "expected", "found")  # where replay and journal part ways


def block_run(*, run_id: str, fence: int, error: dict[str, Any], now: float) -> Op[None]:
    """Replay no longer matches the journal: park the run as blocked with `error` (the
    mismatch), under its fencing token. Its journal, open waits and approvals are left as
    they are, so decisions and signals still land and count once it resumes."""
    res = yield Query(
        "UPDATE runs SET status = 'blocked', error = ?, updated_at = ?, "
        "lease_owner = NULL, lease_expires = NULL, wait_kind = NULL, wait_name = NULL, "
        "wait_seq = NULL, wake_at = NULL WHERE id = ? AND fence = ? AND status = 'running'",
        (json.dumps(error), now, run_id, fence),
    )
    if res.rowcount == 0:
        raise LeaseLost(run_id)
    data = {"error": _summary(error), **{k: error.get(k) for k in BLOCK_DETAIL}}
    yield history(run_id, now, "run_blocked", None, data)
    yield from sql_outbox.enqueue(run_id, outbox.RUN_BLOCKED, now, data)


def unblock_run(
    *,
    run_id: str,
    by: str | None,
    now: float,
    claim_for: str | None,
    lease_until: float,
    worker: str | None = None,
) -> Op[tuple[str, Claim | None]]:
    """Make a blocked run runnable again, its journal kept whole. `worker`: the worker
    whose code was found to replay it (else `by` asked for it, or nobody said).

    Returns ("ok", claim), or the run's status when it is not blocked ("not_found" if
    there is no such run)."""
    res = yield Query("SELECT status FROM runs WHERE id = ?{for_update}", (run_id,))
    if not res.rows:
        return "not_found", None
    if res.rows[0][0] != "blocked":
        return res.rows[0][0], None
    yield Query("UPDATE runs SET error = NULL WHERE id = ?", (run_id,), wait=False)
    yield history(run_id, now, "run_unblocked", by, {} if worker is None else {"worker": worker})
    return "ok", (yield from wake(run_id, now, claim_for, lease_until, last=True))


def _summary(error: dict[str, Any] | None) -> dict[str, Any]:
    error = error or {}
    return {"type": error.get("type"), "message": error.get("message")}


def cancel_run(
    *, run_id: str, by: str | None, reason: str | None, now: float
) -> Op[tuple[str, models.Run | None]]:
    res = yield Query("SELECT status FROM runs WHERE id = ?{for_update}", (run_id,))
    if not res.rows:
        return "not_found", None
    if res.rows[0][0] in FINISHED:
        return "finished", None
    yield Query(
        "UPDATE runs SET status = 'cancelled', finished_at = ?, updated_at = ?, "
        "lease_owner = NULL, lease_expires = NULL, wait_kind = NULL, wait_name = NULL, "
        "wait_seq = NULL, wake_at = NULL WHERE id = ?",
        (now, now, run_id),
        wait=False,
    )
    yield Query(
        "UPDATE approvals SET status = 'cancelled', decided_at = ? "
        "WHERE run_id = ? AND status = 'pending'",
        (now, run_id),
        wait=False,
    )
    yield Query("DELETE FROM approval_inbox WHERE run_id = ?", (run_id,), wait=False)
    yield from sql_audit.recorded(run_id, now, "run_cancelled", by, {"reason": reason})
    return "ok", (yield from get_run(run_id))


def retry_run(
    *, run_id: str, by: str | None, now: float, claim_for: str | None, lease_until: float
) -> Op[tuple[str, Claim | None]]:
    """Make a failed run runnable again; a step that failed is tried afresh. A blocked
    run is unblocked as it is (`unblock_run`)."""
    res = yield Query("SELECT status FROM runs WHERE id = ?{for_update}", (run_id,))
    if not res.rows:
        return "not_found", None
    if res.rows[0][0] == "blocked":
        return (
            yield from unblock_run(
                run_id=run_id, by=by, now=now, claim_for=claim_for, lease_until=lease_until
            )
        )
    if res.rows[0][0] != "failed":
        return res.rows[0][0], None
    yield Query("DELETE FROM journal WHERE run_id = ? AND status = 'failed'", (run_id,), wait=False)
    yield Query(
        "UPDATE runs SET error = NULL, finished_at = NULL WHERE id = ?", (run_id,), wait=False
    )
    yield history(run_id, now, "run_retried", by, {})
    return "ok", (yield from wake(run_id, now, claim_for, lease_until, last=True))


def get_run(run_id: str) -> Op[models.Run | None]:
    res = yield Query(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
    return row_to_run(res.rows[0]) if res.rows else None


def get_journal(run_id: str) -> Op[list[JournalEntry]]:
    res = yield Query(
        f"SELECT {JOURNAL_COLUMNS} FROM journal WHERE run_id = ? ORDER BY seq", (run_id,)
    )
    return [row_to_entry(r) for r in res.rows]


def list_runs(
    *, status: str | None, workflow: str | None, limit: int, before: tuple[float, str] | None
) -> Op[list[models.Run]]:
    """Newest first; `before` is the (created_at, id) of the last run of the previous page."""
    where: list[str] = []
    params: list[Any] = []
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if workflow is not None:
        where.append("workflow = ?")
        params.append(workflow)
    if before is not None:
        where.append("(created_at < ? OR (created_at = ? AND id < ?))")
        params += [before[0], before[0], before[1]]
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    res = yield Query(
        f"SELECT {RUN_COLUMNS} FROM runs {clause}ORDER BY created_at DESC, id DESC LIMIT ?",
        (*params, limit),
    )
    return [row_to_run(r) for r in res.rows]


def count_runs(*, status: str | None, workflow: str | None) -> Op[int]:
    where, params = [], []
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if workflow is not None:
        where.append("workflow = ?")
        params.append(workflow)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    res = yield Query(f"SELECT COUNT(*) FROM runs{clause}", tuple(params))
    return int(res.rows[0][0])


def get_history(run_id: str) -> Op[list[models.HistoryEntry]]:
    res = yield Query(
        "SELECT id, run_id, at, type, actor, data FROM history WHERE run_id = ? ORDER BY id",
        (run_id,),
    )
    return [
        models.HistoryEntry(
            id=r[0],
            run_id=r[1],
            at=models.from_timestamp(r[2]),  # type: ignore[arg-type]
            type=r[3],
            actor=r[4],
            data=json.loads(r[5]) if r[5] else {},
        )
        for r in res.rows
    ]


def register_workflows(*, names: list[str], now: float) -> Op[None]:
    for name in names:
        yield Query(
            "INSERT INTO workflows (name, seen_at) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET seen_at = excluded.seen_at",
            (name, now),
            wait=False,
        )


def known_workflows() -> Op[list[str]]:
    res = yield Query("SELECT name FROM workflows ORDER BY name")
    return [r[0] for r in res.rows]


def resolve_run_id(prefix: str, *, limit: int) -> Op[list[str]]:
    """`[prefix]` when a run has exactly that id; else up to `limit` ids that start with it.

    `substr` rather than `LIKE` (case-insensitive on SQLite) or a range on `id` (not a
    prefix test under PostgreSQL's non-C collations): correct on both, at the price of a
    scan, which a lookup by a person typing an id can afford.
    """
    exact = yield Query("SELECT id FROM runs WHERE id = ?", (prefix,))
    if exact.rows:
        return [exact.rows[0][0]]
    res = yield Query(
        "SELECT id FROM runs WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT ?",
        (len(prefix), prefix, limit),
    )
    return [r[0] for r in res.rows]
