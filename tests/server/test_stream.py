"""The live stream: the SSE generator directly, Last-Event-ID resume, disconnects."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from signoff import HistoryEntry
from signoff.server import stream
from tests.server.conftest import Api, start_waiting


def parse(chunks: list[str]) -> list[tuple[int, str, dict[str, object]]]:
    """(id, event, data) of each event in `chunks` (a chunk may hold several frames)."""
    out = []
    for frame in "".join(chunks).split("\n\n"):
        if not frame or frame.startswith(":"):
            continue
        lines = dict(line.split(": ", 1) for line in frame.strip().splitlines())
        out.append((int(lines["id"]), lines["event"], json.loads(lines["data"])))
    return out


async def collect(chunks: AsyncIterator[str], until: int) -> list[str]:
    """The chunks up to the one that brings the `until`th event."""
    got: list[str] = []
    async for chunk in chunks:
        got.append(chunk)
        if len(parse(got)) >= until:
            break
    return got


async def test_a_run_stream_carries_the_named_events_and_ends_with_the_run(any_api: Api) -> None:
    api = any_api
    run_id = await start_waiting(api)
    hub = api.app.state.hub
    gen = stream.events(hub, run_id=run_id, heartbeat=0.2)
    first = parse(await collect(gen, 2))
    assert [e[1] for e in first] == ["step_completed", "waiting_for_input"]
    await api.engine.approve(run_id, "manager", by="alice")
    rest = parse([f async for f in gen])  # ends by itself after run_completed
    assert [e[1] for e in rest] == ["input_resolved", "run_completed"]
    ids = [e[0] for e in first + rest]
    assert ids == sorted(ids) and rest[0][2]["actor"] == "alice"


async def test_last_event_id_resumes_without_missing_anything(any_api: Api) -> None:
    api = any_api
    run_id = await start_waiting(api)
    hub = api.app.state.hub
    first = parse(await collect(stream.events(hub, run_id=run_id), 1))
    cursor = first[0][0]
    # meanwhile, while "disconnected": the decision and the end of the run
    await api.engine.approve(run_id, "manager", by="alice")
    await api.engine.result(run_id, timeout=10)
    resumed = parse([f async for f in stream.events(hub, run_id=run_id, after=cursor)])
    assert [e[1] for e in resumed] == ["waiting_for_input", "input_resolved", "run_completed"]
    assert all(e[0] > cursor for e in resumed)


async def test_the_inbox_stream_sees_every_run_live(any_api: Api) -> None:
    api = any_api
    hub = api.app.state.hub
    gen = stream.events(hub, heartbeat=0.2)
    reader = asyncio.create_task(collect(gen, 4))
    await asyncio.sleep(0.05)
    a = await start_waiting(api, "a")
    b = await start_waiting(api, "b")
    events = parse(await asyncio.wait_for(reader, 10))
    await gen.aclose()
    kinds = {(e[2]["run_id"], e[1]) for e in events}
    assert kinds == {(a, "step_completed"), (a, "waiting_for_input"),
                     (b, "step_completed"), (b, "waiting_for_input")}  # fmt: skip
    assert not hub.subscribers


async def test_over_http_a_finished_runs_stream_replays_and_ends(api: Api) -> None:
    run_id = await start_waiting(api)
    await api.engine.approve(run_id, "manager", by="alice")
    await api.engine.result(run_id, timeout=10)
    res = await api.client.get(f"/runs/{run_id}/stream", headers=api.auth("reader"))
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/event-stream")
    frames = [f + "\n\n" for f in res.text.split("\n\n") if f.strip()]
    events = parse(frames)
    assert events[-1][1] == "run_completed"
    headers = {**api.auth("reader"), "Last-Event-ID": str(events[1][0])}
    res = await api.client.get(f"/runs/{run_id}/stream", headers=headers)
    assert [e[0] for e in parse([f + "\n\n" for f in res.text.split("\n\n") if f.strip()])] == [
        e[0] for e in events[2:]
    ]


async def test_garbage_last_event_id_is_400_and_unknown_run_404(api: Api) -> None:
    run_id = await start_waiting(api)
    for bad in ["abc", "-1", "1e5", "9" * 40]:
        headers = {**api.auth("reader"), "Last-Event-ID": bad}
        res = await api.client.get(f"/runs/{run_id}/stream", headers=headers)
        assert res.status_code == 400, bad
        assert res.json()["code"] == "bad_last_event_id"
    res = await api.client.get("/runs/nope/stream", headers=api.auth("reader"))
    assert res.status_code == 404


async def test_a_client_disconnect_ends_the_stream_and_unsubscribes(api: Api) -> None:
    """Drive the ASGI app by hand: the inbox stream never ends by itself."""
    hub = api.app.state.hub
    sent: list[dict[str, object]] = []
    disconnect = asyncio.Event()
    requested = False

    async def receive() -> dict[str, object]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/approvals/stream", "raw_path": b"/approvals/stream",
        "query_string": b"", "root_path": "", "server": ("test", 80), "client": ("c", 1),
        "headers": [(b"authorization", f"Bearer {api.tokens['reader']}".encode())],
    }  # fmt: skip
    task = asyncio.create_task(api.app(scope, receive, send))  # type: ignore[arg-type]
    for _ in range(200):
        if hub.subscribers:
            break
        await asyncio.sleep(0.01)
    assert len(hub.subscribers) == 1
    assert sent[0]["status"] == 200
    disconnect.set()
    await asyncio.wait_for(task, 5)
    assert not hub.subscribers


async def test_a_stalled_subscriber_is_dropped_not_buffered_forever(api: Api) -> None:
    hub = api.app.state.hub
    sub = await hub.subscribe(None)
    sub.limit = 2
    for i in range(3):
        at = datetime.now(UTC)
        hub._dispatch(HistoryEntry(id=10_000 + i, run_id="r", at=at, type="run_completed"))
    assert sub.overflowed and sub not in hub.subscribers


@pytest.mark.postgres
async def test_the_hub_waits_at_a_gap_left_by_a_slower_transaction(pg_url: str) -> None:
    """On PostgreSQL a lower history id can commit after a higher one: the hub holds at
    the gap instead of skipping the late event."""
    import psycopg

    from tests.server.conftest import close_api, make_api

    api = await make_api(pg_url)
    try:
        hub = stream.Hub(api.engine, poll_interval=0.01, gap_wait=30)
        hub.cursor = await api.engine.access.last_history_id()
        slow = await psycopg.AsyncConnection.connect(pg_url)
        async with slow:
            await slow.execute(
                "INSERT INTO history (run_id, at, type, actor, data) "
                "VALUES ('late', 0, 'run_completed', NULL, '{}')"
            )  # holds the next id, uncommitted
            run_id = await start_waiting(api)  # commits higher ids meanwhile
            sub = await hub.subscribe(None)
            first = (await api.engine.access.history_since(0, run_id=run_id))[0]
            hub.cursor = sub.start = first.id - 2
            await hub.poll_once()
            assert not sub.waiting  # held at the gap
            await slow.commit()
        await hub.poll_once()
        got = sub.take()
        assert got[0].run_id == "late" and [e.id for e in got] == sorted(e.id for e in got)
        assert {e.run_id for e in got} == {"late", run_id}
        await hub.close()
    finally:
        await close_api(api)


@pytest.mark.parametrize(
    ("history", "streamed"),
    [
        ("approval_timed_out", "input_resolved"),  # settled by its on_timeout rule
        ("approval_withdrawn", "input_resolved"),  # the loser of any_of
        ("approval_voted", "vote_recorded"),
        ("approval_escalated", "input_escalated"),
        ("waiting_for_event", "wait_started"),
        ("waiting_for_signal", "wait_started"),
        ("sleep_started", "wait_started"),
        ("event_received", "wait_ended"),
        ("event_timed_out", "wait_ended"),
        ("signal_received", "wait_ended"),
        ("signal_timed_out", "wait_ended"),
        ("timer_fired", "wait_ended"),
        ("run_taken_over", "run_taken_over"),
    ],
)
def test_every_wait_entered_and_left_is_streamed(history: str, streamed: str) -> None:
    event = HistoryEntry(id=7, run_id="r1", at=datetime.now(UTC), type=history)
    frame = stream.format_event(event)
    assert frame is not None
    assert parse([frame])[0][:2] == (7, streamed)
