-- The version of its workflow a run started on (`@engine.workflow(version=...)`): an engine
-- that keeps older versions registered runs each run on its own.
ALTER TABLE runs ADD COLUMN version TEXT;
