-- Most urgent first: the inbox orders by deadline (soonest first, none last), then age.
-- approval_inbox.due is the approval's deadline, or 1e300 when it has none, so that one
-- ascending index serves the order and its keyset on both stores (SQLite sorts NULL
-- first, PostgreSQL last). The same expression indexes the pending approvals themselves.
ALTER TABLE approval_inbox ADD COLUMN due REAL NOT NULL DEFAULT 1e300;
UPDATE approval_inbox SET due = COALESCE((SELECT a.deadline FROM approvals a WHERE a.run_id = approval_inbox.run_id AND a.key = approval_inbox.key AND a.round = approval_inbox.round), 1e300);
CREATE INDEX approval_inbox_urgent ON approval_inbox (principal, due, requested_at, run_id, key);
CREATE INDEX approvals_pending_urgent ON approvals ((COALESCE(deadline, 1e300)), requested_at, run_id, key) WHERE status = 'pending';
CREATE INDEX approval_votes_by_voter ON approval_votes (voter, at, run_id, key, round);
