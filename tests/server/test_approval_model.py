"""The whole approval model over HTTP and through the client: every field of the domain
records, the inbox's filters and pages, digests, decide-only tokens, local mode, keys
and ids with `/`, truncated list values and explicit operation ids."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

import signoff
from signoff import models
from signoff.server import create_app
from tests.server.apps import make_engine
from tests.server.conftest import Api, start_waiting

PROBLEM = "application/problem+json"


def client_for(api: Api, secret: str) -> signoff.AsyncClient:
    return signoff.AsyncClient("http://test", secret, transport=httpx.ASGITransport(app=api.app))


async def start(api: Api, workflow: str, **body: Any) -> str:
    res = await api.client.post(
        "/runs", json={"workflow": workflow, **body}, headers=api.auth("starter")
    )
    assert res.status_code == 201, res.text
    run_id: str = res.json()["id"]
    assert (await api.engine.settle(run_id, timeout=10)).status == "waiting"
    return run_id


async def latest(api: Api, run_id: str, key: str) -> models.Approval:
    rounds = [a for a in await api.engine.approvals(run_id) if a.key == key]
    return max(rounds, key=lambda a: a.round)


def _schema_fields(doc: dict[str, Any], record: type) -> set[str]:
    schemas = doc["components"]["schemas"]
    names = [n for n in schemas if n == record.__name__ or n.startswith(record.__name__ + "-")]
    assert names, f"{record.__name__} is not in /openapi.json"
    return set().union(*(schemas[n]["properties"] for n in names))


async def test_every_domain_field_is_in_openapi_and_in_what_the_client_returns(
    api: Api,
) -> None:
    doc = (await api.client.get("/openapi.json", headers=api.auth("reader"))).json()
    records = (models.Run, models.Approval, models.Decision, models.Vote, models.HistoryEntry)
    for record in records:
        wanted = {f.name for f in dataclasses.fields(record)}
        assert wanted <= _schema_fields(doc, record), record
    run_id = await start(api, "panel")
    async with client_for(api, api.tokens["alice"]) as alice:
        vote = await alice.approve(run_id, "board", reason="one of two")
        assert vote.status == "pending" and [v.by for v in vote.votes] == ["alice"]
        shown = await alice.get_approval(run_id, "board")
        assert shown == await latest(api, run_id, "board")  # every field, equal
        assert shown.approvers == ["alice", "bob", "carol"] and shown.quorum == 2
        assert shown.digest and [v.by for v in shown.votes] == ["alice"]
        [listed] = await alice.pending_approvals(run_id=run_id)
        assert listed == shown
        assert await alice.get_run(run_id) == await api.engine.get_run(run_id)
        assert await alice.history(run_id) == await api.engine.history(run_id)
    async with client_for(api, api.tokens["bob"]) as bob:
        decision = await bob.approve(run_id, "board", digest=shown.digest)
    assert decision.status == "approved" and {v.by for v in decision.votes} == {"alice", "bob"}
    result = await api.engine.result(run_id, timeout=10)
    assert result == {"status": "approved", "voters": ["alice", "bob"]}


async def test_the_inbox_filters_pages_and_refuses_what_it_does_not_know(api: Api) -> None:
    panel = await start(api, "panel")
    named = await start(api, "named")
    refunds = [await start_waiting(api, f"o{i}") for i in range(3)]
    reader = api.auth("reader")

    async def keys(**params: Any) -> list[tuple[str, str]]:
        res = await api.client.get("/approvals", params=params, headers=reader)
        assert res.status_code == 200, res.text
        assert set(res.json()) == {"items", "next_cursor"}
        return [(a["run_id"], a["key"]) for a in res.json()["items"]]

    anyones = [(r, "manager") for r in refunds]  # open to anyone but their requester
    assert await keys(approver="bob") == [(panel, "board"), *anyones]
    assert await keys(approver="alice") == [(panel, "board"), (named, "lead"), *anyones]
    assert await keys(approver="starter") == []  # not on the panel; requested the refunds
    assert await keys(key_prefix="man") == [(r, "manager") for r in refunds]
    assert await keys(older_than="1h") == []
    assert len(await keys(older_than="0s")) == 5
    assert await keys(role="finance") == []
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.client.get("/approvals", params=params, headers=reader)).json()
        seen += [a["run_id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted([panel, named, *refunds])
    for bad, status, code in [
        ({"approvr": "bob"}, 422, "validation_error"),
        ({"older_than": "soon"}, 422, "invalid_duration"),
        ({"limit": "lots"}, 422, "validation_error"),
        ({"cursor": "garbage!"}, 400, "bad_cursor"),
    ]:
        res = await api.client.get("/approvals", params=bad, headers=reader)
        assert (res.status_code, res.json()["code"]) == (status, code), bad
        assert res.headers["content-type"] == PROBLEM


def _cursor(*fields: Any) -> str:
    raw = json.dumps(list(fields)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "path, cursor",
    [
        ("/approvals", _cursor(float("nan"), "r", "k")),
        ("/approvals", _cursor(1e308, "r", "k")),
        ("/approvals", _cursor("x", "r", "k")),
        ("/runs", "TmFO" + _cursor(float("nan"), "r")),
        ("/runs", _cursor(1e308, "r")),
        ("/runs", _cursor(-1e308, "r")),
        ("/runs", "%%%"),
    ],
)
async def test_crafted_cursors_are_400_bad_cursor(api: Api, path: str, cursor: str) -> None:
    res = await api.client.get(path, params={"cursor": cursor}, headers=api.auth("reader"))
    assert res.status_code == 400 and res.json()["code"] == "bad_cursor", res.text


async def test_a_decide_only_token_reads_what_it_may_decide_and_decides_it(api: Api) -> None:
    named = await start(api, "named")  # approvers: alice
    other = await start_waiting(api)  # anyone may decide
    _, secret = await api.engine.access.create_token("alice", ["decide"])
    headers = {"Authorization": f"Bearer {secret}"}
    inbox = await api.client.get("/approvals", headers=headers)
    assert inbox.status_code == 200
    # hers by name, and the one open to anyone
    assert [(a["run_id"], a["key"]) for a in inbox.json()["items"]] == [
        (named, "lead"),
        (other, "manager"),
    ]
    res = await api.client.get("/approvals", params={"approver": "bob"}, headers=headers)
    assert res.status_code == 403
    assert (await api.client.get(f"/runs/{named}", headers=headers)).status_code == 403
    assert (await api.client.get(f"/runs/{other}/approvals/manager", headers=headers)).is_success
    _, bobs = await api.engine.access.create_token("bob", ["decide"])
    res = await api.client.get(
        f"/runs/{named}/approvals/lead", headers={"Authorization": f"Bearer {bobs}"}
    )
    assert res.status_code == 403  # not bob's to decide
    async with client_for(api, secret) as alice:
        shown, _ = await alice.pending_approvals()
        assert shown.approvers == ["alice"] and shown.digest
        one = await alice.get_approval(named, "lead")
        decision = await alice.approve(named, "lead", digest=one.digest)
    assert decision.by == "alice" and await api.engine.result(named, timeout=10) == "alice"


async def test_a_stale_digest_is_409_with_the_current_one(any_api: Api) -> None:
    api = any_api
    run_id = await start(api, "revised", args=[[100, 1_000_000]])
    first = await latest(api, run_id, "manager")
    async with client_for(api, api.tokens["bob"]) as bob:
        await bob.request_changes(run_id, "manager", digest=first.digest, reason="too vague")
    await api.engine.settle(run_id, timeout=10)
    second = await latest(api, run_id, "manager")
    assert second.round == 2 and second.digest != first.digest
    res = await api.client.post(
        f"/runs/{run_id}/approvals/manager/decision",
        json={"action": "approve", "digest": first.digest},
        headers=api.auth("alice"),
    )
    assert res.status_code == 409 and res.headers["content-type"] == PROBLEM
    assert res.json()["code"] == "stale_digest"
    assert res.json()["current_digest"] == second.digest
    assert (await latest(api, run_id, "manager")).status == "pending"
    async with client_for(api, api.tokens["alice"]) as alice:
        with pytest.raises(signoff.StaleDigest) as stale:
            await alice.approve(run_id, "manager", digest=first.digest)
        assert stale.value.current_digest == second.digest  # type: ignore[attr-defined]
        decision = await alice.approve(run_id, "manager", digest=second.digest)
    assert decision.value == {"amount": 1_000_000}


async def test_edit_without_a_value_is_422(api: Api) -> None:
    run_id = await start_waiting(api)
    for body in ({"action": "edit"}, {"action": "edit", "reason": "x"}):
        res = await api.client.post(
            f"/runs/{run_id}/approvals/manager/decision", json=body, headers=api.auth("alice")
        )
        assert res.status_code == 422 and res.json()["code"] == "validation_error"
    assert (await latest(api, run_id, "manager")).status == "pending"


async def test_the_webhook_cancels_and_records_the_relaying_token(api: Api) -> None:
    run_id = await start_waiting(api)
    res = await api.client.post(
        f"/runs/{run_id}/webhook",
        json={"key": "manager", "action": "approve", "actor": "erin"},
        headers=api.auth("admin"),
    )
    assert res.status_code == 200 and res.json()["by"] == "erin"
    [relayed] = [e for e in await api.engine.history(run_id) if e.type == "webhook_relayed"]
    assert relayed.actor == "erin" and relayed.data["token"] == "admin"
    other = await start_waiting(api, "o2")
    url = f"/runs/{other}/webhook"
    res = await api.client.post(url, json={"action": "cancel"}, headers=api.auth("alice"))
    assert res.status_code == 403  # cancelling needs the start scope
    res = await api.client.post(
        url, json={"action": "cancel", "actor": "erin", "reason": "dup"}, headers=api.auth("admin")
    )
    assert res.status_code == 200 and res.json()["status"] == "cancelled"
    history = await api.engine.history(other)
    assert [e.actor for e in history if e.type == "run_cancelled"] == ["erin"]
    assert [e.data["token"] for e in history if e.type == "webhook_relayed"] == ["admin"]
    res = await api.client.post(url, json={"action": "approve"}, headers=api.auth("admin"))
    assert res.status_code == 422  # a decision needs its key


async def test_local_mode_lets_a_person_start_and_decide(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/local.db")
    await engine.start_worker()
    app = create_app(engine, auth=False, run_worker=False)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            run = (await c.post("/runs", json={"workflow": "refund", "args": ["o"]})).json()
            assert run["requested_by"] is None
            await engine.settle(run["id"], timeout=10)
            url = f"/runs/{run['id']}/approvals/manager/decision"
            res = await c.post(url, json={"action": "approve", "by": "dana"})
            assert res.status_code == 200 and res.json()["by"] == "dana"
            mine = (
                await c.post(
                    "/runs", json={"workflow": "refund", "args": ["p"], "requested_by": "dana"}
                )
            ).json()
            assert mine["requested_by"] == "dana"
            await engine.settle(mine["id"], timeout=10)
            url = f"/runs/{mine['id']}/approvals/manager/decision"
            res = await c.post(url, json={"action": "approve", "by": "dana"})
            assert res.status_code == 403 and res.json()["code"] == "self_approval"
            res = await c.post(url, json={"action": "approve"})
            assert res.status_code == 200 and res.json()["by"] == "local"
    finally:
        await app.state.hub.close()
        await engine.close()


async def test_with_auth_on_the_requester_is_the_token_unless_admin(api: Api) -> None:
    body = {"workflow": "docs", "requested_by": "someone"}
    res = await api.client.post("/runs", json=body, headers=api.auth("starter"))
    assert res.status_code == 403
    res = await api.client.post("/runs", json=body, headers=api.auth("admin"))
    assert res.status_code == 201 and res.json()["requested_by"] == "someone"
    res = await api.client.post("/runs", json={"workflow": "docs"}, headers=api.auth("starter"))
    assert res.json()["requested_by"] == "starter"


async def test_keys_and_run_ids_with_slashes_are_addressable(api: Api) -> None:
    run_id = "team/a/1"
    async with client_for(api, api.tokens["admin"]) as admin:
        assert (await admin.start("chain", run_id=run_id)).id == run_id
        await api.engine.settle(run_id, timeout=10)
        assert (await admin.get_run(run_id)).id == run_id
        shown = await admin.get_approval(run_id, "refund/manager")
        assert shown.stage == "manager" and shown.key == "refund/manager"
        assert [a.key for a in await admin.approvals(run_id)] == ["refund/manager"]
        assert (await admin.history(run_id))[0].type == "run_started"
    async with client_for(api, api.tokens["alice"]) as alice:
        await alice.approve(run_id, "refund/manager", digest=shown.digest)
    await api.engine.settle(run_id, timeout=10)
    raw = await api.client.get(
        f"/runs/{run_id}/approvals/refund/finance", headers=api.auth("reader")
    )
    assert raw.status_code == 200 and raw.json()["stage"] == "finance"
    res = await api.client.post(
        f"/runs/{run_id}/approvals/refund/finance/decision",
        json={"action": "approve"},
        headers=api.auth("bob"),
    )
    assert res.status_code == 200, res.text
    assert await api.engine.result(run_id, timeout=10) == "approved"
    quoted = await api.client.get("/runs/team%2Fa%2F1", headers=api.auth("reader"))
    assert quoted.status_code == 200 and quoted.json()["status"] == "completed"
    frames = await api.client.get(f"/runs/{run_id}/stream", headers=api.auth("reader"))
    assert frames.status_code == 200 and "event: run_completed" in frames.text


@pytest.mark.parametrize("name", ["requested_by", "run_id", "workflow"])
async def test_start_kwargs_named_like_start_options_are_422(api: Api, name: str) -> None:
    body = {"workflow": "refund", "args": ["o"], "kwargs": {name: "x"}}
    res = await api.client.post("/runs", json=body, headers=api.auth("starter"))
    assert res.status_code == 422 and res.json()["code"] == "validation_error", res.text


async def test_a_long_last_event_id_is_400(api: Api) -> None:
    headers = {**api.auth("reader"), "Last-Event-ID": "9" * 5000}
    res = await api.client.get("/approvals/stream", headers=headers)
    assert res.status_code == 400 and res.json()["code"] == "bad_last_event_id"


async def test_lists_truncate_large_values_and_link_to_the_whole(api: Api) -> None:
    run_id = await start(api, "big", args=[300_000])
    res = await api.client.get("/approvals", headers=api.auth("reader"))
    [item] = res.json()["items"]
    marker = item["proposed"]
    assert marker["$truncated"] is True and marker["bytes"] > 300_000
    assert len(res.content) < 10_000
    whole = await api.client.get(marker["href"], headers=api.auth("reader"))
    assert whole.json()["proposed"] == {"blob": "x" * 300_000}
    listed = await api.client.get(f"/runs/{run_id}/approvals", headers=api.auth("reader"))
    assert listed.json()[0]["proposed"]["$truncated"] is True


async def test_operations_have_explicit_ids(api: Api) -> None:
    doc = (await api.client.get("/openapi.json", headers=api.auth("reader"))).json()
    ids = {op["operationId"] for item in doc["paths"].values() for op in item.values()}
    assert {"start_run", "get_run", "list_runs", "decide", "list_approvals", "get_approval",
            "webhook", "cancel_run", "health"} <= ids  # fmt: skip
    assert not [i for i in ids if i.endswith(("_get", "_post", "_delete"))]


async def test_with_auth_on_separation_of_duties_holds(api: Api) -> None:
    res = await api.client.post(
        "/runs", json={"workflow": "refund", "args": ["o"]}, headers=api.auth("admin")
    )
    run_id = res.json()["id"]
    await api.engine.settle(run_id, timeout=10)
    url = f"/runs/{run_id}/approvals/manager/decision"
    res = await api.client.post(url, json={"action": "approve"}, headers=api.auth("admin"))
    assert res.status_code == 403 and res.json()["code"] == "self_approval"
    res = await api.client.post(
        url, json={"action": "approve", "by": "bob"}, headers=api.auth("admin")
    )
    assert res.status_code == 403  # no naming someone else in the body, even as admin
    shown = await latest(api, run_id, "manager")
    res = await api.client.post(
        f"/runs/{run_id}/webhook",
        json={"key": "manager", "action": "approve", "digest": "0" * 64},
        headers=api.auth("bob"),
    )
    assert res.status_code == 409 and res.json()["current_digest"] == shown.digest
    assert (await latest(api, run_id, "manager")).status == "pending"


async def test_a_unique_prefix_of_a_run_id_names_the_run_on_every_route(any_api: Api) -> None:
    api = any_api
    run_id = await start_waiting(api)
    short = run_id[:8]  # as the demo and the CLI's tables show it
    res = await api.client.get(f"/runs/{short}", headers=api.auth("reader"))
    assert res.status_code == 200 and res.json()["id"] == run_id
    for path in (f"/runs/{short}/history", f"/runs/{short}/approvals"):
        assert (await api.client.get(path, headers=api.auth("reader"))).status_code == 200
    res = await api.client.get("/approvals", params={"run_id": short}, headers=api.auth("reader"))
    assert [a["run_id"] for a in res.json()["items"]] == [run_id]
    shown = await api.client.get(f"/runs/{short}/approvals/manager", headers=api.auth("alice"))
    res = await api.client.post(
        f"/runs/{short}/approvals/manager/decision",
        json={"action": "approve", "digest": shown.json()["digest"]},
        headers=api.auth("alice"),
    )
    assert res.status_code == 200, res.text
    assert (await api.engine.settle(run_id, timeout=10)).status == "completed"

    for name in ("batch-0001-a", "batch-0001-b"):
        res = await api.client.post(
            "/runs",
            json={"workflow": "refund", "args": ["o", 1], "run_id": name},
            headers=api.auth("starter"),
        )
        assert res.status_code == 201, res.text
    res = await api.client.get("/runs/batch-0001", headers=api.auth("reader"))
    assert res.status_code == 422 and res.headers["content-type"] == "application/problem+json"
    assert (
        res.json()["code"] == "ambiguous_run_id" and "give more of the id" in res.json()["detail"]
    )
    res = await api.client.get(f"/runs/{run_id[:5]}", headers=api.auth("reader"))
    assert res.status_code == 404 and "6 characters or more" in res.json()["detail"]
    # nothing is told about runs to a caller who is not signed in
    assert (await api.client.get(f"/runs/{short}")).status_code == 401


async def test_a_question_is_answered_over_http_and_through_the_client(api: Api) -> None:
    run_id = await start(api, "question")
    shown = await api.client.get(f"/runs/{run_id}/approvals/units", headers=api.auth("bob"))
    assert shown.json()["question"] is True and shown.json()["edits"] is True
    url = f"/runs/{run_id}/approvals/units/decision"
    for body, status, code in [
        ({"action": "answer"}, 422, "validation_error"),  # no value
        ({"action": "answer", "value": "lots"}, 422, "invalid_edit"),  # not an integer
        ({"action": "approve"}, 422, "answer_required"),
    ]:
        res = await api.client.post(url, json=body, headers=api.auth("bob"))
        assert (res.status_code, res.json()["code"]) == (status, code), res.text
    async with client_for(api, api.tokens["bob"]) as bob:
        decision = await bob.answer(run_id, "units", 12, digest=shown.json()["digest"])
    assert decision.value == 12 and decision.by == "bob"
    assert await api.engine.result(run_id, timeout=10) == 12


async def test_approval_metadata_is_served_and_shown_escaped_on_the_page(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/meta.db")
    await engine.start_worker()
    app = create_app(engine, auth=False, run_worker=False)
    meta = {"tool": "send_email", "model": "<script>alert(1)</script>", "call_id": "c-7"}
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            run = (await c.post("/runs", json={"workflow": "tool_call", "args": [meta]})).json()
            await engine.settle(run["id"], timeout=10)
            shown = (await c.get(f"/runs/{run['id']}/approvals/call")).json()
            assert shown["metadata"] == meta
            page = await c.get("/inbox/approval", params={"run": run["id"], "key": "call"})
            assert page.status_code == 200
            assert "send_email" in page.text and "c-7" in page.text
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
            assert "<script>alert(1)" not in page.text
    finally:
        await app.state.hub.close()
        await engine.close()
