"""`Client` and `AsyncClient`: the engine's operations over the HTTP API (httpx).

```python
client = signoff.Client("http://localhost:8000", token="so_...")
page = client.pending_approvals(approver="alice")      # what alice may decide
shown = page[0]
client.approve(shown.run_id, shown.key, digest=shown.digest, reason="ok")
```
Records are the engine's own (`models.Run`, `models.Approval`, `models.Decision`,
`models.HistoryEntry`), parsed with pydantic `TypeAdapter`s over those dataclasses, so
the client returns every field the server sends. Errors come back as the matching
`signoff.errors` class, found by the problem's `code` (`RunNotFound`, `DecisionConflict`,
`StaleDigest` with `.current_digest`, ...); anything else as `ApiError` with its status.

`AsyncClient` is the one written by hand; `Client` below it is generated from it
(`python -m tests.server.unasync_client` rewrites it, and a test fails when it is out of
date), so the two cannot drift.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from datetime import timedelta
from typing import Any, Literal

import httpx
from pydantic import TypeAdapter

from signoff import errors, models

_SETTLED = frozenset({models.RunStatus.WAITING, models.RunStatus.COMPLETED,
                      models.RunStatus.FAILED, models.RunStatus.CANCELLED})  # fmt: skip
_BY_CODE: dict[str, type[errors.SignoffError]] = {}


def _collect(cls: type[errors.SignoffError]) -> None:
    _BY_CODE.setdefault(cls.code, cls)
    for sub in cls.__subclasses__():
        _collect(sub)


_collect(errors.SignoffError)

RUN = TypeAdapter(models.Run)
APPROVAL = TypeAdapter(models.Approval)
APPROVALS = TypeAdapter(list[models.Approval])
DECISION = TypeAdapter(models.Decision)
HISTORY = TypeAdapter(list[models.HistoryEntry])


class ApiError(errors.SignoffError):
    """The HTTP API answered with an error that has no matching library error."""

    code = "api_error"

    def __init__(self, message: str | None = None, **attrs: Any) -> None:
        self.http_status: int = attrs.pop("http_status", 0)
        self.problem_code: str = attrs.pop("problem_code", "")
        self.problem: dict[str, Any] = attrs.pop("problem", {})
        super().__init__(message, **attrs)


RunPage = models.RunPage  # one page shape: the engine's, the API's and the client's


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        problem = response.json()
        if not isinstance(problem, dict):
            raise ValueError(problem)
    except ValueError:
        problem = {"detail": response.text[:500] or response.reason_phrase, "code": ""}
    code = str(problem.get("code", ""))
    detail = str(problem.get("detail") or response.reason_phrase)
    attrs: dict[str, Any] = {"run_id": problem.get("run_id"), "key": problem.get("key")}
    cls = _BY_CODE.get(code)
    if cls is None or cls is errors.SignoffError:
        raise ApiError(
            f"HTTP {response.status_code}: {detail}",
            http_status=response.status_code,
            problem_code=code,
            problem=problem,
            **attrs,
        )
    if issubclass(cls, errors.DecisionConflict) and problem.get("decision"):
        attrs["decision"] = DECISION.validate_python(problem["decision"])
    if "current_digest" in problem:
        attrs["current_digest"] = problem["current_digest"]
    raise cls(detail, **attrs)


def _finished(run: models.Run, run_id: str) -> Any:
    if run.status is models.RunStatus.FAILED:
        error = run.error or {}
        raise errors.RunFailed(
            f"run {run_id} failed: {error.get('type')}: {error.get('message')}",
            run_id=run_id,
            error=error,
        )
    if run.status is models.RunStatus.CANCELLED:
        raise errors.RunCancelled(f"run {run_id} was cancelled", run_id=run_id)
    return run.result


def _q(part: str) -> str:
    """A path segment, quoted: ids and keys may hold `/` (chain stages: `refund/manager`)."""
    return urllib.parse.quote(part, safe="")


def _params(**given: Any) -> dict[str, Any]:
    """Query parameters, leaving out those not given."""
    out: dict[str, Any] = {}
    for name, value in given.items():
        if isinstance(value, timedelta):
            value = f"{int(value.total_seconds())}s"
        if value is not None:
            out[name] = str(value)
    return out


def _decision_body(
    action: str, value: Any, reason: str | None, digest: str | None, by: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"action": action}
    if action in ("edit", "answer"):
        body["value"] = value
    for name, given in (("reason", reason), ("digest", digest), ("by", by)):
        if given is not None:
            body[name] = given
    return body


def _approval_page(data: dict[str, Any]) -> models.ApprovalPage:
    return models.ApprovalPage(
        APPROVALS.validate_python(data["items"]), next_cursor=data.get("next_cursor")
    )


def _run_page(data: dict[str, Any]) -> RunPage:
    items = [RUN.validate_python(r) for r in data["items"]]
    return RunPage(items, next_cursor=data.get("next_cursor"))


# --- AsyncClient begins: the sync `Client` is generated from this part ---
class AsyncClient:
    """The engine's operations over HTTP (async). Use `async with`, or call `aclose()`."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kw: Any) -> Any:
        response = await self._http.request(method, path, **kw)
        _raise_for(response)
        return response.json()

    async def start(
        self,
        workflow: str,
        *args: Any,
        run_id: str | None = None,
        requested_by: str | None = None,
        **kwargs: Any,
    ) -> models.Run:
        """Start a run; `run_id` makes it idempotent. `requested_by` other than the token's
        name needs the admin scope (with auth off it names the requester)."""
        body: dict[str, Any] = {"workflow": workflow, "args": list(args), "kwargs": kwargs}
        if run_id is not None:
            body["run_id"] = run_id
        if requested_by is not None:
            body["requested_by"] = requested_by
        return RUN.validate_python(await self._call("POST", "/runs", json=body))

    async def get_run(self, run_id: str) -> models.Run:
        return RUN.validate_python(await self._call("GET", f"/runs/{_q(run_id)}"))

    async def list_runs(
        self,
        *,
        status: models.RunStatus | str | None = None,
        workflow: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> RunPage:
        """One page of runs, newest first (`.next_cursor` for the next one)."""
        params = _params(status=status, workflow=workflow, limit=limit, cursor=cursor)
        return _run_page(await self._call("GET", "/runs", params=params))

    async def history(self, run_id: str) -> list[models.HistoryEntry]:
        return HISTORY.validate_python(await self._call("GET", f"/runs/{_q(run_id)}/history"))

    async def cancel(self, run_id: str, *, reason: str | None = None) -> models.Run:
        body = {"reason": reason} if reason is not None else {}
        return RUN.validate_python(
            await self._call("POST", f"/runs/{_q(run_id)}/cancel", json=body)
        )

    async def retry(self, run_id: str) -> models.Run:
        return RUN.validate_python(await self._call("POST", f"/runs/{_q(run_id)}/retry"))

    async def signal(self, run_id: str, name: str, data: Any = None) -> None:
        await self._call("POST", f"/runs/{_q(run_id)}/signals/{_q(name)}", json={"data": data})

    async def notify(self, key: str, data: Any = None) -> list[str]:
        """Publish an event on `key`; returns the ids of the runs it woke."""
        found = await self._call("POST", "/events", json={"key": key, "data": data})
        return list(found["woken"])

    async def pending_approvals(
        self,
        *,
        approver: str | None = None,
        role: str | None = None,
        workflow: str | None = None,
        key_prefix: str | None = None,
        run_id: str | None = None,
        older_than: str | timedelta | None = None,
        overdue: bool = False,
        order: Literal["oldest", "urgent"] = "oldest",
        limit: int = 100,
        cursor: str | None = None,
    ) -> models.ApprovalPage:
        """One page of the inbox, oldest first or `order="urgent"` (`.next_cursor` for
        the next one); see `Engine.pending_approvals`. Values over 64 KiB come truncated
        (`$truncated`); `get_approval` returns one whole."""
        params = _params(
            approver=approver,
            role=role,
            workflow=workflow,
            key_prefix=key_prefix,
            run_id=run_id,
            older_than=older_than,
            overdue="true" if overdue else None,
            order=None if order == "oldest" else order,
            limit=limit,
            cursor=cursor,
        )
        return _approval_page(await self._call("GET", "/approvals", params=params))

    async def approvals(self, run_id: str) -> list[models.Approval]:
        """Every approval round of the run."""
        path = f"/runs/{_q(run_id)}/approvals"
        return APPROVALS.validate_python(await self._call("GET", path))

    async def get_approval(self, run_id: str, key: str) -> models.Approval:
        """The approval's latest round, whole, with the `digest` to decide on."""
        path = f"/runs/{_q(run_id)}/approvals/{_q(key)}"
        return APPROVAL.validate_python(await self._call("GET", path))

    async def _decide(
        self, run_id: str, key: str, body: dict[str, Any], idempotency_key: str | None
    ) -> models.Decision:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        path = f"/runs/{_q(run_id)}/approvals/{_q(key)}/decision"
        return DECISION.validate_python(await self._call("POST", path, json=body, headers=headers))

    async def approve(
        self,
        run_id: str,
        key: str,
        *,
        reason: str | None = None,
        digest: str | None = None,
        by: str | None = None,
        idempotency_key: str | None = None,
    ) -> models.Decision:
        """Approve as the token's name. `digest`: the `Approval.digest` you were shown
        (a stale one raises `StaleDigest`). `by` only with auth off (who decides)."""
        body = _decision_body("approve", None, reason, digest, by)
        return await self._decide(run_id, key, body, idempotency_key)

    async def reject(
        self,
        run_id: str,
        key: str,
        *,
        reason: str | None = None,
        digest: str | None = None,
        by: str | None = None,
        idempotency_key: str | None = None,
    ) -> models.Decision:
        body = _decision_body("reject", None, reason, digest, by)
        return await self._decide(run_id, key, body, idempotency_key)

    async def edit(
        self,
        run_id: str,
        key: str,
        value: Any,
        *,
        reason: str | None = None,
        digest: str | None = None,
        by: str | None = None,
        idempotency_key: str | None = None,
    ) -> models.Decision:
        """Approve with a changed value."""
        body = _decision_body("edit", value, reason, digest, by)
        return await self._decide(run_id, key, body, idempotency_key)

    async def answer(
        self,
        run_id: str,
        key: str,
        answer: Any,
        *,
        digest: str | None = None,
        by: str | None = None,
        idempotency_key: str | None = None,
    ) -> models.Decision:
        """Answer a question the workflow asked with `ctx.ask`."""
        body = _decision_body("answer", answer, None, digest, by)
        return await self._decide(run_id, key, body, idempotency_key)

    async def request_changes(
        self,
        run_id: str,
        key: str,
        *,
        reason: str | None = None,
        digest: str | None = None,
        by: str | None = None,
        idempotency_key: str | None = None,
    ) -> models.Decision:
        body = _decision_body("request_changes", None, reason, digest, by)
        return await self._decide(run_id, key, body, idempotency_key)

    async def settle(
        self, run_id: str, *, timeout: float | None = 30.0, poll_interval: float = 0.2
    ) -> models.Run:
        """Poll until the run waits for something (a decision, a signal) or has finished,
        and return it; `TimeoutError` after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = await self.get_run(run_id)
            if run.status in _SETTLED:
                return run
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {run_id} is still {run.status} after {timeout}s")
            await asyncio.sleep(poll_interval)

    async def result(
        self, run_id: str, *, timeout: float | None = None, poll_interval: float = 0.2
    ) -> Any:
        """Poll until the run finishes; its result, or `RunFailed`/`RunCancelled`, or
        `TimeoutError` after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = await self.get_run(run_id)
            if run.status.finished:
                return _finished(run, run_id)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {run_id} is still {run.status} after {timeout}s")
            await asyncio.sleep(poll_interval)


# --- AsyncClient ends ---


# --- generated from AsyncClient by tests/server/unasync_client.py; do not edit ---
class Client:
    """The engine's operations over HTTP (blocking). Use `with`, or call `close()`."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        response = self._http.request(method, path, **kw)
        _raise_for(response)
        return response.json()

    def start(
        self,
        workflow: str,
        *args: Any,
        run_id: str | None = None,
        requested_by: str | None = None,
        **kwargs: Any,
    ) -> models.Run:
        """Start a run; `run_id` makes it idempotent. `requested_by` other than the token's
        name needs the admin scope (with auth off it names the requester)."""
        body: dict[str, Any] = {"workflow": workflow, "args": list(args), "kwargs": kwargs}
        if run_id is not None:
            body["run_id"] = run_id
        if requested_by is not None:
            body["requested_by"] = requested_by
        return RUN.validate_python(self._call("POST", "/runs", json=body))

    def get_run(self, run_id: str) -> models.Run:
        return RUN.validate_python(self._call("GET", f"/runs/{_q(run_id)}"))

    def list_runs(
        self,
        *,
        status: models.RunStatus | str | None = None,
        workflow: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> RunPage:
        """One page of runs, newest first (`.next_cursor` for the next one)."""
        params = _params(status=status, workflow=workflow, limit=limit, cursor=cursor)
        return _run_page(self._call("GET", "/runs", params=params))

    def history(self, run_id: str) -> list[models.HistoryEntry]:
        return HISTORY.validate_python(self._call("GET", f"/runs/{_q(run_id)}/history"))

    def cancel(self, run_id: str, *, reason: str | None = None) -> models.Run:
        body = {"reason": reason} if reason is not None else {}
        return RUN.validate_python(self._call("POST", f"/runs/{_q(run_id)}/cancel", json=body))

    def retry(self, run_id: str) -> models.Run:
        return RUN.validate_python(self._call("POST", f"/runs/{_q(run_id)}/retry"))

    def signal(self, run_id: str, name: str, data: Any = None) -> None:
        self._call("POST", f"/runs/{_q(run_id)}/signals/{_q(name)}", json={"data": data})

    def notify(self, key: str, data: Any = None) -> list[str]:
        """Publish an event on `key`; returns the ids of the runs it woke."""
        found = self._call("POST", "/events", json={"key": key, "data": data})
        return list(found["woken"])

    def pending_approvals(
        self,
        *,
        approver: str | None = None,
        role: str | None = None,
        workflow: str | None = None,
        key_prefix: str | None = None,
        run_id: str | None = None,
        older_than: str | timedelta | None = None,
        overdue: bool = False,
        order: Literal["oldest", "urgent"] = "oldest",
        limit: int = 100,
        cursor: str | None = None,
    ) -> models.ApprovalPage:
        """One page of the inbox, oldest first or `order="urgent"` (`.next_cursor` for
        the next one); see `Engine.pending_approvals`. Values over 64 KiB come truncated
        (`$truncated`); `get_approval` returns one whole."""
        params = _params(
            approver=approver,
            role=role,
            workflow=workflow,
            key_prefix=key_prefix,
            run_id=run_id,
            older_than=older_than,
            overdue="true" if overdue else None,
            order=None if order == "oldest" else order,
            limit=limit,
            cursor=cursor,
        )
        return _approval_page(self._call("GET", "/approvals", params=params))

    def approvals(self, run_id: str) -> list[models.Approval]:
        """Every approval round of the run."""
        path = f"/runs/{_q(run_id)}/approvals"
        return APPROVALS.validate_python(self._call("GET", path))

    def get_approval(self, run_id: str, key: str) -> models.Approval:
        """The approval's latest round, whole, with the `digest` to decide on."""
        path = f"/runs/{_q(run_id)}/approvals/{_q(key)}"
        return APPROVAL.validate_python(self._call("GET", path))

    def _decide(
        self, run_id: str, key: str, body: dict[str, Any], idempotency_key: str | None
    ) -> models.Decision:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        path = f"/runs/{_q(run_id)}/approvals/{_q(key)}/decision"
        return DECISION.validate_python(self._call("POST", path, json=body, headers=headers))

    def approve(
        self,
        run_id: str,
        key: str,
        *,
        reason: str | None = None,
        digest: str | None = None,
        by: str | None = None,
        idempotency_key: str | None = None,
    ) -> models.Decision:
        """Approve as the token's name. `digest`: the `Approval.digest` you were shown
        (a stale one raises `StaleDigest`). `by` only with auth off (who decides)."""
        body = _decision_body("approve", None, reason, digest, by)
        return self._decide(run_id, key, body, idempotency_key)

    def reject(
        self,
        run_id: str,
        key: str,
        *,
        reason: str | None = None,
        digest: str | None = None,
        by: str | None = None,
        idempotency_key: str | None = None,
    ) -> models.Decision:
        body = _decision_body("reject", None, reason, digest, by)
        return self._decide(run_id, key, body, idempotency_key)

    def edit(
        self,
        run_id: str,
        key: str,
        value: Any,
        *,
        reason: str | None = None,
        digest: str | None = None,
        by: str | None = None,
        idempotency_key: str | None = None,
    ) -> models.Decision:
        """Approve with a changed value."""
        body = _decision_body("edit", value, reason, digest, by)
        return self._decide(run_id, key, body, idempotency_key)

    def answer(
        self,
        run_id: str,
        key: str,
        answer: Any,
        *,
        digest: str | None = None,
        by: str | None = None,
        idempotency_key: str | None = None,
    ) -> models.Decision:
        """Answer a question the workflow asked with `ctx.ask`."""
        body = _decision_body("answer", answer, None, digest, by)
        return self._decide(run_id, key, body, idempotency_key)

    def request_changes(
        self,
        run_id: str,
        key: str,
        *,
        reason: str | None = None,
        digest: str | None = None,
        by: str | None = None,
        idempotency_key: str | None = None,
    ) -> models.Decision:
        body = _decision_body("request_changes", None, reason, digest, by)
        return self._decide(run_id, key, body, idempotency_key)

    def settle(
        self, run_id: str, *, timeout: float | None = 30.0, poll_interval: float = 0.2
    ) -> models.Run:
        """Poll until the run waits for something (a decision, a signal) or has finished,
        and return it; `TimeoutError` after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self.get_run(run_id)
            if run.status in _SETTLED:
                return run
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {run_id} is still {run.status} after {timeout}s")
            time.sleep(poll_interval)

    def result(
        self, run_id: str, *, timeout: float | None = None, poll_interval: float = 0.2
    ) -> Any:
        """Poll until the run finishes; its result, or `RunFailed`/`RunCancelled`, or
        `TimeoutError` after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self.get_run(run_id)
            if run.status.finished:
                return _finished(run, run_id)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {run_id} is still {run.status} after {timeout}s")
            time.sleep(poll_interval)
