"""signoff: durable human-in-the-loop workflows.

A workflow is an `async def` function. It pauses for a person's decision, waits hours or
days as rows in a database, survives restarts, and resumes exactly where it stopped.
"""

import warnings
from typing import TYPE_CHECKING, Any

from signoff.client import ApiError, AsyncClient, Client
from signoff.context import Context, idempotency_key
from signoff.engine import Engine
from signoff.errors import (
    AmbiguousRunId,
    AnswerRequired,
    ApprovalClosed,
    ApprovalExpired,
    ApprovalNotFound,
    BadCursor,
    ConcurrencyError,
    DatabaseNotFound,
    DecisionConflict,
    DuplicateApprovalKey,
    DuplicateVote,
    EditNotAllowed,
    InvalidArgument,
    InvalidDuration,
    InvalidEdit,
    InvalidRunState,
    NonDeterminismError,
    NotAllowedToDecide,
    NotSerializable,
    OutsideWorkflowError,
    QuestionDeclined,
    RunCancelled,
    RunFailed,
    RunNotFound,
    RunTimedOut,
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
from signoff.gc_tuning import tune_gc
from signoff.models import (
    Approval,
    ApprovalPage,
    ApprovalStatus,
    Decision,
    DecisionStatus,
    HistoryEntry,
    PurgeReport,
    RetryPolicy,
    Run,
    RunPage,
    RunStatus,
    Vote,
)
from signoff.policy import Directory, Stage
from signoff.sync import SyncEngine

if TYPE_CHECKING:  # the deprecated name, for type checkers; at run time __getattr__ warns
    from signoff.models import HistoryEntry as HistoryEvent  # noqa: F401

__version__ = "0.1.0"

__all__ = [
    "AmbiguousRunId",
    "AnswerRequired",
    "ApiError",
    "Approval",
    "ApprovalClosed",
    "ApprovalExpired",
    "ApprovalNotFound",
    "ApprovalPage",
    "ApprovalStatus",
    "AsyncClient",
    "BadCursor",
    "CallRejected",
    "Client",
    "ConcurrencyError",
    "Context",
    "DatabaseNotFound",
    "Decision",
    "DecisionConflict",
    "DecisionStatus",
    "Directory",
    "DuplicateApprovalKey",
    "DuplicateVote",
    "EditNotAllowed",
    "Engine",
    "Gated",
    "HistoryEntry",
    "InvalidArgument",
    "InvalidDuration",
    "InvalidEdit",
    "InvalidRunState",
    "NonDeterminismError",
    "NotAllowedToDecide",
    "NotSerializable",
    "OutsideWorkflowError",
    "PurgeReport",
    "QuestionDeclined",
    "RetryPolicy",
    "Run",
    "RunCancelled",
    "RunFailed",
    "RunNotFound",
    "RunPage",
    "RunStatus",
    "RunTimedOut",
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
    "tune_gc",
]


def __getattr__(name: str) -> Any:
    if name == "HistoryEvent":  # the old name, kept for one release
        warnings.warn(
            "signoff.HistoryEvent is deprecated; use signoff.HistoryEntry",
            DeprecationWarning,
            stacklevel=2,
        )
        return HistoryEntry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
