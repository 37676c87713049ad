-- The transactional outbox (signoff.store.sql_outbox): one row per notification for one
-- channel, written in the transaction of the change that caused it, delivered by workers.
-- status: pending (due at due_at), delivering (claimed until lease_expires), delivered,
-- dead (gave up after its attempts). id is stable across retries (the webhook-id).
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    event TEXT NOT NULL,
    run_id TEXT NOT NULL,
    workflow TEXT NOT NULL,
    key TEXT,
    recipients TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    due_at DOUBLE PRECISION NOT NULL,
    claimed_by TEXT,
    lease_expires DOUBLE PRECISION,
    delivered_at DOUBLE PRECISION,
    last_error TEXT
);
CREATE INDEX outbox_due ON outbox (due_at) WHERE status = 'pending';
CREATE INDEX outbox_leased ON outbox (lease_expires) WHERE status = 'delivering';
CREATE INDEX outbox_by_created ON outbox (created_at, id);
CREATE INDEX outbox_by_run ON outbox (run_id, created_at);
-- Every delivery attempt and its outcome, for deliveries list and the history.
CREATE TABLE outbox_attempts (
    message_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    worker TEXT NOT NULL,
    ok INTEGER NOT NULL,
    error TEXT,
    took_ms DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (message_id, attempt)
);
