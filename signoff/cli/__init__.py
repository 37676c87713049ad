"""The `signoff` command line: run a worker, inspect runs, decide approvals, start runs.

```
signoff worker app:engine                 # execute runs (SIGTERM/Ctrl-C drains, then exits 0)
signoff runs list --status waiting
signoff runs show 6f1c2a                  # fields, approvals, timeline (an id or its prefix)
signoff approvals list --approver alice   # what alice may decide, with digest and votes
signoff approve 6f1c2a manager --by alice --reason "ok"
signoff start refund --input '["ord-1"]'
```
One module per concern: `core` (root group, settings, shared options, errors), `output`
(tables and JSON), `apps` (which engine and database), `runs`, `approvals`, `serve`
(worker and HTTP API), `admin` (tokens, schema), `audit` (verify and export the record),
`deliveries` (notifications: outcomes and retries), `check` (the deploy preflight),
`mcp` (an MCP server for assistants).
Every option can also be set from a `SIGNOFF_*` environment variable (shown by `--help`).
"""

from __future__ import annotations

from signoff.cli import (  # noqa: F401 - they register commands
    admin,
    approvals,
    audit,
    check,
    deliveries,
    mcp,
    runs,
    serve,
)
from signoff.cli.apps import load_app
from signoff.cli.core import CliError, cli, main

__all__ = ["CliError", "cli", "load_app", "main"]
