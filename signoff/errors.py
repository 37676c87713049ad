"""Every error signoff raises, under one root.

```
SignoffError
├── InvalidArgument              bad value passed to the API (HTTP 422)
│   ├── AmbiguousRunId           several run ids start with that prefix
│   ├── BadCursor                a list's cursor that no page handed out (400)
│   ├── InvalidDuration          "7x" is not a duration
│   ├── NotSerializable          a value is not JSON (NaN, NUL, set, ...)
│   ├── InvalidEdit              an edit does not validate against the approval's schema
│   ├── EditNotAllowed           the approval may be approved or rejected, not edited
│   └── AnswerRequired           a question (ctx.ask) is answered, not approved
├── WorkflowNotFound             no workflow registered under that name (404)
├── RunNotFound                  no run with that id (404)
├── ApprovalNotFound             the run never asked for that key (404)
├── DuplicateApprovalKey         the workflow reused a decided key
├── InvalidRunState              cancel a finished run, retry one that did not fail (409)
├── NotAllowedToDecide           this person may not decide this approval (403)
│   └── SelfApproval             the run's requester may not approve their own request
├── DecisionConflict             the approval was already decided differently (409)
│   ├── ApprovalExpired          its deadline passed first
│   ├── ApprovalClosed           the run ended or was cancelled
│   ├── DuplicateVote            this person already voted in this round
│   └── StaleDigest              the decision was taken on a view that changed
├── RunFailed                    engine.result() on a failed run
├── RunCancelled                 engine.result() on a cancelled run
├── RunTimedOut                  the run passed its deadline (workflow timeout=)
├── StepError                    a step failed after its retries (raised in the workflow)
├── WaitTimeout                  wait_for_signal(timeout=) or ctx.ask(timeout=) ran out
├── QuestionDeclined             the person asked (ctx.ask) declined to answer
├── NonDeterminismError          replay found a different call than the journal holds
├── ConcurrencyError             a durable wait was cancelled by asyncio (use any_of)
├── OutsideWorkflowError         a workflow helper called outside a run
├── StoreError                   the database failed
│   ├── StoreUnavailable         it cannot be opened or reached
│   │   └── DatabaseNotFound     no database at that URL (commands never create one)
│   └── SchemaVersionError       the schema is newer than this code
└── AppImportError               the CLI could not import APP
```

Each error has a stable string `code` (used by the HTTP API) and structured attributes
such as `run_id` and `key`; its message names the fix where there is one.
"""

from __future__ import annotations

from typing import Any, ClassVar


class SignoffError(Exception):
    """Something went wrong in signoff."""

    code: ClassVar[str] = "signoff_error"
    status: ClassVar[int] = 500

    def __init__(self, message: str | None = None, **attrs: Any) -> None:
        doc = (type(self).__doc__ or "").strip().splitlines()
        super().__init__(message or (doc[0] if doc else type(self).__name__))
        self.run_id: str | None = attrs.pop("run_id", None)
        self.key: str | None = attrs.pop("key", None)
        for name, value in attrs.items():
            setattr(self, name, value)

    @property
    def message(self) -> str:
        return str(self)


class InvalidArgument(SignoffError, ValueError):
    """An argument has an invalid value."""

    code = "invalid_argument"
    status = 422


class InvalidDuration(InvalidArgument):
    """Not a duration; use a timedelta, seconds, or a string like "30s", "4h", "7d"."""

    code = "invalid_duration"


class NotSerializable(InvalidArgument):
    """A value cannot be stored as JSON."""

    code = "not_serializable"


class InvalidEdit(InvalidArgument):
    """The edited value does not validate against the approval's schema."""

    code = "invalid_edit"

    def __init__(self, message: str | None = None, **attrs: Any) -> None:
        self.errors: list[str] = attrs.pop("errors", None) or []
        super().__init__(message, **attrs)


class EditNotAllowed(InvalidArgument):
    """The approval was asked with `edits=False`: approve or reject it as it stands."""

    code = "edit_not_allowed"


class AnswerRequired(InvalidArgument):
    """The request is a question (`ctx.ask`): answer it, or reject it to decline."""

    code = "answer_required"


class WorkflowNotFound(SignoffError, LookupError):
    """No workflow is registered under that name."""

    code = "workflow_not_found"
    status = 404


class RunNotFound(SignoffError, LookupError):
    """No run has that id."""

    code = "run_not_found"
    status = 404


class ApprovalNotFound(SignoffError, LookupError):
    """The run has not asked for an approval under that key."""

    code = "approval_not_found"
    status = 404


class DuplicateApprovalKey(SignoffError):
    """An approval key is used twice in one run; keys are unique within a run."""

    code = "duplicate_approval_key"
    status = 409


class InvalidRunState(SignoffError):
    """The run is not in a state that allows this operation."""

    code = "invalid_run_state"
    status = 409


class NotAllowedToDecide(SignoffError, PermissionError):
    """This person may not decide this approval."""

    code = "not_allowed_to_decide"
    status = 403

    def __init__(self, message: str | None = None, **attrs: Any) -> None:
        self.allowed: list[str] = attrs.pop("allowed", None) or []
        super().__init__(message, **attrs)


class SelfApproval(NotAllowedToDecide):
    """Who requested the run may not approve it (separation of duties)."""

    code = "self_approval"


class DecisionConflict(SignoffError):
    """The approval was already decided differently; the first decision wins."""

    code = "decision_conflict"
    status = 409

    def __init__(self, message: str | None = None, **attrs: Any) -> None:
        self.decision: Any = attrs.pop("decision", None)
        super().__init__(message, **attrs)


class ApprovalExpired(DecisionConflict):
    """The approval's deadline passed before the decision arrived."""

    code = "approval_expired"


class ApprovalClosed(DecisionConflict):
    """The run ended before the approval was decided."""

    code = "approval_closed"


class DuplicateVote(DecisionConflict):
    """This person already voted on this approval round; a quorum needs distinct people."""

    code = "duplicate_vote"


class StaleDigest(DecisionConflict):
    """The decision carries the digest of a view that is no longer current."""

    code = "stale_digest"


class RunFailed(SignoffError):
    """The run failed."""

    code = "run_failed"
    status = 409

    def __init__(self, message: str | None = None, **attrs: Any) -> None:
        self.error: dict[str, Any] = attrs.pop("error", None) or {}
        super().__init__(message, **attrs)


class RunCancelled(SignoffError):
    """The run was cancelled."""

    code = "run_cancelled"
    status = 409


class StepError(SignoffError):
    """A step failed after its retries."""

    code = "step_failed"

    def __init__(self, message: str | None = None, **attrs: Any) -> None:
        self.step: str = attrs.pop("step", "")
        self.error_type: str = attrs.pop("error_type", "")
        self.error_message: str = attrs.pop("error_message", "")
        self.traceback: str = attrs.pop("traceback", "")
        super().__init__(message, **attrs)


class WaitTimeout(SignoffError, TimeoutError):
    """The wait ran out of time before the signal arrived."""

    code = "wait_timeout"


class QuestionDeclined(SignoffError):
    """The person asked (`ctx.ask`) declined to answer; `by` and `reason` say who and why."""

    code = "question_declined"

    def __init__(self, message: str | None = None, **attrs: Any) -> None:
        self.by: str | None = attrs.pop("by", None)
        self.reason: str | None = attrs.pop("reason", None)
        super().__init__(message, **attrs)


class NonDeterminismError(SignoffError):
    """Replay found a different call than the one recorded in the journal."""

    code = "non_determinism"

    def __init__(self, message: str | None = None, **attrs: Any) -> None:
        self.seq: int | None = attrs.pop("seq", None)
        self.expected: str | None = attrs.pop("expected", None)
        self.found: str | None = attrs.pop("found", None)
        super().__init__(message, **attrs)


class OutsideWorkflowError(SignoffError, RuntimeError):
    """This helper only works inside a running workflow."""

    code = "outside_workflow"


class StoreError(SignoffError):
    """The database reported an error."""

    code = "store_error"
    status = 503


class StoreUnavailable(StoreError):
    """The database cannot be opened or reached."""

    code = "store_unavailable"


class SchemaVersionError(StoreError):
    """The database schema is newer than this version of signoff knows."""

    code = "schema_version"


class AppImportError(SignoffError):
    """The application could not be imported; use an import string like "module:engine"."""

    code = "app_import_error"


class DatabaseNotFound(StoreUnavailable):
    """There is no database at that URL; point at the right one (or create it)."""

    code = "database_not_found"

    def __init__(self, message: str | None = None, **attrs: Any) -> None:
        self.url: str | None = attrs.pop("url", None)
        super().__init__(message, **attrs)


class AmbiguousRunId(InvalidArgument):
    """More than one run id starts with that prefix; give more of the id."""

    code = "ambiguous_run_id"

    def __init__(self, message: str | None = None, **attrs: Any) -> None:
        self.candidates: list[str] = attrs.pop("candidates", None) or []
        super().__init__(message, **attrs)


class ConcurrencyError(SignoffError):
    """Workflow code used concurrency around a durable wait in a way that cannot replay."""

    code = "unsupported_concurrency"


class BadCursor(InvalidArgument):
    """The cursor is not one a list handed out; pass a page's `next_cursor`."""

    code = "bad_cursor"
    status = 400


class RunTimedOut(SignoffError):
    """The run passed its own deadline (`@engine.workflow(timeout=...)`)."""

    code = "run_timed_out"
