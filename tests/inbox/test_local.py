"""`signoff serve --no-auth` (local use) on PostgreSQL: no token, a chosen name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.inbox.conftest import Served, serve

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def local(pg_url: str, tmp_path: Path) -> Iterator[Served]:
    yield from serve(pg_url, tmp_path, "--no-auth", "--log-level", "warning")


def test_local_use_on_postgres(local: Served, browser: Any) -> None:
    run = local.start("refund", "pg-1", amount=30, approvers=["alice"])
    local.pending(run.id, "manager")
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(local.url + "/")
        assert "Local use" in page.locator("header").inner_text()
        page.wait_for_selector(f"tr[data-run='{run.id}']")  # everyone's, without a name
        page.click("a:has-text('Choose a name')")
        page.fill("#name", "alice")
        page.click("form.signin button")
        page.wait_for_selector("text=Signed in as alice")
        page.click(f"tr[data-run='{run.id}'] a")
        page.click("button[value=approve]")
        page.wait_for_selector(".state-approved")
        assert local.approval(run.id, "manager").decided_by == "alice"
    finally:
        context.close()
