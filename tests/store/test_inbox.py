"""The inbox query against every backend: filters, stable cursor pages, total counts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from signoff import ApprovalPage, Context, Directory, Engine, InvalidArgument
from signoff.testing import FakeClock, fire_due_timers


@pytest.fixture
def eng(engine: Engine) -> Engine:
    engine.directory = Directory({"finance": ["bob", "carol"], "legal": ["lee"]})
    return engine


async def start_parked(engine: Engine, wf: Any, *args: Any, **kw: Any) -> str:
    run = await engine.start(wf, *args, **kw)
    await engine.settle(run.id)
    return run.id


async def test_filters_by_approver_role_workflow_key_prefix_and_age(
    eng: Engine, clock: FakeClock
) -> None:
    @eng.workflow()
    async def pay(ctx: Context, approvers: list[str], key: str) -> None:
        await ctx.approval(key, approvers=approvers)

    @eng.workflow()
    async def hire(ctx: Context) -> None:
        await ctx.approval("offer/legal", approvers=["role:legal"])

    async with eng:
        old = await start_parked(eng, pay, ["alice"], "refund/manager")
        clock.advance("3d")
        fin = await start_parked(eng, pay, ["role:finance"], "refund/finance")
        clock.advance("1s")
        both = await start_parked(eng, pay, ["alice", "role:finance"], "invoice")
        clock.advance("1s")
        legal = await start_parked(eng, hire)

        def ids(page: ApprovalPage) -> list[str]:
            return [a.run_id for a in page]

        assert ids(await eng.pending_approvals(approver="alice")) == [old, both]
        assert ids(await eng.pending_approvals(approver="bob")) == [fin, both]
        assert ids(await eng.pending_approvals(role="finance")) == [fin, both]
        assert ids(await eng.pending_approvals(role="role:finance")) == [fin, both]
        assert ids(await eng.pending_approvals(approver="carol", role="finance")) == [fin, both]
        assert ids(await eng.pending_approvals(approver="alice", role="finance")) == [both]
        assert ids(await eng.pending_approvals(approver="lee")) == [legal]
        assert ids(await eng.pending_approvals(workflow=pay.__qualname__)) == [old, fin, both]
        page = await eng.pending_approvals(workflow=pay.__qualname__, key_prefix="refund/")
        assert ids(page) == [old, fin] and page.total == 2
        assert ids(await eng.pending_approvals(key_prefix="offer/")) == [legal]
        assert ids(await eng.pending_approvals(older_than="2d")) == [old]
        assert ids(await eng.pending_approvals(older_than=timedelta(days=4))) == []
        assert ids(await eng.pending_approvals(approver="alice", older_than="1d")) == [old]
        assert ids(await eng.pending_approvals(approver="nobody")) == []
        everything = await eng.pending_approvals()
        assert everything.total == 4 and everything.next_cursor is None


async def test_cursor_pages_are_stable_and_carry_the_total(eng: Engine, clock: FakeClock) -> None:
    @eng.workflow()
    async def wf(ctx: Context) -> None:
        await ctx.approval("pay", approvers=["role:finance"])

    async with eng:
        started = []
        for _ in range(7):
            started.append(await start_parked(eng, wf))
            clock.advance("1s")
        first = await eng.pending_approvals(approver="bob", limit=3)
        assert first.total == 7 and len(first) == 3 and first.next_cursor is not None
        assert [a.run_id for a in first] == started[:3]
        # approvals that leave and arrive between pages do not shift the next page
        await eng.approve(started[0], "pay", by="carol")
        newest = await start_parked(eng, wf)
        second = await eng.pending_approvals(approver="bob", limit=3, cursor=first.next_cursor)
        assert [a.run_id for a in second] == started[3:6]
        assert second.total == 7  # one left, one arrived
        third = await eng.pending_approvals(approver="bob", limit=3, cursor=second.next_cursor)
        assert [a.run_id for a in third] == [started[6], newest]
        assert third.next_cursor is None and third.items == list(third)


async def test_a_voter_leaves_the_inbox_and_a_decided_or_cancelled_approval_too(
    eng: Engine,
) -> None:
    @eng.workflow()
    async def wf(ctx: Context) -> None:
        await ctx.approval("pay", approvers=["alice", "role:finance"], quorum=2)

    async with eng:
        one = await start_parked(eng, wf)
        two = await start_parked(eng, wf)
        await eng.approve(one, "pay", by="alice")
        assert [a.run_id for a in await eng.pending_approvals(approver="alice")] == [two]
        assert {a.run_id for a in await eng.pending_approvals(approver="bob")} == {one, two}
        await eng.approve(one, "pay", by="bob")
        await eng.cancel(two)
        for who in ("alice", "bob", "carol"):
            assert (await eng.pending_approvals(approver=who)).total == 0
        assert (await eng.pending_approvals(role="finance")).total == 0


async def test_the_requester_does_not_see_their_own_request(eng: Engine) -> None:
    @eng.workflow()
    async def wf(ctx: Context) -> None:
        await ctx.approval("pay", approvers=["role:finance"])

    async with eng:
        run = await start_parked(eng, wf, requested_by="bob")
        assert [a.run_id for a in await eng.pending_approvals(approver="carol")] == [run]
        assert await eng.pending_approvals(approver="bob") == []


async def test_an_approval_open_to_anyone_is_in_every_inbox_but_its_requesters(
    eng: Engine, clock: FakeClock
) -> None:
    @eng.workflow()
    async def named(ctx: Context) -> None:
        await ctx.approval("pay", approvers=["alice"])

    @eng.workflow()
    async def anyone(ctx: Context, quorum: int) -> None:
        await ctx.approval("ok", quorum=quorum)

    async with eng:
        first = await start_parked(eng, anyone, 1, requested_by="bob")
        clock.advance("1s")
        mine = await start_parked(eng, named)
        clock.advance("1s")
        pair = await start_parked(eng, anyone, 2)
        clock.advance("1s")
        later = await start_parked(eng, anyone, 1)

        def ids(page: ApprovalPage) -> list[str]:
            return [a.run_id for a in page]

        alice = await eng.pending_approvals(approver="alice")
        assert ids(alice) == [first, mine, pair, later] and alice.total == 4
        assert ids(await eng.pending_approvals(approver="bob")) == [pair, later]  # not his own
        assert ids(await eng.pending_approvals(approver="zoe", workflow=anyone.__qualname__)) == [
            first,
            pair,
            later,
        ]
        assert await eng.pending_approvals(role="finance") == []
        # pages merge the person's own rows with the open ones, in order
        page = await eng.pending_approvals(approver="alice", limit=2)
        assert ids(page) == [first, mine] and page.total == 4 and page.next_cursor
        rest = await eng.pending_approvals(approver="alice", limit=2, cursor=page.next_cursor)
        assert ids(rest) == [pair, later] and rest.next_cursor is None
        # a voter on an open quorum leaves their own inbox, not the others'
        await eng.approve(pair, "ok", by="zoe")
        assert pair not in ids(await eng.pending_approvals(approver="zoe"))
        assert pair in ids(await eng.pending_approvals(approver="alice"))
        await eng.approve(first, "ok", by="carol")
        assert ids(await eng.pending_approvals(approver="alice")) == [mine, pair, later]


async def test_an_open_approval_escalated_to_someone_is_in_their_inbox_once(
    eng: Engine, clock: FakeClock
) -> None:
    @eng.workflow()
    async def wf(ctx: Context) -> None:
        await ctx.approval("ok", escalate_after="1h", escalate_to=["role:legal"])

    async with eng:
        run = await start_parked(eng, wf)
        clock.advance("2h")
        await fire_due_timers(eng)
        page = await eng.pending_approvals(approver="lee")
        assert [a.run_id for a in page] == [run] and page.total == 1
        assert [a.run_id for a in await eng.pending_approvals(approver="zoe")] == [run]


async def test_bad_inbox_arguments_are_refused(eng: Engine) -> None:
    with pytest.raises(InvalidArgument, match="cursor"):
        await eng.pending_approvals(cursor="not-a-cursor")
    with pytest.raises(InvalidArgument, match="limit"):
        await eng.pending_approvals(limit=0)
    with pytest.raises(InvalidArgument):
        await eng.pending_approvals(older_than="soon")
    with pytest.raises(InvalidArgument):
        await eng.pending_approvals(approver="a\x00b")
