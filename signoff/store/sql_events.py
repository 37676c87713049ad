"""Store operations on events: wait for a key, publish on it (notify), time a wait out.

An event is published under a key with JSON data. It is delivered at once to every run
parked on that key whose filter matches, and kept in `events` until its retention window
ends, so that a run that waits on the key later receives it then.

Which kept event a new wait receives: the latest one (highest id) on the key that is
still within its window, matches the wait's filter, and is newer than any event this
run already received on the key. So a run never receives one event twice, nor goes back
to an older one; a run that loops on `wait_for_event` sees each new event once.

Locking: a wait on a key and a publish on it both first lock the key's row in
`event_keys` (an upsert), then the run rows. Publishes and waits on one key therefore
take turns, and whichever commits second sees the other: a publish racing a run that is
about to park is either found by the wait (kept event) or finds the parked wait. Then,
like signals, delivering and parking both touch the run's row.

Filters: `where` is a dict of field name -> expected value, compared with the top-level
fields of the event's data (which must then be a JSON object): every field must be
present and equal as JSON (so `1` equals `1.0`, but `true` does not equal `1`). An empty
or absent filter matches every event on the key.
"""

from __future__ import annotations

import json
from typing import Any

from signoff.journal import EntryKind, EntryStatus, JournalEntry
from signoff.store import sql_waits
from signoff.store.sql import (
    Claim,
    Op,
    Query,
    dump_json,
    history,
    insert_entry,
    iso,
    resolve_entry,
    wake,
)
from signoff.store.sql_runs import FINISHED

_PAGE = 200


def matches(where: dict[str, Any] | None, data: Any) -> bool:
    """Whether an event's `data` passes the filter `where` (see the module docstring)."""
    if not where:
        return True
    if not isinstance(data, dict):
        return False
    return all(field in data and same_json(data[field], want) for field, want in where.items())


def same_json(a: Any, b: Any) -> bool:
    """Equality of two JSON values, without Python's `True == 1`."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def _lock_key(key: str, now: float) -> Query:
    return Query(
        "INSERT INTO event_keys (key, touched_at) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET touched_at = excluded.touched_at",
        (key, now),
    )


def _result(event_id: int, data_json: str, by: str | None, at: float) -> str:
    return (
        '{"id":'
        + str(event_id)
        + ',"data":'
        + data_json
        + ',"by":'
        + dump_json(by)
        + ',"at":'
        + repr(float(at))
        + "}"
    )


def open_wait(
    *,
    run_id: str,
    fence: int,
    wait: sql_waits.WaitRequest,
    extra: list[JournalEntry],
    now: float,
    park: bool = True,
) -> Op[sql_waits.WaitOutcome]:
    """Answer an event wait from a kept event, or wait on the key (and with `park`,
    park the run there).

    The wait's filter travels as `wait.proposed_json` (JSON text or None)."""
    key = wait.name
    yield _lock_key(key, now)
    yield from sql_waits.hold(run_id, fence, extra, now)
    where = json.loads(wait.proposed_json) if wait.proposed_json else None
    kept = yield from _latest_kept(run_id, key, where, now)
    if kept is not None:
        event_id, data_json, by, at = kept
        result = _result(event_id, data_json, by, at)
        done = JournalEntry(
            seq=wait.seq,
            kind=EntryKind.EVENT,
            name=key,
            status=EntryStatus.DONE,
            result=result,
            path=wait.path,
        )
        yield insert_entry(run_id, done, now)
        yield history(
            run_id, now, "event_received", by, {"key": key, "event_id": event_id, "kept": True}
        )
        return sql_waits.WaitOutcome(True, result)
    parked = {"key": key, "where": where, "deadline": iso(wait.deadline)}
    yield history(run_id, now, "waiting_for_event", None, parked)
    yield insert_entry(run_id, sql_waits.open_entry(wait), now, wake_at=wait.deadline)
    yield Query(
        "INSERT INTO event_waits (run_id, seq, key, filter, since) VALUES (?, ?, ?, ?, ?)",
        (run_id, wait.seq, key, wait.proposed_json, now),
        wait=False,
    )
    if park:
        yield sql_waits.park_on(run_id, EntryKind.EVENT.value, key, wait.seq, wait.deadline, now)
    return sql_waits.WaitOutcome(False)


def _latest_kept(
    run_id: str, key: str, where: dict[str, Any] | None, now: float
) -> Op[tuple[int, str, str | None, float] | None]:
    """The latest kept event on `key` that matches and is newer than any this run got."""
    res = yield Query(
        "SELECT result FROM journal WHERE run_id = ? AND kind = ? AND name = ? AND status = 'done'",
        (run_id, EntryKind.EVENT.value, key),
    )
    seen = 0
    for (text,) in res.rows:
        got = json.loads(text) if text else None
        if isinstance(got, dict) and isinstance(got.get("id"), int):
            seen = max(seen, got["id"])
    below: int | None = None
    while True:
        bound = "" if below is None else " AND id < ?"
        params: tuple[Any, ...] = (key, seen, now) + (() if below is None else (below,))
        page = yield Query(
            "SELECT id, data, published_by, published_at FROM events "
            f"WHERE key = ? AND id > ? AND expires_at > ?{bound} ORDER BY id DESC LIMIT {_PAGE}",
            params,
        )
        for event_id, data_json, by, at in page.rows:
            if matches(where, json.loads(data_json)):
                return int(event_id), data_json, by, at
        if len(page.rows) < _PAGE:
            return None
        below = page.rows[-1][0]


def notify(
    *,
    key: str,
    data_json: str,
    by: str | None,
    now: float,
    expires_at: float,
    claim_for: str | None,
    claim_workflows: tuple[str, ...],
    lease_until: float,
) -> Op[tuple[list[str], list[Claim]]]:
    """Publish an event: keep it until `expires_at` and wake every run parked on `key`
    whose filter matches. Returns the ids of the runs woken and the claims made for
    `claim_for` (runs of `claim_workflows` only; the others are made runnable)."""
    yield _lock_key(key, now)
    yield Query("DELETE FROM events WHERE key = ? AND expires_at <= ?", (key, now), wait=False)
    res = yield Query(
        "INSERT INTO events (key, data, published_by, published_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?) RETURNING id",
        (key, data_json, by, now, expires_at),
    )
    event_id = int(res.rows[0][0])
    data = json.loads(data_json)
    result = _result(event_id, data_json, by, now)
    waits = yield Query(
        "SELECT run_id, seq, filter FROM event_waits WHERE key = ? ORDER BY run_id, seq", (key,)
    )
    woken: list[str] = []
    claims: list[Claim] = []
    for run_id, seq, filter_json in waits.rows:
        if not matches(json.loads(filter_json) if filter_json else None, data):
            continue
        run = yield Query(
            "SELECT status, wait_kind, wait_seq, workflow FROM runs WHERE id = ?{for_update}",
            (run_id,),
        )
        status, wait_kind, wait_seq, workflow = run.rows[0] if run.rows else (None,) * 4
        if status is None or status in FINISHED:  # cancelled while waiting
            yield _drop_wait(run_id, seq)
            continue
        yield resolve_entry(run_id, seq, result, now)
        yield _drop_wait(run_id, seq)
        yield history(run_id, now, "event_received", by, {"key": key, "event_id": event_id})
        parked_here = wait_kind == sql_waits.GROUP or (
            wait_kind == EntryKind.EVENT.value and wait_seq == seq
        )
        if status != "waiting" or not parked_here:
            continue  # an open wait of a run not parked on it: its execution finds it
        owner = claim_for if workflow in claim_workflows else None
        claim = yield from wake(run_id, now, owner, lease_until)
        woken.append(run_id)
        if claim is not None:
            claims.append(claim)
    return woken, claims


def time_out(run_id: str, key: str, seq: int, now: float) -> Op[None]:
    """The deadline of an event wait passed (called by `fire_timers`, run row locked)."""
    yield resolve_entry(run_id, seq, '{"timed_out":true}', now)
    yield _drop_wait(run_id, seq)
    yield history(run_id, now, "event_timed_out", None, {"key": key})


def _drop_wait(run_id: str, seq: int) -> Query:
    return Query("DELETE FROM event_waits WHERE run_id = ? AND seq = ?", (run_id, seq))
