"""signoff: durable human-in-the-loop workflows.

A workflow is an `async def` function. It pauses for a person's decision, waits hours or
days as rows in a database, survives restarts, and resumes exactly where it stopped.
"""

from signoff.client import ApiError, AsyncClient, Client
from signoff.context import Context, idempotency_key
from signoff.engine import Engine
from signoff.errors import (
    ApprovalClosed,
    ApprovalExpired,
    ApprovalNotFound,
    DecisionConflict,
    DuplicateApprovalKey,
    InvalidArgument,
    InvalidDuration,
    InvalidRunState,
    NonDeterminismError,
    NotSerializable,
    OutsideWorkflowError,
    RunCancelled,
    RunFailed,
    RunNotFound,
    SchemaVersionError,
    SignoffError,
    StepError,
    StoreError,
    StoreUnavailable,
    WaitTimeout,
    WorkflowNotFound,
)
from signoff.gated import CallRejected, Gated, gated
from signoff.models import (
    Approval,
    ApprovalStatus,
    Decision,
    DecisionStatus,
    HistoryEvent,
    RetryPolicy,
    Run,
    RunStatus,
)
from signoff.sync import SyncEngine

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "Approval",
    "ApprovalClosed",
    "ApprovalExpired",
    "ApprovalNotFound",
    "ApprovalStatus",
    "AsyncClient",
    "CallRejected",
    "Client",
    "Context",
    "Decision",
    "DecisionConflict",
    "DecisionStatus",
    "DuplicateApprovalKey",
    "Engine",
    "Gated",
    "HistoryEvent",
    "InvalidArgument",
    "InvalidDuration",
    "InvalidRunState",
    "NonDeterminismError",
    "NotSerializable",
    "OutsideWorkflowError",
    "RetryPolicy",
    "Run",
    "RunCancelled",
    "RunFailed",
    "RunNotFound",
    "RunStatus",
    "SchemaVersionError",
    "SignoffError",
    "StepError",
    "StoreError",
    "StoreUnavailable",
    "SyncEngine",
    "WaitTimeout",
    "WorkflowNotFound",
    "gated",
    "idempotency_key",
]
