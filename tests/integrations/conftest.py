"""Fixtures of the agent integration tests (worker processes of the agents app)."""

from tests.integrations.procs import agent_client, agent_workers  # noqa: F401 - fixtures
