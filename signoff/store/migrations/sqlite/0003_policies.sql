ALTER TABLE approvals ADD COLUMN policy TEXT;
ALTER TABLE approvals ADD COLUMN digest TEXT;
ALTER TABLE approvals ADD COLUMN escalate_at REAL;
ALTER TABLE approvals ADD COLUMN remind_at REAL;
ALTER TABLE approvals ADD COLUMN timed_out INTEGER NOT NULL DEFAULT 0;
CREATE INDEX approvals_pending_by_workflow ON approvals (workflow, requested_at, run_id, key) WHERE status = 'pending';
CREATE TABLE approval_votes (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    round INTEGER NOT NULL,
    voter TEXT NOT NULL,
    vote TEXT NOT NULL,
    value TEXT,
    reason TEXT,
    at REAL NOT NULL,
    PRIMARY KEY (run_id, key, round, voter)
);
CREATE TABLE approval_inbox (
    principal TEXT NOT NULL,
    requested_at REAL NOT NULL,
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    round INTEGER NOT NULL,
    workflow TEXT NOT NULL,
    PRIMARY KEY (principal, requested_at, run_id, key)
);
CREATE INDEX approval_inbox_by_approval ON approval_inbox (run_id, key);
CREATE INDEX approval_inbox_by_workflow ON approval_inbox (principal, workflow, requested_at, run_id, key);
