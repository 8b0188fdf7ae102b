-- Explicit rollbacks: the revision a new generation restores (NULL for ordinary changes).
ALTER TABLE deployments ADD COLUMN rollback_to BIGINT;
-- What a revision did: install, upgrade or rollback.
ALTER TABLE revisions ADD COLUMN kind TEXT NOT NULL DEFAULT 'upgrade';
