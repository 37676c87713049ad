"""An engine with a worker on a real SQLite file (or the `store_url` backend), its app,
tokens per scope, and an httpx client talking to the app in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from signoff import Engine
from signoff.server import create_app
from tests.server.apps import make_engine

SECRET = "s" * 32


@dataclass
class Api:
    engine: Engine
    app: FastAPI
    client: httpx.AsyncClient
    tokens: dict[str, str]  # scope name -> secret; "admin" has every scope

    def auth(self, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[scope]}"}


async def make_api(url: str) -> Api:
    engine = make_engine(url)
    await engine.start_worker()
    app = create_app(
        engine, link_secret=SECRET, stream_poll_interval=0.01, heartbeat=0.5, run_worker=False
    )
    tokens = {}
    for name, scopes in {
        "reader": ["read"],
        "starter": ["read", "start"],
        "alice": ["read", "decide"],
        "bob": ["read", "decide"],
        "admin": ["admin"],
    }.items():
        _, secret = await engine.access.create_token(name, scopes)
        tokens[name] = secret
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    return Api(engine, app, client, tokens)


async def close_api(api: Api) -> None:
    await api.client.aclose()
    await api.app.state.hub.close()
    await api.engine.close()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    a = await make_api(f"sqlite:///{tmp_path / 'api.db'}")
    yield a
    await close_api(a)


@pytest.fixture
async def any_api(store_url: str) -> AsyncIterator[Api]:
    """The same, on every backend (SQLite and PostgreSQL)."""
    a = await make_api(store_url)
    yield a
    await close_api(a)


async def start_waiting(api: Api, order: str = "ord-1", amount: int = 100) -> str:
    """Start a refund and wait until it waits for the manager."""
    res = await api.client.post(
        "/runs", json={"workflow": "refund", "args": [order, amount]}, headers=api.auth("starter")
    )
    assert res.status_code == 201, res.text
    run_id: str = res.json()["id"]
    run = await api.engine.settle(run_id, timeout=10)
    assert run.status == "waiting"
    return run_id
