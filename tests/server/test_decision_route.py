"""The decision route finds its arguments by hand (`routes_decisions._DecisionRoute`), not
with FastAPI's generic solver: every answer that does not decide must be the one the
solver gives for the same signature, checked here against a twin app whose route is a
plain `APIRoute` over the same endpoint; and the decisions it does take are the same."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import ASGIApp

from signoff import models
from signoff.server import app as app_
from signoff.server import problems, routes_decisions
from tests.server.conftest import Api, start_waiting

PATH = "/runs/{run_id:path}/approvals/{key:path}/decision"


def generic_twin(api: Api) -> ASGIApp:
    """The same endpoint behind FastAPI's own solver, the body guard and the handlers."""
    twin = FastAPI()
    for name in ("engine", "auth", "hub"):
        setattr(twin.state, name, getattr(api.app.state, name))
    problems.install(twin)
    twin.add_api_route(
        PATH, routes_decisions.post_decision, methods=["POST"], response_model=models.Decision
    )
    return app_.BodyGuard(twin, max_body=app_.MAX_BODY)


def short(run_id: str) -> str:
    return run_id[:8]


CASES: list[tuple[str, str, bytes, dict[str, str]]] = [
    # (who, which run, body, other headers)
    ("none", "run", b'{"action":"approve"}', {}),
    ("none", "short", b'{"action":"approve"}', {}),
    ("none", "run", b"", {}),
    ("bad", "run", b'{"action":"approve"}', {}),
    ("reader", "run", b'{"action":"approve"}', {}),
    ("reader", "run", b'{"action":1}', {"Idempotency-Key": ""}),
    ("reader", "unknown-short", b'{"action":"approve"}', {}),  # the run before the scope
    ("alice", "unknown", b'{"action":"approve"}', {}),
    ("alice", "unknown-short", b'{"action":"approve"}', {}),
    ("alice", "ambiguous", b'{"action":"approve"}', {}),
    ("alice", "run-other-key", b'{"action":"approve"}', {}),
    ("alice", "run", b"", {}),
    ("alice", "run", b"null", {}),
    ("alice", "run", b"[]", {}),
    ("alice", "run", b'"approve"', {}),
    ("alice", "run", b"{}", {}),
    ("alice", "run", b'{"action":"yes"}', {}),
    ("alice", "run", b'{"action":"approve","reason":5,"extra":1}', {}),
    ("alice", "run", b'{"action":"approve","by":""}', {}),
    ("alice", "run", b'{"action":"approve","by":"bob"}', {}),
    ("alice", "run", b'{"action":"approve","value":1}', {}),
    ("alice", "run", b'{"action":"edit"}', {}),
    ("alice", "run", b'{"action":"answer"}', {}),
    ("alice", "run", b'{"action":"approve","digest":"nope"}', {}),
    ("alice", "run", b'{"action":"approve"}', {"Idempotency-Key": ""}),
    ("alice", "run", b'{"action":"approve"}', {"Idempotency-Key": "k" * 201}),
    ("alice", "run", b'{"action":2}', {"Idempotency-Key": "k" * 201}),
    ("alice", "short", b'{"action":"approve","value":[1]}', {}),
]


async def test_every_refusal_is_the_generic_solvers(api: Api) -> None:
    run_id = await start_waiting(api)
    twin = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=generic_twin(api)), base_url="http://t"
    )
    # two runs sharing a start: a prefix that names both (made, not hoped for)
    await api.engine.start("refund", "ord-3", 1, run_id=run_id[:6] + "0" * 26)
    await api.engine.start("refund", "ord-4", 1, run_id=run_id[:6] + "1" * 26)
    runs = {
        "run": run_id, "short": short(run_id), "unknown": "f" * 32, "unknown-short": "ffffff0",
        "ambiguous": run_id[:6], "run-other-key": run_id,
    }  # fmt: skip
    tokens = {"none": None, "bad": "not-a-token", **api.tokens}
    try:
        for who, which, body, headers in CASES:
            key = "nope" if which == "run-other-key" else "manager"
            url = f"/runs/{runs[which]}/approvals/{key}/decision"
            sent = {"Content-Type": "application/json", **headers}
            if tokens[who] is not None:
                sent["Authorization"] = f"Bearer {tokens[who]}"
            ours = await api.client.post(url, content=body, headers=sent)
            theirs = await twin.post(url, content=body, headers=sent)
            case = (who, which, body, headers)
            assert ours.status_code == theirs.status_code, (case, ours.text, theirs.text)
            assert ours.status_code >= 400, case
            assert ours.headers["content-type"] == theirs.headers["content-type"], case
            assert ours.json() == theirs.json(), case
            assert ours.headers.get("www-authenticate") == theirs.headers.get("www-authenticate")
        assert (await api.engine.get_run(run_id)).status == "waiting"  # nothing decided
    finally:
        await twin.aclose()


@pytest.mark.parametrize("idempotency_key", [None, "click-1"])
async def test_a_decision_answers_as_the_generic_solver_would(
    api: Api, idempotency_key: str | None
) -> None:
    ours_run, theirs_run = await start_waiting(api), await start_waiting(api, "ord-2")
    twin = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=generic_twin(api)), base_url="http://t"
    )
    headers = api.auth("alice")
    body = {"action": "approve", "reason": "fine"}

    def keyed(which: str) -> dict[str, str]:  # a key of its own for each request
        return (
            headers
            if idempotency_key is None
            else {**headers, "Idempotency-Key": idempotency_key + which}
        )

    try:
        ours = await api.client.post(f"/runs/{short(ours_run)}/approvals/manager/decision",
                                     json=body, headers=keyed("a"))  # fmt: skip
        theirs = await twin.post(f"/runs/{theirs_run}/approvals/manager/decision",
                                 json=body, headers=keyed("b"))  # fmt: skip
    finally:
        await twin.aclose()
    assert ours.status_code == theirs.status_code == 200, (ours.text, theirs.text)
    assert ours.headers["content-type"] == theirs.headers["content-type"] == "application/json"
    mine, twins = ours.json(), theirs.json()
    assert mine.keys() == twins.keys()
    for same in ("key", "status", "by", "reason", "round", "timed_out"):
        assert mine[same] == twins[same], same
    assert mine["by"] == "alice" and mine["status"] == "approved"
    assert (await api.engine.get_run(ours_run)).status == "completed"
