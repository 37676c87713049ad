"""An MCP server over an engine: an assistant in any MCP client starts workflows, hands a
risky action or a question to a person, and a person's own assistant lists and decides
their approvals (`signoff mcp APP --as alice`; `pip install 'signoff[mcp]'`).

Tools (each acts as the configured person, so the engine's rules hold as on every other
surface: who may decide, separation of duties, schemas of edits, digests):

- `start_workflow(workflow, args, kwargs)`: start a run (requested by the person);
- `get_run(run_id)`: a run's status, what it waits for, its result or error;
- `list_my_approvals()`: the person's inbox, each approval with its digest;
- `get_approval(run_id, key)`: one approval, with its digest;
- `decide(run_id, key, decision, digest, reason, value)`: approve, reject, edit,
  request_changes or answer, on exactly what was shown (the digest);
- `ask_person(question, to, schema, details, timeout)`: ask someone a question; returns a
  run id at once (a person may take days; an MCP call cannot wait that long);
- `get_answer(run_id)`: whether the question was answered, declined or timed out, and the
  answer. Poll it, or tell the user to come back later.

`ask_person` starts the built-in workflow `signoff.ask_person` (registered on the engine
by `create_server`; a worker of another process runs it only if its app registers it with
`register_ask`). Bad input is an MCP tool error (`isError`) with a one-line message that
names the problem, never a traceback.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from signoff import context, errors, models, serialization
from signoff.engine import Engine

ASK_WORKFLOW = "signoff.ask_person"
T = TypeVar("T")

DECISIONS = ("approve", "reject", "edit", "request_changes", "answer")
# Checked by `decide` itself (a one-line error), shown to the client as an enum.
Decision = Annotated[str, Field(json_schema_extra={"enum": list(DECISIONS)})]


async def ask_person(
    ctx: context.Context,
    question: str,
    to: list[str] | None = None,
    schema: dict[str, Any] | None = None,
    details: Any = None,
    timeout: str | None = None,
) -> dict[str, Any]:
    """The built-in workflow behind the `ask_person` tool: `ctx.ask`, its outcome as data."""
    try:
        answer = await ctx.ask(
            question, key="question", to=to, schema=schema, details=details, timeout=timeout
        )
    except errors.QuestionDeclined as exc:
        return {"status": "declined", "by": exc.by, "reason": exc.reason}
    except errors.WaitTimeout:
        return {"status": "timed_out"}
    return {"status": "answered", "answer": answer}


def register_ask(engine: Engine) -> None:
    """Register the `signoff.ask_person` workflow on `engine` (once)."""
    if ASK_WORKFLOW not in engine.workflows:
        engine.workflow(ASK_WORKFLOW)(ask_person)


def create_server(engine: Engine, *, person: str) -> MCPServer[Any]:
    """The MCP server of `engine`, acting as `person`."""
    if not isinstance(person, str) or not person.strip():
        raise errors.InvalidArgument("the MCP server acts as a person: give a name (--as)")
    register_ask(engine)
    server: MCPServer[Any] = MCPServer(
        "signoff",
        instructions=(
            f"Durable workflows that wait for people, acting as {person}. Start workflows, "
            "hand risky actions and questions to people, list and decide "
            f"{person}'s approvals (pass back the digest you were shown)."
        ),
    )

    @server.tool()
    async def start_workflow(
        workflow: str,
        args: list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        """Start a run of a workflow by name with JSON arguments; returns the run."""
        run = await _call(
            engine.start(
                workflow, *(args or []), run_id=run_id, requested_by=person, **(kwargs or {})
            )
        )
        return _run(run)

    @server.tool()
    async def get_run(run_id: str) -> dict[str, Any]:
        """A run: its status, what it waits for, and its result or error once it ended."""
        return _run(await _call(_get_run(engine, run_id)))

    @server.tool()
    async def list_my_approvals(limit: int = 20) -> dict[str, Any]:
        """The approvals and questions waiting for this person's decision, oldest first."""
        page = await _call(engine.pending_approvals(approver=person, limit=_limit(limit)))
        return {"as": person, "approvals": [_approval(a) for a in page]}

    @server.tool()
    async def get_approval(run_id: str, key: str) -> dict[str, Any]:
        """One approval (the latest round under `key`), with the digest of what it shows."""
        return _approval(await _call(_find(engine, run_id, key)))

    @server.tool()
    async def decide(
        run_id: str,
        key: str,
        decision: Decision,
        digest: str,
        reason: str | None = None,
        value: Any = None,
    ) -> dict[str, Any]:
        """Decide an approval as this person: approve, reject, edit (`value`: the changed
        value), request_changes, or answer a question (`value`: the answer). `digest` is
        the approval's digest as listed: the decision is refused if what it shows changed."""
        if decision not in DECISIONS:
            raise ToolError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r:.40}")
        if decision in ("edit", "answer") and value is None:
            raise ToolError(f"decision {decision!r} needs a value")
        run_id = await _call(engine.resolve_run_id(run_id))
        act: Awaitable[models.Decision]
        if decision == "approve":
            act = engine.approve(run_id, key, by=person, reason=reason, digest=digest)
        elif decision == "reject":
            act = engine.reject(run_id, key, by=person, reason=reason, digest=digest)
        elif decision == "edit":
            act = engine.edit(run_id, key, value, by=person, reason=reason, digest=digest)
        elif decision == "answer":
            act = engine.answer(run_id, key, value, by=person, digest=digest)
        else:
            act = engine.request_changes(run_id, key, by=person, reason=reason, digest=digest)
        made = await _call(act)
        return {"run_id": run_id, **_jsonable(made.to_json())}

    @server.tool()
    async def ask_person(
        question: str,
        to: list[str] | None = None,
        schema: dict[str, Any] | None = None,
        details: Any = None,
        timeout: str | None = None,
    ) -> dict[str, Any]:
        """Ask a person (`to`: names or role:NAME; anyone when empty) a question. Returns a
        run id at once: a person may take hours or days. Call get_answer(run_id) later.
        `schema` (JSON Schema) shapes the answer; `timeout` (e.g. "2d") bounds the wait."""
        run = await _call(
            engine.start(
                ASK_WORKFLOW,
                question,
                to or None,
                schema,
                details,
                timeout,
                requested_by=person,
            )
        )
        return {"run_id": run.id, "status": "asked", "next": "call get_answer(run_id) later"}

    @server.tool()
    async def get_answer(run_id: str) -> dict[str, Any]:
        """The outcome of ask_person: status "waiting", "answered" (with `answer`),
        "declined" (with who and why) or "timed_out"."""
        run = await _call(_get_run(engine, run_id))
        if run.workflow != ASK_WORKFLOW:
            raise ToolError(f"run {run.id} is a {run.workflow} run, not a question")
        if run.status is models.RunStatus.COMPLETED and isinstance(run.result, dict):
            return {"run_id": run.id, **_jsonable(run.result)}
        if run.status in (models.RunStatus.FAILED, models.RunStatus.CANCELLED):
            return {"run_id": run.id, "status": run.status.value, "error": _error(run)}
        return {"run_id": run.id, "status": "waiting"}

    return server


async def _call(aw: Awaitable[T]) -> T:
    """An engine call; its errors as MCP tool errors (a line, with the error's code)."""
    try:
        return await aw
    except errors.SignoffError as exc:
        raise ToolError(f"{exc.code}: {_one_line(str(exc))}") from None


async def _get_run(engine: Engine, run_id: str) -> models.Run:
    return await engine.get_run(await engine.resolve_run_id(run_id))


async def _find(engine: Engine, run_id: str, key: str) -> models.Approval:
    rid = await engine.resolve_run_id(run_id)
    found = [a for a in await engine.approvals(rid) if a.key == key]
    if not found:
        raise errors.ApprovalNotFound(f"run {rid} has no approval {key!r}", run_id=rid, key=key)
    return max(found, key=lambda a: a.round)


def _limit(limit: int) -> int:
    if not 1 <= limit <= 100:
        raise ToolError(f"limit must be between 1 and 100, not {limit}")
    return limit


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _iso(at: datetime.datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _jsonable(value: Any) -> Any:
    return serialization.to_jsonable(value, "the response")


def _run(run: models.Run) -> dict[str, Any]:
    out: dict[str, Any] = {
        "run_id": run.id,
        "workflow": run.workflow,
        "status": run.status.value,
        "waiting_for": run.waiting_for,
        "requested_by": run.requested_by,
        "created_at": _iso(run.created_at),
    }
    if run.status is models.RunStatus.COMPLETED:
        out["result"] = _jsonable(run.result)
    if run.error:
        out["error"] = _error(run)
    return out


def _error(run: models.Run) -> str:
    error = run.error or {}
    return f"{error.get('type', 'error')}: {error.get('message', '')}"


def _approval(a: models.Approval) -> dict[str, Any]:
    return {
        "run_id": a.run_id,
        "workflow": a.workflow,
        "key": a.key,
        "status": a.status.value,
        "summary": a.summary,
        "proposed": _jsonable(a.proposed),
        "digest": a.digest,
        "question": a.question,
        "edits_allowed": a.edits,
        "schema": _jsonable(getattr(a, "schema", None)),
        "approvers": list(a.approvers),
        "quorum": a.quorum,
        "votes": len(a.votes),
        "requested_at": _iso(a.requested_at),
        "deadline": _iso(a.deadline),
        "decided_by": a.decided_by,
        "value": _jsonable(a.value),
    }


async def serve_stdio(engine: Engine, *, person: str, worker: bool = True) -> None:
    """Serve `engine` over MCP on stdin/stdout as `person`, with a worker unless not."""
    server = create_server(engine, person=person)
    try:
        await engine.open()
        if worker:
            await engine.start_worker()
        await server.run_stdio_async()
    finally:
        await engine.close()
