-- Fewer bytes per waiting run. An approval's policy is stored as "~1" when it is the plain
-- policy text below (see signoff.store.sql.stored_policy: "~1" plus what differs from it,
-- when that reads back as the same text); every reader turns it back into the same text.
-- Its digest is stored as its 32 bytes (signoff.store.sql.stored_digest), shown as the same
-- 64 hex digits; the digests of rows written before stay hex text (SQLite has no unhex()
-- before 3.41).
UPDATE approvals SET policy = '~1' WHERE policy = '{"approvers":[],"eligible":null,"quorum":1,"reject_quorum":1,"allow_self_approval":false,"on_timeout":"expire","escalate_after":null,"escalate_to":[],"escalate_people":[],"escalated":false,"remind_every":null,"schema":null,"stage":null}';
-- approval_inbox is keyed by a composite text key: as a WITHOUT ROWID table its rows sit in
-- the key's own b-tree, instead of a rowid table beside an index holding the key a second
-- time. (journal and approvals as WITHOUT ROWID tables would save about 150 bytes more per
-- waiting run, but a run's and a decision's commits then wrote a quarter to two fifths
-- more bytes to the WAL: their rows, spread by run id, dirty more pages than rows appended.)
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
