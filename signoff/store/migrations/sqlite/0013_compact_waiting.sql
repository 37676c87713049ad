-- Fewer bytes per waiting run. journal, approvals and approval_inbox are keyed by a
-- composite text key: as WITHOUT ROWID tables their rows sit in the key's own b-tree,
-- instead of a rowid table beside an index holding the key a second time.
-- An approval's policy is stored as "~1" when it is the plain policy text below (see
-- signoff.store.sql.stored_policy: "~1" plus what differs from it, when that reads back
-- as the same text); every reader turns it back into the same text. Its digest is stored
-- as its 32 bytes (signoff.store.sql.stored_digest), and shown as the same 64 hex digits;
-- the digests of rows written before stay hex text (SQLite has no unhex() before 3.41).
CREATE TABLE journal_0013 (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    wake_at REAL,
    started_at REAL NOT NULL,
    finished_at REAL,
    path TEXT,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
INSERT INTO journal_0013 (run_id, seq, kind, name, status, result, error, attempts, wake_at, started_at, finished_at, path) SELECT run_id, seq, kind, name, status, result, error, attempts, wake_at, started_at, finished_at, path FROM journal;
DROP TABLE journal;
ALTER TABLE journal_0013 RENAME TO journal;
CREATE TABLE approvals_0013 (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    round INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    summary TEXT NOT NULL,
    proposed TEXT,
    value TEXT,
    decided_by TEXT,
    reason TEXT,
    requested_at REAL NOT NULL,
    decided_at REAL,
    deadline REAL,
    policy TEXT,
    digest BLOB,
    escalate_at REAL,
    remind_at REAL,
    timed_out INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, key, round)
) WITHOUT ROWID;
INSERT INTO approvals_0013 (run_id, key, round, seq, workflow, status, summary, proposed, value, decided_by, reason, requested_at, decided_at, deadline, policy, digest, escalate_at, remind_at, timed_out) SELECT run_id, key, round, seq, workflow, status, summary, proposed, value, decided_by, reason, requested_at, decided_at, deadline, CASE WHEN policy = '{"approvers":[],"eligible":null,"quorum":1,"reject_quorum":1,"allow_self_approval":false,"on_timeout":"expire","escalate_after":null,"escalate_to":[],"escalate_people":[],"escalated":false,"remind_every":null,"schema":null,"stage":null}' THEN '~1' ELSE policy END, digest, escalate_at, remind_at, timed_out FROM approvals;
DROP TABLE approvals;
ALTER TABLE approvals_0013 RENAME TO approvals;
CREATE INDEX approvals_pending ON approvals (requested_at, run_id, key) WHERE status = 'pending';
CREATE INDEX approvals_pending_by_workflow ON approvals (workflow, requested_at, run_id, key) WHERE status = 'pending';
CREATE INDEX approvals_pending_urgent ON approvals ((COALESCE(deadline, 1e300)), requested_at, run_id, key) WHERE status = 'pending';
CREATE TABLE approval_inbox_0013 (
    principal TEXT NOT NULL,
    requested_at REAL NOT NULL,
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    round INTEGER NOT NULL,
    workflow TEXT NOT NULL,
    due REAL NOT NULL DEFAULT 1e300,
    PRIMARY KEY (principal, requested_at, run_id, key)
) WITHOUT ROWID;
INSERT INTO approval_inbox_0013 (principal, requested_at, run_id, key, round, workflow, due) SELECT principal, requested_at, run_id, key, round, workflow, due FROM approval_inbox;
DROP TABLE approval_inbox;
ALTER TABLE approval_inbox_0013 RENAME TO approval_inbox;
CREATE INDEX approval_inbox_by_approval ON approval_inbox (run_id, key);
-- by workflow with round and due, so that it covers an approver's page of one workflow:
-- without them the planner would rather walk the approver's rows in the table's own order
CREATE INDEX approval_inbox_by_workflow ON approval_inbox (principal, workflow, requested_at, run_id, key, round, due);
CREATE INDEX approval_inbox_urgent ON approval_inbox (principal, due, requested_at, run_id, key);
