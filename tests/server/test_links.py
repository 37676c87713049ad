"""Signed approval links: GET shows, POST decides once; tampered, expired, reused."""

from __future__ import annotations

import base64
import json
import time

import pytest

from signoff.server import auth
from tests.server.conftest import SECRET, Api, start_waiting

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def make_link(api: Api, run_id: str, action: str = "any", approver: str = "erin") -> str:
    res = await api.client.post(
        f"/runs/{run_id}/approvals/manager/links",
        json={"approver": approver, "action": action, "expires_in": 3600},
        headers=api.auth("admin"),
    )
    assert res.status_code == 201, res.text
    url: str = res.json()["url"]
    assert url.startswith("http://test/links/")
    return url.removeprefix("http://test")


async def test_get_only_shows_and_post_decides_once(api: Api) -> None:
    run_id = await start_waiting(api)
    path = await make_link(api, run_id)
    for _ in range(3):  # a mail scanner opening the link changes nothing
        page = await api.client.get(path)
        assert page.status_code == 200 and "<form method='post'>" in page.text
        assert page.headers["referrer-policy"] == "no-referrer"
        assert (await api.client.head(path)).status_code in (200, 405)
    assert (await api.engine.get_run(run_id)).status == "waiting"
    res = await api.client.post(path, content=b"action=approve&reason=fine", headers=FORM)
    assert res.status_code == 200 and "approved by erin" in res.text
    assert (await api.engine.result(run_id, timeout=10))["by"] == "erin"
    again = await api.client.post(path, content=b"action=approve", headers=FORM)
    assert again.status_code == 410 and "already been used" in again.text
    assert (await api.client.get(path)).status_code == 410


async def test_page_escapes_what_it_shows(api: Api) -> None:
    run_id = await start_waiting(api, "<script>alert(1)</script>")
    page = await api.client.get(await make_link(api, run_id, approver="<b>x</b>"))
    assert "<script>alert" not in page.text and "&lt;script&gt;" in page.text
    assert "<b>x</b>" not in page.text


def _tamper(token: str, **change: object) -> str:
    payload, sig = token.split(".")
    fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    names = ["v", "run_id", "key", "approver", "action", "expires_at", "nonce"]
    for name, value in change.items():
        fields[names.index(name)] = value
    raw = base64.urlsafe_b64encode(json.dumps(fields, separators=(",", ":")).encode())
    return raw.decode().rstrip("=") + "." + sig


@pytest.mark.parametrize(
    "change",
    [{"run_id": "other"}, {"action": "reject"}, {"approver": "mallory"},
     {"expires_at": 9_999_999_999}, {"flip": True}, {"garbage": True}],
)  # fmt: skip
async def test_tampered_links_get_one_uniform_403(api: Api, change: dict[str, object]) -> None:
    run_id = await start_waiting(api)
    token = (await make_link(api, run_id, action="approve")).removeprefix("/links/")
    if "flip" in change:
        bad = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    elif "garbage" in change:
        bad = "not-a-link"
    else:
        bad = _tamper(token, **change)
    for method in ("GET", "POST"):
        res = await api.client.request(method, f"/links/{bad}", content=b"action=approve",
                                       headers=FORM)  # fmt: skip
        assert res.status_code == 403 and "not valid" in res.text
    assert (await api.engine.get_run(run_id)).status == "waiting"


async def test_expired_link_is_410(api: Api) -> None:
    run_id = await start_waiting(api)
    token, _ = auth.sign_link(SECRET.encode(), run_id=run_id, key="manager", approver="erin",
                              action="any", expires_at=int(time.time()) - 1)  # fmt: skip
    assert (await api.client.get(f"/links/{token}")).status_code == 410
    res = await api.client.post(f"/links/{token}", content=b"action=approve", headers=FORM)
    assert res.status_code == 410 and (await api.engine.get_run(run_id)).status == "waiting"


async def test_a_link_allows_only_its_action(api: Api) -> None:
    run_id = await start_waiting(api)
    path = await make_link(api, run_id, action="reject")
    res = await api.client.post(path, content=b"action=approve", headers=FORM)
    assert res.status_code == 422
    res = await api.client.post(path, content=b"action=reject", headers=FORM)
    assert res.status_code == 200


async def test_cross_site_posts_and_json_bodies_are_refused(api: Api) -> None:
    run_id = await start_waiting(api)
    path = await make_link(api, run_id)
    res = await api.client.post(path, content=b"action=approve",
                                headers={**FORM, "Origin": "https://evil.example"})  # fmt: skip
    assert res.status_code == 403
    res = await api.client.post(path, content=b"action=approve",
                                headers={**FORM, "Sec-Fetch-Site": "cross-site"})  # fmt: skip
    assert res.status_code == 403
    res = await api.client.post(path, json={"action": "approve"})
    assert res.status_code == 415
    assert (await api.engine.get_run(run_id)).status == "waiting"


async def test_a_link_on_an_already_decided_approval_is_409(api: Api) -> None:
    run_id = await start_waiting(api)
    path = await make_link(api, run_id)
    await api.engine.reject(run_id, "manager", by="bob")
    res = await api.client.post(path, content=b"action=approve", headers=FORM)
    assert res.status_code == 409


async def test_links_need_admin_and_a_known_approval(api: Api) -> None:
    run_id = await start_waiting(api)
    res = await api.client.post(f"/runs/{run_id}/approvals/manager/links",
                                json={"approver": "x"}, headers=api.auth("alice"))  # fmt: skip
    assert res.status_code == 403
    res = await api.client.post(f"/runs/{run_id}/approvals/nope/links",
                                json={"approver": "x"}, headers=api.auth("admin"))  # fmt: skip
    assert res.status_code == 404


async def test_a_link_to_a_question_answers_it_and_a_bad_answer_keeps_the_link(
    api: Api,
) -> None:
    res = await api.client.post("/runs", json={"workflow": "question"}, headers=api.auth("starter"))
    run_id = res.json()["id"]
    assert (await api.engine.settle(run_id, timeout=10)).status == "waiting"
    res = await api.client.post(
        f"/runs/{run_id}/approvals/units/links",
        json={"approver": "erin", "action": "any", "expires_in": 3600},
        headers=api.auth("admin"),
    )
    path = res.json()["url"].removeprefix("http://test")
    page = await api.client.get(path)
    assert "Question: units" in page.text and "value='answer'" in page.text
    assert "value='approve'" not in page.text  # a question is answered, not approved
    bad = await api.client.post(path, content=b"action=answer&answer=lots", headers=FORM)
    assert bad.status_code == 422
    worse = await api.client.post(path, content=b"action=answer&answer=%22x%22", headers=FORM)
    assert worse.status_code == 422  # JSON, but not an integer: the link is not spent
    refused = await api.client.post(path, content=b"action=approve", headers=FORM)
    assert refused.status_code == 422
    res = await api.client.post(path, content=b"action=answer&answer=12", headers=FORM)
    assert res.status_code == 200 and "answered by erin" in res.text
    assert await api.engine.result(run_id, timeout=10) == 12
