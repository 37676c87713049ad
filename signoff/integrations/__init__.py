"""Agent toolkits in signoff workflows, one module per toolkit, each an optional extra.

- `signoff.integrations.pydantic_ai` (`pip install 'signoff[pydantic-ai]'`)
- `signoff.integrations.openai_agents` (`pip install 'signoff[openai-agents]'`)
- `signoff.integrations.langgraph` (`pip install 'signoff[langgraph]'`)

The MCP server (`signoff mcp APP`, `pip install 'signoff[mcp]'`) is `signoff.mcp_server`.

Each module journals the agent's model calls as steps (a resumed run never asks the
model again for a turn already taken) and turns the toolkit's own approval feature into
signoff approvals. Importing `signoff` or this package imports no toolkit: only the
module of a toolkit does. See docs/agents.md.
"""
