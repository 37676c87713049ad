"""What must not happen: a payload that runs, a cross-site post that decides, a person
deciding what is not theirs, a session outliving its token."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest

from tests.inbox.conftest import Served

pytestmark = pytest.mark.slow

HOSTILE = {
    "html": "<script>alert(1)</script><img src=x onerror=alert(2)>",
    "link": "[bank](javascript:alert(3))",
    "url": "javascript:alert(4)",
    "ta": "</textarea><script>alert(5)</script>",
    "rtl": "invoice\u202egnp.exe",
    "nested": {"list": ["<b>bold</b>", "\u200bhidden"]},
    "big": "x" * 1_000_000,
}
SUMMARY = "Pay \u202eevil</textarea><script>alert(6)</script>"


def test_a_hostile_payload_renders_inert(
    server: Served, person: Callable[..., Any], shots: Any
) -> None:
    run = server.start("payload", HOSTILE, SUMMARY)
    server.pending(run.id, "review")
    page = person("alice")
    page.reload()
    row = page.locator(f"tr[data-run='{run.id}']")
    assert "U+202E" in row.inner_text() and "<script>alert(6)</script>" in row.inner_text()
    response = page.goto(server.url + f"/inbox/approval?run={run.id}&key=review")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    fields = page.locator("dl.fields").first.inner_text()
    assert "<script>alert(1)</script><img src=x onerror=alert(2)>" in fields
    assert "invoice" in fields and "U+202E" in fields and "U+200B" in fields
    assert "999,400 more characters" in fields  # the 1 MB string is cut on the page
    page.click("summary:has-text('Raw JSON')")
    assert "U+202E" in page.locator("details.raw pre").inner_text()
    page.click("summary:has-text('Edit the value')")
    edited = page.input_value("#value-json")  # not plain fields: edited as JSON
    assert '"</textarea><script>alert(5)</script>"' in edited and len(edited) > 1_000_000
    counts = page.evaluate(
        """() => ({scripts: document.scripts.length,
                   images: document.images.length,
                   js_links: document.querySelectorAll('[href^="javascript"]').length,
                   bold: document.querySelectorAll('main b').length})"""
    )
    assert counts == {"scripts": 1, "images": 0, "js_links": 0, "bold": 0}
    page.click("summary:has-text('Edit the value')")
    page.click("summary:has-text('Raw JSON')")
    page.set_viewport_size({"width": 1100, "height": 1000})
    page.evaluate("window.scrollTo(0, 0)")
    shots(page, "approval-hostile", full=False)
    # the person fixture asserts that no dialog opened and no script error happened


def _form(page: Any) -> dict[str, str]:
    return {
        name: page.get_attribute(f"form.decision input[name={name}]", "value") or ""
        for name in ("csrf", "run", "key", "digest")
    }


def test_a_cross_site_post_is_refused(server: Served, person: Callable[..., Any]) -> None:
    run = server.start("refund", "csrf", approvers=["alice"])
    server.pending(run.id, "manager")
    page = person("alice")
    page.goto(server.url + f"/inbox/approval?run={run.id}&key=manager")
    form = _form(page)
    attack = f"""<!doctype html><form method="post" action="{server.url}/inbox/decide">
      <input name="run" value="{run.id}"><input name="key" value="manager">
      <input name="digest" value="{form["digest"]}"><input name="csrf" value="{form["csrf"]}">
      <button name="action" value="approve">Win a prize</button></form>"""
    page.route("http://evil.test/**", lambda r: r.fulfill(body=attack, content_type="text/html"))
    page.goto("http://evil.test/prize")
    with page.expect_response(lambda r: r.url.endswith("/inbox/decide")) as answer:
        page.click("button")
    assert answer.value.status == 403
    assert "did not come from this site" in page.locator("p.alert").inner_text()
    # with the session cookie and the right token, but from another origin: refused too
    body = urllib.parse.urlencode({**form, "action": "approve"})
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    for extra in ({"Origin": "http://evil.test"}, {"Sec-Fetch-Site": "cross-site"}):
        sent = page.context.request.post(
            server.url + "/inbox/decide", data=body, headers={**headers, **extra}
        )
        assert sent.status == 403
    no_token = urllib.parse.urlencode({**form, "csrf": "", "action": "approve"})
    assert page.context.request.post(server.url + "/inbox/decide", data=no_token,
                                     headers=headers).status == 403  # fmt: skip
    assert page.context.request.get(server.url + "/inbox/decide").status == 405
    assert server.approval(run.id, "manager").status.value == "pending"
    # the same request from the page itself goes through
    same = page.context.request.post(
        server.url + "/inbox/decide", data=body, headers={**headers, "Origin": server.url}
    )
    assert same.ok and server.approval(run.id, "manager").decided_by == "alice"


def test_who_may_not_decide_neither_sees_nor_decides(
    server: Served, person: Callable[..., Any]
) -> None:
    run = server.start("refund", "only-alice", approvers=["alice"])
    server.pending(run.id, "manager")
    carol = person("carol")
    carol.reload()
    assert carol.locator(f"tr[data-run='{run.id}']").count() == 0
    assert carol.locator("nav.tabs a:has-text('All pending')").count() == 0  # not without `read`
    carol.goto(server.url + "/?tab=all")
    assert carol.locator(f"tr[data-run='{run.id}']").count() == 0
    href = f"/inbox/approval?run={run.id}&key=manager"
    assert carol.goto(server.url + href).status == 404
    assert carol.locator("main").inner_text().count(run.id) == 0
    carol.goto(server.url + "/")
    csrf = carol.get_attribute("#bulk input[name=csrf]", "value")
    digest = server.approval(run.id, "manager").digest
    crafted = {"csrf": csrf, "run": run.id, "key": "manager", "digest": digest}
    statuses = carol.evaluate(
        """async ([form, item]) => {
            const post = async (url, fields) => (await fetch(url, {method: "POST",
                body: new URLSearchParams(fields)})).status;
            const bulk = await fetch("/inbox/bulk", {method: "POST", body: new URLSearchParams(
                [["csrf", form.csrf], ["action", "approve"], ["item", item]])});
            return [await post("/inbox/decide", {...form, action: "approve"}),
                    await post("/inbox/decide", {...form, action: "edit",
                                                 "field.amount": "1"}),
                    (await bulk.text()).includes("refused")];
        }""",
        [crafted, f'["{run.id}", "manager", "{digest}"]'],
    )
    assert statuses == [404, 404, True]
    outcome = carol.context.request.get(server.url + f"/inbox/outcome?run={run.id}&key=manager")
    assert outcome.status == 404
    assert server.approval(run.id, "manager").status.value == "pending"
    alice = person("alice")
    alice.goto(server.url + href)
    assert alice.locator("button[value=approve]").count() == 1


def test_sign_in_and_revocation(server: Served, browser: Any) -> None:
    token, secret = server.admin(lambda e: e.access.create_token("dave", ["decide"]))
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(server.url + "/")
        assert page.url.endswith("/inbox/signin")
        page.fill("#token", "so_not_a_real_token")
        page.click("form.signin button")
        assert "unknown or revoked" in page.locator("p.alert").inner_text()
        page.fill("#token", secret)
        page.click("form.signin button")
        page.wait_for_selector("text=Signed in as dave")
        cookie = next(c for c in context.cookies() if c["name"] == "signoff_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["expires"] > 0
        assert secret not in cookie["value"] and secret not in page.url
        server.admin(lambda e: e.access.revoke_token(token.id))
        page.reload()
        assert page.url.endswith("/inbox/signin")
        assert "so_" not in server.log.read_text()
    finally:
        context.close()
