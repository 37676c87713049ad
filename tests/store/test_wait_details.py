"""What a wait tells on the record: signal metadata, deadlines as ISO times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from signoff import Context, Engine
from signoff.testing import FakeClock


async def test_signal_metadata_and_deadlines_are_on_the_record(
    engine: Engine, clock: FakeClock
) -> None:
    @engine.workflow()
    async def wf(ctx: Context) -> list[object]:
        await ctx.sleep("1m")
        docs = await ctx.wait_for_signal(
            "docs", timeout="2h", metadata={"expects": "a PDF of the invoice"}
        )
        decision = await ctx.approval("ok", timeout="1d")
        return [docs, decision.status.value]

    start = datetime.fromtimestamp(clock.time(), UTC)
    async with engine:
        run = await engine.start(wf)
        await engine.settle(run.id)
        clock.advance("1m")
        while (await engine.get_run(run.id)).waiting_for != "signal:docs":
            await engine.settle(run.id)
        await engine.signal(run.id, "docs", "invoice.pdf")
        while (await engine.get_run(run.id)).waiting_for != "approval:ok":
            await engine.settle(run.id)
        await engine.approve(run.id, "ok", by="carol")
        assert await engine.result(run.id, timeout=5) == ["invoice.pdf", "approved"]
    events = {e.type: e.data for e in await engine.history(run.id)}
    assert events["sleep_started"]["until"] == (start + timedelta(minutes=1)).isoformat()
    signal = events["waiting_for_signal"]
    assert signal["metadata"] == {"expects": "a PDF of the invoice"}
    assert signal["deadline"] == (start + timedelta(minutes=1, hours=2)).isoformat()
    assert (
        events["approval_requested"]["deadline"]
        == (start + timedelta(minutes=1, days=1)).isoformat()
    )


async def test_never_opts_out_of_the_engines_default_deadline(
    store_url: str, clock: FakeClock
) -> None:
    engine = Engine(store_url, clock=clock, poll_interval=0.01, approval_timeout="1d")

    @engine.workflow()
    async def wf(ctx: Context) -> str:
        return (await ctx.approval("forever", timeout="never")).status.value

    try:
        async with engine:
            run = await engine.start(wf)
            await engine.settle(run.id)
            [approval] = await engine.approvals(run.id)
            assert approval.deadline is None
            clock.advance("30d")
            await engine.approve(run.id, "forever", by="carol")
            assert await engine.result(run.id, timeout=5) == "approved"
    finally:
        await engine.close()
