CREATE TABLE event_keys (
    key TEXT PRIMARY KEY,
    touched_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key TEXT NOT NULL,
    data TEXT NOT NULL,
    published_by TEXT,
    published_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX events_by_key ON events (key, id);
CREATE TABLE event_waits (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    key TEXT NOT NULL,
    filter TEXT,
    since DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX event_waits_by_key ON event_waits (key, run_id);
