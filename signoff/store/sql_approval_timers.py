"""Store operations on an approval's timers other than the deadline's outcome itself:
escalation (more people may decide) and reminders, on the run's one timer.

`runs.wake_at` (and the open journal entry's `wake_at`, which a re-park restores) holds
the earliest of deadline, escalation and next reminder. When it fires, `fire_timer`
closes the round if the deadline passed (`sql_approvals.time_out`); otherwise it does
what is due, moves the timer to the next time, and leaves the run parked.

A storm of timers (many deadlines in the same second) fires in batches: `prefetch` reads
what the batch's timers will ask for (their rounds, votes and audit chain heads) in three
statements, and `answering` hands those rows to each timer's operation in place of its
own reads. On PostgreSQL that is three round trips for the batch instead of three per
timer. A read that was not prefetched (or whose text changed) goes to the database as
before, so the prefetch can only save time, never change an outcome.

`fire_batch` goes further for the common case of a storm, deadlines that expire their
rounds (`on_timeout` "expire", the default): it writes what `sql_approvals.time_out`
writes for each of them (the round closed, its inbox rows gone, the journal answered,
the history and audit entries) in one multi-row statement per table, a handful of
statements for the batch instead of five per timer. Every other timer (escalations,
reminders, `on_timeout` approve or reject, a round no longer pending) fires one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from signoff import audit, models, outbox, policy
from signoff.store import sql_approvals, sql_audit, sql_outbox
from signoff.store.sql import (
    WAKE,
    Op,
    Query,
    Result,
    dump_json,
    history,
    iso,
    stored_policy,
)
from signoff.store.sql_approvals import (
    ROUND_COLUMNS,
    Round,
    _decision,
    _vote,
    add_to_inbox,
    earliest,
    time_out,
    votes_of,
)

T = TypeVar("T")

# The reads a timer's operation makes, the texts where they are made use (`fire_timer`,
# `sql_approvals.votes_of`, `sql_audit.append`); `prefetch` answers them for a batch.
PENDING_ROUND = (
    f"SELECT {ROUND_COLUMNS}, escalate_at, remind_at, requested_at, workflow FROM approvals "
    "WHERE run_id = ? AND key = ? AND seq = ? AND status = 'pending'"
)
VOTES = sql_approvals.VOTES
AUDIT_HEAD = sql_audit.HEAD

Answers = dict[tuple[str, tuple[Any, ...]], list[tuple[Any, ...]]]


def prefetch(timers: Sequence[tuple[str, str, int]]) -> Op[Answers]:
    """For due approval timers (run id, key, journal position), the rows their reads
    will find: the pending rounds, their votes and the runs' audit chain heads, in
    three statements (the runs' rows are held, so nothing changes them meanwhile)."""
    answers: Answers = {}
    if not timers:
        return answers
    run_ids = sorted({run_id for run_id, _, _ in timers})
    marks = ", ".join("?" for _ in run_ids)
    wanted = set(timers)
    res = yield Query(
        f"SELECT run_id, key, {ROUND_COLUMNS}, escalate_at, remind_at, requested_at, workflow "
        f"FROM approvals WHERE run_id IN ({marks}) AND status = 'pending'",
        tuple(run_ids),
    )
    rounds: dict[tuple[str, str, int], int] = {}
    for row in res.rows:
        run_id, key, round_, seq = row[0], row[1], row[2], row[3]
        if (run_id, key, seq) in wanted:
            answers[(PENDING_ROUND, (run_id, key, seq))] = [tuple(row[2:])]
            rounds[(run_id, key, round_)] = seq
    for run_id, key, seq in timers:  # no pending round: the timer finds nothing
        answers.setdefault((PENDING_ROUND, (run_id, key, seq)), [])
    for run_id, key, round_ in rounds:
        answers[(VOTES, (run_id, key, round_))] = []
    if rounds:
        res = yield Query(
            "SELECT run_id, key, round, voter, vote, reason, at, value FROM approval_votes "
            f"WHERE run_id IN ({marks}) ORDER BY run_id, key, round, at, voter",
            tuple(run_ids),
        )
        for row in res.rows:
            votes = answers.get((VOTES, (row[0], row[1], row[2])))
            if votes is not None:
                votes.append(tuple(row[3:]))
    res = yield Query(
        f"SELECT chain, seq, hash FROM audit WHERE chain IN ({marks}) "
        "AND seq = (SELECT MAX(seq) FROM audit AS head WHERE head.chain = audit.chain)",
        tuple(run_ids),
    )
    heads = {row[0]: [(row[1], row[2])] for row in res.rows}
    for run_id in run_ids:
        answers[(AUDIT_HEAD, (run_id,))] = heads.get(run_id, [])
    return answers


def answering(op: Op[T], answers: Answers) -> Op[T]:
    """Run `op`, answering each read found in `answers` from there, once (a later read
    of the same may see what `op` wrote since: it goes to the database)."""
    try:
        query = next(op)
        while True:
            rows = answers.pop((query.sql, tuple(query.params)), None) if query.wait else None
            result = Result(rows, len(rows)) if rows is not None else (yield query)
            query = op.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


Timer = tuple[str, str, int]  # run id, approval key, journal position of its wait
# a round to expire: run id, key, the round, its votes, the run's audit head (seq, hash)
Expiring = tuple[str, str, Round, list[models.Vote], tuple[int, str]]
CHUNK = 100  # rows per multi-row statement (parameters stay well under every limit)


def fire_batch(timers: Sequence[Timer], now: float) -> Op[set[str]]:
    """Fire the due timers of pending approvals (run rows held by the caller); the ids
    of the runs whose wait was answered (the others escalated or reminded and wait on).
    Rounds that expire are closed together (`expire`), the rest one by one."""
    answers = yield from prefetch(timers)
    expiring: list[Expiring] = []
    single: list[Timer] = []
    for run_id, key, seq in timers:
        rows = answers.get((PENDING_ROUND, (run_id, key, seq)))
        r = Round(*rows[0][:13]) if rows else None
        if r is None or r.deadline is None or r.deadline > now or _on_timeout(r) != "expire":
            single.append((run_id, key, seq))
            continue
        votes = answers.pop((VOTES, (run_id, key, r.round)), None)
        head = answers.get((AUDIT_HEAD, (run_id,)))
        if votes is None or head is None:  # not prefetched: leave it to `fire_timer`
            single.append((run_id, key, seq))
            continue
        del answers[(PENDING_ROUND, (run_id, key, seq))]
        at = (int(head[0][0]), str(head[0][1])) if head else (0, audit.GENESIS)
        expiring.append((run_id, key, r, [_vote(v) for v in votes], at))
    for start in range(0, len(expiring), CHUNK):
        yield from expire(expiring[start : start + CHUNK], now)
    woken = {run_id for run_id, *_ in expiring}
    for run_id, key, seq in single:
        if (yield from answering(fire_timer(run_id, key, seq, now), answers)):
            woken.add(run_id)
    return woken


def _on_timeout(r: Round) -> str:
    return str((r.rules or {}).get("on_timeout", "expire"))


def expire(rounds: Sequence[Expiring], now: float) -> Op[None]:
    """Expire pending rounds whose deadline passed, each (run id, key, round, its votes,
    its run's audit chain head; one round per run): the rows `sql_approvals.time_out`
    writes for each, in one statement per table (the runs' rows are held by the caller).

    Rows are found by `run_id IN (...)`, which takes the primary keys, and a CASE on the
    run picks each row's key, round or journal position (an OR of one condition per row
    costs PostgreSQL's planner milliseconds, and a scan of every pending round when it
    has no statistics)."""
    if not rounds:
        return
    runs = tuple(run_id for run_id, *_ in rounds)
    among = f"run_id IN ({', '.join('?' for _ in runs)})"
    key_sql, key_params = _case([(run_id, key) for run_id, key, *_ in rounds])
    round_sql, round_params = _case([(run_id, r.round) for run_id, _, r, _, _ in rounds])
    yield Query(
        "UPDATE approvals SET status = 'expired', value = NULL, decided_by = NULL, "
        "reason = NULL, decided_at = ?, timed_out = 1, escalate_at = NULL, remind_at = NULL "
        f"WHERE {among} AND status = 'pending' AND key = {key_sql} AND round = {round_sql}",
        (now, *runs, *key_params, *round_params),
        wait=False,
    )
    inboxes = [(run_id, key) for run_id, key, r, _, _ in rounds if r.policy is not None]
    if inboxes:  # every round with a policy has inbox rows (`sql_approvals._has_inbox`)
        sql, params = _case(inboxes)
        yield Query(
            f"DELETE FROM approval_inbox WHERE run_id IN ({', '.join('?' for _ in inboxes)}) "
            f"AND key = {sql}",
            (*(run_id for run_id, _ in inboxes), *params),
            wait=False,
        )
    at = iso(now) or ""
    decisions: list[dict[str, Any]] = []
    records: list[tuple[Any, ...]] = []
    chained: list[tuple[Any, ...]] = []
    for run_id, key, r, votes, (seq, prev) in rounds:
        closed = Round(
            r.round, r.seq, "expired", r.summary, r.proposed, None, None, None, now,
            r.deadline, r.policy, r.digest, 1,
        )  # fmt: skip
        decisions.append(_decision(key, closed, votes).to_json())
        text = dump_json({"key": key, "round": r.round})
        records.append((run_id, now, "approval_expired", None, text))
        made = audit.make(run_id, seq + 1, at, "approval_expired", None, text, prev)
        chained.append(
            (made.chain, made.seq, made.at, made.type, made.actor, made.data, made.prev, made.hash)
        )
    result_sql, result_params = _case(
        [(run_id, dump_json(d)) for run_id, d in zip(runs, decisions, strict=True)]
    )
    seq_sql, seq_params = _case([(run_id, r.seq) for run_id, _, r, _, _ in rounds])
    yield Query(
        f"UPDATE journal SET status = 'done', result = {result_sql}, finished_at = ? "
        f"WHERE {among} AND seq = {seq_sql} AND status = 'open'",
        (*result_params, now, *runs, *seq_params),
        wait=False,
    )
    yield Query(
        "INSERT INTO history (run_id, at, type, actor, data) VALUES "
        + ", ".join("(?, ?, ?, ?, ?)" for _ in records),
        _flat(records),
        wait=False,
    )
    yield Query(
        f"INSERT INTO audit ({sql_audit.COLUMNS}) VALUES "
        + ", ".join("(?, ?, ?, ?, ?, ?, ?, ?)" for _ in chained),
        _flat(chained),
        wait=False,
    )
    for (run_id, key, r, _, _), decision in zip(rounds, decisions, strict=True):
        yield from sql_outbox.enqueue(  # nothing without a notification plan
            run_id, outbox.APPROVAL_EXPIRED, now,
            {"summary": r.summary, "decision": decision}, key=key,
            approvers=(r.rules or {}).get("approvers", ()),
        )  # fmt: skip


def _case(pairs: Sequence[tuple[str, Any]]) -> tuple[str, tuple[Any, ...]]:
    """SQL that takes, on the row of each run, the value paired with it (and its
    parameters): `CASE run_id WHEN ? THEN ? ... END`."""
    return f"CASE run_id {' '.join('WHEN ? THEN ?' for _ in pairs)} END", _flat(pairs)


def _flat(rows: Sequence[tuple[Any, ...]]) -> tuple[Any, ...]:
    return tuple(value for row in rows for value in row)


def fire_timer(run_id: str, key: str, seq: int, now: float) -> Op[bool]:
    """Handle a due timer of the pending approval the run waits on. True: the round was
    closed (deadline), wake the run; False: it escalated or reminded and keeps waiting."""
    res = yield Query(PENDING_ROUND, (run_id, key, seq))
    if not res.rows:
        return True
    row = res.rows[0]
    r = Round(*row[:13])
    escalate_at, remind_at, requested_at, workflow = row[13:]
    if r.deadline is not None and r.deadline <= now:
        yield from time_out(run_id, key, r, now)
        return True
    rules = r.rules or {}
    if escalate_at is not None and escalate_at <= now:
        rules = yield from _escalate(run_id, key, r, rules, requested_at, workflow, now)
        escalate_at = None
    if remind_at is not None and remind_at <= now:
        yield from _remind(run_id, key, r, rules, now)
        every = rules["remind_every"]
        remind_at += every * (int((now - remind_at) // every) + 1)
    yield Query(
        "UPDATE approvals SET policy = ?, escalate_at = ?, remind_at = ? "
        "WHERE run_id = ? AND key = ? AND round = ?",
        (stored_policy(dump_json(rules)), escalate_at, remind_at, run_id, key, r.round),
        wait=False,
    )
    wake_at = earliest(r.deadline, escalate_at, remind_at)
    yield Query(
        f"UPDATE runs SET wake_at = {WAKE} WHERE id = ?", (wake_at, wake_at, run_id), wait=False
    )
    yield Query(
        "UPDATE journal SET wake_at = ? WHERE run_id = ? AND seq = ?",
        (wake_at, run_id, seq),
        wait=False,
    )
    return False


def _escalate(
    run_id: str,
    key: str,
    r: Round,
    rules: dict[str, Any],
    requested_at: float,
    workflow: str,
    now: float,
) -> Op[dict[str, Any]]:
    """Add the escalation targets to who may decide, keeping everyone named before."""
    added = [a for a in rules.get("escalate_to", []) if a not in rules.get("approvers", [])]
    rules = dict(rules, approvers=[*rules.get("approvers", []), *added], escalated=True)
    if rules.get("eligible") is not None:
        rules["eligible"] = sorted({*rules["eligible"], *rules.get("escalate_people", [])})
    res = yield Query("SELECT requested_by FROM runs WHERE id = ?", (run_id,))
    principals = policy.inbox_principals(
        {**rules, "eligible": rules.get("eligible") or rules.get("escalate_people", [])},
        res.rows[0][0],
    )
    yield from add_to_inbox(principals, requested_at, run_id, key, r.round, workflow, r.deadline)
    data = {"key": key, "round": r.round, "added": added, "people": rules.get("escalate_people")}
    yield from sql_audit.recorded(run_id, now, "approval_escalated", None, data)
    yield from sql_outbox.enqueue(
        run_id, outbox.APPROVAL_ESCALATED, now, {**data, "summary": r.summary},
        workflow=workflow, key=key, approvers=added, requested_by=res.rows[0][0],
    )  # fmt: skip
    return rules


def _remind(run_id: str, key: str, r: Round, rules: dict[str, Any], now: float) -> Op[None]:
    voted = {v.by for v in (yield from votes_of(run_id, key, r.round))}
    res = yield Query(
        "SELECT principal FROM approval_inbox WHERE run_id = ? AND key = ? ORDER BY principal",
        (run_id, key),
    )
    to = [p for (p,) in res.rows if p not in voted and p[:1] not in (policy.ANYONE, policy.NOT)]
    data = {"key": key, "round": r.round, "to": to}
    yield history(run_id, now, "approval_reminder", None, data)
    yield from sql_outbox.enqueue(
        run_id, outbox.APPROVAL_REMINDER, now, {**data, "summary": r.summary}, key=key,
        approvers=to,
    )  # fmt: skip
