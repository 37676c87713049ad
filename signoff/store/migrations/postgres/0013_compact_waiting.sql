-- Fewer bytes per waiting run: an approval's policy is stored as "~1" when it is the plain
-- policy text below (see signoff.store.sql.stored_policy: "~1" plus what differs from it,
-- when that reads back as the same text); every reader turns it back into the same text.
-- Its digest is stored as its 32 bytes (signoff.store.sql.stored_digest), shown as the same
-- 64 hex digits.
UPDATE approvals SET policy = '~1' WHERE policy = '{"approvers":[],"eligible":null,"quorum":1,"reject_quorum":1,"allow_self_approval":false,"on_timeout":"expire","escalate_after":null,"escalate_to":[],"escalate_people":[],"escalated":false,"remind_every":null,"schema":null,"stage":null}';
ALTER TABLE approvals ALTER COLUMN digest TYPE BYTEA USING decode(digest, 'hex');
-- A process of an older signoff still running when this migrates would write a digest as
-- its 64 hex characters, which PostgreSQL takes as 64 raw bytes: refused here instead, so
-- that such a request fails (and is tried again) rather than be stored with a digest that
-- nobody's link or button would match.
ALTER TABLE approvals ADD CONSTRAINT approvals_digest_bytes CHECK (octet_length(digest) = 32);
