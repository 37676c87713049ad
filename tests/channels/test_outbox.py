"""The outbox on every backend: notifications written with the change that causes them,
routed as configured, delivered by workers to a real webhook receiver with retries,
backoff and a dead state, each attempt on the record."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from signoff import Context, Directory, Engine, errors
from signoff.channels import Channel, Message, Route, WebhookChannel
from signoff.testing import FakeClock
from tests.channels.receivers import SECRET, WebhookReceiver


def make_engine(url: str, clock: FakeClock, *routes: Route, **kw: Any) -> Engine:
    engine = Engine(url, clock=clock, poll_interval=0.01, lease="5s", notifications=routes, **kw)

    @engine.workflow(name="refund")
    async def refund(ctx: Context, amount: int) -> dict[str, Any]:
        decision = await ctx.approval(
            "manager", summary=f"Refund {amount}", proposed={"amount": amount}, timeout="1h"
        )
        if amount < 0:
            raise ValueError("negative refund")
        return {"status": decision.status}

    @engine.workflow(name="other")
    async def other(ctx: Context) -> str:
        await ctx.approval("legal", summary="Sign")
        return "done"

    return engine


def hook(receiver: WebhookReceiver, name: str = "ops") -> WebhookChannel:
    return WebhookChannel(name, url=receiver.url, secret=SECRET, timeout=2)


async def runs_only(engine: Engine) -> None:
    """A worker that executes runs but delivers nothing: the test delivers, step by step."""
    await engine.start_worker()
    await engine._stop_deliverer()


async def waiting_run(engine: Engine, workflow: str = "refund", *args: Any) -> str:
    run = await engine.start(workflow, *args)
    await engine.settle(run.id)
    return run.id


async def test_no_routes_write_nothing(store_url: str, clock: FakeClock) -> None:
    engine = make_engine(store_url, clock)
    assert engine.store.outbox_plan is None
    async with engine:
        run_id = await waiting_run(engine, "refund", 5)
        await engine.approve(run_id, "manager", by="alice")
        await engine.result(run_id, timeout=5)
    assert list(await engine.deliveries()) == []
    assert await engine.deliver_notifications() == 0
    await engine.close()


async def test_requested_and_decided_are_delivered_signed_once(
    store_url: str, clock: FakeClock, receiver: WebhookReceiver
) -> None:
    engine = make_engine(store_url, clock, Route(hook(receiver)))
    async with engine:
        run_id = await waiting_run(engine, "refund", 5)
        await engine.approve(run_id, "manager", by="alice", reason="fine")
        await engine.result(run_id, timeout=5)
        got = await receiver.wait_for(3)
    types = [r.payload["type"] for r in got]
    assert sorted(types) == ["approval.decided", "approval.requested", "run.completed"]
    assert all(r.verified for r in receiver.got)  # standardwebhooks checked each signature
    requested = next(r.payload for r in got if r.payload["type"] == "approval.requested")
    assert requested["data"]["run_id"] == run_id
    assert requested["data"]["key"] == "manager"
    assert requested["data"]["proposed"] == {"amount": 5}
    decided = next(r.payload for r in got if r.payload["type"] == "approval.decided")
    assert decided["data"]["decision"]["by"] == "alice"
    page = await engine.deliveries(run_id=run_id)
    assert {d.status for d in page} == {"delivered"}
    assert {d.id for d in page} == {r.id for r in got}
    assert all(len(d.history) == 1 and d.history[0].ok for d in page)
    events = [e.type for e in await engine.history(run_id)]
    assert events.count("notification_delivered") == 3
    await engine.close()


async def test_failures_back_off_then_deliver_under_the_same_id(
    store_url: str, clock: FakeClock, receiver: WebhookReceiver
) -> None:
    receiver.statuses = [500, 503]
    engine = make_engine(store_url, clock, Route(hook(receiver), events=["approval.requested"]))
    await runs_only(engine)
    run_id = await waiting_run(engine, "refund", 5)
    await engine.stop_worker()
    assert await engine.deliver_notifications() == 1
    [d] = await engine.deliveries()
    assert d.status == "pending" and d.attempts == 1
    assert d.last_error == f"127.0.0.1:{receiver.port} answered HTTP 500"
    assert (d.due_at.timestamp() - clock.time()) == pytest.approx(5.0)
    assert await engine.deliver_notifications() == 0  # not due yet: nothing is tried
    clock.advance(5)
    assert await engine.deliver_notifications() == 1
    clock.advance(10)
    assert await engine.deliver_notifications() == 1
    [d] = await engine.deliveries()
    assert d.status == "delivered"
    assert [(a.attempt, a.ok) for a in d.history] == [(1, False), (2, False), (3, True)]
    assert {r.id for r in receiver.got} == {d.id}  # every retry under one webhook-id
    assert len(receiver.got) == 3
    history = [e.type for e in await engine.history(run_id)]
    assert history.count("notification_retrying") == 2
    await engine.close()


async def test_dead_after_its_attempts_and_retried_by_hand(
    store_url: str, clock: FakeClock, receiver: WebhookReceiver
) -> None:
    receiver.statuses = [500, 500]
    route = Route(hook(receiver), events=["approval.*"], max_attempts=2)
    engine = make_engine(store_url, clock, route)
    await runs_only(engine)
    await waiting_run(engine, "refund", 5)
    await engine.stop_worker()
    await engine.deliver_notifications()
    clock.advance(5)
    await engine.deliver_notifications()
    [d] = await engine.deliveries(status="dead")
    assert d.attempts == 2
    clock.advance(3600)
    assert await engine.deliver_notifications() == 0  # dead stays dead
    again = await engine.retry_delivery(d.id)
    assert again.status == "pending"
    assert await engine.deliver_notifications() == 1
    [d] = await engine.deliveries()
    assert d.status == "delivered" and d.attempts == 3
    with pytest.raises(errors.InvalidArgument, match="delivered"):
        await engine.retry_delivery(d.id)
    with pytest.raises(errors.InvalidArgument, match="no notification"):
        await engine.retry_delivery("msg_missing")
    await engine.close()


async def test_routes_filter_by_event_workflow_and_key(
    store_url: str, clock: FakeClock, receiver: WebhookReceiver
) -> None:
    a, b = hook(receiver, "a"), hook(receiver, "b")
    engine = make_engine(
        store_url,
        clock,
        Route(a, events=["approval.requested"], workflows=["refund"]),
        Route(b, events=["approval.*", "run.failed"], keys=["legal"], to=["requester", "bob"]),
    )
    async with engine:
        first = await waiting_run(engine, "refund", 5)
        second = await waiting_run(engine, "other")
        failing = await waiting_run(engine, "refund", -1)
        await engine.approve(failing, "manager")
        with pytest.raises(errors.RunFailed):
            await engine.result(failing, timeout=5)
    rows = {(d.run_id, d.channel, d.event) for d in await engine.deliveries()}
    assert rows == {
        (first, "a", "approval.requested"),
        (failing, "a", "approval.requested"),
        (second, "b", "approval.requested"),
        (failing, "b", "run.failed"),  # run events have no key: keys do not narrow them
    }
    [legal] = await engine.deliveries(channel="b", run_id=second)
    assert legal.recipients == ("bob",)  # no requester recorded for this run
    await engine.close()


async def test_expiry_is_notified_by_the_timer(
    store_url: str, clock: FakeClock, receiver: WebhookReceiver
) -> None:
    engine = make_engine(store_url, clock, Route(hook(receiver), events=["approval.expired"]))
    async with engine:
        run_id = await waiting_run(engine, "refund", 5)
        clock.advance(3601)
        engine._worker.wake()  # type: ignore[union-attr]
        await engine.result(run_id, timeout=5)
        [got] = await receiver.wait_for(1)
    assert got.payload["type"] == "approval.expired"
    assert got.payload["data"]["decision"]["status"] == "expired"
    await engine.close()


async def test_many_deliverers_deliver_each_message_once(
    store_url: str, clock: FakeClock, receiver: WebhookReceiver
) -> None:
    receiver.delay = 0.01
    engine = make_engine(store_url, clock, Route(hook(receiver), events=["approval.requested"]))
    await runs_only(engine)  # leave every message to the racing deliverers below
    ids = [await waiting_run(engine, "refund", n) for n in range(20)]
    await engine.stop_worker()
    others = [
        make_engine(store_url, clock, Route(hook(receiver), events=["approval.requested"]))
        for _ in range(3)
    ]
    counts = await asyncio.gather(*(e.deliver_notifications() for e in [engine, *others] * 3))
    assert sum(counts) == 20
    assert sorted(r.payload["data"]["run_id"] for r in receiver.got) == sorted(ids)
    assert len({r.id for r in receiver.got}) == 20
    for e in [engine, *others]:
        await e.close()


async def test_a_hanging_receiver_never_slows_a_run(
    store_url: str, clock: FakeClock, receiver: WebhookReceiver
) -> None:
    receiver.delay = 3.0  # longer than the whole run takes
    engine = make_engine(store_url, clock, Route(hook(receiver)))
    async with engine:
        loop = asyncio.get_running_loop()
        started = loop.time()
        run_id = await waiting_run(engine, "refund", 5)
        await engine.approve(run_id, "manager")
        assert await engine.result(run_id, timeout=5) == {"status": "approved"}
        assert loop.time() - started < 2.0
    await engine.close()


def test_misconfigured_channels_fail_at_construction(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(errors.InvalidArgument, match="whsec_"):
        WebhookChannel("ops", url="http://127.0.0.1/x", secret="not-a-secret")
    with pytest.raises(errors.InvalidArgument, match="http"):
        WebhookChannel("ops", url="ftp://x", secret=SECRET)
    good = WebhookChannel("ops", url="http://127.0.0.1/x", secret=SECRET)
    with pytest.raises(errors.InvalidArgument, match="matches no event"):
        Engine(url, notifications=[Route(good, events=["approval.requsted"])])
    twin = WebhookChannel("ops", url="http://127.0.0.1/y", secret=SECRET)
    with pytest.raises(errors.InvalidArgument, match="two different channels"):
        Engine(url, notifications=[Route(good), Route(twin)])


async def test_errors_never_show_the_secret_or_the_url_token(
    store_url: str, clock: FakeClock, receiver: WebhookReceiver
) -> None:
    receiver.statuses = [500]
    token = "tok3n-in-the-path"
    channel = WebhookChannel("ops", url=receiver.url + "/" + token, secret=SECRET)
    engine = make_engine(store_url, clock, Route(channel, events=["approval.requested"]))
    await runs_only(engine)
    run_id = await waiting_run(engine, "refund", 5)
    await engine.stop_worker()
    await engine.deliver_notifications()
    [d] = await engine.deliveries()
    shown = repr(d) + repr(await engine.history(run_id)) + repr(channel)
    assert d.last_error and token not in shown and SECRET not in shown
    await engine.close()


async def test_votes_reminders_escalations_and_timeouts_reach_the_right_people(
    store_url: str, clock: FakeClock
) -> None:
    seen: list[tuple[str, tuple[str, ...]]] = []

    class Recorder(Channel):
        name = "recorder"

        async def send(self, message: Message) -> None:
            seen.append((message.event, message.delivery.recipients))

    engine = Engine(
        store_url,
        clock=clock,
        poll_interval=0.01,
        lease="5s",
        directory=Directory({"finance": ["carol"]}),
        notifications=[Route(Recorder(), to=["approvers", "requester"])],
    )

    @engine.workflow(name="board")
    async def board(ctx: Context) -> str:
        d = await ctx.approval(
            "board",
            summary="Big spend",
            approvers=["alice", "bob"],
            quorum=2,
            timeout="3h",
            on_timeout="reject",
            remind_every="1h",
            escalate_after="90m",
            escalate_to=["role:finance"],
        )
        return str(d.status)

    await runs_only(engine)
    run = await engine.start("board", requested_by="dana")
    await engine.settle(run.id)
    await engine.approve(run.id, "board", by="alice")
    for step in (3600, 1800, 1800, 3600):  # reminder, escalation, reminder, deadline
        clock.advance(step)
        await engine.store.fire_timers(now=clock.time(), limit=10, claim_for=None, lease_until=0)
    await engine.stop_worker()
    await engine.deliver_notifications()
    assert sorted(seen) == sorted(
        [  # delivered concurrently: in no promised order
            ("approval.requested", ("alice", "bob", "dana")),
            ("approval.voted", ("alice", "bob", "dana")),
            ("approval.reminder", ("bob", "dana")),  # alice has voted
            ("approval.escalated", ("role:finance", "dana")),
            ("approval.reminder", ("bob", "carol", "role:finance", "dana")),
            ("approval.timed_out", ("alice", "bob", "role:finance", "dana")),
        ]
    )
    await engine.close()


async def test_a_worker_says_which_waiting_messages_it_has_no_channel_for(
    tmp_path: Any, clock: FakeClock, receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    engine = make_engine(url, clock, Route(hook(receiver, "old-hook")))
    await runs_only(engine)
    await waiting_run(engine, "refund", 5)
    await engine.close()
    renamed = make_engine(url, clock, Route(hook(receiver, "new-hook")))
    await renamed.start_worker()
    [record] = [r for r in caplog.records if getattr(r, "action", "") == "outbox_orphans"]
    assert record.channels == ["old-hook"]  # type: ignore[attr-defined]
    assert [d.status for d in await renamed.deliveries()] == ["pending"]  # kept, not lost
    await renamed.close()
