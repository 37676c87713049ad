"""Approval policies against every backend: who may decide, separation of duties, quorum,
timeouts, escalation and reminders, schema-checked edits, digests, chains."""

from __future__ import annotations

import asyncio
from typing import Any

import pydantic
import pytest

from signoff import (
    ApprovalExpired,
    Context,
    DecisionStatus,
    Directory,
    DuplicateVote,
    Engine,
    InvalidArgument,
    InvalidEdit,
    NotAllowedToDecide,
    RunFailed,
    SelfApproval,
    Stage,
    StaleDigest,
)
from signoff.testing import FakeClock

ROLES = {"finance": ["bob", "carol"], "directors": ["dana"], "managers": ["mia"], "ceo": ["cleo"]}


@pytest.fixture
def eng(engine: Engine) -> Engine:
    engine.directory = Directory(ROLES)
    return engine


async def events_of(engine: Engine, run_id: str, type_: str, wait: float = 5.0) -> list[Any]:
    """The run's history entries of one type, once at least one is there."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        found = [e for e in await engine.history(run_id) if e.type == type_]
        if found or loop.time() > deadline:
            return found
        await asyncio.sleep(0.01)


async def test_only_named_people_and_role_members_may_decide(eng: Engine) -> None:
    @eng.workflow()
    async def wf(ctx: Context) -> Any:
        d = await ctx.approval("pay", approvers=["alice", "role:finance"])
        return [d.status, d.by]

    async with eng:
        run = await eng.start(wf)
        await eng.settle(run.id)
        with pytest.raises(NotAllowedToDecide) as refused:
            await eng.approve(run.id, "pay", by="mallory")
        assert refused.value.allowed == ["alice", "bob", "carol"]
        assert "'mallory' may not decide" in str(refused.value)
        assert "alice, bob, carol" in str(refused.value)
        with pytest.raises(NotAllowedToDecide):
            await eng.approve(run.id, "pay")  # anonymous: not among them either
        [pending] = await eng.pending_approvals(run_id=run.id)
        assert pending.approvers == ["alice", "role:finance"]
        await eng.approve(run.id, "pay", by="carol")
        assert await eng.result(run.id, timeout=5) == ["approved", "carol"]


async def test_the_requester_may_not_approve_their_own_request(eng: Engine) -> None:
    @eng.workflow()
    async def wf(ctx: Context, self_ok: bool) -> Any:
        d = await ctx.approval("pay", approvers=["bob", "carol"], allow_self_approval=self_ok)
        return d.by

    async with eng:
        run = await eng.start(wf, False, requested_by="bob")
        await eng.settle(run.id)
        with pytest.raises(SelfApproval, match="separation of duties"):
            await eng.approve(run.id, "pay", by="bob")
        with pytest.raises(NotAllowedToDecide):  # SelfApproval is a NotAllowedToDecide
            await eng.reject(run.id, "pay", by="bob")
        await eng.approve(run.id, "pay", by="carol")
        assert await eng.result(run.id, timeout=5) == "carol"

        allowed = await eng.start(wf, True, requested_by="bob")
        await eng.settle(allowed.id)
        await eng.approve(allowed.id, "pay", by="bob")
        assert await eng.result(allowed.id, timeout=5) == "bob"


async def test_separation_of_duties_also_applies_without_an_approver_list(eng: Engine) -> None:
    @eng.workflow()
    async def wf(ctx: Context) -> Any:
        return (await ctx.approval("go")).by

    async with eng:
        run = await eng.start(wf, requested_by="erin")
        await eng.settle(run.id)
        with pytest.raises(SelfApproval):
            await eng.approve(run.id, "go", by="erin")
        await eng.approve(run.id, "go", by="frank")
        assert await eng.result(run.id, timeout=5) == "frank"


async def test_quorum_needs_distinct_approvers_and_the_decision_lists_the_votes(
    eng: Engine,
) -> None:
    @eng.workflow()
    async def wf(ctx: Context) -> Any:
        d = await ctx.approval("pay", approvers=["alice", "role:finance"], quorum=2)
        return {"status": d.status, "votes": [(v.by, v.status) for v in d.votes]}

    async with eng:
        run = await eng.start(wf)
        await eng.settle(run.id)
        first = await eng.approve(run.id, "pay", by="alice", reason="fine")
        assert first.status is DecisionStatus.PENDING
        assert [(v.by, v.status) for v in first.votes] == [("alice", "approved")]
        with pytest.raises(DuplicateVote, match="already voted"):
            await eng.approve(run.id, "pay", by="alice")
        [pending] = await eng.pending_approvals(run_id=run.id)
        assert pending.quorum == 2 and [v.by for v in pending.votes] == ["alice"]
        assert (await eng.get_run(run.id)).status == "waiting"
        await eng.approve(run.id, "pay", by="bob")
        assert await eng.result(run.id, timeout=5) == {
            "status": "approved",
            "votes": [["alice", "approved"], ["bob", "approved"]],
        }
    history = await eng.history(run.id)
    voted = [e for e in history if e.type == "approval_voted"]
    decided = [e for e in history if e.type == "approval_decided"]
    assert [(e.actor, e.data["approvals"]) for e in voted] == [("alice", 1)]
    assert decided[0].actor == "bob" and len(decided[0].data["votes"]) == 2


async def test_one_rejection_rejects_unless_the_policy_asks_for_more(eng: Engine) -> None:
    @eng.workflow()
    async def wf(ctx: Context, needed: int) -> Any:
        d = await ctx.approval(
            "pay", approvers=["alice", "bob", "carol"], quorum=2, reject_quorum=needed
        )
        return [d.status, len(d.votes)]

    async with eng:
        one = await eng.start(wf, 1)
        two = await eng.start(wf, 2)
        await eng.settle(one.id)
        await eng.settle(two.id)
        await eng.approve(one.id, "pay", by="alice")
        await eng.reject(one.id, "pay", by="bob", reason="too much")
        assert await eng.result(one.id, timeout=5) == ["rejected", 2]

        pending = await eng.reject(two.id, "pay", by="bob")
        assert pending.status is DecisionStatus.PENDING
        await eng.approve(two.id, "pay", by="alice")
        await eng.approve(two.id, "pay", by="carol")
        assert await eng.result(two.id, timeout=5) == ["approved", 3]


async def test_bad_policies_fail_the_run_with_a_clear_error(eng: Engine) -> None:
    cases: dict[str, dict[str, Any]] = {
        "quorum 3 is larger than the 2 people": {"approvers": ["alice", "bob"], "quorum": 3},
        "resolve to nobody": {"approvers": ["role:empty"]},
        "role 'ghosts' is unknown": {"approvers": ["role:ghosts"]},
        "escalate_to: role 'nobody' is unknown": {
            "approvers": ["alice"],
            "escalate_after": "1h",
            "escalate_to": ["role:nobody"],
        },
        "on_timeout must be one of": {"on_timeout": "shrug"},
    }
    eng.directory = Directory({**ROLES, "empty": []})

    @eng.workflow()
    async def wf(ctx: Context, policy: dict[str, Any]) -> None:
        await ctx.approval("pay", **policy)

    async with eng:
        for message, policy in cases.items():
            run = await eng.start(wf, policy)
            with pytest.raises(RunFailed) as failed:
                await eng.result(run.id, timeout=5)
            assert failed.value.error["type"] == "InvalidArgument"
            assert message in failed.value.error["message"], failed.value.error["message"]


async def test_separation_of_duties_leaving_too_few_approvers_fails_the_run(eng: Engine) -> None:
    @eng.workflow()
    async def wf(ctx: Context) -> None:
        await ctx.approval("pay", approvers=["alice", "bob"], quorum=2)

    async with eng:
        run = await eng.start(wf, requested_by="alice")
        with pytest.raises(RunFailed, match="separation of duties"):
            await eng.result(run.id, timeout=5)


@pytest.mark.parametrize("on_timeout", ["approve", "reject"])
async def test_on_timeout_outcome_is_recorded_as_the_timeout_policy(
    eng: Engine, clock: FakeClock, on_timeout: str
) -> None:
    @eng.workflow()
    async def wf(ctx: Context) -> Any:
        d = await ctx.approval("pay", timeout="1h", on_timeout=on_timeout, approvers=["alice"])
        return [d.status, d.by, d.timed_out, d.approved]

    async with eng:
        run = await eng.start(wf)
        await eng.settle(run.id)
        clock.advance("1h")
        status = "approved" if on_timeout == "approve" else "rejected"
        assert await eng.result(run.id, timeout=5) == [
            status, "timeout policy", True, on_timeout == "approve",
        ]  # fmt: skip
        with pytest.raises(ApprovalExpired):
            await eng.approve(run.id, "pay", by="alice")
    [approval] = await eng.approvals(run.id)
    assert approval.decided_by == "timeout policy"
    events = await eng.history(run.id)
    assert not [e for e in events if e.type == "approval_decided"]  # no person decided
    [timed_out] = [e for e in events if e.type == "approval_timed_out"]
    assert timed_out.actor is None and timed_out.data["outcome"] == status


async def test_a_decision_after_expiry_is_refused(eng: Engine, clock: FakeClock) -> None:
    @eng.workflow()
    async def wf(ctx: Context) -> Any:
        return (await ctx.approval("pay", timeout="1h", approvers=["alice"])).status

    async with eng:
        run = await eng.start(wf)
        await eng.settle(run.id)
        clock.advance("2h")
        with pytest.raises(ApprovalExpired):
            await eng.approve(run.id, "pay", by="alice")
        assert await eng.result(run.id, timeout=5) == "expired"


async def test_escalation_adds_approvers_and_keeps_the_earlier_ones(
    eng: Engine, clock: FakeClock
) -> None:
    @eng.workflow()
    async def wf(ctx: Context) -> Any:
        d = await ctx.approval(
            "pay",
            approvers=["alice"],
            timeout="1d",
            escalate_after="2h",
            escalate_to=["role:directors"],
        )
        return d.by

    async with eng:
        first = await eng.start(wf)
        second = await eng.start(wf)
        await eng.settle(first.id)
        await eng.settle(second.id)
        with pytest.raises(NotAllowedToDecide):
            await eng.approve(first.id, "pay", by="dana")
        clock.advance("2h")
        [escalated] = await events_of(eng, first.id, "approval_escalated")
        await events_of(eng, second.id, "approval_escalated")
        assert escalated.data["added"] == ["role:directors"]
        assert escalated.data["people"] == ["dana"]
        assert (await eng.get_run(first.id)).status == "waiting"  # still waiting
        [pending] = await eng.pending_approvals(run_id=first.id)
        assert pending.approvers == ["alice", "role:directors"]
        await eng.approve(first.id, "pay", by="dana")
        await eng.approve(second.id, "pay", by="alice")  # the earlier approver still may
        assert await eng.result(first.id, timeout=5) == "dana"
        assert await eng.result(second.id, timeout=5) == "alice"


async def test_reminders_are_recorded_until_the_decision(eng: Engine, clock: FakeClock) -> None:
    @eng.workflow()
    async def wf(ctx: Context) -> Any:
        return (await ctx.approval("pay", approvers=["role:finance"], remind_every="1h")).by

    async with eng:
        run = await eng.start(wf)
        await eng.settle(run.id)
        clock.advance("1h")
        [reminder] = await events_of(eng, run.id, "approval_reminder")
        assert reminder.data["to"] == ["bob", "carol", "role:finance"]
        clock.advance("1h")
        loop = asyncio.get_running_loop()
        end = loop.time() + 5
        while len(await events_of(eng, run.id, "approval_reminder")) < 2 and loop.time() < end:
            await asyncio.sleep(0.01)
        assert len(await events_of(eng, run.id, "approval_reminder")) == 2
        await eng.approve(run.id, "pay", by="carol")
        assert await eng.result(run.id, timeout=5) == "carol"
        assert (await eng.get_run(run.id)).wake_at is None


class Refund(pydantic.BaseModel):
    amount: int = pydantic.Field(ge=0, le=500)
    currency: str


@pytest.mark.parametrize("schema", [Refund, Refund.model_json_schema()])
async def test_an_edit_must_fit_the_schema(eng: Engine, schema: Any) -> None:
    @eng.workflow()
    async def wf(ctx: Context) -> Any:
        d = await ctx.approval("pay", proposed={"amount": 90, "currency": "EUR"}, schema=schema)
        return [d.status, d.value, d.original, d.by]

    async with eng:
        run = await eng.start(wf)
        await eng.settle(run.id)
        with pytest.raises(InvalidEdit) as refused:
            await eng.edit(run.id, "pay", {"amount": 900}, by="alice")
        assert refused.value.errors == [
            "currency: required field missing",
            "amount: 900 is greater than the maximum of 500",
        ]
        assert (await eng.get_run(run.id)).status == "waiting"  # still pending
        await eng.edit(run.id, "pay", {"amount": 50, "currency": "EUR"}, by="alice")
        assert await eng.result(run.id, timeout=5) == [
            "edited",
            {"amount": 50, "currency": "EUR"},
            {"amount": 90, "currency": "EUR"},
            "alice",
        ]


async def test_a_decision_on_a_stale_digest_is_refused(eng: Engine) -> None:
    @eng.workflow()
    async def wf(ctx: Context) -> Any:
        amount = 100
        while True:
            d = await ctx.approval("pay", summary=f"Pay {amount}", proposed={"amount": amount})
            if d.status != "changes_requested":
                return [d.status, amount]
            amount -= 10

    async with eng:
        run = await eng.start(wf)
        await eng.settle(run.id)
        [shown] = await eng.pending_approvals(run_id=run.id)
        assert shown.digest is not None and len(shown.digest) == 64
        with pytest.raises(StaleDigest):
            await eng.approve(run.id, "pay", by="alice", digest="0" * 64)
        await eng.request_changes(run.id, "pay", by="alice", reason="less", digest=shown.digest)
        await eng.settle(run.id)
        [again] = await eng.pending_approvals(run_id=run.id)
        assert again.round == 2 and again.digest != shown.digest
        with pytest.raises(StaleDigest, match="has changed since it was shown"):
            await eng.approve(run.id, "pay", by="alice", digest=shown.digest)
        await eng.approve(run.id, "pay", by="alice", digest=again.digest)
        assert await eng.result(run.id, timeout=5) == ["approved", 90]


async def test_a_chain_asks_each_stage_in_turn_and_the_inbox_shows_where_it_stands(
    eng: Engine,
) -> None:
    stages = [
        Stage(name="manager", approvers=["role:managers"]),
        Stage(name="finance", approvers=["role:finance"], when=lambda v: v["amount"] > 1000),
        Stage(name="ceo", approvers=["role:ceo"], when=lambda v: v["amount"] > 10000),
    ]

    @eng.workflow()
    async def wf(ctx: Context, amount: int) -> Any:
        d = await ctx.approval_chain(
            "refund", stages, summary="Refund", proposed={"amount": amount}
        )
        return [d.key, d.status, d.value]

    async with eng:
        big = await eng.start(wf, 5000)
        small = await eng.start(wf, 10)
        await eng.settle(big.id)
        await eng.settle(small.id)
        [first] = await eng.pending_approvals(run_id=big.id)
        assert (first.key, first.stage) == ("refund/manager", "manager")
        assert [s["status"] for s in first.stages] == ["waiting", "not_reached", "not_reached"]
        await eng.edit(big.id, "refund/manager", {"amount": 4000}, by="mia")
        await eng.settle(big.id)
        [second] = await eng.pending_approvals(run_id=big.id)
        assert second.stage == "finance" and second.proposed == {"amount": 4000}
        assert [s["status"] for s in second.stages] == ["edited", "waiting", "not_reached"]
        with pytest.raises(NotAllowedToDecide):
            await eng.approve(big.id, "refund/finance", by="mia")
        await eng.approve(big.id, "refund/finance", by="bob")
        assert await eng.result(big.id, timeout=5) == [
            "refund/finance", "approved", {"amount": 4000}
        ]  # fmt: skip
        await eng.approve(small.id, "refund/manager", by="mia")
        assert await eng.result(small.id, timeout=5) == [
            "refund/manager",
            "approved",
            {"amount": 10},
        ]


async def test_a_rejected_stage_ends_the_chain(eng: Engine) -> None:
    stages = [Stage(name="manager", approvers=["mia"]), Stage(name="ceo", approvers=["cleo"])]

    @eng.workflow()
    async def wf(ctx: Context) -> Any:
        d = await ctx.approval_chain("spend", stages, proposed=1)
        return [d.key, d.status]

    async with eng:
        run = await eng.start(wf)
        await eng.settle(run.id)
        await eng.reject(run.id, "spend/manager", by="mia")
        assert await eng.result(run.id, timeout=5) == ["spend/manager", "rejected"]


async def test_edits_under_a_quorum_and_anonymous_votes_are_refused(eng: Engine) -> None:
    @eng.workflow()
    async def wf(ctx: Context) -> Any:
        return (await ctx.approval("pay", proposed=1, quorum=2)).status

    async with eng:
        run = await eng.start(wf)
        await eng.settle(run.id)
        with pytest.raises(InvalidArgument, match="cannot change its value"):
            await eng.edit(run.id, "pay", 2, by="alice")
        with pytest.raises(InvalidArgument, match="say who decides"):
            await eng.approve(run.id, "pay")
        with pytest.raises(InvalidArgument, match="reserved"):
            await eng.approve(run.id, "pay", by="timeout policy")
        await eng.approve(run.id, "pay", by="alice")
        await eng.approve(run.id, "pay", by="zed")
        assert await eng.result(run.id, timeout=5) == "approved"


async def test_authorization_comes_before_acknowledgement(eng: Engine) -> None:
    """Once someone decided, a caller who may not decide is refused (403), not shown the
    decision on record as if theirs were acknowledged; so is the requester."""

    @eng.workflow()
    async def wf(ctx: Context) -> Any:
        return (await ctx.approval("pay", approvers=["bob", "carol"])).by

    async with eng:
        run = await eng.start(wf, requested_by="bob")
        await eng.settle(run.id)
        await eng.approve(run.id, "pay", by="carol")
        assert await eng.result(run.id, timeout=5) == "carol"
        with pytest.raises(NotAllowedToDecide):
            await eng.approve(run.id, "pay", by="mallory")
        with pytest.raises(SelfApproval):
            await eng.approve(run.id, "pay", by="bob")
        assert (await eng.approve(run.id, "pay", by="carol")).by == "carol"  # a repeat
