//! What the API returns: stable JSON shapes built from store rows.

use caelus_core::lifecycle::Lifecycle;
use caelus_core::status::{Condition, ObjectHealth};
use caelus_core::template::Capabilities;
use caelus_store::deployments::Deployment;
use caelus_store::events::Event;
use caelus_store::products::Product;
use caelus_store::revisions::Revision;
use caelus_store::templates::TemplateVersion;
use caelus_store::tokens::Token;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// RFC 3339 UTC from epoch milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A page of a list; pass `next_cursor` back as `cursor` for the next page.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListResponse<T: ToSchema> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page (1–500, default 50).
    pub limit: Option<i64>,
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductView {
    pub slug: String,
    pub name: String,
    pub description: String,
    pub created_at: String,
}

impl From<Product> for ProductView {
    fn from(p: Product) -> Self {
        Self {
            slug: p.slug,
            name: p.name,
            description: p.description,
            created_at: rfc3339(p.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateVersionView {
    pub product: String,
    pub version: String,
    /// `oci://host/repo/chart@sha256:…`
    pub chart: String,
    pub chart_digest: String,
    pub chart_metadata: Value,
    pub default_values: Value,
    pub values_schema: Option<Value>,
    pub values_allowlist: Vec<String>,
    pub capabilities: Capabilities,
    #[schema(value_type = String, example = "published")]
    pub lifecycle: Lifecycle,
    pub created_at: String,
    pub updated_at: String,
    /// The last certification report (shown by `GET` of one version and by
    /// publish; null in lists and when never certified).
    #[schema(value_type = Option<caelus_core::certification::CertificationReport>)]
    pub certification: Option<Value>,
}

impl From<TemplateVersion> for TemplateVersionView {
    fn from(t: TemplateVersion) -> Self {
        Self {
            product: t.product_slug,
            version: t.version,
            chart: t.chart_ref,
            chart_digest: t.chart_digest,
            chart_metadata: t.chart_metadata,
            default_values: t.default_values,
            values_schema: t.values_schema,
            values_allowlist: t.values_allowlist,
            capabilities: t.capabilities,
            lifecycle: t.lifecycle,
            created_at: rfc3339(t.created_at),
            updated_at: rfc3339(t.updated_at),
            certification: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConditionView {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: String,
    pub observed_generation: i64,
}

impl From<Condition> for ConditionView {
    fn from(c: Condition) -> Self {
        Self {
            type_: c.type_,
            status: format!("{:?}", c.status),
            reason: c.reason,
            message: c.message,
            last_transition_time: c.last_transition_time,
            observed_generation: c.observed_generation,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ObjectHealthView {
    pub kind: String,
    pub name: String,
    pub health: String,
    pub message: String,
}

impl From<ObjectHealth> for ObjectHealthView {
    fn from(o: ObjectHealth) -> Self {
        Self {
            kind: o.kind,
            name: o.name,
            health: o.health,
            message: o.message,
        }
    }
}

/// Where a deployment stands; written by the reconciler.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentStatus {
    /// Pending, Installing, Upgrading, RollingBack, Ready, Degraded, Failed, Deleting, DeletionBlocked, Deleted.
    pub phase: String,
    pub message: String,
    pub conditions: Vec<ConditionView>,
    pub objects: Vec<ObjectHealthView>,
    pub current_revision: Option<i64>,
    pub last_error: Option<String>,
    /// Failed attempts since the last success or generation change.
    pub attempts: i64,
    /// When the next reconcile (or retry) is due.
    pub next_attempt_at: Option<String>,
    /// The current generation's failure: what was attempted (`target_version`,
    /// `revision`), why it failed (`reason`, `message`) and what was done
    /// (`remedy`: `retry`, `roll-back` or `stall`). `retry` re-attempts it.
    pub failure: Option<caelus_core::remediation::FailureRecord>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentView {
    pub uid: String,
    pub name: String,
    pub tenant: String,
    pub product: String,
    /// The version that runs (the deployed revision's); the desired one
    /// while nothing has been deployed yet.
    pub version: String,
    /// The version asked for. It differs from `version` while an upgrade is
    /// applied, and after a failed upgrade was rolled back (see `status.failure`).
    pub desired_version: String,
    pub values: Value,
    /// Kubernetes namespace, derived from the uid.
    pub namespace: String,
    /// Helm release name, derived from the uid.
    pub release: String,
    /// `present` or `absent`.
    pub desired_state: String,
    pub generation: i64,
    pub observed_generation: i64,
    pub status: DeploymentStatus,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
    /// Advice about the request, e.g. a deprecated template version.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl From<Deployment> for DeploymentView {
    fn from(d: Deployment) -> Self {
        let failure =
            caelus_core::change::current_failure(d.generation, d.failure.as_ref()).cloned();
        Self {
            uid: d.uid,
            name: d.display_name,
            tenant: d.tenant,
            product: d.product_slug,
            version: d.running_version.unwrap_or_else(|| d.version.clone()),
            desired_version: d.version,
            values: d.user_values,
            namespace: d.namespace_name,
            release: d.release_name,
            desired_state: d.desired_state.as_str().to_string(),
            generation: d.generation,
            observed_generation: d.observed_generation,
            status: DeploymentStatus {
                phase: d.phase.as_str().to_string(),
                message: d.message,
                conditions: d.conditions.into_iter().map(Into::into).collect(),
                objects: d.object_health.into_iter().map(Into::into).collect(),
                current_revision: d.current_revision,
                last_error: d.last_error,
                attempts: d.attempts,
                next_attempt_at: d.due_at.map(rfc3339),
                failure,
            },
            created_at: rfc3339(d.created_at),
            updated_at: rfc3339(d.updated_at),
            deleted_at: d.deleted_at.map(rfc3339),
            warnings: Vec::new(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RevisionView {
    pub number: i64,
    /// install, upgrade or rollback.
    pub kind: String,
    pub generation: i64,
    pub version: String,
    pub chart_digest: String,
    pub values: Value,
    /// `sha256:` of the values (canonical JSON), to compare revisions at a glance.
    pub values_hash: String,
    pub manifest_hash: Option<String>,
    /// pending, deployed, failed or superseded.
    pub outcome: String,
    pub requested_by: String,
    pub error: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// How long the revision took, in seconds.
    pub duration_seconds: Option<f64>,
    /// The chart's rendered NOTES.txt, once deployed.
    pub notes: Option<String>,
}

impl From<Revision> for RevisionView {
    fn from(r: Revision) -> Self {
        let values_hash = caelus_helm::render::value_hash(&r.user_values);
        Self {
            number: r.number,
            kind: r.kind.as_str().to_string(),
            values_hash,
            duration_seconds: r.finished_at.map(|f| (f - r.started_at) as f64 / 1000.0),
            generation: r.generation,
            version: r.version,
            chart_digest: r.chart_digest,
            values: r.user_values,
            manifest_hash: r.manifest_hash,
            outcome: r.outcome.as_str().to_string(),
            requested_by: r.requested_by,
            error: r.error,
            started_at: rfc3339(r.started_at),
            finished_at: r.finished_at.map(rfc3339),
            notes: r.notes,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub id: i64,
    pub at: String,
    /// What the event is about, e.g. `deployment/<uid>` or `token/<id>`.
    pub subject: String,
    pub tenant: Option<String>,
    pub deployment_uid: Option<String>,
    pub action: String,
    pub actor: String,
    pub message: String,
    pub details: Value,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        Self {
            id: e.id,
            at: rfc3339(e.at),
            subject: e.subject,
            tenant: e.tenant,
            deployment_uid: e.deployment_uid,
            action: e.action,
            actor: e.actor,
            message: e.message,
            details: e.details,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    /// `admin` or `tenant`.
    pub role: String,
    /// The tenant of a tenant token; admin tokens carry none.
    pub tenant: Option<String>,
    /// The first characters of the secret.
    pub prefix: String,
    pub created_by: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
    /// When the token stops authenticating (`null`: never).
    pub expires_at: Option<String>,
    /// Its last successful authentication, to the minute (`null`: never used).
    pub last_used_at: Option<String>,
}

impl From<Token> for TokenView {
    fn from(t: Token) -> Self {
        Self {
            id: t.id,
            name: t.name,
            role: t.role,
            tenant: t.tenant,
            prefix: t.prefix,
            created_by: t.created_by,
            created_at: rfc3339(t.created_at),
            revoked_at: t.revoked_at.map(rfc3339),
            expires_at: t.expires_at.map(rfc3339),
            last_used_at: t.last_used_at.map(rfc3339),
        }
    }
}

/// A new token: the secret is shown here once and never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTokenView {
    #[serde(flatten)]
    pub token: TokenView,
    pub secret: String,
}
