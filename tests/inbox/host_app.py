"""A host application for tests/inbox/test_mounted.py: its own sign-in (a cookie it sets
at `/login`), with signoff's app mounted under `/approvals-ui` and told who is signed in
through `identify`. Served by uvicorn as `tests.inbox.host_app:app`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from signoff.server import Identity, create_app
from tests.inbox.app import make_engine

SCOPES = {"alice": {"decide"}, "olga": {"read", "decide"}}  # the host's own roles


async def identify(request: Request) -> Identity | None:
    """Who the host says this is (its own session cookie, trusted as-is in this test)."""
    name = request.cookies.get("host_user")
    return Identity(name, scopes=SCOPES[name]) if name in SCOPES else None


engine = make_engine(os.environ["SIGNOFF_DATABASE_URL"])
signoff_app = create_app(engine, identify=identify)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with signoff_app.router.lifespan_context(signoff_app):  # engine and worker
        yield


app = FastAPI(lifespan=lifespan)
app.mount("/approvals-ui", signoff_app)


@app.get("/")
async def home() -> HTMLResponse:
    return HTMLResponse('<p>The host app. <a href="/approvals-ui/">Approvals</a></p>')


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/login")
async def login(who: str) -> Response:
    response = RedirectResponse("/approvals-ui/", status_code=303)
    response.set_cookie("host_user", who, httponly=True, samesite="lax")
    return response
