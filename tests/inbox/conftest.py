"""Browser tests of the inbox: headless Chromium (Debian's, through Playwright) against a
real `signoff serve` process (uvicorn) on SQLite, with the tests' own engine on the same
database to start runs and check what was recorded.

Without `/usr/bin/chromium` these tests skip, except under CI=true, where they fail
(`scripts/_env` installs it). Screenshots go to a temporary folder, or to
`SIGNOFF_SCREENSHOTS` (`SIGNOFF_SCREENSHOTS=docs/screenshots` refreshes the docs' ones).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff import Engine, models
from tests.inbox.app import make_engine
from tests.ports import free_port

ROOT = Path(__file__).parents[2]
CHROMIUM = "/usr/bin/chromium"
PEOPLE = {
    "alice": ["decide"],
    "bob": ["decide"],
    "carol": ["decide"],
    "olga": ["read", "decide"],
    "oscar": ["read", "start"],
}


@dataclass
class Served:
    url: str
    db: str
    engine: Engine
    tokens: dict[str, str]
    token_ids: dict[str, str]
    log: Path

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """`engine.sync.NAME(...)`, from a thread of its own: Playwright's sync API runs
        an event loop in the test's thread, where blocking calls are refused."""
        method = getattr(self.engine.sync, name)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(method, *args, **kwargs).result()

    def admin(self, act: Callable[[Engine], Awaitable[Any]]) -> Any:
        """`await act(engine)` on an engine of its own (for what `engine.sync` lacks)."""

        async def run() -> Any:
            engine = make_engine(self.db)
            try:
                return await act(engine)
            finally:
                await engine.close()

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, run()).result()

    def start(self, workflow: str, *args: Any, **kwargs: Any) -> models.Run:
        return self.call("start", workflow, *args, **kwargs)

    def pending(self, run_id: str, key: str, timeout: float = 10.0) -> models.Approval:
        """The approval once the server's worker has opened it."""
        deadline = time.monotonic() + timeout
        while True:
            found = [a for a in self.call("pending_approvals", run_id=run_id) if a.key == key]
            if found:
                return found[0]
            assert time.monotonic() < deadline, f"{run_id} never asked for {key}"
            time.sleep(0.02)

    def approval(self, run_id: str, key: str) -> models.Approval:
        rounds = [a for a in self.call("approvals", run_id) if a.key == key]
        return max(rounds, key=lambda a: a.round)


def _tokens(engine: Engine) -> tuple[dict[str, str], dict[str, str]]:
    async def create() -> tuple[dict[str, str], dict[str, str]]:
        secrets, ids = {}, {}
        for name, scopes in PEOPLE.items():
            token, secret = await engine.access.create_token(name, scopes)
            secrets[name], ids[name] = secret, token.id
        await engine.close()
        return secrets, ids

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # Playwright may hold this thread's loop
        return pool.submit(asyncio.run, create()).result()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 40  # a loaded 2-core machine starts slowly
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(log.read_text())
        time.sleep(0.05)


def serve(
    db: str, folder: Path, *extra: str, host_app: str | None = None, port: int | None = None
) -> Iterator[Served]:
    """`signoff serve tests.inbox.app:engine` (or uvicorn serving `host_app`, an app that
    mounts signoff's) on a free port, until the caller is done."""
    tokens, ids = _tokens(make_engine(db))
    port = port or free_port()
    env = {**os.environ, "SIGNOFF_DATABASE_URL": db, "PYTHONPATH": str(ROOT),
           "SIGNOFF_SESSION_SECRET": "s" * 32}  # fmt: skip
    log_path = folder / "server.log"
    if host_app is None:
        command = [sys.executable, "-m", "signoff", "serve", "tests.inbox.app:engine",
                   "--port", str(port), *extra]  # fmt: skip
    else:
        command = [sys.executable, "-m", "uvicorn", host_app, "--port", str(port), *extra]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        engine = make_engine(db)
        try:
            _wait_healthy(url, proc, log_path)
            yield Served(url, db, engine, tokens, ids, log_path)
        finally:
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                pool.submit(engine.sync.close).result()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    text = log_path.read_text()
    assert "Traceback" not in text, text


# Package scope: Playwright's sync API holds the thread's event loop while it runs, so
# it must stop when this folder's tests end (later tests use asyncio themselves).
@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("inbox")
    yield from serve(f"sqlite:///{folder / 'inbox.db'}", folder, "--log-level", "warning")


@pytest.fixture(scope="package")
def browser(request: pytest.FixtureRequest) -> Iterator[Any]:
    if any(item.get_closest_marker("postgres") for item in request.session.items):
        # the template database is made with asyncio.run, which cannot run once
        # Playwright's sync API holds this thread's event loop: make it first
        with contextlib.suppress(pytest.skip.Exception):
            request.getfixturevalue("pg_template")
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium chromium-driver"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Any, str], Path]:
    folder = Path(os.environ.get("SIGNOFF_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    folder.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str, *, full: bool = True) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=full)
        return path

    return take


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """`new_page(headers={...})`: a page in a fresh browser context of its own (no
    sign-in), its script errors collected and asserted empty at the end."""
    contexts = []

    def open_page(*, headers: dict[str, str] | None = None, width: int = 1100) -> Any:
        context = browser.new_context(
            viewport={"width": width, "height": 800}, extra_http_headers=headers or {}
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(5000)
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        return page

    yield open_page
    for context in contexts:
        for page in context.pages:
            assert page.errors == [], page.errors
        context.close()


@pytest.fixture(scope="package")
def signed_in() -> dict[str, Any]:
    """Each person's cookies after their first sign-in through the page (reused after)."""
    return {}


@pytest.fixture
def person(browser: Any, server: Served, signed_in: dict[str, Any]) -> Iterator[Callable[..., Any]]:
    """`person("alice")`: a page in a fresh browser context, signed in with her token
    (through the sign-in page the first time, by her session cookie after)."""
    contexts = []

    def open_as(name: str, *, width: int = 1100, bypass_csp: bool = False) -> Any:
        context = browser.new_context(
            viewport={"width": width, "height": 800},
            bypass_csp=bypass_csp,
            storage_state=signed_in.get(name),
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(5000)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: errors.append(f"dialog: {d.message}"))
        page.errors = errors
        page.goto(server.url + "/")
        if name not in signed_in:
            page.fill("#token", server.tokens[name])
            page.click("form.signin button[type=submit]")
            page.wait_for_selector("text=Signed in as")
            signed_in[name] = context.storage_state()
        return page

    yield open_as
    for context in contexts:
        for page in context.pages:
            assert page.errors == [], page.errors
        context.close()
