"""Store operations on waits: open an approval, signal or sleep; decide; signal; fire timers.

Parking a run and delivering its answer both lock and update the run's row, so whichever
commits second sees the other: a signal sent before the wait is found by the wait, a
decision sent while the run parks wakes it. Approvals (open, decide, their timers) live in
`sql_approvals`: deciding is a conditional update of a pending approval (first writer
wins); a timeout is one more writer that loses the same way, and it is never recorded as
a person's approval.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from signoff import models
from signoff.journal import EntryKind, EntryStatus, JournalEntry
from signoff.store import sql_approval_timers, sql_approvals, sql_events
from signoff.store.sql import (
    WAKE,
    Claim,
    Op,
    Query,
    capped,
    history,
    insert_entry,
    iso,
    load_claims,
    resolve_entry,
    wake,
)
from signoff.store.sql_approvals import DecideOutcome as DecideOutcome
from signoff.store.sql_approvals import decide as decide
from signoff.store.sql_runs import FINISHED, check_fence, fenced, insert_entries


@models.quick_init
@dataclass(frozen=True, kw_only=True, slots=True)
class WaitRequest:
    kind: EntryKind
    seq: int
    name: str
    path: str | None = None
    deadline: float | None = None
    summary: str = ""
    proposed_json: str | None = None
    policy_json: str | None = None  # approvals: the request's policy (`signoff.policy`)


@models.quick_init
@dataclass(frozen=True, slots=True)
class WaitOutcome:
    """`resolved` with the answer's JSON text, or parked (`resolved` False).

    `problem` names a refusal: "duplicate_key" (with the latest round's status).
    """

    resolved: bool
    result: str | None = None
    problem: str | None = None
    detail: str | None = None


def open_wait(
    *,
    run_id: str,
    fence: int,
    wait: WaitRequest,
    extra: list[JournalEntry],
    now: float,
    park: bool = True,
) -> Op[WaitOutcome]:
    """Open a wait: answer it at once (a kept signal, a sleep already over) or record it
    open; with `park`, also park the run on it (else `park()` does, with its siblings)."""
    if wait.kind is EntryKind.EVENT:  # events lock their key before the run: sql_events
        op = sql_events.open_wait(
            run_id=run_id, fence=fence, wait=wait, extra=extra, now=now, park=park
        )
        return (yield from op)
    run = yield fenced(run_id, fence, now, "workflow, requested_by")  # with the next read
    yield from insert_entries(run_id, extra, now)
    deadline = wait.deadline
    if wait.kind is EntryKind.APPROVAL:
        opened = yield from sql_approvals.open_approval(
            run_id=run_id,
            run=run,
            seq=wait.seq,
            key=wait.name,
            summary=wait.summary,
            proposed_json=wait.proposed_json,
            policy_json=wait.policy_json,
            deadline=deadline,
            now=now,
        )
        if opened.problem is not None:
            return WaitOutcome(False, problem=opened.problem, detail=opened.detail)
        deadline = opened.wake_at  # the earliest of deadline, escalation, reminder
    elif wait.kind is EntryKind.SIGNAL:
        res = yield Query(
            "SELECT id, payload FROM signals WHERE run_id = ? AND name = ? "
            "AND consumed_seq IS NULL ORDER BY id LIMIT 1",
            (run_id, wait.name),
        )
        if res.rows:
            result = '{"payload":' + (res.rows[0][1] or "null") + "}"
            yield Query(
                "UPDATE signals SET consumed_seq = ? WHERE id = ?",
                (wait.seq, res.rows[0][0]),
                wait=False,
            )
            yield _done_entry(run_id, wait, result, now)
            return WaitOutcome(True, result)
        data: dict[str, Any] = {"name": wait.name, "deadline": iso(deadline)}
        if wait.proposed_json is not None:  # the signal's metadata
            data["metadata"] = json.loads(wait.proposed_json)
        yield history(run_id, now, "waiting_for_signal", None, data)
    elif deadline is not None and deadline <= now:  # a sleep that is already over
        yield _done_entry(run_id, wait, None, now)
        return WaitOutcome(True, None)
    else:
        yield history(run_id, now, "sleep_started", None, {"until": iso(deadline)})
    yield insert_entry(run_id, open_entry(wait), now, wake_at=deadline)
    if park:
        yield park_on(run_id, wait.kind.value, wait.name, wait.seq, deadline, now)
    return WaitOutcome(False)


def open_entry(wait: WaitRequest) -> JournalEntry:
    return JournalEntry(
        seq=wait.seq, kind=wait.kind, name=wait.name, status=EntryStatus.OPEN, path=wait.path
    )


def park_on(
    run_id: str, kind: str, name: str | None, seq: int | None, wake_at: float | None, now: float
) -> Query:
    """Park the run (its row is locked and running under the caller's fence)."""
    return Query(
        "UPDATE runs SET status = 'waiting', wait_kind = ?, wait_name = ?, wait_seq = ?, "
        f"wake_at = {WAKE}, lease_owner = NULL, lease_expires = NULL, updated_at = ? "
        "WHERE id = ?",
        (kind, name, seq, wake_at, wake_at, now, run_id),
        wait=False,
    )


def park(
    *, run_id: str, fence: int, seqs: list[int], extra: list[JournalEntry], now: float
) -> Op[dict[int, str | None]]:
    """Park the run on its open waits `seqs` (one, or a group that any answer wakes).

    An answer that arrived while the run was running (a decision, a signal or an event
    delivered to an open wait) is found here, under the run's lock: then the run stays
    running and the answers come back, `{seq: result}`; else it parks and `{}` returns."""
    yield from hold(run_id, fence, extra, now)
    marks = ", ".join("?" for _ in seqs)
    res = yield Query(
        f"SELECT seq, kind, name, status, result, wake_at FROM journal WHERE run_id = ? "
        f"AND seq IN ({marks}) ORDER BY seq",
        (run_id, *seqs),
    )
    answers = {row[0]: row[4] for row in res.rows if row[3] != EntryStatus.OPEN.value}
    if answers:
        return answers
    if len(res.rows) == 1:
        seq, kind, name, _, _, wake_at = res.rows[0]
        yield park_on(run_id, kind, name, seq, wake_at, now)
        return {}
    times = [row[5] for row in res.rows if row[5] is not None]
    names = ", ".join(f"{row[1]}:{row[2]}" for row in res.rows)
    yield park_on(run_id, GROUP, names, None, min(times, default=None), now)
    return {}


GROUP = "group"  # runs.wait_kind of a run parked on several waits at once


def hold(run_id: str, fence: int, extra: list[JournalEntry], now: float) -> Op[None]:
    """Lock the run's row, check it still runs under `fence` (else `LeaseLost`), and
    write the entries its execution noted since its last write."""
    yield from check_fence(run_id, fence, now)
    yield from insert_entries(run_id, extra, now)


def close_waits(
    *, run_id: str, fence: int, seqs: list[int], extra: list[JournalEntry], now: float
) -> Op[None]:
    """Withdraw open waits the workflow no longer waits for (the losers of `any_of`, the
    waits of tasks left behind when it ended): approvals are withdrawn from the inboxes,
    event waits dropped; each journal entry is answered `{"withdrawn": true}`."""
    yield from hold(run_id, fence, extra, now)
    for seq in seqs:
        yield resolve_entry(run_id, seq, WITHDRAWN, now)
        yield Query("DELETE FROM event_waits WHERE run_id = ? AND seq = ?", (run_id, seq))
        yield from sql_approvals.withdraw(run_id, seq, now)


WITHDRAWN = '{"withdrawn":true}'


def _done_entry(run_id: str, wait: WaitRequest, result: str | None, now: float) -> Query:
    entry = JournalEntry(
        seq=wait.seq,
        kind=wait.kind,
        name=wait.name,
        status=EntryStatus.DONE,
        result=result,
        path=wait.path,
    )
    return insert_entry(run_id, entry, now)


def send_signal(
    *,
    run_id: str,
    name: str,
    payload_json: str,
    by: str | None,
    now: float,
    claim_for: str | None,
    lease_until: float,
) -> Op[tuple[str, Claim | None]]:
    """Deliver to the run's wait on `name`, or keep it until the run waits for it."""
    res = yield Query(
        "SELECT status, wait_kind, wait_name, wait_seq FROM runs WHERE id = ?{for_update}",
        (run_id,),
    )
    if not res.rows:
        return "run_not_found", None
    status, wait_kind, wait_name, wait_seq = res.rows[0]
    if status in FINISHED:
        return status, None
    yield history(run_id, now, "signal_received", by, {"name": name})
    parked_here = status == "waiting" and wait_kind == "signal" and wait_name == name
    if not parked_here:  # an open wait among several, or of a run not parked right now
        found = yield Query(
            "SELECT seq FROM journal WHERE run_id = ? AND kind = 'signal' AND name = ? "
            "AND status = 'open' ORDER BY seq LIMIT 1",
            (run_id, name),
        )
        wait_seq = found.rows[0][0] if found.rows else None
    if wait_seq is not None:
        yield Query(
            "INSERT INTO signals (run_id, name, payload, sent_by, sent_at, consumed_seq) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, name, payload_json, by, now, wait_seq),
            wait=False,
        )
        yield resolve_entry(run_id, wait_seq, '{"payload":' + payload_json + "}", now)
        if not parked_here and wait_kind != GROUP:  # its next execution finds the answer
            return "delivered", None
        return "delivered", (yield from wake(run_id, now, claim_for, lease_until, last=True))
    yield Query(
        "INSERT INTO signals (run_id, name, payload, sent_by, sent_at) VALUES (?, ?, ?, ?, ?)",
        (run_id, name, payload_json, by, now),
        wait=False,
    )
    return "buffered", None


def fire_timers(
    *, now: float, limit: int, claim_for: str | None, lease_until: float
) -> Op[list[Claim]]:
    """Resolve every wait whose deadline has passed: approvals expire, sleeps end,
    signal waits time out. Each fires once: only a still-open wait is resolved. A run
    past its own deadline is woken as it is (its execution fails it as timed out)."""
    res = yield Query(
        "SELECT id, wait_kind, wait_name, wait_seq, deadline FROM runs{by_wake} "
        "WHERE status = 'waiting' "
        "AND wake_at IS NOT NULL AND wake_at <= ? ORDER BY wake_at LIMIT ?{skip_locked}",
        (now, limit),
    )
    # the batch's approval timers: their reads in three statements, their expiries in
    # a few multi-row ones (`sql_approval_timers.fire_batch`), not a handful per timer
    fired = yield from sql_approval_timers.fire_batch(
        [
            (run_id, name, seq)
            for run_id, kind, name, seq, deadline in res.rows
            if kind == "approval" and not (deadline is not None and deadline <= now)
        ],
        now,
    )
    woken = []
    for run_id, kind, name, seq, deadline in res.rows:
        if deadline is not None and deadline <= now:
            closed = True
        elif kind == "approval":
            closed = run_id in fired
        elif kind == GROUP:
            closed = yield from _fire_group(run_id, now)
        else:
            closed = yield from _fire_one(run_id, kind, name, seq, now)
        if closed:  # else escalated or reminded: the run keeps waiting
            woken.append(run_id)
    if claim_for is not None:  # claimed together: two statements for the batch
        return (yield from load_claims(woken, claim_for, lease_until, now, last=True))
    for run_id in woken:
        yield from wake(run_id, now, None, lease_until)
    return []


def _fire_one(run_id: str, kind: str, name: str, seq: int, now: float) -> Op[bool]:
    """Handle the due timer of one open wait; True when it answered the wait."""
    if kind == "approval":
        return (yield from sql_approval_timers.fire_timer(run_id, name, seq, now))
    if kind == "event":
        yield from sql_events.time_out(run_id, name, seq, now)
    elif kind == "signal":
        yield resolve_entry(run_id, seq, '{"timed_out":true}', now)
        yield history(run_id, now, "signal_timed_out", None, {"name": name})
    else:
        yield resolve_entry(run_id, seq, None, now)
        yield history(run_id, now, "timer_fired", None, {"seq": seq})
    return True


def _fire_group(run_id: str, now: float) -> Op[bool]:
    """The due timers of a run parked on several waits; the run wakes when one of them
    answered its wait, else it waits on until the earliest timer left."""
    res = yield Query(
        "SELECT seq, kind, name FROM journal WHERE run_id = ? AND status = 'open' "
        "AND wake_at IS NOT NULL AND wake_at <= ? ORDER BY seq",
        (run_id, now),
    )
    closed = False
    for seq, kind, name in res.rows:
        closed = (yield from _fire_one(run_id, kind, name, seq, now)) or closed
    if not closed:
        earliest = "(SELECT MIN(wake_at) FROM journal WHERE run_id = ? AND status = 'open')"
        yield Query(
            f"UPDATE runs SET wake_at = {capped(earliest)} WHERE id = ?",
            (run_id, run_id, run_id),
            wait=False,
        )
    return closed
