"""The approvers' inbox in the browser, served beside the API by `create_app`.

Server-rendered pages (Jinja2 templates under `templates/`), a little hand-written
JavaScript and CSS under `static/` (no build step, no CDN), a strict
Content-Security-Policy without inline script. See docs/inbox.md.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from signoff.server import auth
from signoff.server.inbox import routes, routes_runs, routes_session, session

STATIC = Path(__file__).parent / "static"


def mount(
    app: FastAPI,
    link_secret: bytes | None,
    *,
    proxy_auth: auth.ProxyAuth | None = None,
    identify: auth.Identify | None = None,
) -> None:
    """Add the inbox's pages, stream and static files to `app`; people are recognised by
    `proxy_auth`, then `identify`, then their token sign-in (session.viewer)."""
    if proxy_auth is not None and not isinstance(proxy_auth, auth.ProxyAuth):
        raise TypeError("proxy_auth must be a signoff.server.ProxyAuth")
    if identify is not None and not callable(identify):
        raise TypeError("identify must be a callable: async def identify(request) -> Identity")
    app.state.inbox_key = session.secret_key(link_secret)
    app.state.proxy_auth = proxy_auth
    app.state.identify = identify
    app.include_router(routes.router)
    app.include_router(routes_session.router)
    app.include_router(routes_runs.router)
    app.mount("/inbox/static", StaticFiles(directory=STATIC), name="inbox-static")
