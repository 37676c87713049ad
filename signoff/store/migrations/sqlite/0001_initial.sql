CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT NOT NULL,
    result TEXT,
    error TEXT,
    requested_by TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL,
    lease_owner TEXT,
    lease_expires REAL,
    fence INTEGER NOT NULL DEFAULT 0,
    wait_kind TEXT,
    wait_name TEXT,
    wait_seq INTEGER,
    wake_at REAL
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
    wake_at REAL,
    started_at REAL NOT NULL,
    finished_at REAL,
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
    requested_at REAL NOT NULL,
    decided_at REAL,
    deadline REAL,
    PRIMARY KEY (run_id, key, round)
);
CREATE INDEX approvals_pending ON approvals (requested_at, run_id, key) WHERE status = 'pending';
CREATE TABLE signals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    payload TEXT,
    sent_by TEXT,
    sent_at REAL NOT NULL,
    consumed_seq INTEGER
);
CREATE INDEX signals_unconsumed ON signals (run_id, name, id) WHERE consumed_seq IS NULL;
CREATE TABLE history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    at REAL NOT NULL,
    type TEXT NOT NULL,
    actor TEXT,
    data TEXT
);
CREATE INDEX history_by_run ON history (run_id, id);
CREATE TABLE workflows (
    name TEXT PRIMARY KEY,
    seen_at REAL NOT NULL
);
