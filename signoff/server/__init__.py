"""The HTTP API: `create_app(engine)` returns a FastAPI application (see docs/http.md)."""

from signoff.server.app import create_app
from signoff.server.auth import Identity, ProxyAuth

__all__ = ["Identity", "ProxyAuth", "create_app"]
