-- The tamper-evident audit chain (signoff.audit): one chain per run (and "tokens"), each
-- entry carrying the hash of the one before it. Times are kept as the ISO text hashed.
CREATE TABLE audit (
    chain TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    type TEXT NOT NULL,
    actor TEXT,
    data TEXT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
);
