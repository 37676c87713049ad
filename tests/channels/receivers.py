"""Real receivers for channel tests: an HTTP server standing in for a webhook endpoint
(it checks signatures with the `standardwebhooks` library) and an SMTP server."""

from __future__ import annotations

import asyncio
import base64
import email
import email.message
import email.policy
import http.server
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


@dataclass
class Received:
    id: str
    payload: Any
    verified: bool
    headers: dict[str, str]


@dataclass
class WebhookReceiver:
    """Answers each POST with the next of `statuses` (then 200), after `delay` seconds."""

    secret: str = SECRET
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    got: list[Received] = field(default_factory=list)
    port: int = 0
    started: int = 0  # requests that arrived (answered or not yet)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def delivered(self) -> list[Received]:
        """What was answered 2xx, one per webhook-id (a receiver's dedupe)."""
        seen: dict[str, Received] = {}
        for r in self.got:
            if r.verified and r.headers.get("x-answered") == "200":
                seen.setdefault(r.id, r)
        return list(seen.values())

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.delivered()) >= count:
                return self.delivered()
            await asyncio.sleep(0.02)
        raise AssertionError(f"{len(self.delivered())} of {count} webhooks arrived")


def serve_webhooks(receiver: WebhookReceiver) -> Iterator[WebhookReceiver]:
    verifier = Webhook(receiver.secret)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with receiver.lock:
                receiver.started += 1
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                payload = verifier.verify(body, headers)
                verified = True
            except WebhookVerificationError:
                payload, verified = json.loads(body or b"null"), False
            if receiver.delay:
                time.sleep(receiver.delay)
            with receiver.lock:
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                headers["x-answered"] = str(status)
                receiver.got.append(
                    Received(headers.get("webhook-id", ""), payload, verified, headers)
                )
            self.send_response(status if verified else 401)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = 256  # many deliverers connect at once

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


class SmtpInbox:
    """An aiosmtpd handler that keeps what it accepts; refuses `refuse` recipients
    (550), answers the next `fail_next` messages 451."""

    def __init__(self) -> None:
        self.mails: list[email.message.EmailMessage] = []
        self.refuse: set[str] = set()
        self.fail_next = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.fail_next:
            self.fail_next -= 1
            return "451 try again later"
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.mails.append(parsed)  # type: ignore[arg-type]
        return "250 Message accepted"


def serve_smtp(inbox: SmtpInbox, port: int, **kw: Any) -> Controller:
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kw)
    controller.start()
    return controller
