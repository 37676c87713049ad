"""Generates the sync `Client` in signoff/client.py from `AsyncClient` (unasync-style).

`python -m tests.server.unasync_client` rewrites the generated part; the test in
test_client_twins.py fails when it is out of date.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

CLIENT = Path(__file__).parents[2] / "signoff" / "client.py"
BEGIN = "# --- AsyncClient begins: the sync `Client` is generated from this part ---\n"
END = "# --- AsyncClient ends ---\n"
GENERATED = "# --- generated from AsyncClient by tests/server/unasync_client.py; do not edit ---\n"
RULES = [
    (r"\bAsyncClient\b", "Client"),
    (r"httpx\.AsyncBaseTransport", "httpx.BaseTransport"),
    (r"\(async\)", "(blocking)"),
    (r"`async with`", "`with`"),
    (r"\basync def ", "def "),
    (r"\bawait ", ""),
    (r"__aenter__", "__enter__"),
    (r"__aexit__", "__exit__"),
    (r"\baclose\b", "close"),
    (r"asyncio\.sleep", "time.sleep"),
]


def generate(text: str) -> str:
    """client.py's text with the generated part brought up to date (ruff-formatted)."""
    head, rest = text.split(BEGIN)
    source, _ = rest.split(END)
    sync = source
    for pattern, replacement in RULES:
        sync = re.sub(pattern, replacement, sync)
    out = f"{head}{BEGIN}{source}{END}\n\n{GENERATED}{sync.rstrip()}\n"
    ruff = Path(sys.executable).parent / "ruff"
    done = subprocess.run(
        [str(ruff), "format", "--stdin-filename", str(CLIENT), "-"],
        input=out, capture_output=True, text=True, check=True, cwd=CLIENT.parents[1],
    )  # fmt: skip
    return done.stdout


if __name__ == "__main__":
    CLIENT.write_text(generate(CLIENT.read_text()))
    sys.exit(0)
