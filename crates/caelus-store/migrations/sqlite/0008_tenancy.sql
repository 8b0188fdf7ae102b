-- Tenancy edges and the security edge's operability (issue 10), UI sessions (issue 15).

-- Admin tokens carry no tenant: `tenant` becomes nullable. SQLite cannot drop a
-- NOT NULL constraint in place, so the table is rebuilt (nothing references it).
CREATE TABLE tokens_new (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    tenant       TEXT,
    token_hash   TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    -- A token may expire; NULL: never.
    expires_at   BIGINT,
    -- Last successful authentication, written at most once a minute per token.
    last_used_at BIGINT
);
INSERT INTO tokens_new (id, name, role, tenant, token_hash, prefix, created_by, created_at, revoked_at)
    SELECT id, name, role, CASE WHEN role = 'admin' THEN NULL ELSE tenant END,
           token_hash, prefix, created_by, created_at, revoked_at
    FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_new RENAME TO tokens;
CREATE INDEX tokens_list ON tokens (created_at, id);

-- Tenant tokens whose tenant is empty or reserved could reach deployments that are
-- not theirs (an empty tenant once matched every tenant): they are revoked.
UPDATE tokens SET revoked_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000
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
