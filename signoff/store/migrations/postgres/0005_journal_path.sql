-- Where a journal entry sits in the workflow's call tree: the task (branch) that made the call
-- and its position in that task, e.g. "3" or "0/1". NULL in older rows: then str(seq).
ALTER TABLE journal ADD COLUMN path TEXT;
