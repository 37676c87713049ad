"""Importing signoff, or its integrations package, imports no agent toolkit: each is an
optional extra, imported only by its own module."""

from __future__ import annotations

import subprocess
import sys

TOOLKITS = ["pydantic_ai", "agents", "openai", "langgraph", "langchain_core", "mcp"]


def test_importing_signoff_imports_no_toolkit() -> None:
    code = (
        "import sys, signoff, signoff.integrations\n"
        f"print([m for m in {TOOLKITS!r} if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
