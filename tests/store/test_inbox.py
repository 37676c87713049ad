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


async def test_urgent_order_puts_the_soonest_deadline_first_across_pages(
    eng: Engine, clock: FakeClock
) -> None:
    @eng.workflow()
    async def wf(ctx: Context, timeout: str | int | None) -> None:
        await ctx.approval("pay", approvers=["alice", "role:finance"], timeout=timeout)

    @eng.workflow()
    async def anyone(ctx: Context, timeout: str | int | None) -> None:
        await ctx.approval("ok", timeout=timeout)

    async with eng:
        none_old = await start_parked(eng, wf, None)
        clock.advance("1s")
        late = await start_parked(eng, wf, "3d")
        clock.advance("1s")
        soon = await start_parked(eng, wf, "1h")
        clock.advance("1s")
        open_mid = await start_parked(eng, anyone, "1d")
        clock.advance("1s")
        none_new = await start_parked(eng, wf, None)
        clock.advance("1s")
        tie_a = await start_parked(eng, wf, 172_801)  # same deadline as tie_b: older first
        clock.advance("1s")
        tie_b = await start_parked(eng, wf, 172_800)
        urgent = [soon, open_mid, tie_a, tie_b, late, none_old, none_new]

        def ids(page: ApprovalPage) -> list[str]:
            return [a.run_id for a in page]

        async def walk(limit: int, **kw: Any) -> list[str]:
            page = await eng.pending_approvals(limit=limit, order="urgent", **kw)
            seen = ids(page)
            while page.next_cursor:
                page = await eng.pending_approvals(
                    limit=limit, order="urgent", cursor=page.next_cursor, **kw
                )
                seen += ids(page)
            return seen

        for limit in (1, 2, 3, 10):
            assert await walk(limit, approver="alice") == urgent  # own rows and open ones
            assert await walk(limit) == urgent  # every pending approval
        assert await walk(2, approver="bob") == urgent
        assert await walk(2, role="finance") == [u for u in urgent if u != open_mid]
        oldest = await eng.pending_approvals(approver="alice")
        assert ids(oldest) == [none_old, late, soon, open_mid, none_new, tie_a, tie_b]
        # a page's cursor goes with its order
        first = await eng.pending_approvals(approver="alice", order="urgent", limit=2)
        with pytest.raises(InvalidArgument, match="order"):
            await eng.pending_approvals(approver="alice", cursor=first.next_cursor)
        with pytest.raises(InvalidArgument, match="order"):
            await eng.pending_approvals(order="newest")  # type: ignore[arg-type]


async def test_overdue_lists_only_the_approvals_past_their_deadline(
    eng: Engine, clock: FakeClock
) -> None:
    @eng.workflow()
    async def wf(ctx: Context, timeout: str | None) -> None:
        await ctx.approval("pay", approvers=["alice"], timeout=timeout)

    async with eng:
        early = await start_parked(eng, wf, "1h")
        later = await start_parked(eng, wf, "3h")
        never = await start_parked(eng, wf, None)
        await eng.stop_worker()  # no timer fires until fire_due_timers below
        assert (await eng.pending_approvals(approver="alice", overdue=True)).total == 0
        clock.advance("2h")  # past the first deadline; its timer has not fired yet
        page = await eng.pending_approvals(approver="alice", overdue=True)
        assert [a.run_id for a in page] == [early] and page.total == 1
        assert [a.run_id for a in await eng.pending_approvals(overdue=True)] == [early]
        clock.advance("2h")
        page = await eng.pending_approvals(approver="alice", overdue=True, order="urgent")
        assert [a.run_id for a in page] == [early, later]
        all_ = await eng.pending_approvals(approver="alice", order="urgent")
        assert [a.run_id for a in all_] == [early, later, never]
        await fire_due_timers(eng)  # expired: no longer pending
        assert (await eng.pending_approvals(approver="alice", overdue=True)).total == 0


async def test_decided_by_me_lists_decisions_and_votes_newest_first_in_pages(
    eng: Engine, clock: FakeClock
) -> None:
    @eng.workflow()
    async def wf(ctx: Context, quorum: int) -> None:
        await ctx.approval("pay", approvers=["alice", "bob", "carol"], quorum=quorum)

    async with eng:
        runs = [await start_parked(eng, wf, 1 + i % 2) for i in range(5)]
        for run in runs:
            clock.advance("1s")
            if run == runs[2]:
                await eng.reject(run, "pay", by="alice", reason="no")
            else:
                await eng.approve(run, "pay", by="alice")
        await eng.approve(runs[1], "pay", by="bob")  # bob's vote closes runs[1]
        seen, cursor = [], None
        while True:
            page = await eng.decided_approvals(by="alice", limit=2, cursor=cursor)
            assert page.total == 5
            seen += page
            cursor = page.next_cursor
            if cursor is None:
                break
        assert [a.run_id for a in seen] == runs[::-1]
        by_run = {a.run_id: a for a in seen}
        assert by_run[runs[2]].status.value == "rejected"
        assert by_run[runs[1]].status.value == "approved"  # closed later by bob's vote
        assert by_run[runs[3]].status.value == "pending"  # her vote, one of two
        assert [v.by for v in by_run[runs[3]].votes] == ["alice"]
        bob = await eng.decided_approvals(by="bob")
        assert [a.run_id for a in bob] == [runs[1]] and bob.next_cursor is None
        assert (await eng.decided_approvals(by="zoe")).total == 0
        with pytest.raises(InvalidArgument, match="cursor"):
            await eng.decided_approvals(by="alice", cursor="nope")
