-- A run's own deadline (`@engine.workflow(timeout=...)`): past it the run fails, whatever it waits for.
ALTER TABLE runs ADD COLUMN deadline REAL;
