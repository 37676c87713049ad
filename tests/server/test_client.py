"""AsyncClient against the app in process: the engine's operations and typed errors."""

from __future__ import annotations

import httpx
import pytest

import signoff
from tests.server.conftest import Api, start_waiting


def client_for(api: Api, who: str) -> signoff.AsyncClient:
    return signoff.AsyncClient("http://test", api.tokens[who],
                               transport=httpx.ASGITransport(app=api.app))  # fmt: skip


async def test_async_client_operations(api: Api) -> None:
    async with client_for(api, "admin") as c:
        run = await c.start("refund", "ord-1", amount=5, run_id="fixed")
        assert run.id == "fixed" and run.status in ("pending", "running", "waiting")
        assert (await c.start("refund", "ord-1", amount=5, run_id="fixed")).id == "fixed"
        await api.engine.settle("fixed", timeout=10)
        [pending] = await c.pending_approvals(workflow="refund")
        assert pending.proposed == {"amount": 5} and pending.status == "pending"
        assert (await c.approvals("fixed"))[0].key == "manager"
        decision = await c.request_changes("fixed", "manager", reason="more detail")
        assert decision.status == "changes_requested" and decision.by == "admin"
        assert (await c.result("fixed", timeout=10))["status"] == "changes_requested"
        docs = await c.start("docs")
        await c.signal(docs.id, "docs", [1, 2])
        assert await c.result(docs.id, timeout=10) == [1, 2]
        other = await c.start("docs")
        assert (await c.cancel(other.id, reason="stop")).status == "cancelled"
        with pytest.raises(signoff.RunCancelled):
            await c.result(other.id, timeout=1)
        boom = await c.start("boom")
        with pytest.raises(signoff.RunFailed):
            await c.result(boom.id, timeout=10, poll_interval=0.02)
        assert (await c.retry(boom.id)).status in ("pending", "running", "failed")
        assert await c.notify("nothing-waits", 1) == []
        page = await c.list_runs(limit=2)
        assert len(page) == 2 and page.next_cursor is not None
        rest = await c.list_runs(limit=10, cursor=page.next_cursor)
        assert {r.id for r in page} & {r.id for r in rest} == set()


async def test_async_client_raises_typed_errors(api: Api) -> None:
    run_id = await start_waiting(api)
    async with client_for(api, "alice") as c:
        with pytest.raises(signoff.RunNotFound):
            await c.get_run("nope")
        with pytest.raises(signoff.WorkflowNotFound):
            await client_for(api, "admin").start("nope")
        await c.approve(run_id, "manager")
        with pytest.raises(signoff.DecisionConflict) as exc:
            await c.reject(run_id, "manager")
        assert exc.value.run_id == run_id and exc.value.decision is not None
        with pytest.raises(signoff.InvalidArgument):
            await c.approve(run_id, "manager", reason="nul\u0000")
        with pytest.raises(signoff.ApiError) as denied:
            await c.start("docs")
        assert denied.value.http_status == 403 and denied.value.problem_code == "forbidden"
    async with signoff.AsyncClient("http://test", "so_bad",
                                   transport=httpx.ASGITransport(app=api.app)) as bad:  # fmt: skip
        with pytest.raises(signoff.ApiError) as unauth:
            await bad.get_run(run_id)
        assert unauth.value.http_status == 401


async def test_the_client_filters_and_pages_the_inbox(api: Api) -> None:
    from datetime import timedelta

    runs = [await start_waiting(api, f"o{i}") for i in range(3)]
    async with client_for(api, "reader") as c:
        first = await c.pending_approvals(limit=2, key_prefix="man", older_than=timedelta(0))
        assert len(first) == 2 and first.next_cursor is not None
        rest = await c.pending_approvals(limit=2, cursor=first.next_cursor)
        assert [a.run_id for a in [*first, *rest]] == runs and rest.next_cursor is None
        assert await c.pending_approvals(older_than=timedelta(days=12)) == []
        assert await c.pending_approvals(approver="nobody", role="finance") == []
        with pytest.raises(signoff.BadCursor) as bad:  # the API's code maps to our error
            await c.pending_approvals(cursor="garbage!")
        assert bad.value.code == "bad_cursor"
        with pytest.raises(signoff.BadCursor):
            await c.list_runs(cursor="garbage!")
