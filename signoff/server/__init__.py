"""The HTTP API: `create_app(engine)` returns a FastAPI application (see docs/http.md)."""

from signoff.server.app import create_app

__all__ = ["create_app"]
