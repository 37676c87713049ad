"""`signoff mcp`, driven by the `mcp` package's own client over stdio: a real server
process (two: one acting as alice, one as carol) on a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

ROOT = Path(__file__).parents[2]
APP = "tests.integrations.mcp_app:engine"


class Tools:
    """One MCP session; `call` returns the tool's JSON, `error` its error text."""

    def __init__(self, session: ClientSession) -> None:
        self.session = session

    async def raw(self, name: str, **arguments: Any) -> Any:
        return await self.session.call_tool(name, arguments)

    async def call(self, name: str, **arguments: Any) -> Any:
        result = await self.raw(name, **arguments)
        text = result.content[0].text
        assert not result.is_error, f"{name}: {text}"
        return json.loads(text)

    async def error(self, name: str, **arguments: Any) -> str:
        result = await self.raw(name, **arguments)
        text = str(result.content[0].text)
        assert result.is_error, f"{name} did not fail: {text}"
        assert "Traceback" not in text and "\n" not in text.strip()
        return text

    async def until(self, name: str, field: str, value: str, **arguments: Any) -> Any:
        for _ in range(400):
            got = await self.call(name, **arguments)
            if got[field] == value:
                return got
            await asyncio.sleep(0.025)
        raise AssertionError(f"{name} never had {field}={value!r}: {got}")


@asynccontextmanager
async def server(db: Path, person: str) -> AsyncIterator[Tools]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "signoff", "--db", f"sqlite:///{db}", "mcp", APP, "--as", person],
        cwd=str(ROOT),
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield Tools(session)


@pytest.mark.slow
async def test_an_assistant_starts_asks_and_a_person_decides(tmp_path: Path) -> None:
    db = tmp_path / "mcp.db"
    async with server(db, "alice") as alice:
        listed = await alice.session.list_tools()
        assert {t.name for t in listed.tools} == {
            "start_workflow",
            "get_run",
            "list_my_approvals",
            "get_approval",
            "decide",
            "ask_person",
            "get_answer",
        }
        run = await alice.call("start_workflow", workflow="refund", args=["ord-1"])
        assert run["requested_by"] == "alice"
        run_id = run["run_id"]
        await alice.until("get_run", "status", "waiting", run_id=run_id)
        # alice asked for it: not in her inbox, and she may not approve it herself
        assert (await alice.call("list_my_approvals"))["approvals"] == []
        shown = await alice.call("get_approval", run_id=run_id, key="manager")
        assert shown["summary"] == "Refund 120 for ord-1" and len(shown["digest"]) == 64
        refused = await alice.error(
            "decide", run_id=run_id, key="manager", decision="approve", digest=shown["digest"]
        )
        assert "alice" in refused
        asked = await alice.call("ask_person", question="Which warehouse?", to=["carol"])
        assert (await alice.call("get_answer", run_id=asked["run_id"]))["status"] == "waiting"

        async with server(db, "carol") as carol:
            inbox = (await carol.call("list_my_approvals"))["approvals"]
            assert [(a["run_id"], a["key"]) for a in inbox] == [
                (run_id, "manager"),
                (asked["run_id"], "question"),
            ]
            approval, question = inbox
            stale = await carol.error(
                "decide",
                run_id=run_id,
                key="manager",
                decision="edit",
                value={"amount": 50},
                digest="0" * 64,
            )
            assert "digest" in stale
            bad = await carol.error(
                "decide",
                run_id=run_id,
                key="manager",
                decision="edit",
                value={"amount": -5},
                digest=approval["digest"],
            )
            assert "invalid_edit" in bad and "amount" in bad
            made = await carol.call(
                "decide",
                run_id=run_id[:8],  # a unique prefix is enough
                key="manager",
                decision="edit",
                value={"amount": 50},
                reason="half now",
                digest=approval["digest"],
            )
            assert (made["status"], made["by"], made["value"]) == (
                "edited",
                "carol",
                {"amount": 50},
            )
            await carol.call(
                "decide",
                run_id=question["run_id"],
                key="question",
                decision="answer",
                value="Leipzig",
                digest=question["digest"],
            )
            done = await carol.until("get_run", "status", "completed", run_id=run_id)
            assert done["result"] == {"status": "refunded", "amount": 50, "by": "carol"}

        answer = await alice.until("get_answer", "status", "answered", run_id=asked["run_id"])
        assert answer["answer"] == "Leipzig"

        # bad input: one-line tool errors naming the problem
        assert "no workflow named 'nope'" in await alice.error("start_workflow", workflow="nope")
        assert "run" in await alice.error("get_run", run_id="zzzzzzzz")
        maybe = await alice.error(
            "decide", run_id=run_id, key="manager", decision="maybe", digest="x"
        )
        assert maybe.endswith(
            "decision must be one of approve, reject, edit, request_changes, answer, not 'maybe'"
        )
        assert "not a question" in await alice.error("get_answer", run_id=run_id)
        assert "limit" in await alice.error("list_my_approvals", limit=0)


def test_the_command_needs_a_person(tmp_path: Path) -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "signoff", "--db", f"sqlite:///{tmp_path / 'x.db'}", "mcp", APP],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: give the person the assistant acts for: --as WHO (or SIGNOFF_MCP_AS)"
    )
