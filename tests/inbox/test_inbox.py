"""The inbox list: filters, keyset pages and counts, through the page's own controls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.inbox.conftest import Served

pytestmark = pytest.mark.slow


def ids(page: Any) -> list[str]:
    return [r.get_attribute("data-run") for r in page.locator("#inbox-body tr[data-run]").all()]


def test_filters_pages_and_counts(server: Served, person: Callable[..., Any]) -> None:
    refunds = [server.start("refund", f"page-{i}", approvers=["carol"]) for i in range(3)]
    paid = server.start("revised", [5])  # role:finance, carol is in it
    for run in refunds:
        server.pending(run.id, "manager")
    server.pending(paid.id, "manager")
    carol = person("carol")
    carol.goto(server.url + "/?limit=2")
    total = int(carol.locator("#inbox-count").inner_text())
    assert total >= 4
    seen = ids(carol)
    while carol.locator("a[rel=next]").count():
        carol.click("a[rel=next]")
        assert int(carol.locator("#inbox-count").inner_text()) == total  # counts every match
        seen += ids(carol)
    assert len(seen) == len(set(seen)) == total  # oldest first, no repeats, none missed
    assert {r.id for r in refunds} | {paid.id} <= set(seen)
    carol.goto(server.url + "/")
    carol.fill("input[name=workflow]", "revised")
    carol.click("button:has-text('Filter')")
    assert paid.id in ids(carol) and not {r.id for r in refunds} & set(ids(carol))
    carol.goto(server.url + "/?role=finance")
    assert paid.id in ids(carol) and refunds[0].id not in ids(carol)
    carol.goto(server.url + "/?older_than=1h")
    assert ids(carol) == []
    assert carol.goto(server.url + "/?older_than=soon").status == 400
    assert "soon" in carol.locator("p.alert").inner_text()
    assert carol.goto(server.url + "/?cursor=garbage").status == 400
