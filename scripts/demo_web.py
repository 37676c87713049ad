"""`scripts/demo --web`: the refund review in the web inbox.

Makes a fresh SQLite database, a token for a manager (read, decide, start) and three
refund requests waiting for a decision, starts `signoff serve` on the refund example,
prints the URL and the token, and stops the server (and removes the files) on Ctrl-C.

Imported by `signoff serve` as the APP (`demo_web:engine`): the refund example's engine,
with two more tickets at its help desk.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]
if __name__ == "__main__":  # a fresh database and ledger, before the example reads them
    _folder = tempfile.mkdtemp(prefix="signoff-demo-web-")
    os.environ["SIGNOFF_DEMO_DIR"] = _folder
    os.environ["SIGNOFF_DATABASE_URL"] = f"sqlite:///{_folder}/demo.db"
    os.environ["REFUND_LEDGER"] = f"{_folder}/demo-ledger.db"

from examples import refund_review  # noqa: E402

engine = refund_review.engine
refund_review.TICKETS.update(
    {
        "T-1043": {**refund_review.TICKETS["T-1042"], "id": "T-1043", "customer": "Ravi Menon",
                   "order_id": "ord-88410", "order_total": 4500,
                   "complaint": "Kettle stopped working after a week.", "customer_since": 2023},
        "T-1044": {**refund_review.TICKETS["T-1042"], "id": "T-1044", "customer": "Ines Duarte",
                   "order_id": "ord-88502", "order_total": 23900,
                   "complaint": "Espresso machine arrived broken, box damaged."},
    }
)  # fmt: skip


async def _prepare() -> str:
    """The manager's token; the refunds started (the server's worker takes them on)."""
    async with engine:
        _, token = await engine.access.create_token("manager", ["read", "decide", "start"])
        for ticket in refund_review.TICKETS:
            await engine.start(refund_review.refund_review, ticket, requested_by="support-bot")
    return token


async def _waiting(count: int, timeout: float) -> int:
    async with engine:
        deadline = time.monotonic() + timeout
        while True:
            page = await engine.pending_approvals(limit=count)
            if len(page) >= count or time.monotonic() > deadline:
                return len(page)
            await asyncio.sleep(0.1)


def _healthy(url: str, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The refund review in the web inbox.")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    folder = Path(os.environ["SIGNOFF_DEMO_DIR"])
    token = asyncio.run(_prepare())
    url = f"http://127.0.0.1:{args.port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "scripts")])}
    log = (folder / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "signoff", "serve", "demo_web:engine", "--port", str(args.port),
         "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if not _healthy(url, proc):
            log.close()
            print((folder / "server.log").read_text(), file=sys.stderr)
            print("error: the server did not start", file=sys.stderr)
            return 1
        waiting = asyncio.run(_waiting(len(refund_review.TICKETS), 20))
        print(f"signoff inbox for the refund review: {url}/", flush=True)
        print(f"sign in as manager with this token: {token}", flush=True)
        print(f"{waiting} refunds wait for a decision. Ctrl-C stops the server.", flush=True)
        while not stop and proc.poll() is None:
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    try:
        code = main()
    finally:
        shutil.rmtree(os.environ["SIGNOFF_DEMO_DIR"], ignore_errors=True)
    sys.exit(code)
