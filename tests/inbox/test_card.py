"""The live stream from another origin: stream tickets, CORS, and the example approval
card (examples/approval_card.html) served by a second, static server, deciding and
updating live in Chromium."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from signoff.server import tickets
from signoff.server.inbox import session
from tests.inbox.conftest import ROOT, Served, serve
from tests.ports import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    """A second origin: a static file server for examples/."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(ROOT / "examples"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, origin: str) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("cors")
    db = f"sqlite:///{folder / 'cors.db'}"
    yield from serve(db, folder, "--log-level", "info", "--cors-origin", origin)


def bearer(api: Served, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.tokens[name]}"}


def ticket(api: Served, name: str, **body: Any) -> dict[str, Any]:
    response = httpx.post(f"{api.url}/stream-tickets", json=body, headers=bearer(api, name))
    assert response.status_code == 200, response.text
    return dict(response.json())


def first_event(url: str, **headers: str) -> tuple[int, str]:
    """The status, and the first event's text (or the body of a refusal)."""
    with httpx.stream("GET", url, headers=headers, timeout=10) as response:
        if response.status_code != 200:
            return response.status_code, response.read().decode()
        for line in response.iter_lines():
            if line.startswith("event:"):
                return 200, line
    return 200, ""


def test_a_run_ticket_opens_that_run_stream_only(api: Served) -> None:
    run = api.start("refund", "ticket-1", approvers=["alice"])
    other = api.start("refund", "ticket-2", approvers=["alice"])
    api.pending(run.id, "manager")
    out = ticket(api, "olga", stream="run", run_id=run.id)
    assert out["url"] == f"/runs/{run.id}/stream?ticket={out['ticket']}"
    status, line = first_event(api.url + out["url"])
    assert (status, line) == (200, "event: waiting_for_input") or line.startswith("event:")
    refused = first_event(f"{api.url}/runs/{other.id}/stream?ticket={out['ticket']}")
    assert refused[0] == 401 and "bad_ticket" in refused[1]
    assert first_event(f"{api.url}/inbox/stream?ticket={out['ticket']}")[0] == 401
    # not a bearer token, and not good for anything but a stream
    as_token = httpx.get(
        f"{api.url}/runs/{run.id}", headers={"Authorization": f"Bearer {out['ticket']}"}
    )
    assert as_token.status_code == 401
    assert first_event(f"{api.url}/approvals/stream?ticket={out['ticket']}")[0] == 401
    # a decide-only token gets no run ticket; an inbox ticket needs no `read`
    refused_run = httpx.post(f"{api.url}/stream-tickets", headers=bearer(api, "alice"),
                             json={"stream": "run", "run_id": run.id})  # fmt: skip
    assert refused_run.status_code == 403
    assert ticket(api, "alice", stream="inbox")["url"].startswith("/inbox/stream?ticket=")


def test_expired_forged_and_revoked_tickets_are_refused(
    api: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = api.start("refund", "ticket-3", approvers=["alice"])
    monkeypatch.setenv("SIGNOFF_SESSION_SECRET", "s" * 32)  # as the server has it
    key = hashlib.sha256(b"signoff-stream-ticket:" + session.secret_key(None)).digest()
    good = tickets.decode(key, ticket(api, "olga", stream="run", run_id=run.id)["ticket"])
    assert good is not None and good.target == f"run:{run.id}" and good.name == "olga"
    old = tickets.Ticket(good.target, good.name, good.token_hash, int(time.time()) - 1, "n")
    assert (
        first_event(f"{api.url}/runs/{run.id}/stream?ticket={tickets.encode(key, old)}")[0] == 401
    )
    forged = ticket(api, "olga", stream="run", run_id=run.id)["ticket"][:-3] + "AAA"
    assert first_event(f"{api.url}/runs/{run.id}/stream?ticket={forged}")[0] == 401
    _, secret = api.admin(lambda e: e.access.create_token("rita", ["read"]))
    out = httpx.post(f"{api.url}/stream-tickets", json={"stream": "run", "run_id": run.id},
                     headers={"Authorization": f"Bearer {secret}"}).json()  # fmt: skip
    tokens = api.admin(lambda e: e.access.list_tokens())
    rita = next(t for t in tokens if t.name == "rita")
    api.admin(lambda e: e.access.revoke_token(rita.id))
    assert first_event(api.url + out["url"])[0] == 401


def test_tickets_stay_out_of_the_access_log(api: Served) -> None:
    run = api.start("refund", "ticket-4", approvers=["alice"])
    out = ticket(api, "olga", stream="run", run_id=run.id)
    first_event(api.url + out["url"])
    deadline = time.monotonic() + 5
    while "ticket=[redacted]" not in api.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = api.log.read_text()
    assert f"/runs/{run.id}/stream?ticket=[redacted]" in log
    assert out["ticket"] not in log and out["ticket"].split(".")[1] not in log


def test_cors_answers_the_configured_origin_only(api: Served, origin: str) -> None:
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}  # fmt: skip
    ok = httpx.options(f"{api.url}/stream-tickets", headers={"Origin": origin, **preflight})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == origin
    assert "access-control-allow-credentials" not in ok.headers  # no cookies cross origin
    evil = httpx.options(
        f"{api.url}/stream-tickets", headers={"Origin": "http://evil.example", **preflight}
    )
    assert "access-control-allow-origin" not in evil.headers


def card(new_page: Callable[..., Any], api: Served, origin: str, run_id: str, name: str) -> Any:
    page = new_page(width=600)
    failed: list[str] = []
    page.on("console", lambda m: failed.append(m.text) if m.type == "error" else None)
    page.failed = failed
    page.goto(f"{origin}/approval_card.html?api={api.url}&run={run_id}&key=manager")
    page.fill("#token", api.tokens[name])
    page.click("#signin button")
    page.wait_for_selector("#live:has-text('Live')")
    return page


def test_the_card_from_another_origin_updates_live_and_decides(
    api: Served, origin: str, new_page: Callable[..., Any], shots: Any
) -> None:
    run = api.start("refund", "card-1", amount=140, approvers=["alice", "bob"])
    api.pending(run.id, "manager")
    page = card(new_page, api, origin, run.id, "alice")
    assert page.locator("#summary").inner_text() == "Refund 140 EUR for order card-1"
    assert page.locator("#proposed dd").first.inner_text() == "140"
    shots(page, "card-pending")
    page.click("#decide button.reject")  # a rejection needs a reason: refused on the page
    assert page.locator("#message").inner_text() == "Say why you reject it."
    page.click("#decide button.approve")
    page.wait_for_selector("#status:has-text('approved by alice')")
    page.wait_for_selector("text=Your decision is recorded.")
    shots(page, "card-decided")
    decided = api.approval(run.id, "manager")
    assert (decided.status.value, decided.decided_by) == ("approved", "alice")
    assert page.failed == []

    other = api.start("refund", "card-2", amount=30, approvers=["alice", "bob"])
    approval = api.pending(other.id, "manager")
    page = card(new_page, api, origin, other.id, "alice")
    started = time.monotonic()
    api.call("reject", other.id, "manager", by="bob", reason="duplicate", digest=approval.digest)
    page.wait_for_selector("#status:has-text('rejected by bob')", timeout=2000)
    assert time.monotonic() - started < 2  # live, no reload
    assert page.locator("#decide button.approve").is_disabled()
    shots(page, "card-decided-elsewhere")
    assert page.failed == []
