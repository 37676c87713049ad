"""OpenAI Agents SDK agents inside signoff workflows: durable model calls, tool calls that a
person approves (`pip install 'signoff[openai-agents]'`).

```python
from agents import Agent, function_tool
from signoff.integrations.openai_agents import run_agent

@function_tool(needs_approval=True)
def send_email(to: str, subject: str, body: str) -> str:
    ...

agent = Agent(name="support", instructions="...", tools=[send_email])

@engine.workflow()
async def support(ctx: Context, ticket: str) -> str:
    return await run_agent(ctx, agent, f"Answer ticket {ticket}")
```

`run_agent` runs the agent with every model response recorded as a step (a resumed run
never asks the model again for a turn it already took) and every function tool's run
recorded as a step. When the run stops on interruptions (`needs_approval` tools), its
`RunState` (`result.to_state().to_json()`) is recorded as a step and every interruption
becomes an approval, all opened together (one park), keyed `tool:<the model's call id>`,
proposing the call's arguments, with the tool's JSON schema. The next leg resumes from the
recorded state, never from one rebuilt on replay:

- approved: `state.approve(item)`: the tool runs once with the model's arguments;
- rejected, expired or changes requested: `state.reject(item, rejection_message=<who and
  why>)`: the tool does not run and the model reads the refusal and goes on.

The SDK cannot run an approved call with other arguments, so these approvals refuse
edits (`edits=False`: `engine.edit` raises `EditNotAllowed`, on every surface) rather
than accept an edit and run the original.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any

from agents import Agent, FunctionTool, Model, RunConfig, Runner, RunState
from agents.agent_output import AgentOutputSchemaBase
from agents.handoffs import Handoff
from agents.items import ModelResponse, ToolApprovalItem, TResponseInputItem, TResponseStreamEvent
from agents.model_settings import ModelSettings
from agents.models.interface import ModelTracing
from agents.tool import Tool
from agents.tool_context import ToolContext
from openai.types.responses.response_prompt_param import ResponsePromptParam
from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python

from signoff import context, durations, errors, models
from signoff.integrations import _tool_approvals as shared

__all__ = ["JournaledModel", "run_agent"]

MODEL_STEP = "openai_agents.model_response"
TOOL_STEP = "openai_agents.tool"
STATE_STEP = "openai_agents.run_state"
_RESPONSE = TypeAdapter(ModelResponse)


class JournaledModel(Model):
    """A model whose responses are journaled: inside a workflow each `get_response` is a
    step, so on replay the recorded `ModelResponse` comes back and the model is not
    called. Streaming is not journaled: `Runner.run_streamed` is refused."""

    def __init__(self, wrapped: Model) -> None:
        self.wrapped = wrapped

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> ModelResponse:
        async def call() -> dict[str, Any]:
            response = await self.wrapped.get_response(
                system_instructions,
                input,
                model_settings,
                tools,
                output_schema,
                handoffs,
                tracing,
                previous_response_id=previous_response_id,
                conversation_id=conversation_id,
                prompt=prompt,
            )
            dumped: dict[str, Any] = _RESPONSE.dump_python(response, mode="json")
            return dumped

        recorded = await context.current().step(call, name=MODEL_STEP)
        return _RESPONSE.validate_python(recorded)

    def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        raise errors.InvalidArgument(
            "a journaled model answers whole responses: use Runner.run (or run_agent), "
            "not Runner.run_streamed, inside a workflow"
        )

    async def close(self) -> None:
        await self.wrapped.close()


def _journaled_tool(tool: Tool) -> Tool:
    """A function tool whose every run is a step (its result journaled as JSON)."""
    if not isinstance(tool, FunctionTool):
        return tool
    invoke = tool.on_invoke_tool

    async def journaled(tool_context: ToolContext[Any], arguments: str) -> Any:
        async def run() -> Any:
            return to_jsonable_python(await invoke(tool_context, arguments))

        return await context.current().step(run, name=f"{TOOL_STEP}:{tool.name}")

    return dataclasses.replace(tool, on_invoke_tool=journaled)


def _journaled_config(agent: Agent[Any], run_config: RunConfig | None) -> RunConfig:
    config = run_config or RunConfig()
    model = config.model if config.model is not None else agent.model
    if not isinstance(model, Model):
        model = config.model_provider.get_model(model)
    if isinstance(model, JournaledModel):
        return config
    return dataclasses.replace(config, model=JournaledModel(model))


def _model_name(agent: Agent[Any], run_config: RunConfig | None) -> str:
    model = run_config.model if run_config is not None and run_config.model else agent.model
    if isinstance(model, JournaledModel):
        model = model.wrapped
    if isinstance(model, str):
        return model
    return type(model).__name__ if model is not None else "the default model"


# run_agent ---------------------------------------------------------------------------


Describe = Callable[[ToolApprovalItem, FunctionTool | None, str], str]


async def run_agent(
    ctx: context.Context,
    agent: Agent[Any],
    input: str | list[TResponseInputItem],
    *,
    run_context: Any = None,
    run_config: RunConfig | None = None,
    max_turns: int | None = None,
    approvers: Sequence[str] | None = None,
    timeout: durations.Duration | None = None,
    describe: Describe | None = None,
    key_prefix: str = "tool",
    max_legs: int = 50,
) -> Any:
    """Run `agent` on `input` durably in the workflow of `ctx`; return its final output.

    Model responses and function tool runs are journaled; interruptions become approvals
    (see the module's docstring) asked of `approvers` (anyone when None) with `timeout`;
    they may be approved or rejected, not edited. `run_context` is the SDK's run context
    (`Runner.run(context=...)`); it must survive `RunState.to_json()`. `describe(item,
    tool, model_name)` replaces the summary shown to the approver. The model is the run
    config's, else the agent's, for every agent of the run. Each approval round is a new
    leg resumed from the recorded `RunState`; `max_legs` bounds them.
    """
    journaled = agent.clone(tools=[_journaled_tool(t) for t in agent.tools])
    config = _journaled_config(agent, run_config)
    model_name = _model_name(agent, run_config)
    options: dict[str, Any] = {} if max_turns is None else {"max_turns": max_turns}
    start: str | list[TResponseInputItem] | RunState[Any] = input
    keys: dict[str, int] = {}
    for _ in range(max_legs):
        result = await Runner.run(
            journaled, start, context=run_context, run_config=config, **options
        )
        if not result.interruptions:
            return result.final_output
        recorded = await ctx.step(_state_json, result.to_state(), name=STATE_STEP)
        state = await RunState.from_json(journaled, recorded)
        items = state.get_interruptions()
        decisions = await ctx.all_of(
            *(
                _ask(ctx, item, model_name, approvers, timeout, describe, key_prefix, keys)
                for item in items
            )
        )
        for item, decision in zip(items, decisions, strict=True):
            if decision.status is models.DecisionStatus.APPROVED:
                state.approve(item)
            else:  # an edit was refused when it was made: edits=False
                state.reject(item, rejection_message=shared.refusal(decision))
        start = state
    raise errors.InvalidArgument(
        f"run_agent: the agent stopped for approvals {max_legs} times without finishing; "
        "raise max_legs if that is expected",
        run_id=ctx.run_id,
    )


def _state_json(state: RunState[Any]) -> dict[str, Any]:
    """The step between legs: the run's state as JSON."""
    return state.to_json()


def _ask(
    ctx: context.Context,
    item: ToolApprovalItem,
    model_name: str,
    approvers: Sequence[str] | None,
    timeout: durations.Duration | None,
    describe: Describe | None,
    key_prefix: str,
    keys: dict[str, int],
) -> Coroutine[Any, Any, models.Decision]:
    tool = next(
        (t for t in item.agent.tools if isinstance(t, FunctionTool) and t.name == item.tool_name),
        None,
    )
    arguments = item.arguments or "{}"
    try:
        proposed = json.loads(arguments)
    except ValueError:
        proposed = {"arguments": arguments}  # shown as the model wrote it
    if describe is not None:
        summary = describe(item, tool, model_name)
    else:
        description = None if tool is None else tool.description
        summary = shared.summary(
            item.tool_name or "tool", description, model_name, item.call_id or ""
        )
    return ctx.approval(
        shared.key(key_prefix, item.call_id or "", keys),
        summary=summary,
        proposed=proposed,
        schema=None if tool is None else tool.params_json_schema,
        approvers=approvers,
        timeout=timeout,
        edits=False,
        metadata=shared.metadata(
            item.tool_name or "tool",
            None if tool is None else tool.description,
            model_name,
            item.call_id or "",
        ),
    )
