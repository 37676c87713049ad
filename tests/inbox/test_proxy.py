"""Sign-in by a trusted reverse proxy's header: believed from the proxy's address only.

The server trusts 127.0.0.2 alone. The "proxy" is a TCP relay that connects to the
server from 127.0.0.2; the browser sends the header both through it (believed: signed
in) and straight to the server from 127.0.0.1 (ignored: the sign-in page, nobody signed in).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.inbox.conftest import Served, serve
from tests.ports import free_port

pytestmark = pytest.mark.slow
HEADERS = {"X-Forwarded-User": "alice", "X-Forwarded-Groups": "staff, ops"}


def relay(port: int, target: int, source: str) -> Callable[[], None]:
    """Forward 127.0.0.1:`port` to 127.0.0.1:`target`, connecting from `source`, in a
    thread of its own (Playwright holds this thread's event loop); returns `stop`."""
    ready, state = threading.Event(), {}

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(
            "127.0.0.1", target, local_addr=(source, 0)
        )
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def main() -> None:
        stop = asyncio.Event()
        state["loop"], state["stop"] = asyncio.get_running_loop(), stop
        async with await asyncio.start_server(handle, "127.0.0.1", port):
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    ready.wait(10)

    def stop() -> None:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(5)

    return stop


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("proxied")
    yield from serve(
        f"sqlite:///{folder / 'proxied.db'}", folder, "--log-level", "warning",
        "--proxy-header", "X-Forwarded-User", "--trusted-proxy", "127.0.0.2/32",
        "--proxy-roles-header", "X-Forwarded-Groups", "--proxy-role", "ops=read",
    )  # fmt: skip


@pytest.fixture(scope="module")
def via_proxy(proxied: Served) -> Iterator[str]:
    """The URL of the "proxy": a relay connecting to the server from 127.0.0.2."""
    port = free_port()
    stop = relay(port, int(proxied.url.rsplit(":", 1)[1]), "127.0.0.2")
    yield f"http://127.0.0.1:{port}"
    stop()


def test_header_from_the_trusted_proxy_signs_in(
    proxied: Served, via_proxy: str, new_page: Callable[..., Any], shots: Any
) -> None:
    run = proxied.start("refund", "proxy-1", amount=61, approvers=["alice"])
    proxied.pending(run.id, "manager")
    page = new_page(headers=HEADERS)
    page.goto(via_proxy + "/")
    page.wait_for_selector("text=Signed in as")
    assert page.locator(".who bdi").inner_text() == "alice"
    assert page.locator("form[action$='/inbox/signout']").count() == 0  # the proxy signs out
    assert page.locator("nav a", has_text="Runs").count() == 1  # group ops adds `read`
    page.click(f"tr[data-run='{run.id}'] a")
    page.wait_for_selector("#live-note", state="attached")
    shots(page, "proxy-approval")
    page.click("button[value=approve]")
    page.wait_for_selector("text=Your decision is recorded.")
    decided = proxied.approval(run.id, "manager")
    assert (decided.status.value, decided.decided_by) == ("approved", "alice")


def test_header_from_anywhere_else_is_ignored(
    proxied: Served, new_page: Callable[..., Any], shots: Any
) -> None:
    outsider = proxied.url  # straight to the server, from 127.0.0.1
    page = new_page(headers=HEADERS)
    page.goto(outsider + "/")
    page.wait_for_selector("form.signin")  # not signed in: the header counted for nothing
    assert page.locator("text=Signed in as").count() == 0
    shots(page, "proxy-untrusted")
    response = page.request.get(outsider + "/inbox/rows")
    assert response.status == 401
    log = proxied.log.read_text()
    assert "ignored X-Forwarded-User from 127.0.0.1, which is not a trusted proxy" in log


def test_a_forged_post_through_the_proxy_still_needs_the_form_token(
    proxied: Served, via_proxy: str, new_page: Callable[..., Any]
) -> None:
    run = proxied.start("refund", "proxy-csrf", approvers=["alice"])
    approval = proxied.pending(run.id, "manager")
    page = new_page(headers=HEADERS)
    page.goto(via_proxy + "/")  # a session cookie, as a person's browser has
    form = {"run": run.id, "key": "manager", "action": "approve", "digest": approval.digest}
    response = page.request.post(via_proxy + "/inbox/decide", form=form)
    assert response.status == 403  # the header names alice, but the form has no token
    assert proxied.approval(run.id, "manager").status.value == "pending"
