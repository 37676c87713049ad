"""`Client` and `AsyncClient`: the engine's operations over the HTTP API (httpx).

```python
client = signoff.Client("http://localhost:8000", token="so_...")
run = client.start("refund", "ord-1")
client.approve(run.id, "manager", reason="ok")     # the approver is the token's name
print(client.result(run.id, timeout=30))
```
Errors come back as the matching `signoff.errors` class, found by the problem's `code`
(`RunNotFound`, `DecisionConflict`, ...); anything else as `ApiError` with its status.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from datetime import datetime
from typing import Any

import httpx

from signoff import errors, models

_BY_CODE: dict[str, type[errors.SignoffError]] = {}


def _collect(cls: type[errors.SignoffError]) -> None:
    _BY_CODE.setdefault(cls.code, cls)
    for sub in cls.__subclasses__():
        _collect(sub)


_collect(errors.SignoffError)


class ApiError(errors.SignoffError):
    """The HTTP API answered with an error that has no matching library error."""

    code = "api_error"

    def __init__(self, message: str | None = None, **attrs: Any) -> None:
        self.http_status: int = attrs.pop("http_status", 0)
        self.problem_code: str = attrs.pop("problem_code", "")
        self.problem: dict[str, Any] = attrs.pop("problem", {})
        super().__init__(message, **attrs)


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
        attrs["decision"] = models.Decision.from_json(problem["decision"])
    raise cls(detail, **attrs)


def _dt(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _run(data: dict[str, Any]) -> models.Run:
    return models.Run(
        id=data["id"],
        workflow=data["workflow"],
        status=models.RunStatus(data["status"]),
        args=data.get("args", []),
        kwargs=data.get("kwargs", {}),
        result=data.get("result"),
        error=data.get("error"),
        requested_by=data.get("requested_by"),
        created_at=_dt(data["created_at"]),  # type: ignore[arg-type]
        updated_at=_dt(data["updated_at"]),  # type: ignore[arg-type]
        waiting_for=data.get("waiting_for"),
        wake_at=_dt(data.get("wake_at")),
    )


def _approval(data: dict[str, Any]) -> models.Approval:
    return models.Approval(
        run_id=data["run_id"],
        workflow=data["workflow"],
        key=data["key"],
        round=data["round"],
        status=models.ApprovalStatus(data["status"]),
        summary=data["summary"],
        proposed=data.get("proposed"),
        value=data.get("value"),
        decided_by=data.get("decided_by"),
        reason=data.get("reason"),
        requested_at=_dt(data["requested_at"]),  # type: ignore[arg-type]
        decided_at=_dt(data.get("decided_at")),
        deadline=_dt(data.get("deadline")),
    )


def _decision(data: dict[str, Any]) -> models.Decision:
    return models.Decision(
        key=data["key"],
        status=models.DecisionStatus(data["status"]),
        value=data.get("value"),
        original=data.get("original"),
        by=data.get("by"),
        reason=data.get("reason"),
        at=_dt(data.get("at")),
        round=data.get("round", 1),
    )


def _event(data: dict[str, Any]) -> models.HistoryEvent:
    return models.HistoryEvent(
        id=data["id"],
        run_id=data["run_id"],
        at=_dt(data["at"]),  # type: ignore[arg-type]
        type=data["type"],
        actor=data.get("actor"),
        data=data.get("data") or {},
    )


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


class _Requests:
    """How each operation maps to a request, shared by both clients."""

    @staticmethod
    def start(
        workflow: str, args: tuple[Any, ...], kwargs: dict[str, Any], run_id: str | None
    ) -> tuple[str, str, dict[str, Any]]:
        body: dict[str, Any] = {"workflow": workflow, "args": list(args), "kwargs": kwargs}
        if run_id is not None:
            body["run_id"] = run_id
        return "POST", "/runs", {"json": body}

    @staticmethod
    def decide(
        run_id: str, key: str, action: str, value: Any, reason: str | None, idem: str | None
    ) -> tuple[str, str, dict[str, Any]]:
        body: dict[str, Any] = {"action": action}
        if action == "edit":
            body["value"] = value
        if reason is not None:
            body["reason"] = reason
        headers = {"Idempotency-Key": idem} if idem else {}
        return (
            "POST",
            f"/runs/{_q(run_id)}/approvals/{_q(key)}/decision",
            {
                "json": body,
                "headers": headers,
            },
        )


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def _list_params(
    status: str | None, workflow: str | None, limit: int, cursor: str | None
) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit}
    if status is not None:
        params["status"] = str(status)
    if workflow is not None:
        params["workflow"] = workflow
    if cursor is not None:
        params["cursor"] = cursor
    return params


class AsyncClient:
    """The engine's operations over HTTP, async. Use `async with` or call `aclose()`."""

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
        self, workflow: str, *args: Any, run_id: str | None = None, **kwargs: Any
    ) -> models.Run:
        method, path, kw = _Requests.start(workflow, args, kwargs, run_id)
        return _run(await self._call(method, path, **kw))

    async def get_run(self, run_id: str) -> models.Run:
        return _run(await self._call("GET", f"/runs/{_q(run_id)}"))

    async def list_runs(
        self,
        *,
        status: models.RunStatus | str | None = None,
        workflow: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[models.Run], str | None]:
        """One page of runs, newest first, and the cursor of the next page (or None)."""
        page = await self._call(
            "GET", "/runs", params=_list_params(status, workflow, limit, cursor)
        )
        return [_run(r) for r in page["items"]], page.get("next_cursor")

    async def history(self, run_id: str) -> list[models.HistoryEvent]:
        return [_event(e) for e in await self._call("GET", f"/runs/{_q(run_id)}/history")]

    async def cancel(self, run_id: str, *, reason: str | None = None) -> models.Run:
        body = {"reason": reason} if reason is not None else {}
        return _run(await self._call("POST", f"/runs/{_q(run_id)}/cancel", json=body))

    async def retry(self, run_id: str) -> models.Run:
        return _run(await self._call("POST", f"/runs/{_q(run_id)}/retry"))

    async def signal(self, run_id: str, name: str, data: Any = None) -> None:
        await self._call("POST", f"/runs/{_q(run_id)}/signals/{_q(name)}", json={"data": data})

    async def notify(self, key: str, data: Any = None) -> list[str]:
        """Publish an event on `key`; returns the ids of the runs it woke."""
        found = await self._call("POST", "/events", json={"key": key, "data": data})
        return list(found["woken"])

    async def pending_approvals(
        self, *, workflow: str | None = None, run_id: str | None = None, limit: int = 100
    ) -> list[models.Approval]:
        params: dict[str, Any] = {"limit": limit}
        if workflow is not None:
            params["workflow"] = workflow
        if run_id is not None:
            params["run_id"] = run_id
        return [_approval(a) for a in await self._call("GET", "/approvals", params=params)]

    async def approvals(self, run_id: str) -> list[models.Approval]:
        return [_approval(a) for a in await self._call("GET", f"/runs/{_q(run_id)}/approvals")]

    async def _decide(
        self, run_id: str, key: str, action: str, value: Any, reason: str | None, idem: str | None
    ) -> models.Decision:
        method, path, kw = _Requests.decide(run_id, key, action, value, reason, idem)
        return _decision(await self._call(method, path, **kw))

    async def approve(
        self,
        run_id: str,
        key: str,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> models.Decision:
        return await self._decide(run_id, key, "approve", None, reason, idempotency_key)

    async def reject(
        self,
        run_id: str,
        key: str,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> models.Decision:
        return await self._decide(run_id, key, "reject", None, reason, idempotency_key)

    async def edit(
        self,
        run_id: str,
        key: str,
        value: Any,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> models.Decision:
        return await self._decide(run_id, key, "edit", value, reason, idempotency_key)

    async def request_changes(
        self,
        run_id: str,
        key: str,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> models.Decision:
        return await self._decide(run_id, key, "request_changes", None, reason, idempotency_key)

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


class Client:
    """The engine's operations over HTTP, blocking. Use `with` or call `close()`."""

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
        self, workflow: str, *args: Any, run_id: str | None = None, **kwargs: Any
    ) -> models.Run:
        method, path, kw = _Requests.start(workflow, args, kwargs, run_id)
        return _run(self._call(method, path, **kw))

    def get_run(self, run_id: str) -> models.Run:
        return _run(self._call("GET", f"/runs/{_q(run_id)}"))

    def list_runs(
        self,
        *,
        status: models.RunStatus | str | None = None,
        workflow: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[models.Run], str | None]:
        """One page of runs, newest first, and the cursor of the next page (or None)."""
        page = self._call("GET", "/runs", params=_list_params(status, workflow, limit, cursor))
        return [_run(r) for r in page["items"]], page.get("next_cursor")

    def history(self, run_id: str) -> list[models.HistoryEvent]:
        return [_event(e) for e in self._call("GET", f"/runs/{_q(run_id)}/history")]

    def cancel(self, run_id: str, *, reason: str | None = None) -> models.Run:
        body = {"reason": reason} if reason is not None else {}
        return _run(self._call("POST", f"/runs/{_q(run_id)}/cancel", json=body))

    def retry(self, run_id: str) -> models.Run:
        return _run(self._call("POST", f"/runs/{_q(run_id)}/retry"))

    def signal(self, run_id: str, name: str, data: Any = None) -> None:
        self._call("POST", f"/runs/{_q(run_id)}/signals/{_q(name)}", json={"data": data})

    def notify(self, key: str, data: Any = None) -> list[str]:
        return list(self._call("POST", "/events", json={"key": key, "data": data})["woken"])

    def pending_approvals(
        self, *, workflow: str | None = None, run_id: str | None = None, limit: int = 100
    ) -> list[models.Approval]:
        params: dict[str, Any] = {"limit": limit}
        if workflow is not None:
            params["workflow"] = workflow
        if run_id is not None:
            params["run_id"] = run_id
        return [_approval(a) for a in self._call("GET", "/approvals", params=params)]

    def approvals(self, run_id: str) -> list[models.Approval]:
        return [_approval(a) for a in self._call("GET", f"/runs/{_q(run_id)}/approvals")]

    def _decide(
        self, run_id: str, key: str, action: str, value: Any, reason: str | None, idem: str | None
    ) -> models.Decision:
        method, path, kw = _Requests.decide(run_id, key, action, value, reason, idem)
        return _decision(self._call(method, path, **kw))

    def approve(
        self,
        run_id: str,
        key: str,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> models.Decision:
        return self._decide(run_id, key, "approve", None, reason, idempotency_key)

    def reject(
        self,
        run_id: str,
        key: str,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> models.Decision:
        return self._decide(run_id, key, "reject", None, reason, idempotency_key)

    def edit(
        self,
        run_id: str,
        key: str,
        value: Any,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> models.Decision:
        return self._decide(run_id, key, "edit", value, reason, idempotency_key)

    def request_changes(
        self,
        run_id: str,
        key: str,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> models.Decision:
        return self._decide(run_id, key, "request_changes", None, reason, idempotency_key)

    def result(
        self, run_id: str, *, timeout: float | None = None, poll_interval: float = 0.2
    ) -> Any:
        """Poll until the run finishes (see `AsyncClient.result`)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self.get_run(run_id)
            if run.status.finished:
                return _finished(run, run_id)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {run_id} is still {run.status} after {timeout}s")
            time.sleep(poll_interval)
