"""`ctx.ask`: a question to a person, answered (text or a value fitting a schema),
declined or unanswered; and `edits=False` approvals. On every backend."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from signoff import (
    AnswerRequired,
    Context,
    EditNotAllowed,
    Engine,
    InvalidEdit,
    QuestionDeclined,
    WaitTimeout,
)
from signoff.testing import FakeClock, fire_due_timers


class Pick(pydantic.BaseModel):
    warehouse: str
    units: int = pydantic.Field(ge=1)


async def test_a_question_is_answered_with_text_and_pending_in_the_inbox(engine: Engine) -> None:
    @engine.workflow()
    async def ship(ctx: Context, order: str) -> str:
        where = await ctx.ask(f"Which warehouse ships {order}?", key="where", to="dana",
                              details={"order": order})  # fmt: skip
        return f"{order} from {where}"

    async with engine:
        run = await engine.start(ship, "o-1")
        await engine.settle(run.id)
        [asked] = await engine.pending_approvals(approver="dana")
        assert asked.summary == "Which warehouse ships o-1?" and asked.proposed == {"order": "o-1"}
        assert asked.question and asked.approvers == ["dana"]
        with pytest.raises(AnswerRequired, match="is a question: answer it"):
            await engine.approve(run.id, "where", by="dana")
        with pytest.raises(InvalidEdit):
            await engine.answer(run.id, "where", "", by="dana")  # an answer is not empty
        decision = await engine.answer(run.id, "where", "Leeds", by="dana", digest=asked.digest)
        assert decision.status == "edited" and decision.value == "Leeds"
        assert await engine.result(run.id, timeout=10) == "o-1 from Leeds"


async def test_a_schema_answer_is_validated_and_returned_as_the_model(engine: Engine) -> None:
    @engine.workflow()
    async def ship(ctx: Context) -> dict[str, Any]:
        pick = await ctx.ask("Pick stock", schema=Pick)
        assert isinstance(pick, Pick)
        return pick.model_dump()

    async with engine:
        run = await engine.start(ship)
        await engine.settle(run.id)
        [asked] = await engine.pending_approvals()
        with pytest.raises(InvalidEdit) as bad:
            await engine.answer(run.id, asked.key, {"warehouse": "A", "units": 0}, by="eve")
        assert any("units" in e for e in bad.value.errors)
        await engine.answer(run.id, asked.key, {"warehouse": "A", "units": 3}, by="eve")
        assert await engine.result(run.id, timeout=10) == {"warehouse": "A", "units": 3}


async def test_declined_and_unanswered_questions_raise_in_the_workflow(
    engine: Engine, clock: FakeClock
) -> None:
    @engine.workflow()
    async def ask(ctx: Context, timeout: str | None) -> str:
        try:
            return str(await ctx.ask("Anything to add?", timeout=timeout))
        except QuestionDeclined as exc:
            return f"declined by {exc.by}: {exc.reason}"
        except WaitTimeout:
            return "nobody answered"

    async with engine:
        one = await engine.start(ask, None)
        two = await engine.start(ask, "1h")
        await engine.settle(one.id)
        await engine.settle(two.id)
        [key] = {a.key for a in await engine.pending_approvals(run_id=one.id)}
        await engine.reject(one.id, key, by="eve", reason="not my area")
        assert await engine.result(one.id, timeout=10) == "declined by eve: not my area"
        clock.advance("2h")
        await fire_due_timers(engine)
        assert await engine.result(two.id, timeout=10) == "nobody answered"


async def test_the_requester_may_answer_their_own_question(engine: Engine) -> None:
    @engine.workflow()
    async def ask(ctx: Context) -> Any:
        return await ctx.ask("Your cost centre?", key="cc")

    async with engine:
        run = await engine.start(ask, requested_by="sam")
        await engine.settle(run.id)
        assert [a.key for a in await engine.pending_approvals(approver="sam")] == ["cc"]
        await engine.answer(run.id, "cc", "CC-7", by="sam")
        assert await engine.result(run.id, timeout=10) == "CC-7"


async def test_an_approval_asked_without_edits_refuses_an_edit(engine: Engine) -> None:
    @engine.workflow()
    async def send(ctx: Context) -> Any:
        d = await ctx.approval("send", proposed={"to": "a@example.com"}, edits=False)
        return d.status.value

    async with engine:
        run = await engine.start(send)
        await engine.settle(run.id)
        [asked] = await engine.pending_approvals()
        assert asked.edits is False and not asked.question
        with pytest.raises(EditNotAllowed, match="may be approved or rejected but not edited"):
            await engine.edit(run.id, "send", {"to": "b@example.com"}, by="eve")
        assert (await engine.get_run(run.id)).status == "waiting"  # nothing recorded
        await engine.approve(run.id, "send", by="eve")
        assert await engine.result(run.id, timeout=10) == "approved"


async def test_bad_questions_are_refused(engine: Engine) -> None:
    @engine.workflow()
    async def ask(ctx: Context, question: Any) -> Any:
        return await ctx.ask(question)

    async with engine:
        run = await engine.start(ask, "  ")
        run = await engine.settle(run.id)
        assert run.status == "failed" and "non-empty string" in str(run.error)


async def test_approval_metadata_is_kept_and_shown_but_not_approved(engine: Engine) -> None:
    @engine.workflow()
    async def tool(ctx: Context, meta: Any) -> Any:
        d = await ctx.approval("call", proposed={"to": "a@b.c"}, metadata=meta)
        return d.value

    async with engine:
        run = await engine.start(tool, {"tool": "send_email", "model": "m-1", "call_id": "c9"})
        await engine.settle(run.id)
        [asked] = await engine.pending_approvals(run_id=run.id)
        assert asked.metadata == {"tool": "send_email", "model": "m-1", "call_id": "c9"}
        assert asked.proposed == {"to": "a@b.c"}
        await engine.approve(run.id, "call", by="eve", digest=asked.digest)
        assert await engine.result(run.id, timeout=10) == {"to": "a@b.c"}
        plain = await engine.start(tool, None)
        await engine.settle(plain.id)
        assert (await engine.pending_approvals(run_id=plain.id))[0].metadata == {}
        bad = await engine.start(tool, ["not", "a", "dict"])
        bad_run = await engine.settle(bad.id)
        assert bad_run.status == "failed" and "metadata must be a dict" in str(bad_run.error)
