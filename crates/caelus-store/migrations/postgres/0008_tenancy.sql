-- Tenancy edges and the security edge's operability (issue 10), UI sessions (issue 15).

-- Admin tokens carry no tenant.
ALTER TABLE tokens ALTER COLUMN tenant DROP NOT NULL;
UPDATE tokens SET tenant = NULL WHERE role = 'admin';
-- A token may expire; NULL: never.
ALTER TABLE tokens ADD COLUMN expires_at BIGINT;
-- Last successful authentication, written at most once a minute per token.
ALTER TABLE tokens ADD COLUMN last_used_at BIGINT;

-- Tenant tokens whose tenant is empty or reserved could reach deployments that are
-- not theirs (an empty tenant once matched every tenant): they are revoked.
UPDATE tokens SET revoked_at = (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT
WHERE role = 'tenant' AND revoked_at IS NULL
  AND (tenant IS NULL OR tenant = '' OR tenant = 'admin' OR tenant = 'system' OR tenant LIKE 'caelus%');

-- Deployments admins created without naming a tenant were recorded under 'admin',
-- a name a tenant token could once take. They belong to the reserved 'system' tenant.
UPDATE deployments SET tenant = 'system' WHERE tenant = 'admin' OR tenant = '';

-- The global audit log is filtered by these and paged by id.
CREATE INDEX events_tenant ON events (tenant, id);
CREATE INDEX events_actor ON events (actor, id);
CREATE INDEX events_action ON events (action, id);
CREATE INDEX events_at ON events (at, id);

-- UI sessions live in the database so any API replica serves any signed-in user.
-- Only a SHA-256 of the session id is stored; the cookie holds the id itself.
CREATE TABLE ui_sessions (
    id_hash       TEXT PRIMARY KEY,
    token_id      TEXT NOT NULL,
    csrf          TEXT NOT NULL,
    flash_kind    TEXT,
    flash_message TEXT,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX ui_sessions_expiry ON ui_sessions (expires_at);
CREATE INDEX ui_sessions_token ON ui_sessions (token_id);
