-- The current generation's failure (JSON FailureRecord: origin, class, reason,
-- remedy, failed revision and target version); NULL when the last pass succeeded.
ALTER TABLE deployments ADD COLUMN failure TEXT;
