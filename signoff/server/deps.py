"""Small helpers shared by the routes."""

from __future__ import annotations

from fastapi import Request

from signoff.engine import Engine


def engine(request: Request) -> Engine:
    e: Engine = request.app.state.engine
    return e
