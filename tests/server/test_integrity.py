"""Every door decides safely: links bound to what was shown, revoked tokens' streams,
one idempotency key for one decision, and health that tells whether runs will run."""

from __future__ import annotations

import asyncio
import inspect
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import signoff
from signoff.server import auth, create_app
from tests.server.apps import make_engine
from tests.server.conftest import Api, start_waiting
from tests.server.test_approval_model import latest, start
from tests.server.test_links import FORM, make_link
from tests.server.unasync_client import CLIENT, generate


async def test_a_link_is_bound_to_the_round_and_digest_it_was_made_for(api: Api) -> None:
    run_id = await start(api, "revised", args=[[100, 1_000_000]])
    path = await make_link(api, run_id)
    page = await api.client.get(path)
    first = await latest(api, run_id, "manager")
    assert f"name='digest' value='{first.digest}'" in page.text
    async with signoff.AsyncClient("http://test", api.tokens["bob"],
                                   transport=_transport(api)) as bob:  # fmt: skip
        await bob.request_changes(run_id, "manager")
    await api.engine.settle(run_id, timeout=10)
    second = await latest(api, run_id, "manager")
    form = f"action=approve&digest={first.digest}&round=1".encode()
    for res in (await api.client.get(path), await api.client.post(path, content=form,
                                                                  headers=FORM)):  # fmt: skip
        assert res.status_code == 409 and "stale_digest" in res.text
        assert second.digest is not None and second.digest in res.text
        assert res.headers["referrer-policy"] == "no-referrer"
    assert (await latest(api, run_id, "manager")).status == "pending"  # nothing decided


async def test_an_old_form_posted_after_the_approval_changed_is_stale(api: Api) -> None:
    """The link itself is fresh (made for round 2), but the page shown was round 1."""
    run_id = await start(api, "revised", args=[[100, 1_000_000]])
    first = await latest(api, run_id, "manager")
    await api.engine.request_changes(run_id, "manager", by="bob")
    await api.engine.settle(run_id, timeout=10)
    path = await make_link(api, run_id)
    form = f"action=approve&digest={first.digest}&round=1".encode()
    res = await api.client.post(path, content=form, headers=FORM)
    assert res.status_code == 409 and "stale_digest" in res.text
    res = await api.client.post(path, content=b"action=approve&round=2", headers=FORM)
    assert res.status_code == 200 and "approved by erin" in res.text
    assert (await api.engine.result(run_id, timeout=10))["value"] == {"amount": 1_000_000}


async def test_a_form_with_many_fields_is_400_before_the_token_is_checked(api: Api) -> None:
    body = "&".join(f"f{i}=x" for i in range(50)).encode()
    res = await api.client.post("/links/not-a-token", content=body, headers=FORM)
    assert res.status_code == 400 and res.json()["code"] == "bad_form"
    res = await api.client.post("/links/not-a-token", content=b"\xff\xfe=1", headers=FORM)
    assert res.status_code == 400


def _transport(api: Api) -> Any:
    return httpx.ASGITransport(app=api.app)


async def test_the_streams_of_one_token_share_its_lookup_and_see_its_revocation(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/s.db")
    token, secret = await engine.access.create_token("watcher", ["read"])
    _, other = await engine.access.create_token("decider", ["decide"])
    checks = auth.TokenChecks(engine, recheck=0.4)
    assert (checks.fresh, checks.period) == (0.1, pytest.approx(0.3))
    looked_up: list[str] = []
    real = engine.store.token_by_hash

    async def counted(token_hash: str) -> Any:  # the real lookup, counted
        looked_up.append(token_hash)
        return await real(token_hash)

    engine.store.token_by_hash = counted  # type: ignore[method-assign]
    try:
        streams = [checks.allowed(secret) for _ in range(200)]
        assert all(await asyncio.gather(*(reads() for reads in streams)))
        assert len(looked_up) == 1  # two hundred streams, one lookup
        assert not await checks.allowed(other)()  # a token without `read`
        await engine.access.revoke_token(token.id)
        revoked_at = time.monotonic()
        while all(await asyncio.gather(*(reads() for reads in streams))):
            await asyncio.sleep(0.01)
        # a stream asking every `period` learns within `recheck`
        assert time.monotonic() - revoked_at <= checks.fresh + 0.05
        assert not any(await asyncio.gather(*(reads() for reads in streams)))
        assert len(looked_up) <= 2 + (time.monotonic() - revoked_at) / checks.fresh + 1
    finally:
        await engine.close()


async def test_a_revoked_tokens_open_stream_stops_within_seconds(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/s.db")
    await engine.start_worker()
    app = create_app(engine, run_worker=False, heartbeat=0.2, token_recheck=0.2)
    token, secret = await engine.access.create_token("watcher", ["read"])
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/approvals/stream", "raw_path": b"/approvals/stream",
        "query_string": b"", "root_path": "", "server": ("test", 80), "client": ("c", 1),
        "headers": [(b"authorization", f"Bearer {secret}".encode())],
    }  # fmt: skip
    never = asyncio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await never.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    task = asyncio.create_task(app(scope, receive, send))  # type: ignore[arg-type]
    try:
        await asyncio.sleep(0.5)
        assert sent[0]["status"] == 200 and not task.done()
        await engine.access.revoke_token(token.id)
        revoked_at = time.monotonic()
        await asyncio.wait_for(task, 5)
        assert time.monotonic() - revoked_at < 3
        assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    finally:
        never.set()
        task.cancel()
        await app.state.hub.close()
        await engine.close()


async def test_one_idempotency_key_on_two_different_decisions_applies_one(any_api: Api) -> None:
    """20 concurrent tries under one key: on 5 runs, approve or reject. Exactly one is
    applied; its repeats get its answer, every other request 422 and no decision."""
    api = any_api
    runs = [await start_waiting(api, f"o{i}") for i in range(5)]
    tries = [(runs[i % 5], ("approve", "reject")[i // 5 % 2]) for i in range(20)]
    results = await asyncio.gather(*(
        api.client.post(f"/runs/{run_id}/approvals/manager/decision", json={"action": action},
                        headers={**api.auth("alice"), "Idempotency-Key": "same"})
        for run_id, action in tries
    ))  # fmt: skip
    decided = [
        (run_id, e.data["status"])
        for run_id in runs
        for e in await api.engine.history(run_id)
        if e.type == "approval_decided"
    ]
    assert len(decided) == 1, decided
    won = (decided[0][0], {"approved": "approve", "rejected": "reject"}[decided[0][1]])
    for attempt, res in zip(tries, results, strict=True):
        if attempt == won:
            assert res.status_code == 200 and res.json()["status"] == decided[0][1], res.text
        else:
            assert res.status_code == 422, res.text
            assert res.json()["code"] == "idempotency_conflict"


async def test_healthz_runs_a_worker_by_default_and_says_when_none_runs(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/h.db")
    app = create_app(engine, auth=False)
    async with app.router.lifespan_context(app), _client(app) as c:  # as uvicorn serves it
        assert (await c.get("/healthz")).json() == {"status": "ok", "worker": "running"}
        run = (await c.post("/runs", json={"workflow": "docs"})).json()
        res = await c.post(f"/runs/{run['id']}/signals/docs", json={"data": 1})
        assert res.status_code == 202
        deadline = time.monotonic() + 10
        while (await c.get(f"/runs/{run['id']}")).json()["status"] != "completed":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
    async with _client(app) as c:  # the worker stopped with the lifespan
        res = await c.get("/healthz")
        assert res.status_code == 503 and res.json() == {"status": "degraded", "worker": "stopped"}
    async with _client(create_app(engine, auth=False, run_worker=False)) as c:
        res = await c.get("/healthz")
        assert res.status_code == 200 and res.json() == {"status": "ok", "worker": "external"}
    await engine.close()


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def test_the_sync_client_is_generated_from_the_async_one() -> None:
    text = CLIENT.read_text()
    assert generate(text) == text, "run: python -m tests.server.unasync_client"
    public = [n for n in vars(signoff.AsyncClient) if not n.startswith("_")]
    assert {"pending_approvals", "get_approval", "approve", "edit", "list_runs"} <= set(public)
    for name in public:
        mine, twin = getattr(signoff.AsyncClient, name), getattr(signoff.Client, name.replace(
            "aclose", "close"))  # fmt: skip
        a, s = inspect.signature(mine), inspect.signature(twin)
        assert list(a.parameters) == list(s.parameters), name
        assert inspect.iscoroutinefunction(mine) and not inspect.iscoroutinefunction(twin)


@pytest.mark.parametrize("param", ["digest", "idempotency_key", "by"])
def test_every_decision_method_takes_the_new_parameters(param: str) -> None:
    for name in ("approve", "reject", "edit", "request_changes"):
        assert param in inspect.signature(getattr(signoff.Client, name)).parameters
