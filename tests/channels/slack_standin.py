"""A real HTTP server standing in for Slack: the Web API methods the Slack channel calls
(`chat.postMessage`, `chat.update`) and interaction response URLs; it records every
call, answers as Slack does, and can be told to fail or to be slow. Also: a signed
interactivity request made exactly as Slack makes one."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # the shape of Slack's (32 characters)
TOKEN = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"


@dataclass
class Call:
    method: str  # chat.postMessage, chat.update, or "response" (a response_url)
    args: dict[str, Any]
    auth: str | None
    answer: dict[str, Any] | None = None


@dataclass
class SlackStandIn:
    port: int = 0
    calls: list[Call] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # next answers: {"ok": false, "error": ...}
    delay: float = 0.0  # seconds before answering chat.update
    started: int = 0  # chat.update requests that arrived
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ts: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, name: str = "r1") -> str:
        return f"http://127.0.0.1:{self.port}/actions/{name}"

    def of(self, method: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.method == method and c.answer is not None]

    def posts(self) -> list[Call]:
        return [c for c in self.of("chat.postMessage") if c.answer and c.answer.get("ok")]

    def replies(self) -> list[str]:
        return [c.args["text"] for c in self.of("response")]

    def wait_for(self, method: str, count: int, timeout: float = 10.0) -> list[Call]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.of(method)) >= count:
                return self.of(method)
            time.sleep(0.02)
        raise AssertionError(f"{len(self.of(method))} of {count} {method} calls arrived")

    def answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if self.errors:
                return {"ok": False, "error": self.errors.pop(0)}
            if method == "chat.postMessage":
                channel = str(args["channel"])
                if channel.startswith("U"):  # a user id: the app's direct messages with them
                    channel = "D" + channel[1:]
                return {"ok": True, "channel": channel, "ts": f"1700000000.{next(self._ts):06d}"}
            if method == "chat.update":
                return {"ok": True, "channel": args["channel"], "ts": args["ts"]}
            return {"ok": False, "error": "unknown_method"}


def serve_slack(standin: SlackStandIn) -> Iterator[SlackStandIn]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.headers.get("content-type", "").startswith("application/json"):
                args = json.loads(body or b"{}")
            else:
                args = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            call = Call(self.path.rsplit("/", 1)[1], args, self.headers.get("authorization"))
            if self.path.startswith("/actions/"):
                call.method = "response"
                answer: dict[str, Any] = {"ok": True}
                raw = b"ok"
            else:
                if call.method == "chat.update":
                    with standin.lock:
                        standin.started += 1
                    if standin.delay:
                        time.sleep(standin.delay)
                answer = standin.answer(call.method, args)
                raw = json.dumps(answer).encode()
            call.answer = answer
            with standin.lock:
                standin.calls.append(call)
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", standin.port), Handler)
    server.daemon_threads = True
    standin.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield standin
    finally:
        server.shutdown()
        server.server_close()


def buttons(call: Call) -> dict[str, dict[str, Any]]:
    """The buttons of a posted or updated message, by action id."""
    found: dict[str, dict[str, Any]] = {}
    for block in call.args.get("blocks") or []:
        if block["type"] == "actions":
            for element in block["elements"]:
                found[element["action_id"]] = element
    return found


def text_of(call: Call) -> str:
    """Every text of a message's blocks, joined."""
    parts: list[str] = []
    for block in call.args.get("blocks") or []:
        if "text" in block:
            parts.append(block["text"]["text"])
        parts += [f["text"] for f in block.get("fields", [])]
        parts += [e["text"] for e in block.get("elements", []) if e.get("type") == "mrkdwn"]
    return "\n".join(parts)


def click(
    value: str,
    *,
    user: str,
    action_id: str = "signoff_approve",
    response_url: str,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a block_actions request, signed as Slack documents:
    `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}` under the signing secret."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": "T1"},
        "api_app_id": "A1",
        "container": {"type": "message", "message_ts": "1700000000.000001"},
        "trigger_id": "1.2.3",
        "team": {"id": "T1", "domain": "example"},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": "signoff",
                "type": "button",
                "value": value,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": ts,
        "x-slack-signature": signature,
    }
    return body, headers
