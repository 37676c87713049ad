"""The agent examples run offline, end to end, as their readers would run them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_example(name: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("AGENT_MODEL", "OPENAI_API_KEY")}
    done = subprocess.run(
        [sys.executable, f"examples/{name}"],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


@pytest.mark.slow
def test_pydantic_ai_example_sends_the_edited_email_once() -> None:
    out = run_example("agent_email_pydantic_ai.py")
    assert "waiting for tool:" in out and "send_email: Send an email to a customer." in out
    assert "agent: Reported: sent to dana@example.com" in out
    assert out.count("'to': 'dana@example.com'") == 2  # proposed, then sent once
    assert (
        "sent: [{'to': 'dana@example.com', 'subject': 'Your refund for order ord-88231', "
        "'body': 'Dear Dana, your refund of 129.00 is on its way.'}]" in out
    )


@pytest.mark.slow
def test_openai_agents_example_refuses_the_edit_and_sends_once() -> None:
    out = run_example("agent_email_openai_agents.py")
    assert "waiting for tool:call-2" in out
    assert "edit refused: " in out and "may be approved or rejected but not edited" in out
    assert "agent: Reported: sent to dana@example.com" in out
    assert out.count("'body': 'Dear Dana Whitfield, your refund of 129.00 is on its way.'") == 2
