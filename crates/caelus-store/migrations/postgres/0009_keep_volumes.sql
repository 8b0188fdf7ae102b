-- Deleted with keep_volumes: the reconciler removes the objects but keeps the
-- namespace and its PersistentVolumeClaims (phase Retained) until a purge.
ALTER TABLE deployments ADD COLUMN keep_volumes BIGINT NOT NULL DEFAULT 0;
