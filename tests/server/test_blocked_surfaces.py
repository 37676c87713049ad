"""A blocked run is visible everywhere a run is: the HTTP API (list by status, the run's
JSON with its reason), the inbox's run pages (a badge and the reason), the CLI
(`runs list --status blocked`, `runs show`) and the live stream."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from signoff import Context, Engine, RunStatus, models
from signoff.server import create_app
from signoff.server.stream import format_event
from signoff.testing import FakeClock
from tests.unit.cli_support import run_cli


def prepare(order: str) -> str:
    return order


def check_credit(order: str) -> str:
    return "ok"


async def v1(ctx: Context, order: str) -> str:
    await ctx.step(prepare, order)
    await ctx.approval("manager", summary=f"Refund {order}")
    return "done"


async def changed(ctx: Context, order: str) -> str:
    await ctx.step(prepare, order)
    await ctx.step(check_credit, order)  # inserted without a patch
    await ctx.approval("manager", summary=f"Refund {order}")
    return "done"


def _engine(url: str, clock: FakeClock, fn: Any) -> Engine:
    engine = Engine(url, clock=clock, poll_interval=0.01, lease="5s")
    engine.workflow("refund")(fn)
    return engine


async def _blocked(url: str, clock: FakeClock) -> tuple[str, Engine]:
    """A run started on v1 and decided under `changed`: blocked. The changed engine,
    its worker stopped, is returned with it."""
    old = _engine(url, clock, v1)
    async with old:
        run_id = (await old.start("refund", "<b>o-1</b>")).id
        await old.settle(run_id)
    await old.close()
    new = _engine(url, clock, changed)
    async with new:
        await new.approve(run_id, "manager", by="alice")
        assert (await new.settle(run_id, timeout=5)).status is RunStatus.BLOCKED
    return run_id, new


async def test_the_api_and_the_inbox_show_a_blocked_run(store_url: str, clock: FakeClock) -> None:
    run_id, engine = await _blocked(store_url, clock)
    app = create_app(engine, auth=False, run_worker=False)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            listed = (await c.get("/runs", params={"status": "blocked"})).json()["items"]
            assert [r["id"] for r in listed] == [run_id]
            one = (await c.get(f"/runs/{run_id}")).json()
            assert one["status"] == "blocked"
            reason = one["error"]
            assert reason["seq"] == 1 and reason["code"] == "non_determinism"
            assert reason["expected"] == "approval 'manager'"
            assert "check_credit" in reason["found"]
            history = (await c.get(f"/runs/{run_id}/history")).json()
            assert history[-1]["type"] == "run_blocked" and history[-1]["data"]["seq"] == 1

            runs_page = await c.get("/inbox/runs", params={"status": "blocked"})
            assert runs_page.status_code == 200
            assert "state-blocked" in runs_page.text and run_id[:12] in runs_page.text
            assert "replay differs at position 1" in runs_page.text
            page = await c.get("/inbox/run", params={"id": run_id})
            assert page.status_code == 200
            assert 'class="state state-blocked"' in page.text
            assert "Blocked: the code no longer replays this run" in page.text
            assert "approval &#39;manager&#39;" in page.text and "check_credit" in page.text
            assert "Retry the replay now" in page.text
            assert "<b>o-1</b>" not in page.text  # the input is escaped, as ever

            retried = await c.post(f"/runs/{run_id}/retry")  # no worker: runnable again
            assert retried.status_code == 200 and retried.json()["status"] == "pending"
            assert retried.json()["error"] is None
    finally:
        await app.state.hub.close()
        await engine.close()


def test_format_event_streams_blocked_and_unblocked() -> None:
    at = models.from_timestamp(1_800_000_000.0)
    assert at is not None
    for kind in ("run_blocked", "run_unblocked"):
        entry = models.HistoryEntry(id=7, run_id="r", at=at, type=kind, data={"seq": 1})
        frame = format_event(entry)
        assert frame is not None and f"event: {kind}\n" in frame


def test_the_cli_lists_and_shows_a_blocked_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"

    async def make() -> str:
        run_id, engine = await _blocked(url, FakeClock(start=1_800_000_000.0))
        await engine.close()
        return run_id

    run_id = asyncio.run(make())
    listed = run_cli("--db", url, "runs", "list", "--status", "blocked", "--json")
    assert listed.exit_code == 0, listed.output
    [item] = json.loads(listed.output)["items"]
    assert item["id"] == run_id and item["status"] == "blocked"
    shown = run_cli("--db", url, "runs", "show", run_id)
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "blocked" in text and "at position 1: the journal recorded approval 'manager'" in text
    assert "check_credit" in text and "signoff runs retry" in text
