"""Run pages for operators: find a run, follow its timeline live, cancel, see an error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.inbox.conftest import Served

pytestmark = pytest.mark.slow


def test_an_operator_follows_a_run_live_and_cancels_another(
    server: Served, person: Callable[..., Any], shots: Any
) -> None:
    run = server.start("refund", "ops-1", amount=12, approvers=["alice"])
    other = server.start("refund", "ops-2", amount=13, approvers=["alice"])
    for r in (run, other):
        server.pending(r.id, "manager")
    oscar = person("oscar")
    oscar.click("header a:has-text('Runs')")
    assert oscar.locator(f"a[href='/inbox/run?id={run.id}']").count() == 1
    oscar.fill("input[name=id]", run.id[:10])
    oscar.click("button:has-text('Open')")
    oscar.wait_for_selector("#run-status:has-text('waiting')")
    oscar.wait_for_selector("#live:has-text('Live')")
    assert "approval requested" in oscar.locator("#timeline").inner_text()
    server.call("approve", run.id, "manager", by="alice", reason="fine")
    oscar.wait_for_selector("#run-status:has-text('completed')", timeout=3000)  # no reload
    assert oscar.locator("button:has-text('Cancel the run')").count() == 0
    timeline = oscar.locator("#timeline").inner_text()
    assert "approval decided" in timeline and "run completed" in timeline and "fine" in timeline
    shots(oscar, "run-timeline")
    oscar.goto(server.url + f"/inbox/run?id={other.id}")
    oscar.fill("#cancel-reason", "customer withdrew")
    oscar.click("button:has-text('Cancel the run')")
    oscar.wait_for_selector("#run-status:has-text('cancelled')")
    assert server.call("get_run", other.id).status.value == "cancelled"


def test_a_failed_run_shows_its_error_and_readers_only(
    server: Served, person: Callable[..., Any]
) -> None:
    run = server.start("boom", "<b>disk</b> full")
    oscar = person("oscar")
    oscar.goto(server.url + f"/inbox/run?id={run.id}")
    oscar.wait_for_selector("#run-status:has-text('failed')", timeout=5000)
    error = oscar.locator("#run-live pre.error").first.inner_text()
    assert "RuntimeError" in error and "<b>disk</b> full" in error
    assert oscar.locator("button:has-text('Retry')").count() == 1
    carol = person("carol")  # decide only: no run pages
    assert carol.goto(server.url + "/inbox/runs").status == 403
    assert carol.goto(server.url + f"/inbox/run?id={run.id}").status == 404
