"""`create_app(engine)`: the FastAPI application in front of an `Engine`.

Every route goes through the engine. Request bodies pass a guard before routing: size
(`max_body`, checked against Content-Length and the bytes read), media type (JSON, or a
form for signed links), and well-formed JSON (no duplicate keys, no NaN, bounded depth),
so that handlers and the engine only ever see clean input.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from signoff import errors
from signoff.engine import Engine
from signoff.server import (
    auth as auth_,
)
from signoff.server import inbox as inbox_
from signoff.server import (
    logs,
    problems,
    routes_approvals,
    routes_decisions,
    routes_links,
    routes_metrics,
    routes_runs,
    routes_signals,
    routes_slack,
    routes_stream,
    routes_tokens,
    schemas,
    stream,
    tickets,
)

MAX_BODY = 1_000_000
MAX_DEPTH = 64
_ERROR_STATUSES = ("400", "401", "403", "404", "409", "413", "415", "422", "503")


def create_app(
    engine: Engine,
    *,
    auth: bool = True,
    link_secret: str | bytes | None = None,
    public_url: str | None = None,
    max_body: int = MAX_BODY,
    stream_poll_interval: float = 0.05,
    heartbeat: float = 15.0,
    run_worker: bool = True,
    token_recheck: float = 2.0,
    metrics: bool = False,
    proxy_auth: auth_.ProxyAuth | None = None,
    identify: auth_.Identify | None = None,
    cors_origins: Sequence[str] = (),
) -> FastAPI:
    """The HTTP API over `engine`.

    `auth=False` turns authentication off (every caller is `local` with every scope): for
    local use only. `link_secret` (default: `SIGNOFF_LINK_SECRET`) signs approval links;
    without one the link routes are absent. `public_url` is the base of the links handed
    out (default: the request's own). `max_body` caps request bodies in bytes.
    `run_worker` (default on) runs the engine's worker alongside the server, so that
    served by plain uvicorn the app executes the runs it starts; pass False for an
    API-only process when workers run elsewhere (`/healthz` then says `external`).
    `token_recheck`: seconds between checks that an open stream's token is still valid.
    `metrics=True` serves `/metrics` in Prometheus' text format, to callers with the `read`
    scope while authentication is on (docs/observability.md).
    The web inbox recognises people by `proxy_auth` (a trusted reverse proxy's header),
    `identify` (the host application's `async (request) -> Identity | None`), then token
    sign-in; `cors_origins` lists the other origins whose pages may call the API and open
    streams with tickets (docs/inbox.md).
    """
    if not isinstance(auth, bool):
        raise errors.InvalidArgument("auth must be True or False")
    if not isinstance(max_body, int) or max_body < 1024:
        raise errors.InvalidArgument("max_body must be a whole number of bytes, at least 1024")
    secret = link_secret if link_secret is not None else os.environ.get("SIGNOFF_LINK_SECRET")
    if isinstance(secret, str):
        secret = secret.encode()
    if secret is not None and len(secret) < 16:
        raise errors.InvalidArgument("the link secret must be at least 16 bytes long")
    hub = stream.Hub(engine, poll_interval=stream_poll_interval)
    logs.install()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logs.install()  # again: the server may have configured logging since
        await engine.open()
        if run_worker:
            await engine.start_worker()
            app.state.worker = "running"
        try:
            yield
        finally:
            await hub.close()
            if run_worker:
                app.state.worker = "stopped"
                await engine.stop_worker()

    app = FastAPI(
        title="signoff",
        version="0.1.0",
        description="Durable human-in-the-loop workflows over HTTP.",
        lifespan=lifespan,
        openapi_url=None if auth else "/openapi.json",
        docs_url=None if auth else "/docs",
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.auth = auth
    app.state.link_secret = secret
    app.state.public_url = public_url.rstrip("/") if public_url else None
    app.state.hub = hub
    app.state.heartbeat = heartbeat
    app.state.token_recheck = token_recheck
    app.state.token_checks = auth_.TokenChecks(engine, token_recheck)
    app.state.worker = "stopped" if run_worker else "external"
    problems.install(app)

    @app.get(
        "/healthz",
        response_model=schemas.Health,
        responses={503: {"model": schemas.Health, "description": "no worker runs"}},
        tags=["meta"],
        operation_id="health",
    )
    async def healthz() -> JSONResponse:
        """Liveness, and whether this process runs its worker: 503 `degraded` when it
        should and does not. The only route that answers without credentials."""
        worker = app.state.worker
        health = schemas.Health(status="degraded" if worker == "stopped" else "ok", worker=worker)
        return JSONResponse(health.model_dump(), status_code=503 if worker == "stopped" else 200)

    if auth:  # the document, too, only for callers with a token

        @app.get("/openapi.json", include_in_schema=False)
        async def openapi_document(
            who: Annotated[auth_.Principal, Depends(auth_.require("read"))],
        ) -> JSONResponse:
            return JSONResponse(app.openapi())

    for module in (
        routes_decisions,  # first: the busiest route is found after the fewest tries
        routes_runs,
        routes_approvals,
        routes_signals,
        routes_stream,
        routes_tokens,
        tickets,
    ):
        app.include_router(module.router)
    if secret is not None:
        app.include_router(routes_links.router)
    if metrics:
        app.include_router(routes_metrics.router)
    routes_slack.mount(app, engine)  # `/slack/interactions`, with a Slack signing secret
    inbox_.mount(app, secret, proxy_auth=proxy_auth, identify=identify)  # docs/inbox.md
    app.include_router(routes_runs.tail)  # `/runs/{run_id:path}` last: it matches any suffix
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.add_middleware(BodyGuard, max_body=max_body)
    if cors_origins:  # bearer tokens and tickets only: no cookies cross origin
        if isinstance(cors_origins, str) or "*" in cors_origins:
            raise errors.InvalidArgument("cors_origins must list origins, not a string or '*'")
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "Idempotency-Key"],
            allow_credentials=False,
            max_age=600,
        )
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with every error documented as problem+json."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title, version=app.version, routes=app.routes, description=app.description
    )
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = schemas.ProblemOut.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    problem = {
        "content": {problems.MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    }
    for path, item in doc.get("paths", {}).items():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            for status in _ERROR_STATUSES:
                if path == "/healthz" and status != "404":
                    continue
                responses[status] = {"description": "problem", **problem}
            if path.startswith("/links/"):  # pages for people, problems for the rest
                html = {"text/html": {"schema": {"type": "string"}}}
                for status in (*_ERROR_STATUSES, "410"):
                    content = {**problem["content"], **html}
                    responses[status] = {"description": "problem or page", "content": content}
    app.openapi_schema = doc
    return doc


class BodyGuard:
    """Refuses oversize, mistyped and malformed bodies before any route sees them."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH", "DELETE"):
            await self.app(scope, receive, send)
            return
        length = content_type = None  # the last of each, as a dict of the headers would keep
        for name, value in scope["headers"]:
            name = name.lower()
            if name == b"content-length":
                length = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value.decode("latin-1")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await self._refuse(scope, receive, send, *self._length_problem(length))
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                await self._refuse(scope, receive, send, *self._length_problem(str(len(body))))
                return
        path, root = scope["path"], scope.get("root_path", "")
        if root and path.startswith(root):  # mounted under a prefix: the app's own path
            path = path[len(root) :]
        problem = self._check(path, content_type, bytes(body))
        if problem is not None:
            await self._refuse(scope, receive, send, *problem)
            return
        await self.app(scope, _replay(bytes(body), receive), send)

    def _length_problem(self, length: str) -> tuple[int, str, str]:
        if not length.isdigit():
            return 400, "bad_content_length", "Content-Length is not a number"
        return 413, "payload_too_large", f"the body is over the limit of {self.max_body} bytes"

    def _check(
        self, path: str, content_type: str | None, body: bytes
    ) -> tuple[int, str, str] | None:
        if not body:
            return None
        media = (content_type or "").split(";")[0].strip().lower()
        if path.startswith(("/links/", "/inbox/", "/slack/")):  # forms (people's, Slack's)
            if media != "application/x-www-form-urlencoded":
                return 415, "unsupported_media_type", "send the form as form data"
            return None
        if media != "application/json" and not (
            media.startswith("application/") and media.endswith("+json")
        ):
            return 415, "unsupported_media_type", "send JSON with Content-Type: application/json"
        try:
            parsed = json.loads(
                body.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constants
            )
        except _NotJson as exc:
            return 422, "not_serializable", str(exc)
        except (ValueError, RecursionError) as exc:
            return 400, "malformed_json", f"the body is not valid JSON: {str(exc)[:200]}"
        if _depth(parsed) > MAX_DEPTH:
            return 400, "malformed_json", f"the JSON is nested more than {MAX_DEPTH} levels deep"
        return None

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, status: int, code: str, detail: str
    ) -> None:
        await problems.response(status, code, detail)(scope, receive, send)


class _NotJson(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON number; send finite numbers")


def _depth(value: Any) -> int:
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_DEPTH:
                todo.extend(
                    (v, depth + 1) for v in (item.values() if isinstance(item, dict) else item)
                )
    return deepest


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
