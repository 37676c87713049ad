"""The HTTP API through httpx against the app: flows, auth, idempotency and bad input."""

from __future__ import annotations

import asyncio

import pytest

from tests.server.conftest import Api, start_waiting

PROBLEM = "application/problem+json"


def decision_url(run_id: str, key: str = "manager") -> str:
    return f"/runs/{run_id}/approvals/{key}/decision"


async def test_start_decide_and_read_back(any_api: Api) -> None:
    api = any_api
    run_id = await start_waiting(api)
    c = api.client
    inbox = (await c.get("/approvals", headers=api.auth("reader"))).json()["items"]
    assert [(a["run_id"], a["key"], a["proposed"]) for a in inbox] == [
        (run_id, "manager", {"amount": 100})
    ]
    one = await c.get(f"/runs/{run_id}/approvals/manager", headers=api.auth("reader"))
    assert one.json()["status"] == "pending"
    res = await c.post(
        decision_url(run_id), json={"action": "approve", "reason": "ok"}, headers=api.auth("alice")
    )
    assert res.status_code == 200, res.text
    assert res.json()["by"] == "alice" and res.json()["status"] == "approved"
    assert await api.engine.result(run_id, timeout=10) == {
        "status": "approved",
        "by": "alice",
        "value": {"amount": 100},
    }
    run = (await c.get(f"/runs/{run_id}", headers=api.auth("reader"))).json()
    assert run["status"] == "completed" and run["requested_by"] == "starter"
    history = (await c.get(f"/runs/{run_id}/history", headers=api.auth("reader"))).json()
    assert history[0]["type"] == "run_started"
    assert "run_completed" in [e["type"] for e in history]


async def test_approver_comes_from_the_token_not_the_body(api: Api) -> None:
    run_id = await start_waiting(api)
    res = await api.client.post(
        decision_url(run_id), json={"action": "approve", "by": "mallory"}, headers=api.auth("bob")
    )
    assert res.status_code == 403  # `by` may only repeat the token's name
    res = await api.client.post(decision_url(run_id), json={"action": "approve"},
                                headers=api.auth("bob"))  # fmt: skip
    assert res.json()["by"] == "bob"


async def test_edit_reject_and_request_changes(api: Api) -> None:
    run_id = await start_waiting(api)
    res = await api.client.post(
        decision_url(run_id), json={"action": "edit", "value": {"amount": 40}},
        headers=api.auth("alice"),
    )  # fmt: skip
    assert res.status_code == 200 and res.json()["value"] == {"amount": 40}
    assert (await api.engine.result(run_id, timeout=10))["value"] == {"amount": 40}
    run2 = await start_waiting(api, "ord-2")
    res = await api.client.post(decision_url(run2), json={"action": "reject"},
                                headers=api.auth("alice"))  # fmt: skip
    assert res.json()["status"] == "rejected"
    run3 = await start_waiting(api, "ord-3")
    res = await api.client.post(
        decision_url(run3), json={"action": "approve", "value": 1}, headers=api.auth("alice")
    )
    assert res.status_code == 422  # value only with edit


async def test_list_runs_pages_with_a_cursor(api: Api) -> None:
    for i in range(5):
        await api.engine.start("docs", run_id=f"r{i}")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.client.get("/runs", params=params, headers=api.auth("reader"))).json()
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == [f"r{i}" for i in range(5)] and len(seen) == 5
    res = await api.client.get("/runs", params={"status": "waiting", "workflow": "docs"},
                               headers=api.auth("reader"))  # fmt: skip
    assert res.status_code == 200


async def test_cancel_retry_signal_and_publish(api: Api) -> None:
    c, h = api.client, api.auth("starter")
    run = (await c.post("/runs", json={"workflow": "docs"}, headers=h)).json()
    res = await c.post(f"/runs/{run['id']}/signals/docs", json={"data": {"n": 1}}, headers=h)
    assert res.status_code == 202
    assert await api.engine.result(run["id"], timeout=10) == {"n": 1}
    run = (await c.post("/runs", json={"workflow": "docs"}, headers=h)).json()
    res = await c.post(f"/runs/{run['id']}/cancel", json={"reason": "no"}, headers=h)
    assert res.json()["status"] == "cancelled"
    res = await c.post(f"/runs/{run['id']}/cancel", headers=h)
    assert res.status_code == 409 and res.json()["code"] == "invalid_run_state"
    boom = (await c.post("/runs", json={"workflow": "boom"}, headers=h)).json()
    await api.engine.settle(boom["id"], timeout=10)
    res = await c.post(f"/runs/{boom['id']}/retry", headers=h)
    assert res.status_code == 200
    res = await c.post("/events", json={"key": "k", "data": 1}, headers=h)
    assert res.status_code == 200 and res.json() == {"woken": []}


# authentication and authorization ------------------------------------------------------


async def test_only_healthz_answers_without_credentials(api: Api) -> None:
    assert (await api.client.get("/healthz")).status_code == 200
    for method, path in [("GET", "/runs"), ("GET", "/approvals"), ("POST", "/runs"),
                         ("GET", "/tokens"), ("GET", "/approvals/stream"),
                         ("GET", "/openapi.json")]:  # fmt: skip
        res = await api.client.request(method, path)
        assert res.status_code == 401, path
        assert res.headers["content-type"] == PROBLEM
        assert res.headers["www-authenticate"].startswith("Bearer")
    assert (await api.client.get("/docs")).status_code == 404  # no docs UI with auth on
    res = await api.client.get("/runs", headers={"Authorization": "Bearer so_nope"})
    assert res.status_code == 401
    res = await api.client.get("/openapi.json", headers=api.auth("reader"))
    assert res.status_code == 200 and "/runs" in res.json()["paths"]


async def test_a_decision_without_the_decide_scope_is_forbidden(api: Api) -> None:
    run_id = await start_waiting(api)
    res = await api.client.post(decision_url(run_id), json={"action": "approve"},
                                headers=api.auth("reader"))  # fmt: skip
    assert res.status_code == 403 and res.json()["code"] == "forbidden"
    assert (await api.engine.get_run(run_id)).status == "waiting"
    res = await api.client.post("/runs", json={"workflow": "docs"}, headers=api.auth("alice"))
    assert res.status_code == 403


async def test_tokens_created_listed_and_revoked(api: Api) -> None:
    c, h = api.client, api.auth("admin")
    res = await c.post("/tokens", json={"name": "carol", "scopes": ["read"]}, headers=h)
    assert res.status_code == 201
    secret, token_id = res.json()["secret"], res.json()["token"]["id"]
    mine = {"Authorization": f"Bearer {secret}"}
    assert (await c.get("/runs", headers=mine)).status_code == 200
    listed = (await c.get("/tokens", headers=h)).json()
    assert "carol" in [t["name"] for t in listed] and secret not in str(listed)
    assert (await c.delete(f"/tokens/{token_id}", headers=h)).status_code == 200
    assert (await c.get("/runs", headers=mine)).status_code == 401
    assert (await c.delete("/tokens/nope", headers=h)).status_code == 404
    assert (await c.get("/tokens", headers=api.auth("alice"))).status_code == 403


async def test_webhook_takes_the_actor_from_the_token_unless_admin(api: Api) -> None:
    run_id = await start_waiting(api)
    body = {"key": "manager", "action": "approve", "actor": "dave"}
    res = await api.client.post(f"/runs/{run_id}/webhook", json=body, headers=api.auth("alice"))
    assert res.status_code == 403
    res = await api.client.post(f"/runs/{run_id}/webhook", json=body, headers=api.auth("admin"))
    assert res.status_code == 200 and res.json()["by"] == "dave"
    run2 = await start_waiting(api, "ord-2")
    res = await api.client.post(f"/runs/{run2}/webhook", json={"key": "manager", "action":
                                "reject"}, headers=api.auth("alice"))  # fmt: skip
    assert res.json()["by"] == "alice" and res.json()["status"] == "rejected"


# idempotency ---------------------------------------------------------------------------


async def test_a_retried_decision_is_answered_the_same(api: Api) -> None:
    run_id = await start_waiting(api)
    headers = {**api.auth("alice"), "Idempotency-Key": "click-1"}
    first = await api.client.post(decision_url(run_id), json={"action": "approve"},
                                  headers=headers)  # fmt: skip
    again = await api.client.post(decision_url(run_id), json={"action": "approve"},
                                  headers=headers)  # fmt: skip
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() and again.headers["idempotent-replayed"] == "true"
    decided = [e for e in await api.engine.history(run_id) if e.type == "approval_decided"]
    assert len(decided) == 1


async def test_same_idempotency_key_with_another_body_is_refused(api: Api) -> None:
    run_id = await start_waiting(api)
    headers = {**api.auth("alice"), "Idempotency-Key": "click-2"}
    await api.client.post(decision_url(run_id), json={"action": "approve"}, headers=headers)
    res = await api.client.post(decision_url(run_id), json={"action": "reject"}, headers=headers)
    assert res.status_code == 422 and res.json()["code"] == "idempotency_conflict"


async def test_a_conflicting_decision_is_409_with_the_winner(any_api: Api) -> None:
    api = any_api
    run_id = await start_waiting(api)
    results = await asyncio.gather(
        api.client.post(decision_url(run_id), json={"action": "approve"},
                        headers=api.auth("alice")),
        api.client.post(decision_url(run_id), json={"action": "reject"}, headers=api.auth("bob")),
    )  # fmt: skip
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 409]
    winner = next(r for r in results if r.status_code == 200).json()
    loser = next(r for r in results if r.status_code == 409)
    assert loser.headers["content-type"] == PROBLEM
    assert loser.json()["code"] == "decision_conflict"
    assert loser.json()["decision"]["status"] == winner["status"]


async def test_decision_on_a_finished_run_is_409(api: Api) -> None:
    run_id = await start_waiting(api)
    await api.engine.cancel(run_id)
    res = await api.client.post(decision_url(run_id), json={"action": "approve"},
                                headers=api.auth("alice"))  # fmt: skip
    assert res.status_code == 409 and res.json()["code"] == "approval_closed"


# bad input -----------------------------------------------------------------------------


async def post_raw(api: Api, run_id: str, content: bytes, ctype: str | None) -> tuple[int, str]:
    headers = api.auth("alice")
    if ctype is not None:
        headers["Content-Type"] = ctype
    res = await api.client.post(decision_url(run_id), content=content, headers=headers)
    assert res.headers["content-type"] == PROBLEM, res.text
    body = res.json()
    assert set(body) >= {"type", "title", "status", "detail", "code"}
    return res.status_code, body["code"]


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b'{"action": "approve"', 400, "malformed_json"),
        (b"not json", 400, "malformed_json"),
        (b'{"action":"approve","action":"reject"}', 400, "malformed_json"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "malformed_json"),
        (b"[" + b"0," * 1_000_000 + b"0]", 413, "payload_too_large"),
        (b"[" * 200 + b"]" * 200, 400, "malformed_json"),
        (b'{"action": "approve", "value": NaN}', 422, "not_serializable"),
        (b'\xff\xfe{"action"}', 400, "malformed_json"),
    ],
)
async def test_malformed_json_is_refused(api: Api, content: bytes, status: int, code: str) -> None:
    run_id = await start_waiting(api)
    assert await post_raw(api, run_id, content, "application/json") == (status, code)
    assert (await api.engine.get_run(run_id)).status == "waiting"


@pytest.mark.parametrize("ctype", ["application/x-www-form-urlencoded", "text/plain", None])
async def test_wrong_content_type_is_415(api: Api, ctype: str | None) -> None:
    run_id = await start_waiting(api)
    assert await post_raw(api, run_id, b'{"action":"approve"}', ctype) == (
        415,
        "unsupported_media_type",
    )


@pytest.mark.parametrize(
    "body",
    [
        {"action": 1},
        {"action": True},
        {"action": None},
        {"action": "APPROVE"},
        {"action": "yes"},
        {"action": "approve", "reason": 5},
        {"action": "approve", "extra": 1},
        {},
    ],
)
async def test_wrong_types_and_unknown_fields_are_422(api: Api, body: dict[str, object]) -> None:
    run_id = await start_waiting(api)
    res = await api.client.post(decision_url(run_id), json=body, headers=api.auth("alice"))
    assert res.status_code == 422 and res.json()["code"] == "validation_error", res.text
    assert res.headers["content-type"] == PROBLEM


async def test_oversize_body_is_413_by_header_and_by_bytes(api: Api) -> None:
    run_id = await start_waiting(api)
    big = b'{"action":"approve","reason":"' + b"x" * 2_000_000 + b'"}'
    assert await post_raw(api, run_id, big, "application/json") == (413, "payload_too_large")

    async def chunks() -> object:
        for _ in range(30):
            yield b"x" * 50_000

    headers = {**api.auth("alice"), "Content-Type": "application/json"}
    res = await api.client.post(decision_url(run_id), content=chunks(), headers=headers)
    assert res.status_code == 413


@pytest.mark.parametrize("key", ["nope", "..%2F..%2Fetc", "%22quoted%22", "k" * 10_000])
async def test_unknown_run_or_approval_is_404(api: Api, key: str) -> None:
    run_id = await start_waiting(api)
    res = await api.client.post(decision_url(run_id, key), json={"action": "approve"},
                                headers=api.auth("alice"))  # fmt: skip
    assert res.status_code == 404  # an encoded "/" may not even reach the route
    assert res.json()["code"] in ("approval_not_found", "not_found")
    res = await api.client.post(decision_url("no-such-run"), json={"action": "approve"},
                                headers=api.auth("alice"))  # fmt: skip
    assert res.status_code == 404 and res.json()["code"] == "run_not_found"
    for path in ["/runs/no-such-run", "/runs/no-such-run/history", "/runs/x/approvals/manager"]:
        res = await api.client.get(path, headers=api.auth("reader"))
        assert res.status_code == 404, path


async def test_text_a_store_cannot_keep_is_422(api: Api) -> None:
    run_id = await start_waiting(api)
    res = await api.client.post(decision_url(run_id), json={"action": "approve",
                                "reason": "a\u0000b"}, headers=api.auth("alice"))  # fmt: skip
    assert res.status_code == 422
    res = await api.client.post(
        "/runs", content=b'{"workflow":"docs","args":["\\ud800"]}',
        headers={**api.auth("starter"), "Content-Type": "application/json"},
    )  # fmt: skip
    assert res.status_code == 422


@pytest.mark.parametrize(
    ("params", "status"),
    [({"cursor": "garbage!"}, 400), ({"cursor": "WzEsMl0"}, 400), ({"limit": 10**9}, 422),
     ({"limit": 0}, 422), ({"status": "bogus"}, 422)],
)  # fmt: skip
async def test_tampered_cursor_and_limits(api: Api, params: dict[str, object], status: int) -> None:
    res = await api.client.get("/runs", params=params, headers=api.auth("reader"))
    assert res.status_code == status, res.text


async def test_unknown_workflow_is_404(api: Api) -> None:
    res = await api.client.post("/runs", json={"workflow": "nope"}, headers=api.auth("starter"))
    assert res.status_code == 404 and res.json()["code"] == "workflow_not_found"


async def test_auth_can_be_turned_off_explicitly(tmp_path: object) -> None:
    import httpx

    from signoff.server import create_app
    from tests.server.apps import make_engine

    engine = make_engine(f"sqlite:///{tmp_path}/off.db")
    app = create_app(engine, auth=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        res = await c.post("/runs", json={"workflow": "docs"})
        assert res.status_code == 201 and res.json()["requested_by"] is None
    await engine.close()
    with pytest.raises(ValueError):
        create_app(engine, auth="no")  # type: ignore[arg-type]


async def test_someone_not_named_as_approver_is_403(api: Api) -> None:
    run = await api.client.post("/runs", json={"workflow": "named"}, headers=api.auth("starter"))
    run_id = run.json()["id"]
    await api.engine.settle(run_id, timeout=10)
    res = await api.client.post(decision_url(run_id, "lead"), json={"action": "approve"},
                                headers=api.auth("bob"))  # fmt: skip
    assert res.status_code == 403 and res.json()["code"] == "not_allowed_to_decide"
    res = await api.client.post(decision_url(run_id, "lead"), json={"action": "approve"},
                                headers=api.auth("alice"))  # fmt: skip
    assert res.status_code == 200
    assert await api.engine.result(run_id, timeout=10) == "alice"


async def test_many_identical_approvals_at_once_make_one_transition(any_api: Api) -> None:
    api = any_api
    run_id = await start_waiting(api)
    results = await asyncio.gather(*(
        api.client.post(decision_url(run_id), json={"action": "approve"},
                        headers={**api.auth("alice"), "Idempotency-Key": f"k{i % 3}"})
        for i in range(20)
    ))  # fmt: skip
    assert {r.status_code for r in results} == {200}
    assert len({r.json()["at"] for r in results}) == 1
    decided = [e for e in await api.engine.history(run_id) if e.type == "approval_decided"]
    assert len(decided) == 1
