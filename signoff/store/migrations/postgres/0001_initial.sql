CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT NOT NULL,
    result TEXT,
    error TEXT,
    requested_by TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION,
    lease_owner TEXT,
    lease_expires DOUBLE PRECISION,
    fence BIGINT NOT NULL DEFAULT 0,
    wait_kind TEXT,
    wait_name TEXT,
    wait_seq INTEGER,
    wake_at DOUBLE PRECISION
);
CREATE INDEX runs_pending ON runs (updated_at) WHERE status = 'pending';
CREATE INDEX runs_leased ON runs (lease_expires) WHERE status = 'running';
CREATE INDEX runs_wake ON runs (wake_at) WHERE status = 'waiting' AND wake_at IS NOT NULL;
CREATE INDEX runs_by_created ON runs (created_at, id);
CREATE INDEX runs_by_status ON runs (status, created_at, id);
CREATE TABLE journal (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    wake_at DOUBLE PRECISION,
    started_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE approvals (
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
    requested_at DOUBLE PRECISION NOT NULL,
    decided_at DOUBLE PRECISION,
    deadline DOUBLE PRECISION,
    PRIMARY KEY (run_id, key, round)
);
CREATE INDEX approvals_pending ON approvals (requested_at, run_id, key) WHERE status = 'pending';
CREATE TABLE signals (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    payload TEXT,
    sent_by TEXT,
    sent_at DOUBLE PRECISION NOT NULL,
    consumed_seq INTEGER
);
CREATE INDEX signals_unconsumed ON signals (run_id, name, id) WHERE consumed_seq IS NULL;
CREATE TABLE history (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    type TEXT NOT NULL,
    actor TEXT,
    data TEXT
);
CREATE INDEX history_by_run ON history (run_id, id);
CREATE TABLE workflows (
    name TEXT PRIMARY KEY,
    seen_at DOUBLE PRECISION NOT NULL
);
CREATE FUNCTION signoff_notify_runnable() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('signoff_wakeup', NEW.workflow); RETURN NULL; END $$;
CREATE TRIGGER runs_runnable_inserted AFTER INSERT ON runs FOR EACH ROW WHEN (NEW.status = 'pending') EXECUTE FUNCTION signoff_notify_runnable();
CREATE TRIGGER runs_runnable_updated AFTER UPDATE OF status ON runs FOR EACH ROW WHEN (NEW.status = 'pending' AND OLD.status <> 'pending') EXECUTE FUNCTION signoff_notify_runnable();
