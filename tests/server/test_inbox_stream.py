"""The inbox's live stream fanned out by person (signoff/server/inbox/live.py): each
approval event reaches the streams of exactly those who may see the approval, costs
only their streams, and a resumed stream gets the same from the database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from signoff import Context, Directory, Engine, models
from signoff.server import stream
from signoff.server.inbox import live, rules, session
from tests.server.test_stream import parse

PEOPLE = ["alice", "bob", "carol", "dave", "erin"]


class Roles(Directory):
    """A directory whose roles a test may change after requests were made."""

    def __init__(self) -> None:
        super().__init__({"finance": ["carol", "dave"]})

    def set(self, role: str, people: list[str]) -> None:
        self._roles[role] = set(people)


@pytest.fixture
async def engine(store_url: str) -> AsyncIterator[Engine]:
    e = Engine(store_url, poll_interval=0.01, lease="5s", directory=Roles())

    @e.workflow("ask")
    async def ask(ctx: Context, approvers: list[str] | None, quorum: int = 1) -> str:
        d = await ctx.approval("ok", summary="s", approvers=approvers, quorum=quorum)
        return d.status.value

    await e.start_worker()
    yield e
    await e.close()


def viewer(name: str | None, *scopes: str) -> session.Viewer:
    return session.Viewer(name, frozenset(scopes), session.fresh(), "", "ticket")


async def waiting(engine: Engine, approvers: list[str] | None, **kw: Any) -> str:
    run = await engine.start("ask", approvers, **kw)
    assert (await engine.settle(run.id, timeout=10)).status == "waiting"
    return run.id


async def exact(engine: Engine, approval: models.Approval) -> set[str]:
    """Who may see `approval`, asked of `rules.may_see` person by person."""
    return {p for p in PEOPLE if await rules.may_see(engine, viewer(p, "decide"), approval)}


async def latest(engine: Engine, run_id: str) -> models.Approval:
    approval = await rules.latest(engine, run_id, "ok")
    assert approval is not None
    return approval


async def test_the_audience_is_who_may_see_it_person_by_person(engine: Engine) -> None:
    directory = engine.directory
    assert isinstance(directory, Roles)
    cases = {
        "named": await waiting(engine, ["alice", "bob"]),
        "role": await waiting(engine, ["role:finance"]),
        "anyone": await waiting(engine, None, requested_by="erin"),
        "voted": await waiting(engine, ["alice", "bob", "carol"], quorum=2),
        "drift": await waiting(engine, ["role:finance", "bob"]),
        "decided": await waiting(engine, ["role:finance"]),
    }
    await engine.approve(cases["voted"], "ok", by="alice")
    await engine.approve(cases["anyone"], "ok", by="bob")
    await engine.reject(cases["decided"], "ok", by="carol")
    directory.set("finance", ["erin"])  # dave still has "drift" in his inbox, not erin
    seen = {}
    for name, run_id in cases.items():
        approval = await latest(engine, run_id)
        seen[name] = await live.audience(engine, approval, PEOPLE)
        assert seen[name] == await exact(engine, approval), name
    assert seen["named"] == {"alice", "bob"}
    assert seen["drift"] == {"bob", "carol", "dave", "erin"}
    assert seen["decided"] == {"carol", "erin"}  # she decided; erin is in the role now
    assert await live.audience(engine, await latest(engine, cases["named"]), ["dave"]) == set()


async def test_an_open_to_anyone_request_leaves_out_who_may_not_decide_it(engine: Engine) -> None:
    run_id = await waiting(engine, None, requested_by="erin")
    approval = await latest(engine, run_id)
    # pending and open to anyone: everyone listening may see it (rules.may_see)
    assert await live.audience(engine, approval, PEOPLE) == set(PEOPLE)
    await engine.approve(run_id, "ok", by="alice")
    assert await live.audience(engine, await latest(engine, run_id), PEOPLE) == {"alice"}


class Streams:
    """Inbox streams opened through the hub, one per viewer, read as they come."""

    def __init__(self, hub: stream.Hub, fanout: live.InboxFanout) -> None:
        self.hub, self.fanout = hub, fanout
        self.got: dict[str, list[str]] = {}
        self.tasks: list[asyncio.Task[None]] = []

    async def open(self, label: str, who: session.Viewer, after: int | None = None) -> None:
        frames = stream.events(self.hub, heartbeat=0.2, fanout=self.fanout, viewer=who, after=after)
        chunks = self.got.setdefault(label, [])

        async def read() -> None:
            async for chunk in frames:
                chunks.append(chunk)

        self.tasks.append(asyncio.create_task(read()))
        while label not in self.labels_connected():
            await asyncio.sleep(0.005)

    def labels_connected(self) -> Iterator[str]:
        return (k for k, v in self.got.items() if ": connected\n\n" in v)

    async def until(self, label: str, count: int) -> None:
        for _ in range(1000):
            if len(self.events(label)) >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{label}: {self.events(label)}")

    def events(self, label: str) -> list[tuple[str, dict[str, object]]]:
        return [(name, data) for _, name, data in parse(self.got[label])]

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def test_each_approval_event_reaches_exactly_the_streams_that_may_see_it(
    engine: Engine,
) -> None:
    hub = stream.Hub(engine, poll_interval=0.01)
    streams = Streams(hub, live.InboxFanout(engine))
    try:
        for name in ("alice", "bob", "carol"):
            await streams.open(name, viewer(name, "decide"))
        await streams.open("nobody", viewer(None))
        await streams.open("reader", viewer("rita", "read"))
        run_id = await waiting(engine, ["alice", "role:finance"])
        await streams.until("alice", 1)
        await engine.approve(run_id, "ok", by="alice")
        await engine.settle(run_id, timeout=10)
        await streams.until("reader", 3)
        asked = {"run_id": run_id, "key": "ok", "status": "pending", "by": None}
        outcome = {"run_id": run_id, "key": "ok", "status": "approved", "by": "alice"}
        for name in ("alice", "carol"):  # named; in the role
            assert streams.events(name) == [
                ("waiting_for_input", asked),  # the approval as it is when sent
                ("input_resolved", outcome),
            ], name
        assert streams.events("bob") == streams.events("nobody") == []
        reader = streams.events("reader")  # the read scope: every event, the others reduced
        assert reader == [
            ("waiting_for_input", asked),
            ("input_resolved", outcome),
            ("run_completed", {"run_id": run_id, "type": "run_completed"}),
        ]
    finally:
        await streams.close()
        await hub.close()
    assert not hub.subscribers and not streams.fanout.listening()


async def test_an_event_costs_the_streams_of_those_who_may_see_it_only(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = stream.Hub(engine, poll_interval=0.01)
    fanout = live.InboxFanout(engine)
    subs = [
        await hub.subscribe(None, fanout=fanout, viewer=viewer(f"p{i}", "decide"))
        for i in range(300)
    ]
    mine = await hub.subscribe(None, fanout=fanout, viewer=viewer("alice", "decide"))
    puts: list[stream.Subscriber] = []
    put = stream.Subscriber.put

    def counted(self: stream.Subscriber, item: stream.Item) -> bool:
        puts.append(self)
        return put(self, item)

    monkeypatch.setattr(stream.Subscriber, "put", counted)
    try:
        run_id = await waiting(engine, ["alice"])
        await engine.approve(run_id, "ok", by="alice")
        await engine.settle(run_id, timeout=10)
        for _ in range(1000):  # the hub's reads hand both events out
            if len(mine.waiting) == 2:
                break
            await asyncio.sleep(0.01)
        assert puts == [mine, mine]  # requested, resolved: 2 of 301 streams, twice
        assert [i.frame.split("\n")[1] for i in mine.take()] == [
            "event: waiting_for_input",
            "event: input_resolved",
        ]
        assert not any(s.waiting for s in subs)
    finally:
        for sub in [*subs, mine]:
            hub.unsubscribe(sub)
        await hub.close()
    assert not fanout.listening()


async def test_a_resumed_inbox_stream_catches_up_with_the_same_filter(engine: Engine) -> None:
    hub = stream.Hub(engine, poll_interval=0.01)
    streams = Streams(hub, live.InboxFanout(engine))
    before = await engine.access.last_history_id()
    mine = await waiting(engine, ["bob"])
    await waiting(engine, ["alice"])
    await engine.approve(mine, "ok", by="bob")
    await engine.settle(mine, timeout=10)
    try:
        await streams.open("bob", viewer("bob", "decide"), after=before)
        await streams.open("reader", viewer("rita", "read"), after=before)
    finally:
        await streams.close()
        await hub.close()
    outcome = {"run_id": mine, "key": "ok", "status": "approved", "by": "bob"}
    assert streams.events("bob") == [("waiting_for_input", outcome), ("input_resolved", outcome)]
    assert len({d["run_id"] for _, d in streams.events("reader")}) == 2
