"""Store operations on waits: open an approval, signal or sleep; decide; signal; fire timers.

Parking a run and delivering its answer both lock and update the run's row, so whichever
commits second sees the other: a signal sent before the wait is found by the wait, a
decision sent while the run parks wakes it. Approvals (open, decide, their timers) live in
`sql_approvals`: deciding is a conditional update of a pending approval (first writer
wins); a timeout is one more writer that loses the same way, and it is never recorded as
a person's approval.
"""

from __future__ import annotations

from dataclasses import dataclass

from signoff.journal import EntryKind, EntryStatus, JournalEntry
from signoff.store import sql_approval_timers, sql_approvals, sql_events
from signoff.store.sql import (
    Claim,
    LeaseLost,
    Op,
    Query,
    history,
    insert_entry,
    resolve_entry,
    wake,
)
from signoff.store.sql_approvals import DecideOutcome as DecideOutcome
from signoff.store.sql_approvals import decide as decide
from signoff.store.sql_runs import FINISHED, insert_entries


@dataclass(frozen=True, kw_only=True, slots=True)
class WaitRequest:
    kind: EntryKind
    seq: int
    name: str
    deadline: float | None = None
    summary: str = ""
    proposed_json: str | None = None
    policy_json: str | None = None  # approvals: the request's policy (`signoff.policy`)


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
    *, run_id: str, fence: int, wait: WaitRequest, extra: list[JournalEntry], now: float
) -> Op[WaitOutcome]:
    if wait.kind is EntryKind.EVENT:  # events lock their key before the run: sql_events
        op = sql_events.open_wait(run_id=run_id, fence=fence, wait=wait, extra=extra, now=now)
        return (yield from op)
    res = yield Query(
        "SELECT status, fence, workflow, requested_by FROM runs WHERE id = ?{for_update}",
        (run_id,),
    )
    if not res.rows or res.rows[0][0] != "running" or res.rows[0][1] != fence:
        raise LeaseLost(run_id)
    workflow, requested_by = res.rows[0][2], res.rows[0][3]
    yield from insert_entries(run_id, extra, now)
    deadline = wait.deadline
    if wait.kind is EntryKind.APPROVAL:
        opened = yield from sql_approvals.open_approval(
            run_id=run_id,
            workflow=workflow,
            seq=wait.seq,
            key=wait.name,
            summary=wait.summary,
            proposed_json=wait.proposed_json,
            policy_json=wait.policy_json,
            deadline=deadline,
            now=now,
            requested_by=requested_by,
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
        yield history(
            run_id, now, "waiting_for_signal", None, {"name": wait.name, "deadline": deadline}
        )
    elif deadline is not None and deadline <= now:  # a sleep that is already over
        yield _done_entry(run_id, wait, None, now)
        return WaitOutcome(True, None)
    else:
        yield history(run_id, now, "sleep_started", None, {"until": deadline})
    yield insert_entry(
        run_id,
        JournalEntry(seq=wait.seq, kind=wait.kind, name=wait.name, status=EntryStatus.OPEN),
        now,
        wake_at=deadline,
    )
    yield Query(
        "UPDATE runs SET status = 'waiting', wait_kind = ?, wait_name = ?, wait_seq = ?, "
        "wake_at = ?, lease_owner = NULL, lease_expires = NULL, updated_at = ? WHERE id = ?",
        (wait.kind.value, wait.name, wait.seq, deadline, now, run_id),
        wait=False,
    )
    return WaitOutcome(False)


def repark(*, run_id: str, fence: int, seq: int, extra: list[JournalEntry], now: float) -> Op[None]:
    """Park a run again on a wait it opened before (its journal entry is still open)."""
    yield from insert_entries(run_id, extra, now)
    res = yield Query(
        "SELECT kind, name, wake_at FROM journal WHERE run_id = ? AND seq = ?", (run_id, seq)
    )
    kind, name, wake_at = res.rows[0]
    res = yield Query(
        "UPDATE runs SET status = 'waiting', wait_kind = ?, wait_name = ?, wait_seq = ?, "
        "wake_at = ?, lease_owner = NULL, lease_expires = NULL, updated_at = ? "
        "WHERE id = ? AND fence = ? AND status = 'running'",
        (kind, name, seq, wake_at, now, run_id, fence),
    )
    if res.rowcount == 0:
        raise LeaseLost(run_id)


def _done_entry(run_id: str, wait: WaitRequest, result: str | None, now: float) -> Query:
    entry = JournalEntry(
        seq=wait.seq, kind=wait.kind, name=wait.name, status=EntryStatus.DONE, result=result
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
    if status == "waiting" and wait_kind == "signal" and wait_name == name:
        yield Query(
            "INSERT INTO signals (run_id, name, payload, sent_by, sent_at, consumed_seq) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, name, payload_json, by, now, wait_seq),
            wait=False,
        )
        yield resolve_entry(run_id, wait_seq, '{"payload":' + payload_json + "}", now)
        return "delivered", (yield from wake(run_id, now, claim_for, lease_until))
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
    signal waits time out. Each fires once: only a still-open wait is resolved."""
    res = yield Query(
        "SELECT id, wait_kind, wait_name, wait_seq FROM runs WHERE status = 'waiting' "
        "AND wake_at IS NOT NULL AND wake_at <= ? ORDER BY wake_at LIMIT ?{skip_locked}",
        (now, limit),
    )
    claims = []
    for run_id, kind, name, seq in res.rows:
        if kind == "approval":
            closed = yield from sql_approval_timers.fire_timer(run_id, name, seq, now)
            if not closed:  # escalated or reminded: the run keeps waiting
                continue
        elif kind == "event":
            yield from sql_events.time_out(run_id, name, seq, now)
        elif kind == "signal":
            yield resolve_entry(run_id, seq, '{"timed_out":true}', now)
            yield history(run_id, now, "signal_timed_out", None, {"name": name})
        else:
            yield resolve_entry(run_id, seq, None, now)
            yield history(run_id, now, "timer_fired", None, {"seq": seq})
        claim = yield from wake(run_id, now, claim_for, lease_until)
        if claim is not None:
            claims.append(claim)
    return claims
