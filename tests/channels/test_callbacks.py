"""Lifecycle callbacks through the outbox: called once per event, retried when they raise,
never in the run's way; the console channel prints a line per event."""

from __future__ import annotations

from typing import Any

import pytest

from signoff import errors, outbox
from signoff.channels import ConsoleChannel, Route, on_approval_requested, on_decided, on_run_failed
from signoff.testing import FakeClock
from tests.channels.test_outbox import make_engine, runs_only, waiting_run


async def test_callbacks_run_once_per_event_and_retry_when_they_raise(
    store_url: str, clock: FakeClock
) -> None:
    requested: list[str] = []
    closed: list[tuple[str, str]] = []
    failed: list[outbox.Delivery] = []

    def on_request(d: outbox.Delivery) -> None:  # sync: runs in a thread
        requested.append(d.run_id)

    async def on_close(d: outbox.Delivery) -> None:
        closed.append((d.event, d.payload["data"]["decision"]["status"]))

    async def flaky(d: outbox.Delivery) -> None:
        failed.append(d)
        if len(failed) == 1:
            raise RuntimeError("pager is down")

    engine = make_engine(
        store_url,
        clock,
        on_approval_requested(on_request),
        on_decided(on_close),
        on_run_failed(flaky),
    )
    await runs_only(engine)
    ok = await waiting_run(engine, "refund", 5)
    bad = await waiting_run(engine, "refund", -5)
    await engine.approve(ok, "manager")
    await engine.reject(bad, "manager")  # the workflow raises on a negative amount
    with pytest.raises(errors.RunFailed):
        await engine.result(bad, timeout=5)
    await engine.result(ok, timeout=5)
    await engine.stop_worker()
    await engine.deliver_notifications()
    assert sorted(requested) == sorted([ok, bad])
    assert sorted(closed) == [("approval.decided", "approved"), ("approval.decided", "rejected")]
    assert len(failed) == 1
    [d] = await engine.deliveries(channel="callback:" + flaky.__qualname__)
    assert d.status == "pending" and d.last_error == "RuntimeError: pager is down"
    clock.advance(5)
    await engine.deliver_notifications()
    assert [f.id for f in failed] == [d.id, d.id] and failed[1].attempts == 2
    await engine.deliver_notifications()
    assert len(failed) == 2 and len(requested) == 2  # nothing ran twice once it succeeded
    await engine.close()


async def test_console_channel_prints_a_line(
    tmp_path: Any, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}", clock, Route(ConsoleChannel()))
    await runs_only(engine)
    run_id = await waiting_run(engine, "refund", 5)
    await engine.stop_worker()
    await engine.deliver_notifications()
    err = capsys.readouterr().err
    assert f"[signoff] approval.requested: refund {run_id} manager Refund 5" in err
    await engine.close()
