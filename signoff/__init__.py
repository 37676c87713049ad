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
    DuplicateVote,
    InvalidArgument,
    InvalidDuration,
    InvalidEdit,
    InvalidRunState,
    NonDeterminismError,
    NotAllowedToDecide,
    NotSerializable,
    OutsideWorkflowError,
    RunCancelled,
    RunFailed,
    RunNotFound,
    SchemaVersionError,
    SelfApproval,
    SignoffError,
    StaleDigest,
    StepError,
    StoreError,
    StoreUnavailable,
    WaitTimeout,
    WorkflowNotFound,
)
from signoff.gated import CallRejected, Gated, gated
from signoff.models import (
    Approval,
    ApprovalPage,
    ApprovalStatus,
    Decision,
    DecisionStatus,
    HistoryEvent,
    RetryPolicy,
    Run,
    RunStatus,
    Vote,
)
from signoff.policy import Directory, Stage
from signoff.sync import SyncEngine

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "Approval",
    "ApprovalClosed",
    "ApprovalExpired",
    "ApprovalNotFound",
    "ApprovalPage",
    "ApprovalStatus",
    "AsyncClient",
    "CallRejected",
    "Client",
    "Context",
    "Decision",
    "DecisionConflict",
    "DecisionStatus",
    "Directory",
    "DuplicateApprovalKey",
    "DuplicateVote",
    "Engine",
    "Gated",
    "HistoryEvent",
    "InvalidArgument",
    "InvalidDuration",
    "InvalidEdit",
    "InvalidRunState",
    "NonDeterminismError",
    "NotAllowedToDecide",
    "NotSerializable",
    "OutsideWorkflowError",
    "RetryPolicy",
    "Run",
    "RunCancelled",
    "RunFailed",
    "RunNotFound",
    "RunStatus",
    "SchemaVersionError",
    "SelfApproval",
    "SignoffError",
    "Stage",
    "StaleDigest",
    "StepError",
    "StoreError",
    "StoreUnavailable",
    "SyncEngine",
    "Vote",
    "WaitTimeout",
    "WorkflowNotFound",
    "gated",
    "idempotency_key",
]
