"""Store operations on the outbox: enqueue in the caller's transaction, claim due
messages, record each attempt's outcome, list, retry.

Enqueueing is a step of the operation that makes the change (`open_approval`,
`_close_round`, `finish_run`, ...): the notification commits or rolls back with it.
Whether anything is written depends on the engine's routing plan. The store sets it
for the operations it runs (`scoped`) through a context variable that is current only
while the operation's own code runs, so an engine with no channels pays one lookup per
call site and writes nothing, and two engines in one process never see each other's.

Claiming is like claiming runs: due rows `FOR UPDATE SKIP LOCKED` on PostgreSQL (the
single writer serializes SQLite), leased to one worker and counted as an attempt at
once, so a worker killed mid-delivery leaves a row that another takes after the lease.
An outcome is recorded only under the claim it belongs to (worker and attempt number).
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Literal, ParamSpec, TypeVar

from signoff import models, outbox
from signoff.store.sql import Op, Query, dump_json, history, iso, policy_or_none

P = ParamSpec("P")
T = TypeVar("T")

_PLAN: contextvars.ContextVar[outbox.Plan | None] = contextvars.ContextVar(
    "signoff_outbox_plan", default=None
)

COLUMNS = (
    "id, channel, event, run_id, workflow, key, recipients, payload, status, attempts, "
    "max_attempts, created_at, due_at, delivered_at, last_error"
)


def scoped(fn: Callable[P, Op[T]], plan: outbox.Plan) -> Callable[P, Op[T]]:
    """`fn` with `plan` current while its code runs (between the queries it yields)."""

    def op(*args: P.args, **kwargs: P.kwargs) -> Op[T]:
        return _within(fn(*args, **kwargs), plan)

    return op


def _within(op: Op[T], plan: outbox.Plan) -> Op[T]:
    answer: Any = None
    try:
        while True:
            token = _PLAN.set(plan)
            try:
                query = op.send(answer)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            finally:
                _PLAN.reset(token)
            answer = yield query
    finally:
        op.close()


def enqueue(
    run_id: str,
    event: str,
    now: float,
    data: dict[str, Any],
    *,
    workflow: str | None = None,
    key: str | None = None,
    approvers: Sequence[str] = (),
    requested_by: str | None = None,
    proposed_json: str | None = None,
) -> Op[None]:
    """Write `event` for every channel the plan routes it to; nothing without a plan."""
    plan = _PLAN.get()
    if plan is None or event not in plan.events:
        return
    if workflow is None:
        res = yield Query("SELECT workflow, requested_by FROM runs WHERE id = ?", (run_id,))
        if not res.rows:
            return
        workflow, requested_by = res.rows[0]
    assert workflow is not None
    targets = plan.targets(event, workflow, key)
    if not targets:
        return
    body = {"run_id": run_id, "workflow": workflow, **({"key": key} if key else {}), **data}
    if proposed_json is not None:
        body["proposed"] = json.loads(proposed_json)
    if key is not None and (yield from _is_question(run_id, key)):
        body["question"] = True  # asked with `ctx.ask`: answered, not approved
    payload = dump_json({"type": event, "timestamp": iso(now), "data": body})
    for target in targets:
        recipients = _recipients(target.to, approvers, requested_by)
        # a digest channel's message is held (pending, not yet due) until its window ends
        due = now if target.digest is None else outbox.digest_due(now, target.digest)
        yield Query(
            f"INSERT INTO outbox ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, "
            "?, NULL, NULL)",
            (
                f"msg_{uuid.uuid4().hex}",
                target.channel,
                event,
                run_id,
                workflow,
                key,
                dump_json(recipients),
                payload,
                target.max_attempts,
                now,
                due,
            ),
            wait=False,
        )


def _is_question(run_id: str, key: str) -> Op[bool]:
    """Whether approval `key` (its latest round) is a question (`ctx.ask`)."""
    res = yield Query(
        "SELECT policy FROM approvals WHERE run_id = ? AND key = ? ORDER BY round DESC LIMIT 1",
        (run_id, key),
    )
    text = policy_or_none(res.rows[0][0]) if res.rows else None
    return bool(text and '"question"' in text and _policy(text).get("question"))


@functools.lru_cache(maxsize=256)
def _policy(text: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def _recipients(to: Sequence[str], approvers: Sequence[str], requested_by: str | None) -> list[str]:
    found: list[str] = []
    for name in to:
        if name == outbox.APPROVERS:
            names: Sequence[str] = approvers
        elif name == outbox.REQUESTER:
            names = [requested_by] if requested_by else []
        else:
            names = [name]
        found.extend(n for n in names if n not in found)
    return found


def claim(
    *, owner: str, channels: list[str], limit: int, now: float, lease_until: float
) -> Op[list[outbox.Delivery]]:
    """Lease up to `limit` due messages of `channels` to `owner`, oldest due first: the
    pending ones due by `now`, and those whose holder's lease ran out. Each claim counts
    as an attempt."""
    if not channels or limit <= 0:
        return []
    marks = ", ".join("?" for _ in channels)
    res = yield Query(
        f"SELECT id FROM outbox WHERE status = 'pending' AND due_at <= ? AND channel IN ({marks}) "
        "ORDER BY due_at LIMIT ?{skip_locked}",
        (now, *channels, limit),
    )
    ids = [r[0] for r in res.rows]
    if len(ids) < limit:
        res = yield Query(
            "SELECT id FROM outbox WHERE status = 'delivering' AND lease_expires < ? "
            f"AND channel IN ({marks}) ORDER BY lease_expires LIMIT ?{{skip_locked}}",
            (now, *channels, limit - len(ids)),
        )
        ids += [r[0] for r in res.rows]
    if not ids:
        return []
    marks = ", ".join("?" for _ in ids)
    res = yield Query(
        "UPDATE outbox SET status = 'delivering', claimed_by = ?, lease_expires = ?, "
        f"attempts = attempts + 1 WHERE id IN ({marks}) RETURNING {COLUMNS}",
        (owner, lease_until, *ids),
    )
    return sorted((_delivery(r) for r in res.rows), key=lambda d: d.due_at)


Outcome = Literal["delivered", "retrying", "dead", "stale"]


def finish(
    *,
    id: str,
    attempt: int,
    owner: str,
    error: str | None,
    took_ms: float,
    retry_in: float | None,
    now: float,
) -> Op[Outcome]:
    """Record how attempt `attempt` went (`error` None: delivered). A failure is retried
    after `retry_in` seconds, or the message is dead once its attempts are used up (or
    at once when `retry_in` is None: no attempt can succeed).
    "stale": the claim was lost meanwhile (lease expired and taken), nothing changed."""
    res = yield Query(
        "SELECT run_id, channel, event, attempts, max_attempts FROM outbox "
        "WHERE id = ? AND status = 'delivering' AND claimed_by = ?{for_update}",
        (id, owner),
    )
    if not res.rows or res.rows[0][3] != attempt:
        return "stale"
    run_id, channel, event, attempts, max_attempts = res.rows[0]
    yield Query(
        "INSERT INTO outbox_attempts (message_id, attempt, at, worker, ok, error, took_ms) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (id, attempt, now, owner, int(error is None), error, took_ms),
        wait=False,
    )
    outcome: Outcome
    if error is None:
        outcome = "delivered"
        yield Query(
            "UPDATE outbox SET status = 'delivered', delivered_at = ?, claimed_by = NULL, "
            "lease_expires = NULL, last_error = NULL WHERE id = ?",
            (now, id),
            wait=False,
        )
    else:
        outcome = "dead" if retry_in is None or attempts >= max_attempts else "retrying"
        due = now if retry_in is None else now + retry_in
        yield Query(
            "UPDATE outbox SET status = ?, due_at = ?, claimed_by = NULL, lease_expires = NULL, "
            "last_error = ? WHERE id = ?",
            ("dead" if outcome == "dead" else "pending", due, error, id),
            wait=False,
        )
    data: dict[str, Any] = {"id": id, "channel": channel, "event": event, "attempt": attempt}
    if error is not None:
        data["error"] = error
        if outcome == "retrying":
            data["retry_at"] = iso(due)
    yield history(run_id, now, f"notification_{outcome}", None, data)
    return outcome


def retry(*, id: str, now: float, attempts: int) -> Op[str]:
    """Make a dead (or waiting) message due now, with `attempts` more tries. Returns
    "ok", "not_found", "delivered" or "delivering" (refused: nothing changed)."""
    res = yield Query("SELECT status, attempts FROM outbox WHERE id = ?{for_update}", (id,))
    if not res.rows:
        return "not_found"
    status, used = res.rows[0]
    if status in ("delivered", "delivering"):
        return str(status)
    yield Query(
        "UPDATE outbox SET status = 'pending', due_at = ?, max_attempts = ? WHERE id = ?",
        (now, used + attempts, id),
        wait=False,
    )
    return "ok"


def page(
    *,
    status: str | None,
    run_id: str | None,
    channel: str | None,
    limit: int,
    before: tuple[float, str] | None,
) -> Op[list[outbox.Delivery]]:
    """Up to `limit` messages, newest first, with their attempts; `before` is the
    (created_at, id) of the last one of the previous page."""
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("status", status), ("run_id", run_id), ("channel", channel)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if before is not None:
        where.append("(created_at < ? OR (created_at = ? AND id < ?))")
        params += [before[0], before[0], before[1]]
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    res = yield Query(
        f"SELECT {COLUMNS} FROM outbox {clause}ORDER BY created_at DESC, id DESC LIMIT ?",
        (*params, limit),
    )
    found = [_delivery(r) for r in res.rows]
    if not found:
        return []
    marks = ", ".join("?" for _ in found)
    tries = yield Query(
        "SELECT message_id, attempt, at, worker, ok, error, took_ms FROM outbox_attempts "
        f"WHERE message_id IN ({marks}) ORDER BY message_id, attempt",
        tuple(d.id for d in found),
    )
    by_id: dict[str, list[outbox.Attempt]] = {}
    for row in tries.rows:
        by_id.setdefault(row[0], []).append(_attempt(row[1:]))
    return [_with_history(d, by_id.get(d.id, [])) for d in found]


def waiting_channels() -> Op[list[str]]:
    """The channels that undelivered messages (pending or being delivered) are for."""
    res = yield Query(
        "SELECT DISTINCT channel FROM outbox WHERE status IN ('pending', 'delivering') "
        "ORDER BY channel"
    )
    return [r[0] for r in res.rows]


def get(id: str) -> Op[outbox.Delivery | None]:
    res = yield Query(f"SELECT {COLUMNS} FROM outbox WHERE id = ?", (id,))
    if not res.rows:
        return None
    tries = yield Query(
        "SELECT attempt, at, worker, ok, error, took_ms FROM outbox_attempts "
        "WHERE message_id = ? ORDER BY attempt",
        (id,),
    )
    return _with_history(_delivery(res.rows[0]), [_attempt(r) for r in tries.rows])


def _delivery(row: Sequence[Any]) -> outbox.Delivery:
    return outbox.Delivery(
        id=row[0],
        channel=row[1],
        event=row[2],
        run_id=row[3],
        workflow=row[4],
        key=row[5],
        recipients=tuple(json.loads(row[6])),
        payload=json.loads(row[7]),
        status=outbox.DeliveryStatus(row[8]),
        attempts=int(row[9]),
        max_attempts=int(row[10]),
        created_at=models.from_timestamp(row[11]),  # type: ignore[arg-type]
        due_at=models.from_timestamp(row[12]),  # type: ignore[arg-type]
        delivered_at=models.from_timestamp(row[13]),
        last_error=row[14],
    )


def _attempt(row: Sequence[Any]) -> outbox.Attempt:
    return outbox.Attempt(
        attempt=int(row[0]),
        at=models.from_timestamp(row[1]),  # type: ignore[arg-type]
        worker=row[2],
        ok=bool(row[3]),
        error=row[4],
        took_ms=float(row[5]),
    )


def _with_history(d: outbox.Delivery, tries: list[outbox.Attempt]) -> outbox.Delivery:
    return dataclasses.replace(d, history=tuple(tries))


# messages a channel posted and updates in place later (the Slack channel) ---------------

MESSAGE_COLUMNS = (
    "channel, run_id, key, round, recipient, delivery_id, ref, state, view, updated_at"
)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class PostedMessage:
    """A message a channel posted for one approval round to one address: `ref` says
    where it is (None while being posted), `state` what it shows (1 open, 2 closed),
    `view` what it was made from."""

    channel: str
    run_id: str
    key: str
    round: int
    recipient: str
    delivery_id: str
    ref: dict[str, Any] | None
    state: int
    view: dict[str, Any]
    updated_at: float


def reserve_message(
    *,
    channel: str,
    run_id: str,
    key: str,
    round: int,
    recipient: str,
    delivery_id: str,
    state: int,
    view: dict[str, Any],
    now: float,
) -> Op[PostedMessage]:
    """Take the place of the message for this round and recipient unless it is taken;
    the row as it stands (its `delivery_id` says which delivery holds it)."""
    yield Query(
        f"INSERT INTO channel_messages ({MESSAGE_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?) ON CONFLICT DO NOTHING",
        (channel, run_id, key, round, recipient, delivery_id, state, dump_json(view), now),
    )
    res = yield Query(
        f"SELECT {MESSAGE_COLUMNS} FROM channel_messages WHERE channel = ? AND run_id = ? "
        "AND key = ? AND round = ? AND recipient = ?",
        (channel, run_id, key, round, recipient),
    )
    return _posted(res.rows[0])


def record_message(
    *,
    channel: str,
    run_id: str,
    key: str,
    round: int,
    recipient: str,
    ref: dict[str, Any],
    state: int,
    view: dict[str, Any],
    now: float,
) -> Op[bool]:
    """Record where the message is and what it shows now, unless it already shows a
    later state; whether it was recorded."""
    where = (channel, run_id, key, round, recipient, state)
    res = yield Query(
        "UPDATE channel_messages SET ref = ?, state = ?, view = ?, updated_at = ? "
        "WHERE channel = ? AND run_id = ? AND key = ? AND round = ? AND recipient = ? "
        "AND state <= ?",
        (dump_json(ref), state, dump_json(view), now, *where),
    )
    return res.rowcount > 0


def posted_messages(*, channel: str, run_id: str, key: str, round: int) -> Op[list[PostedMessage]]:
    """The messages `channel` posted for one approval round."""
    res = yield Query(
        f"SELECT {MESSAGE_COLUMNS} FROM channel_messages WHERE channel = ? AND run_id = ? "
        "AND key = ? AND round = ? ORDER BY recipient",
        (channel, run_id, key, round),
    )
    return [_posted(r) for r in res.rows]


def _posted(row: Sequence[Any]) -> PostedMessage:
    return PostedMessage(
        channel=row[0],
        run_id=row[1],
        key=row[2],
        round=int(row[3]),
        recipient=row[4],
        delivery_id=row[5],
        ref=None if row[6] is None else json.loads(row[6]),
        state=int(row[7]),
        view=json.loads(row[8]),
        updated_at=float(row[9]),
    )
