"""`scripts/demo --web`: starts the refund example with the inbox, prints the URL and a
token that signs in, and stops cleanly on Ctrl-C (SIGINT)."""

from __future__ import annotations

import re
import signal
import subprocess
import time

import httpx
import pytest

from tests.inbox.conftest import ROOT
from tests.ports import free_port

pytestmark = pytest.mark.slow


def test_demo_web_serves_the_inbox_and_stops_on_ctrl_c() -> None:
    proc = subprocess.Popen(
        [str(ROOT / "scripts" / "demo"), "--web", "--port", str(free_port())],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 90
        assert proc.stdout is not None
        while not any("Ctrl-C" in line for line in lines):
            line = proc.stdout.readline()
            assert line and time.monotonic() < deadline, "".join(lines)
            lines.append(line)
        text = "".join(lines)
        url = re.search(r"(http://127\.0\.0\.1:\d+)/", text)
        token = re.search(r"with this token: (\S+)", text)
        assert url and token, text
        assert "3 refunds wait for a decision" in text
        with httpx.Client(base_url=url[1]) as client:
            page = client.get("/inbox/signin")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert csrf, page.text
            signed = client.post("/inbox/signin", data={"csrf": csrf[1], "token": token[1]})
            assert signed.status_code == 303
            inbox = client.get("/")
            assert inbox.status_code == 200
            assert "Signed in as" in inbox.text and "manager" in inbox.text
            for who in ("Dana Whitfield", "Ravi Menon", "Ines Duarte"):
                assert f" to {who} for ord-" in inbox.text
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, rest
        assert "stopped" in rest and "Traceback" not in rest
        with pytest.raises(httpx.TransportError):
            httpx.get(url[1] + "/healthz", timeout=1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
