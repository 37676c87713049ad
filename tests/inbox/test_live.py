"""Live updates: two people signed in side by side see each other's decisions, and new
requests arrive, without a reload."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.inbox.conftest import Served

pytestmark = pytest.mark.slow


def test_two_people_see_each_other_live(
    server: Served, person: Callable[..., Any], shots: Any
) -> None:
    alice, bob = person("alice"), person("bob")
    for page in (alice, bob):
        page.wait_for_selector("#live:has-text('Live')")
    before = int(bob.locator("#inbox-count").inner_text())
    started = time.monotonic()
    run = server.start("refund", "live-1", amount=77, approvers=["alice", "bob"])
    row = f"tr[data-run='{run.id}']"
    for page in (alice, bob):
        page.wait_for_selector(row, timeout=3000)
    assert time.monotonic() - started < 3  # includes the worker opening the request
    assert int(bob.locator("#inbox-count").inner_text()) == before + 1
    never = server.start("refund", "not-bob", approvers=["alice"])
    alice.wait_for_selector(f"tr[data-run='{never.id}']", timeout=3000)
    assert bob.locator(f"tr[data-run='{never.id}']").count() == 0
    alice.click(f"{row} a")
    decided = time.monotonic()
    alice.click("button[value=approve]")
    bob.wait_for_selector(f"{row}.left", timeout=2000)
    assert time.monotonic() - decided < 2
    assert bob.locator(f"{row} .note").inner_text() == "approved by alice"
    # the count falls with the row's note, before the row leaves
    assert int(bob.locator("#inbox-count").inner_text()) == before
    shots(bob, "inbox-live")
    bob.wait_for_selector(row, state="detached", timeout=5000)
    assert int(bob.locator("#inbox-count").inner_text()) == before


def test_the_approval_page_says_when_it_was_decided_elsewhere(
    server: Served, person: Callable[..., Any]
) -> None:
    run = server.start("refund", "elsewhere", approvers=["alice", "bob"])
    server.pending(run.id, "manager")
    bob = person("bob")
    bob.goto(server.url + f"/inbox/approval?run={run.id}&key=manager")
    time.sleep(0.3)  # the stream connects
    server.call("reject", run.id, "manager", by="alice", reason="duplicate")
    note = bob.locator("#live-note")
    note.wait_for(state="visible", timeout=3000)
    assert note.inner_text() == "Decided meanwhile: rejected by alice."
