-- Messages a channel posted and updates in place later (the Slack channel): one per
-- approval round and recipient address. delivery_id: the outbox message that posts it;
-- ref (where it is, e.g. {"channel": "D..", "ts": "..."}) is NULL while being posted.
-- state: what it shows, 1 open (buttons), 2 closed; an update never goes back to a lower
-- state. view: what it was made from (summary, proposed, digest) and notes added since.
CREATE TABLE channel_messages (
    channel TEXT NOT NULL,
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    round INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    ref TEXT,
    state INTEGER NOT NULL,
    view TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (channel, run_id, key, round, recipient)
);
