"""axe-core (vendored from npm) run in the page: no serious or critical violations on the
inbox, a request with its edit form open, a run page, and the sign-in page; and the
inbox works on a phone-sized screen."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.inbox.conftest import Served

pytestmark = pytest.mark.slow
AXE = (Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js").read_text()


def violations(page: Any) -> list[str]:
    page.add_script_tag(content=AXE)  # the context bypasses the CSP for this alone
    found = page.evaluate("async () => (await axe.run(document)).violations")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def test_no_serious_accessibility_violations(
    server: Served, person: Callable[..., Any], browser: Any
) -> None:
    run = server.start("refund", "a11y", amount=5, approvers=["olga"])
    server.pending(run.id, "manager")
    page = person("olga", bypass_csp=True)
    page.reload()
    assert violations(page) == []
    page.goto(server.url + f"/inbox/approval?run={run.id}&key=manager")
    page.click("summary:has-text('Edit the value')")
    assert violations(page) == []
    page.goto(server.url + f"/inbox/run?id={run.id}")
    assert violations(page) == []
    page.goto(server.url + "/inbox/runs")
    assert violations(page) == []
    context = browser.new_context(bypass_csp=True)
    try:
        signin = context.new_page()
        signin.goto(server.url + "/inbox/signin")
        assert violations(signin) == []
    finally:
        context.close()


def test_a_phone_and_the_keyboard(server: Served, person: Callable[..., Any], shots: Any) -> None:
    run = server.start("refund", "phone", amount=8, approvers=["bob"])
    server.pending(run.id, "manager")
    page = person("bob", width=390)
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
    shots(page, "inbox-phone")
    link = page.locator(f"tr[data-run='{run.id}'] a")
    link.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("h1#summary")
    page.focus("#reason")
    page.keyboard.type("checked on the phone")
    page.keyboard.press("Tab")  # to Approve
    assert page.evaluate("document.activeElement.textContent") == "Approve"
    page.keyboard.press("Enter")
    page.wait_for_selector(".state-approved")
    assert server.approval(run.id, "manager").reason == "checked on the phone"
