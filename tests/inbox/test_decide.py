"""An approver decides in the browser: approve, reject with a reason, request changes,
edit (an invalid edit refused beside its field), a stale page refused, bulk decisions."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from tests.inbox.conftest import Served

pytestmark = __import__("pytest").mark.slow


def order() -> str:
    return uuid.uuid4().hex[:8]


def open_request(page: Any, summary: str) -> None:
    page.goto(page.url.split("/inbox")[0].rstrip("/") + "/")
    page.click(f"a:has-text('{summary}')")
    page.wait_for_selector("h1#summary")


def finished(server: Served, run_id: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        run = server.call("get_run", run_id)
        if run.status.finished:
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.02)


def test_approve(server: Served, person: Callable[..., Any]) -> None:
    o = order()
    run = server.start("refund", o, amount=40)
    server.pending(run.id, "manager")
    page = person("alice")
    page.reload()
    row = page.locator(f"tr[data-run='{run.id}']")
    assert "Refund 40 EUR for order " + o in row.inner_text()
    open_request(page, f"order {o}")
    assert page.locator("dl.fields").inner_text().split() == [
        "amount", "40", "currency", "EUR", "note", "order", o,
    ]  # fmt: skip
    page.click("button[value=approve]")
    page.wait_for_selector(".state-approved")
    assert "approved by alice" in page.locator("p.state").inner_text()
    result = finished(server, run.id).result
    assert result == {"status": "approved", "value": {"amount": 40, "currency": "EUR",
                                                       "note": f"order {o}"}}  # fmt: skip
    page.goto(server.url + "/")
    assert page.locator(f"tr[data-run='{run.id}']").count() == 0


def test_reject_needs_a_reason(server: Served, person: Callable[..., Any]) -> None:
    o = order()
    run = server.start("refund", o)
    server.pending(run.id, "manager")
    page = person("bob")
    open_request(page, f"order {o}")
    response_status = []
    page.on("response", lambda r: response_status.append(r.status) if "decide" in r.url else None)
    page.click("button[value=reject]")
    page.wait_for_selector("#err-reason")
    assert "Say why you reject it" in page.locator("#err-reason").inner_text()
    assert page.get_attribute("#reason", "aria-invalid") == "true"
    assert response_status == [422]
    assert server.approval(run.id, "manager").status.value == "pending"
    page.fill("#reason", "outside the 30-day window")
    page.click("button[value=reject]")
    page.wait_for_selector(".state-rejected")
    assert "outside the 30-day window" in page.locator("p.state").inner_text()
    decided = server.approval(run.id, "manager")
    assert (decided.decided_by, decided.reason) == ("bob", "outside the 30-day window")


def test_invalid_edit_is_refused_beside_its_field(
    server: Served, person: Callable[..., Any], shots: Any
) -> None:
    o = order()
    run = server.start("refund", o, amount=40)
    server.pending(run.id, "manager")
    page = person("alice")
    open_request(page, f"order {o}")
    page.click("summary:has-text('Edit the value')")
    assert page.locator("#edit-diff").inner_text() == "No changes yet."
    page.fill("input[name='field.amount']", "-5")
    assert "amount: 40 → -5" in page.locator("#edit-diff").inner_text()  # before confirming
    page.click("button:has-text('Approve with these changes')")
    error = page.locator(".field:has(input[name='field.amount']) .field-error")
    assert "-5 is less than the minimum of 0" in error.inner_text()
    assert page.get_attribute("input[name='field.amount']", "aria-invalid") == "true"
    assert page.input_value("input[name='field.amount']") == "-5"
    shots(page, "approval-edit-refused")
    page.fill("input[name='field.amount']", "twelve")
    page.click("button:has-text('Approve with these changes')")
    assert "whole number" in error.inner_text()
    assert server.approval(run.id, "manager").status.value == "pending"
    page.fill("input[name='field.amount']", "12")
    page.fill("#edit-reason", "partial refund")
    assert page.locator("#edit-diff li").all_inner_texts() == ["amount: 40 → 12"]
    page.click("button:has-text('Approve with these changes')")
    page.wait_for_selector(".state-edited")
    assert finished(server, run.id).result["value"] == {
        "amount": 12, "currency": "EUR", "note": f"order {o}",
    }  # fmt: skip


def test_request_changes_then_a_stale_page_is_refused(
    server: Served, person: Callable[..., Any], shots: Any
) -> None:
    run = server.start("revised", [700, 650, 600])
    server.pending(run.id, "manager")
    alice, carol = person("alice"), person("carol")  # both in role:finance
    open_request(alice, "Pay 700")
    open_request(carol, "Pay 700")
    carol.click("button[value=request_changes]")
    assert "Say what should change" in carol.locator("#err-reason").inner_text()
    carol.fill("#reason", "too much; try 650")
    carol.click("button[value=request_changes]")
    carol.wait_for_selector("text=changes requested by carol")
    server.pending(run.id, "manager")  # round 2 opened
    alice.click("button[value=approve]")  # on the page of round 1
    alice.wait_for_selector("#alert")
    assert "changed since you opened it" in alice.locator("#alert").inner_text()
    assert alice.locator("h1#summary").inner_text() == "Pay 650"
    assert "too much; try 650" in alice.locator("ul.rounds").inner_text()
    shots(alice, "approval-stale")
    assert server.approval(run.id, "manager").status.value == "pending"
    alice.click("button[value=approve]")  # the new version, with its own digest
    alice.wait_for_selector(".state-approved")
    assert finished(server, run.id).result == "approved"


def test_bulk_approve_reports_each_refusal(
    server: Served, person: Callable[..., Any], shots: Any
) -> None:
    """Olga (read and decide) selects five from all pending requests; one does not name
    her, so its policy refuses her, and the page says so for that one alone."""
    names = ["alice", "olga"]
    runs = [server.start("refund", f"bulk-{i}", amount=10 + i, approvers=names) for i in range(4)]
    other = server.start("refund", "bulk-other", amount=99, approvers=["alice"])
    for run in [*runs, other]:
        server.pending(run.id, "manager")
    page = person("olga")
    page.click("nav.tabs a:has-text('All pending')")
    for run in [*runs, other]:
        page.check(f"tr[data-run='{run.id}'] input[name=item]")
    page.fill("#bulk-reason", "routine refunds")
    shots(page, "inbox")
    page.click("button:has-text('Approve selected')")
    page.wait_for_selector("ul.results")
    shots(page, "bulk-result")
    assert page.locator("h1").inner_text() == "Approved: 4 of 5"
    refused = page.locator("li.refused")
    assert refused.count() == 1 and other.id in refused.inner_text()
    assert "you may not decide it" in refused.inner_text()
    for run in runs:
        decided = server.approval(run.id, "manager")
        assert (decided.decided_by, decided.reason) == ("olga", "routine refunds")
    assert server.approval(other.id, "manager").status.value == "pending"


def test_answer_a_question(
    server: Served, person: Callable[..., Any], shots: Callable[[Any, str], Any]
) -> None:
    o = order()
    run = server.start("question", o)
    server.pending(run.id, "where")
    page = person("alice")
    open_request(page, f"order {o}?")
    assert page.locator("h2#decide-h").inner_text() == "Answer"
    assert page.locator("button[value=approve]").count() == 0  # a question is answered
    page.click("button[name=send]")  # empty: refused beside the field, nothing recorded
    page.wait_for_selector("#err-answer")
    assert server.approval(run.id, "where").status == "pending"
    page.fill("textarea[name='field.answer']", "Leeds")
    shots(page, "question")
    page.set_viewport_size({"width": 390, "height": 800})  # a phone
    shots(page, "question-phone")
    page.set_viewport_size({"width": 1100, "height": 800})
    page.click("button[name=send]")
    page.wait_for_selector(".state-edited")
    assert finished(server, run.id).result == "Leeds"
