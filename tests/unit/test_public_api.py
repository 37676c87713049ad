"""The public names are a contract: locked here, so a change is a deliberate one."""

from __future__ import annotations

import signoff
from signoff import errors

LOCKED = [
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


def test_all_is_sorted_and_locked() -> None:
    assert signoff.__all__ == sorted(signoff.__all__)
    assert signoff.__all__ == LOCKED


def test_every_public_name_exists() -> None:
    for name in signoff.__all__:
        assert getattr(signoff, name) is not None, name


def test_star_import_gives_exactly_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from signoff import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == LOCKED


def test_every_error_is_a_signoff_error_with_a_unique_code() -> None:
    classes = [
        getattr(signoff, n)
        for n in LOCKED
        if isinstance(getattr(signoff, n), type) and issubclass(getattr(signoff, n), BaseException)
    ]
    assert all(issubclass(c, signoff.SignoffError) for c in classes)
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes))
    assert errors.AppImportError.code not in codes


def test_error_tree() -> None:
    assert issubclass(signoff.InvalidDuration, signoff.InvalidArgument)
    assert issubclass(signoff.NotSerializable, signoff.InvalidArgument)
    assert issubclass(signoff.InvalidArgument, ValueError)
    assert issubclass(signoff.ApprovalExpired, signoff.DecisionConflict)
    assert issubclass(signoff.ApprovalClosed, signoff.DecisionConflict)
    assert issubclass(signoff.StoreUnavailable, signoff.StoreError)
    assert issubclass(signoff.SchemaVersionError, signoff.StoreError)
    assert issubclass(signoff.RunNotFound, LookupError)
    assert issubclass(signoff.WaitTimeout, TimeoutError)
    assert signoff.RunNotFound.status == 404 and signoff.DecisionConflict.status == 409


def test_errors_carry_structured_attributes() -> None:
    err = signoff.DecisionConflict("taken", run_id="r", key="k", decision="d")
    assert (err.run_id, err.key, err.decision, err.message) == ("r", "k", "d", "taken")
    default = signoff.RunNotFound()
    assert str(default) == "No run has that id."
    assert default.run_id is None
