"""Store operations on waits: open an approval, signal or sleep; decide; signal; fire timers.

Parking a run and delivering its answer both lock and update the run's row, so whichever
commits second sees the other: a signal sent before the wait is found by the wait, a
decision sent while the run parks wakes it. Deciding is a conditional update of a pending
approval (first writer wins); a timeout is one more writer that loses the same way, and it
is recorded as `expired`, never as an approval.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from signoff import models
from signoff.journal import EntryKind, EntryStatus, JournalEntry
from signoff.store import sql_events
from signoff.store.sql import (
    APPROVAL_COLUMNS,
    Claim,
    LeaseLost,
    Op,
    Query,
    history,
    insert_entry,
    row_to_approval,
    wake,
)
from signoff.store.sql_runs import FINISHED, insert_entries

_dump = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass(frozen=True, kw_only=True, slots=True)
class WaitRequest:
    kind: EntryKind
    seq: int
    name: str
    deadline: float | None = None
    summary: str = ""
    proposed_json: str | None = None


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
        "SELECT status, fence, workflow FROM runs WHERE id = ?{for_update}", (run_id,)
    )
    if not res.rows or res.rows[0][0] != "running" or res.rows[0][1] != fence:
        raise LeaseLost(run_id)
    workflow = res.rows[0][2]
    yield from insert_entries(run_id, extra, now)
    deadline = wait.deadline
    if wait.kind is EntryKind.APPROVAL:
        res = yield Query(
            "SELECT round, status FROM approvals WHERE run_id = ? AND key = ? "
            "ORDER BY round DESC LIMIT 1",
            (run_id, wait.name),
        )
        if res.rows and res.rows[0][1] != "changes_requested":
            return WaitOutcome(False, problem="duplicate_key", detail=res.rows[0][1])
        round_ = res.rows[0][0] + 1 if res.rows else 1
        yield Query(
            "INSERT INTO approvals (run_id, key, round, seq, workflow, status, summary, "
            "proposed, requested_at, deadline) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
            (
                run_id,
                wait.name,
                round_,
                wait.seq,
                workflow,
                wait.summary,
                wait.proposed_json,
                now,
                deadline,
            ),
            wait=False,
        )
        yield history(
            run_id,
            now,
            "approval_requested",
            None,
            {"key": wait.name, "round": round_, "summary": wait.summary, "deadline": deadline},
        )
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


def _resolve_entry(run_id: str, seq: int, result: str | None, now: float) -> Query:
    return Query(
        "UPDATE journal SET status = 'done', result = ?, finished_at = ? "
        "WHERE run_id = ? AND seq = ? AND status = 'open'",
        (result, now, run_id, seq),
        wait=False,
    )


@dataclass(frozen=True, slots=True)
class DecideOutcome:
    """`outcome` is one of: decided, duplicate, conflict, expired, closed, run_not_found,
    approval_not_found. `decision` is the decision now on record (if any)."""

    outcome: str
    decision: models.Decision | None = None
    claim: Claim | None = None
    pending_keys: tuple[str, ...] = ()


def decide(
    *,
    run_id: str,
    key: str,
    status: models.DecisionStatus,
    value_json: str | None,
    by: str | None,
    reason: str | None,
    now: float,
    claim_for: str | None,
    lease_until: float,
) -> Op[DecideOutcome]:
    res = yield Query(
        "SELECT status, wait_kind, wait_seq FROM runs WHERE id = ?{for_update}", (run_id,)
    )
    if not res.rows:
        return DecideOutcome("run_not_found")
    run_status, wait_kind, wait_seq = res.rows[0]
    res = yield Query(
        "SELECT round, seq, status, proposed, value, decided_by, reason, decided_at, deadline "
        "FROM approvals WHERE run_id = ? AND key = ? ORDER BY round DESC LIMIT 1",
        (run_id, key),
    )
    if not res.rows:
        keys = yield Query(
            "SELECT DISTINCT key FROM approvals WHERE run_id = ? ORDER BY key", (run_id,)
        )
        return DecideOutcome("approval_not_found", pending_keys=tuple(r[0] for r in keys.rows))
    round_, seq, current, proposed, value, decided_by, old_reason, decided_at, deadline = res.rows[
        0
    ]
    if current != "pending":
        existing = _decision(
            key, round_, current, proposed, value, decided_by, old_reason, decided_at
        )
        if current in ("expired", "cancelled"):
            return DecideOutcome("expired" if current == "expired" else "closed", existing)
        same = current == status.value and (
            status is not models.DecisionStatus.EDITED
            or (
                value_json is not None
                and value is not None
                and json.loads(value) == json.loads(value_json)
            )
        )
        return DecideOutcome("duplicate" if same else "conflict", existing)
    if run_status in FINISHED:
        return DecideOutcome("closed")
    if deadline is not None and now >= deadline:
        expired = yield from _expire_approval(run_id, key, round_, seq, proposed, now)
        claim = yield from _wake_if_parked(
            run_id, seq, wait_kind, wait_seq, now, claim_for, lease_until
        )
        return DecideOutcome("expired", expired, claim)
    new_value = value_json if status is models.DecisionStatus.EDITED else proposed
    decision = _decision(key, round_, status.value, proposed, new_value, by, reason, now)
    yield Query(
        "UPDATE approvals SET status = ?, value = ?, decided_by = ?, reason = ?, decided_at = ? "
        "WHERE run_id = ? AND key = ? AND round = ? AND status = 'pending'",
        (status.value, new_value, by, reason, now, run_id, key, round_),
        wait=False,
    )
    yield _resolve_entry(run_id, seq, _dump(decision.to_json()), now)
    data: dict[str, Any] = {"key": key, "round": round_, "status": status.value, "reason": reason}
    if status is models.DecisionStatus.EDITED:
        data["value"] = json.loads(new_value) if new_value else None
        data["original"] = json.loads(proposed) if proposed else None
    yield history(run_id, now, "approval_decided", by, data)
    claim = yield from _wake_if_parked(
        run_id, seq, wait_kind, wait_seq, now, claim_for, lease_until
    )
    return DecideOutcome("decided", decision, claim)


def _decision(
    key: str,
    round_: int,
    status: str,
    proposed: str | None,
    value: str | None,
    by: str | None,
    reason: str | None,
    at: float | None,
) -> models.Decision:
    decision_status = models.DecisionStatus(status) if status != "cancelled" else None
    return models.Decision(
        key=key,
        status=decision_status or models.DecisionStatus.EXPIRED,
        value=None if value is None else json.loads(value),
        original=None if proposed is None else json.loads(proposed),
        by=by,
        reason=reason,
        at=models.from_timestamp(at),
        round=round_,
    )


def _expire_approval(
    run_id: str, key: str, round_: int, seq: int, proposed: str | None, now: float
) -> Op[models.Decision]:
    yield Query(
        "UPDATE approvals SET status = 'expired', decided_at = ? "
        "WHERE run_id = ? AND key = ? AND round = ? AND status = 'pending'",
        (now, run_id, key, round_),
        wait=False,
    )
    decision = _decision(key, round_, "expired", proposed, None, None, None, now)
    yield _resolve_entry(run_id, seq, _dump(decision.to_json()), now)
    yield history(run_id, now, "approval_expired", None, {"key": key, "round": round_})
    return decision


def _wake_if_parked(
    run_id: str,
    seq: int,
    wait_kind: str | None,
    wait_seq: int | None,
    now: float,
    claim_for: str | None,
    lease_until: float,
) -> Op[Claim | None]:
    if wait_kind is None or wait_seq != seq:
        return None
    return (yield from wake(run_id, now, claim_for, lease_until))


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
        yield _resolve_entry(run_id, wait_seq, '{"payload":' + payload_json + "}", now)
        return "delivered", (yield from wake(run_id, now, claim_for, lease_until))
    yield Query(
        "INSERT INTO signals (run_id, name, payload, sent_by, sent_at) VALUES (?, ?, ?, ?, ?)",
        (run_id, name, payload_json, by, now),
        wait=False,
    )
    return "buffered", None


def next_wake_at() -> Op[float | None]:
    res = yield Query(
        "SELECT MIN(wake_at) FROM runs WHERE status = 'waiting' AND wake_at IS NOT NULL"
    )
    return res.rows[0][0] if res.rows else None


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
            appr = yield Query(
                "SELECT round, proposed FROM approvals WHERE run_id = ? AND key = ? "
                "AND seq = ? AND status = 'pending'",
                (run_id, name, seq),
            )
            if appr.rows:
                yield from _expire_approval(
                    run_id, name, appr.rows[0][0], seq, appr.rows[0][1], now
                )
        elif kind == "event":
            yield from sql_events.time_out(run_id, name, seq, now)
        elif kind == "signal":
            yield _resolve_entry(run_id, seq, '{"timed_out":true}', now)
            yield history(run_id, now, "signal_timed_out", None, {"name": name})
        else:
            yield _resolve_entry(run_id, seq, None, now)
            yield history(run_id, now, "timer_fired", None, {"seq": seq})
        claim = yield from wake(run_id, now, claim_for, lease_until)
        if claim is not None:
            claims.append(claim)
    return claims


def pending_approvals(
    *, workflow: str | None, run_id: str | None, limit: int
) -> Op[list[models.Approval]]:
    where, params = ["status = 'pending'"], []
    if workflow is not None:
        where.append("workflow = ?")
        params.append(workflow)
    if run_id is not None:
        where.append("run_id = ?")
        params.append(run_id)
    res = yield Query(
        f"SELECT {APPROVAL_COLUMNS} FROM approvals WHERE {' AND '.join(where)} "
        "ORDER BY requested_at, run_id, key LIMIT ?",
        (*params, limit),
    )
    return [row_to_approval(r) for r in res.rows]


def run_approvals(run_id: str) -> Op[list[models.Approval]]:
    res = yield Query(
        f"SELECT {APPROVAL_COLUMNS} FROM approvals WHERE run_id = ? ORDER BY requested_at, round",
        (run_id,),
    )
    return [row_to_approval(r) for r in res.rows]
