"""The approvers' inbox in the browser, served beside the API by `create_app`.

Server-rendered pages (Jinja2 templates under `templates/`), a little hand-written
JavaScript and CSS under `static/` (no build step, no CDN), a strict
Content-Security-Policy without inline script. See docs/inbox.md.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from signoff.server.inbox import routes, routes_runs, routes_session, session

STATIC = Path(__file__).parent / "static"


def mount(app: FastAPI, link_secret: bytes | None) -> None:
    """Add the inbox's pages, stream and static files to `app`."""
    app.state.inbox_key = session.secret_key(link_secret)
    app.include_router(routes.router)
    app.include_router(routes_session.router)
    app.include_router(routes_runs.router)
    app.mount("/inbox/static", StaticFiles(directory=STATIC), name="inbox-static")
