"""signoff mounted inside a host application under `/approvals-ui`, the host's own
sign-in telling it who is looking (`create_app(engine, identify=...)`): pages, links,
static files, forms, redirects, the live stream and the cookie all stay under the prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.inbox.conftest import Served, serve

pytestmark = pytest.mark.slow
PREFIX = "/approvals-ui"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("host")
    db = f"sqlite:///{folder / 'host.db'}"
    yield from serve(db, folder, "--log-level", "warning", host_app="tests.inbox.host_app:app")


def signed_in(new_page: Callable[..., Any], host: Served, name: str) -> Any:
    page = new_page()
    outside: list[str] = []
    page.on(
        "request",
        lambda r: (
            outside.append(r.url)
            if not r.url.startswith(host.url + PREFIX + "/") and "/login" not in r.url
            else None
        ),
    )
    page.outside = outside
    page.goto(f"{host.url}/login?who={name}")  # the host's sign-in, then its redirect
    page.wait_for_selector("text=Signed in as")
    return page


def test_inbox_approval_decide_under_a_prefix(
    host: Served, new_page: Callable[..., Any], shots: Any
) -> None:
    run = host.start("refund", "mounted-1", amount=88, approvers=["alice"])
    host.pending(run.id, "manager")
    page = signed_in(new_page, host, "alice")
    assert page.url == f"{host.url}{PREFIX}/"
    styles = page.request.get(f"{host.url}{PREFIX}/inbox/static/inbox.css")
    assert styles.status == 200
    assert page.eval_on_selector("header.top", "e => getComputedStyle(e).display") == "flex"
    page.wait_for_selector("#live:has-text('Live')")  # the stream, under the prefix
    assert page.locator("form[action$='/inbox/signout']").count() == 0  # the host signs out
    shots(page, "mounted-inbox")
    late = host.start("refund", "mounted-2", amount=9, approvers=["alice"])
    page.wait_for_selector(f"tr[data-run='{late.id}']", timeout=3000)  # arrives live
    page.click(f"tr[data-run='{run.id}'] a")
    assert page.url.startswith(f"{host.url}{PREFIX}/inbox/approval?")
    page.click("button[value=approve]")
    page.wait_for_selector("text=Your decision is recorded.")
    assert page.url.startswith(f"{host.url}{PREFIX}/inbox/approval?")  # redirected in place
    shots(page, "mounted-decided")
    decided = host.approval(run.id, "manager")
    assert (decided.status.value, decided.decided_by) == ("approved", "alice")
    page.click("a:has-text('Inbox')")
    assert page.url == f"{host.url}{PREFIX}/"
    assert page.locator(f"tr[data-run='{run.id}']").count() == 0
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["signoff_session"]["path"] == PREFIX
    assert page.outside == [], page.outside  # no link or fetch left the prefix


def test_runs_and_the_run_stream_by_the_host_session(
    host: Served, new_page: Callable[..., Any], shots: Any
) -> None:
    run = host.start("refund", "mounted-3", amount=12, approvers=["olga"])
    host.pending(run.id, "manager")
    page = signed_in(new_page, host, "olga")  # the host gives olga `read`
    page.click("nav a:has-text('Runs')")
    page.fill("input[name=id]", run.id[:10])
    page.click("button:has-text('Open')")
    page.wait_for_selector(f"#run-live[data-run='{run.id}']")
    assert page.url.startswith(f"{host.url}{PREFIX}/inbox/run?")
    shots(page, "mounted-run")
    # the API's run stream, same origin, by the session (no token in the page)
    first = page.evaluate(
        """url => new Promise((resolve, reject) => {
             const source = new EventSource(url);
             source.addEventListener("waiting_for_input", e => {
               source.close();
               resolve(e.data);
             });
             source.onerror = () => { source.close(); reject(new Error("stream refused")); };
           })""",
        f"{PREFIX}/runs/{run.id}/stream",
    )
    assert '"key":"manager"' in first
    assert page.outside == [], page.outside


def test_not_signed_in_at_the_host_means_token_sign_in(
    host: Served, new_page: Callable[..., Any]
) -> None:
    page = new_page()
    page.goto(f"{host.url}{PREFIX}/")
    page.wait_for_selector("form.signin")
    assert page.url == f"{host.url}{PREFIX}/inbox/signin"
    assert page.request.get(f"{host.url}{PREFIX}/runs/x/stream").status == 401
