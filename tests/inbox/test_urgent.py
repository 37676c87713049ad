"""The inbox's order, overdue filter, "decided by me" tab and an approval's escalation
ladder, through the page's own controls in Chromium."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.inbox.conftest import Served

pytestmark = pytest.mark.slow


def ids(page: Any) -> list[str]:
    return [r.get_attribute("data-run") for r in page.locator("#inbox-body tr[data-run]").all()]


def test_most_urgent_first_overdue_filter_and_decided_by_me(
    server: Served, person: Callable[..., Any], shots: Callable[..., Any]
) -> None:
    none = server.start("timed", "Renew the support contract (no deadline)")
    late = server.start("timed", "Approve the Q3 travel budget", timeout="3d")
    soon = server.start("timed", "Refund 129 EUR to order 1042", timeout="1h")
    mid = server.start("timed", "Pay the Acme invoice #88", timeout="1d", escalate_after="2h")
    for run in (none, late, soon, mid):
        server.pending(run.id, "check")
    mine = [soon.id, mid.id, late.id, none.id]
    carol = person("carol")
    carol.goto(server.url + "/")
    assert [i for i in ids(carol) if i in mine] == mine  # soonest deadline first, none last
    assert carol.locator("select[name=order]").input_value() == "urgent"
    shots(carol, "inbox-urgent")
    carol.select_option("select[name=order]", "oldest")
    carol.click("button:has-text('Filter')")
    assert "order=oldest" in carol.url
    assert [i for i in ids(carol) if i in mine] == [none.id, late.id, soon.id, mid.id]
    # keyset pages in the urgent order: every one once, in order
    carol.goto(server.url + "/?limit=1")
    seen = ids(carol)
    while carol.locator("a[rel=next]").count():
        carol.click("a[rel=next]")
        seen += ids(carol)
    assert len(seen) == len(set(seen)) and [i for i in seen if i in mine] == mine
    # nothing of these is past its deadline
    carol.goto(server.url + "/")
    carol.check("input[name=overdue]")
    carol.click("button:has-text('Filter')")
    assert "overdue=1" in carol.url and not set(ids(carol)) & set(mine)
    # decide one; it is listed under "decided by me", newest first
    carol.goto(server.url + f"/inbox/approval?run={soon.id}&key=check")
    carol.click("button:has-text('Approve')")
    carol.wait_for_selector("text=Your decision is recorded")
    carol.goto(server.url + "/")
    carol.click("nav.tabs >> text=Decided by me")
    rows = carol.locator("#decided-body tr[data-run]")
    assert rows.first.get_attribute("data-run") == soon.id
    assert "approved" in rows.first.inner_text()
    assert int(carol.locator("#inbox-count").inner_text()) >= 1


def test_the_approval_page_shows_the_escalation_ladder(
    server: Served, person: Callable[..., Any], shots: Callable[..., Any]
) -> None:
    later = server.start("timed", "Pay the Beta invoice #12", timeout="1d", escalate_after="2h")
    now = server.start("timed", "Pay the Gamma invoice #7", timeout="1d", escalate_after="1s")
    server.pending(later.id, "check")
    server.pending(now.id, "check")
    carol = person("carol")
    carol.goto(server.url + f"/inbox/approval?run={later.id}&key=check")
    ladder = carol.locator("#escalation").inner_text()
    assert "Escalates to olga" in ladder and "left" in ladder and "Deadline" in ladder
    shots(carol, "approval-escalation")
    deadline = time.monotonic() + 10
    while not server.approval(now.id, "check").escalated:  # the server's worker escalates it
        assert time.monotonic() < deadline
        time.sleep(0.1)
    carol.goto(server.url + f"/inbox/approval?run={now.id}&key=check")
    assert "Escalated to olga" in carol.locator("#escalation").inner_text()
    olga = person("olga")  # and it is in olga's inbox now
    olga.goto(server.url + "/")
    assert now.id in ids(olga) and later.id not in ids(olga)
