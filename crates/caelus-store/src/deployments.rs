use crate::dynamic;
use crate::error::{json_col, to_json};
use crate::page::{Cursor, Page, paginate};
use crate::{Conn, Result, StoreError};
use caelus_core::remediation::FailureRecord;
use caelus_core::status::{Condition, DesiredState, ObjectHealth, Phase};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    pub uid: String,
    pub tenant: String,
    pub display_name: String,
    pub product_id: String,
    pub product_slug: String,
    pub template_version_id: String,
    pub version: String,
    pub user_values: Value,
    pub namespace_name: String,
    pub release_name: String,
    pub desired_state: DesiredState,
    pub generation: i64,
    pub observed_generation: i64,
    pub phase: Phase,
    pub message: String,
    pub conditions: Vec<Condition>,
    pub object_health: Vec<ObjectHealth>,
    pub current_revision: Option<i64>,
    pub last_error: Option<String>,
    /// When the next reconcile is due (also the next retry time after a failure).
    pub due_at: Option<i64>,
    pub attempts: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
    /// Set when this generation restores an earlier revision (a rollback).
    pub rollback_to: Option<i64>,
    /// The current generation's failure and what was done about it.
    pub failure: Option<FailureRecord>,
    /// The template version of the revision that runs (`current_revision`):
    /// after an automatic rollback it is older than `version`, the desired one.
    pub running_version: Option<String>,
    /// Deleted with `keep_volumes`: uninstall keeps the namespace and its PVCs.
    pub keep_volumes: bool,
}

/// What the API decides when a deployment is created; the rest starts at its defaults.
#[derive(Debug, Clone)]
pub struct NewDeployment {
    pub uid: String,
    pub tenant: String,
    pub display_name: String,
    pub product_id: String,
    pub template_version_id: String,
    pub user_values: Value,
    pub namespace_name: String,
    pub release_name: String,
    pub now: i64,
}

/// A deployment row with its product slug and its desired and running
/// version, read from `{d}`: the table, or a subquery that has already
/// chosen the rows (see [`list`]).
const SELECT_FROM: &str = "SELECT d.*, p.slug AS product_slug, tv.version AS version,
        rtv.version AS running_version FROM {d} d
    JOIN products p ON p.id = d.product_id
    JOIN template_versions tv ON tv.id = d.template_version_id
    LEFT JOIN revisions cr ON cr.deployment_uid = d.uid AND cr.number = d.current_revision
    LEFT JOIN template_versions rtv ON rtv.id = cr.template_version_id";

fn select_from(source: &str) -> String {
    SELECT_FROM.replace("{d}", source)
}

fn from_row(r: &AnyRow) -> Result<Deployment> {
    let desired: String = r.try_get("desired_state")?;
    let phase: String = r.try_get("phase")?;
    Ok(Deployment {
        uid: r.try_get("uid")?,
        tenant: r.try_get("tenant")?,
        display_name: r.try_get("display_name")?,
        product_id: r.try_get("product_id")?,
        product_slug: r.try_get("product_slug")?,
        template_version_id: r.try_get("template_version_id")?,
        version: r.try_get("version")?,
        user_values: json_col("user_values", &r.try_get::<String, _>("user_values")?)?,
        namespace_name: r.try_get("namespace_name")?,
        release_name: r.try_get("release_name")?,
        desired_state: desired.parse().map_err(StoreError::Corrupt)?,
        generation: r.try_get("generation")?,
        observed_generation: r.try_get("observed_generation")?,
        phase: phase.parse().map_err(StoreError::Corrupt)?,
        message: r.try_get("message")?,
        conditions: json_col("conditions", &r.try_get::<String, _>("conditions")?)?,
        object_health: json_col("object_health", &r.try_get::<String, _>("object_health")?)?,
        current_revision: r.try_get("current_revision")?,
        last_error: r.try_get("last_error")?,
        due_at: r.try_get("due_at")?,
        attempts: r.try_get("attempts")?,
        lease_owner: r.try_get("lease_owner")?,
        lease_expires_at: r.try_get("lease_expires_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        deleted_at: r.try_get("deleted_at")?,
        rollback_to: r.try_get("rollback_to")?,
        failure: match r.try_get::<Option<String>, _>("failure")? {
            Some(text) => Some(json_col("failure", &text)?),
            None => None,
        },
        running_version: r.try_get("running_version")?,
        keep_volumes: r.try_get::<i64, _>("keep_volumes")? != 0,
    })
}

/// Inserts a deployment: desired present, generation 1, phase Pending, due now.
pub async fn insert(conn: &mut Conn, d: &NewDeployment) -> Result<()> {
    sqlx::query(
        "INSERT INTO deployments (uid, tenant, display_name, product_id, template_version_id, user_values,
            namespace_name, release_name, desired_state, generation, observed_generation, phase, message,
            conditions, object_health, attempts, due_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'present', 1, 0, 'Pending', 'Waiting to be reconciled',
            '[]', '[]', 0, $9, $9, $9)",
    )
    .bind(&d.uid)
    .bind(&d.tenant)
    .bind(&d.display_name)
    .bind(&d.product_id)
    .bind(&d.template_version_id)
    .bind(to_json(&d.user_values))
    .bind(&d.namespace_name)
    .bind(&d.release_name)
    .bind(d.now)
    .execute(conn)
    .await
    .map_err(StoreError::unique(format!(
        "a deployment named '{}' for tenant '{}'",
        d.display_name, d.tenant
    )))?;
    Ok(())
}

/// Reads one deployment; with `tenant` set, only if that tenant owns it — so a
/// tenant cannot tell another tenant's deployment from one that does not exist.
pub async fn get(conn: &mut Conn, uid: &str, tenant: Option<&str>) -> Result<Option<Deployment>> {
    let row = match tenant {
        Some(t) => {
            sqlx::query(dynamic(format!(
                "{} WHERE d.uid = $1 AND d.tenant = $2",
                select_from("deployments")
            )))
            .bind(uid)
            .bind(t)
            .fetch_optional(conn)
            .await?
        }
        None => {
            sqlx::query(dynamic(format!(
                "{} WHERE d.uid = $1",
                select_from("deployments")
            )))
            .bind(uid)
            .fetch_optional(conn)
            .await?
        }
    };
    row.as_ref().map(from_row).transpose()
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this tenant's deployments; `None`: every tenant's (admins only).
    pub tenant: Option<String>,
    pub phase: Option<Phase>,
    pub product_slug: Option<String>,
    /// Tombstones of deleted deployments are hidden unless asked for.
    pub include_deleted: bool,
}

pub async fn list(
    conn: &mut Conn,
    f: &ListFilter,
    limit: i64,
    after: Option<&Cursor>,
) -> Result<Page<Deployment>> {
    let (key, id) = after.map_or((i64::MIN, String::new()), |c| (c.key, c.id.clone()));
    // Each optional filter binds a "given" flag and its value, so the statement text
    // stays fixed and an empty value filters for the empty value: an empty tenant
    // never means "every tenant".
    // The page is chosen on deployments alone, walking the (created_at, uid)
    // index in order and stopping at the limit; only its rows are joined. A
    // join first (what the planner picks without fresh statistics, e.g.
    // right after a bulk create) joins and sorts every row for each page.
    let page = "(SELECT * FROM deployments
         WHERE (created_at, uid) > ($1, $2)
           AND ($3 = 0 OR tenant = $4)
           AND ($5 = 0 OR phase = $6)
           AND ($7 = 0 OR product_id IN (SELECT id FROM products WHERE slug = $8))
           AND ($9 = 1 OR deleted_at IS NULL)
         ORDER BY created_at, uid LIMIT $10)";
    let rows = sqlx::query(dynamic(format!(
        "{} ORDER BY d.created_at, d.uid",
        select_from(page)
    )))
    .bind(key)
    .bind(id)
    .bind(i64::from(f.tenant.is_some()))
    .bind(f.tenant.clone().unwrap_or_default())
    .bind(i64::from(f.phase.is_some()))
    .bind(f.phase.map(|p| p.as_str()).unwrap_or_default())
    .bind(i64::from(f.product_slug.is_some()))
    .bind(f.product_slug.clone().unwrap_or_default())
    .bind(i64::from(f.include_deleted))
    .bind(limit + 1)
    .fetch_all(conn)
    .await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok(paginate(items, limit, |d| Cursor {
        key: d.created_at,
        id: d.uid.clone(),
    }))
}

/// A change of desired state: new values (and optionally a new template version).
/// Bumps the generation, makes the deployment due now and resets the retry count.
pub async fn set_desired_values(
    conn: &mut Conn,
    uid: &str,
    template_version_id: &str,
    values: &Value,
    now: i64,
) -> Result<()> {
    let done = sqlx::query(
        "UPDATE deployments SET user_values = $1, template_version_id = $2, generation = generation + 1,
            due_at = $3, attempts = 0, updated_at = $3, rollback_to = NULL
         WHERE uid = $4 AND desired_state = 'present'",
    )
    .bind(to_json(values))
    .bind(template_version_id)
    .bind(now)
    .bind(uid)
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("deployment {uid} (present)")));
    }
    Ok(())
}

/// Asks for removal: desired state absent, new generation, due now.
/// Returns false if it was already absent (deleting twice is not a change).
pub async fn set_absent(conn: &mut Conn, uid: &str, now: i64) -> Result<bool> {
    set_absent_keeping(conn, uid, false, now).await
}

/// [`set_absent`], saying whether the namespace and its PVCs are kept.
pub async fn set_absent_keeping(
    conn: &mut Conn,
    uid: &str,
    keep_volumes: bool,
    now: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE deployments SET desired_state = 'absent', generation = generation + 1, phase = 'Deleting',
            message = 'Deletion requested', due_at = $1, attempts = 0, updated_at = $1, keep_volumes = $3
         WHERE uid = $2 AND desired_state = 'present'",
    )
    .bind(now)
    .bind(uid)
    .bind(i64::from(keep_volumes))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes what a deletion kept (a `Retained` deployment's namespace and
/// volumes): a new generation without `keep_volumes`, due now. Returns false
/// when the deployment is not `Retained`.
pub async fn purge(conn: &mut Conn, uid: &str, now: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE deployments SET keep_volumes = 0, generation = generation + 1,
            message = 'Purge requested', due_at = $1, attempts = 0, updated_at = $1
         WHERE uid = $2 AND desired_state = 'absent' AND phase = 'Retained'",
    )
    .bind(now)
    .bind(uid)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Re-creates a `Retained` deployment in place (re-adoption of the volumes a
/// `delete --keep-volumes` kept): desired present again with `values`, a new
/// generation, due now. Nothing runs any more, so the revision that was
/// deployed is marked superseded and the next pass installs (Helm's
/// `.Release.IsInstall`, install hooks) into the same namespace, where the
/// chart's claims bind the kept PersistentVolumeClaims by name. Returns false
/// when the deployment is not `Retained` (or a purge of it was requested).
pub async fn restore(conn: &mut Conn, uid: &str, values: &Value, now: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE deployments SET desired_state = 'present', keep_volumes = 0, user_values = $1,
            generation = generation + 1, phase = 'Pending',
            message = 'Restore requested: reinstalling onto the kept volumes',
            current_revision = NULL, rollback_to = NULL, failure = NULL, last_error = NULL,
            due_at = $2, attempts = 0, updated_at = $2
         WHERE uid = $3 AND desired_state = 'absent' AND phase = 'Retained' AND keep_volumes = 1
            AND observed_generation = generation",
    )
    .bind(to_json(values))
    .bind(now)
    .bind(uid)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE revisions SET outcome = 'superseded' WHERE deployment_uid = $1 AND outcome = 'deployed'",
    )
    .bind(uid)
    .execute(conn)
    .await?;
    Ok(true)
}

/// Changes the display name only: not a change of desired state, so no new generation.
pub async fn rename(conn: &mut Conn, uid: &str, name: &str, now: i64) -> Result<()> {
    sqlx::query("UPDATE deployments SET display_name = $1, updated_at = $2 WHERE uid = $3")
        .bind(name)
        .bind(now)
        .bind(uid)
        .execute(conn)
        .await
        .map_err(StoreError::unique(format!("a deployment named '{name}'")))?;
    Ok(())
}

/// Deployments whose next reconcile is due at `now` (the queue depth).
pub async fn count_due(conn: &mut Conn, now: i64) -> Result<i64> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM deployments WHERE due_at IS NOT NULL AND due_at <= $1",
    )
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(row.try_get("n")?)
}

/// A new desired state (upgrade or rollback) guarded by the generation the caller
/// checked it against: of two racing requests, one wins and the other gets `false`.
pub async fn set_desired_if_generation(
    conn: &mut Conn,
    uid: &str,
    expected_generation: i64,
    template_version_id: &str,
    values: &Value,
    rollback_to: Option<i64>,
    now: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE deployments SET user_values = $1, template_version_id = $2, generation = generation + 1,
            due_at = $3, attempts = 0, updated_at = $3, rollback_to = $4
         WHERE uid = $5 AND desired_state = 'present' AND generation = $6",
    )
    .bind(to_json(values))
    .bind(template_version_id)
    .bind(now)
    .bind(rollback_to)
    .bind(uid)
    .bind(expected_generation)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The deployment that owns namespace `namespace` (tombstones included): the
/// orphan scan asks it of every namespace carrying this installation's label.
pub async fn by_namespace(conn: &mut Conn, namespace: &str) -> Result<Option<Deployment>> {
    let row = sqlx::query(dynamic(format!(
        "{} WHERE d.namespace_name = $1",
        select_from("deployments")
    )))
    .bind(namespace)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}
