CREATE TABLE products (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE template_versions (
    id               TEXT PRIMARY KEY,
    product_id       TEXT NOT NULL REFERENCES products(id),
    version          TEXT NOT NULL,
    chart_ref        TEXT NOT NULL,
    chart_digest     TEXT NOT NULL,
    chart_metadata   TEXT NOT NULL,
    default_values   TEXT NOT NULL,
    values_schema    TEXT,
    values_allowlist TEXT NOT NULL,
    capabilities     TEXT NOT NULL,
    lifecycle        TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (product_id, version)
);

CREATE TABLE deployments (
    uid                  TEXT PRIMARY KEY,
    tenant               TEXT NOT NULL,
    display_name         TEXT NOT NULL,
    product_id           TEXT NOT NULL REFERENCES products(id),
    template_version_id  TEXT NOT NULL REFERENCES template_versions(id),
    user_values          TEXT NOT NULL,
    namespace_name       TEXT NOT NULL UNIQUE,
    release_name         TEXT NOT NULL,
    desired_state        TEXT NOT NULL,
    generation           BIGINT NOT NULL,
    observed_generation  BIGINT NOT NULL,
    phase                TEXT NOT NULL,
    message              TEXT NOT NULL,
    conditions           TEXT NOT NULL,
    object_health        TEXT NOT NULL,
    current_revision     BIGINT,
    last_error           TEXT,
    due_at               BIGINT,
    attempts             BIGINT NOT NULL,
    lease_owner          TEXT,
    lease_expires_at     BIGINT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    deleted_at           BIGINT
);
-- A display name is unique per tenant among deployments that still exist.
CREATE UNIQUE INDEX deployments_tenant_name ON deployments (tenant, display_name) WHERE deleted_at IS NULL;
CREATE INDEX deployments_due ON deployments (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX deployments_list ON deployments (created_at, uid);

CREATE TABLE revisions (
    deployment_uid      TEXT NOT NULL REFERENCES deployments(uid),
    number              BIGINT NOT NULL,
    generation          BIGINT NOT NULL,
    template_version_id TEXT NOT NULL REFERENCES template_versions(id),
    user_values         TEXT NOT NULL,
    manifest            BYTEA,
    manifest_hash       TEXT,
    inventory           TEXT NOT NULL,
    outcome             TEXT NOT NULL,
    requested_by        TEXT NOT NULL,
    error               TEXT,
    started_at          BIGINT NOT NULL,
    finished_at         BIGINT,
    PRIMARY KEY (deployment_uid, number)
);

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    tenant      TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX tokens_list ON tokens (created_at, id);

CREATE TABLE events (
    id             BIGSERIAL PRIMARY KEY,
    at             BIGINT NOT NULL,
    deployment_uid TEXT,
    tenant         TEXT,
    subject        TEXT NOT NULL,
    action         TEXT NOT NULL,
    actor          TEXT NOT NULL,
    message        TEXT NOT NULL,
    details        TEXT NOT NULL
);
CREATE INDEX events_deployment ON events (deployment_uid, id);
