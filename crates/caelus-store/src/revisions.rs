//! Release history: one row per attempt to bring a deployment to a new desired state.
use crate::dynamic;

use crate::error::{json_col, to_json};
use crate::{Conn, Result, StoreError};
pub use caelus_core::revision::{RevisionKind, RevisionOutcome};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    pub deployment_uid: String,
    pub number: i64,
    pub generation: i64,
    pub template_version_id: String,
    /// Joined for display.
    pub version: String,
    pub chart_digest: String,
    pub user_values: Value,
    pub manifest_hash: Option<String>,
    pub inventory: Value,
    pub outcome: RevisionOutcome,
    pub requested_by: String,
    pub error: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub kind: RevisionKind,
    /// The chart's rendered NOTES.txt, once the revision was deployed.
    pub notes: Option<String>,
}

const SELECT: &str =
    "SELECT r.deployment_uid, r.number, r.generation, r.template_version_id, r.user_values,
    r.manifest_hash, r.inventory, r.outcome, r.requested_by, r.error, r.started_at, r.finished_at, r.kind, r.notes,
    tv.version AS version, tv.chart_digest AS chart_digest
    FROM revisions r JOIN template_versions tv ON tv.id = r.template_version_id";

fn from_row(r: &AnyRow) -> Result<Revision> {
    Ok(Revision {
        deployment_uid: r.try_get("deployment_uid")?,
        number: r.try_get("number")?,
        generation: r.try_get("generation")?,
        template_version_id: r.try_get("template_version_id")?,
        version: r.try_get("version")?,
        chart_digest: r.try_get("chart_digest")?,
        user_values: json_col("user_values", &r.try_get::<String, _>("user_values")?)?,
        manifest_hash: r.try_get("manifest_hash")?,
        inventory: json_col("inventory", &r.try_get::<String, _>("inventory")?)?,
        outcome: word("outcome", r.try_get("outcome")?)?,
        requested_by: r.try_get("requested_by")?,
        error: r.try_get("error")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        kind: word("kind", r.try_get("kind")?)?,
        notes: r.try_get("notes")?,
    })
}

fn word<T: std::str::FromStr<Err = String>>(column: &str, text: String) -> Result<T> {
    text.parse()
        .map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))
}

#[derive(Debug, Clone)]
pub struct NewRevision<'a> {
    pub deployment_uid: &'a str,
    pub generation: i64,
    pub template_version_id: &'a str,
    pub user_values: &'a Value,
    pub requested_by: &'a str,
    pub started_at: i64,
    pub kind: RevisionKind,
}

/// Appends the next revision (number = last + 1) in state `pending`; returns its number.
pub async fn insert_next(conn: &mut Conn, r: &NewRevision<'_>) -> Result<i64> {
    let row = sqlx::query(
        "INSERT INTO revisions (deployment_uid, number, generation, template_version_id, user_values,
            inventory, outcome, requested_by, started_at, kind)
         SELECT $1, COALESCE(MAX(number), 0) + 1, $2, $3, $4, '[]', 'pending', $5, $6, $7
         FROM revisions WHERE deployment_uid = $1
         RETURNING number",
    )
    .bind(r.deployment_uid)
    .bind(r.generation)
    .bind(r.template_version_id)
    .bind(to_json(r.user_values))
    .bind(r.requested_by)
    .bind(r.started_at)
    .bind(r.kind.as_str())
    .fetch_one(conn)
    .await
    .map_err(StoreError::unique(format!("a revision of {}", r.deployment_uid)))?;
    Ok(row.try_get("number")?)
}

/// Records the chart's rendered NOTES.txt on revision `number`.
pub async fn set_notes(conn: &mut Conn, uid: &str, number: i64, notes: Option<&str>) -> Result<()> {
    sqlx::query("UPDATE revisions SET notes = $1 WHERE deployment_uid = $2 AND number = $3")
        .bind(notes)
        .bind(uid)
        .bind(number)
        .execute(conn)
        .await?;
    Ok(())
}

/// One revision of a deployment.
pub async fn get(conn: &mut Conn, uid: &str, number: i64) -> Result<Option<Revision>> {
    sqlx::query(crate::dynamic(format!(
        "{SELECT} WHERE r.deployment_uid = $1 AND r.number = $2"
    )))
    .bind(uid)
    .bind(number)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

/// Revisions of a deployment, newest first, optionally only those older than `before`.
pub async fn list(
    conn: &mut Conn,
    uid: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Revision>> {
    let rows = sqlx::query(dynamic(format!(
        "{SELECT} WHERE r.deployment_uid = $1 AND r.number < $2 ORDER BY r.number DESC LIMIT $3"
    )))
    .bind(uid)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// The revision made for `generation`, if a pass already started one: a retry
/// reuses it, so each generation has exactly one revision.
pub async fn for_generation(
    conn: &mut Conn,
    uid: &str,
    generation: i64,
) -> Result<Option<Revision>> {
    sqlx::query(crate::dynamic(format!(
        "{SELECT} WHERE r.deployment_uid = $1 AND r.generation = $2 ORDER BY r.number DESC LIMIT 1"
    )))
    .bind(uid)
    .bind(generation)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

/// The newest revision that was deployed successfully (what is running).
pub async fn last_deployed(conn: &mut Conn, uid: &str) -> Result<Option<Revision>> {
    sqlx::query(crate::dynamic(format!(
        "{SELECT} WHERE r.deployment_uid = $1 AND r.outcome = 'deployed' ORDER BY r.number DESC LIMIT 1"
    )))
    .bind(uid)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

#[derive(Debug, Clone)]
pub struct FinishedRevision<'a> {
    pub outcome: RevisionOutcome,
    pub manifest_hash: Option<&'a str>,
    pub inventory: &'a Value,
    pub error: Option<&'a str>,
    pub finished_at: i64,
}

/// Records how a revision ended. A newly deployed revision supersedes the one before.
pub async fn finish(
    conn: &mut Conn,
    uid: &str,
    number: i64,
    o: &FinishedRevision<'_>,
) -> Result<()> {
    if o.outcome == RevisionOutcome::Deployed {
        sqlx::query(
            "UPDATE revisions SET outcome = 'superseded' WHERE deployment_uid = $1 AND number <> $2 AND outcome = 'deployed'",
        )
        .bind(uid)
        .bind(number)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(
        "UPDATE revisions SET outcome = $1, manifest_hash = $2, inventory = $3, error = $4, finished_at = $5
         WHERE deployment_uid = $6 AND number = $7",
    )
    .bind(o.outcome.as_str())
    .bind(o.manifest_hash)
    .bind(to_json(o.inventory))
    .bind(o.error)
    .bind(o.finished_at)
    .bind(uid)
    .bind(number)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records what revision `number` applied (the rendered manifest, as the
/// caller serialised it), gzip-compressed: later passes read it back instead
/// of rendering the chart again.
pub async fn set_manifest(conn: &mut Conn, uid: &str, number: i64, manifest: &[u8]) -> Result<()> {
    let compressed = compress(manifest)?;
    sqlx::query("UPDATE revisions SET manifest = $1 WHERE deployment_uid = $2 AND number = $3")
        .bind(compressed)
        .bind(uid)
        .bind(number)
        .execute(conn)
        .await?;
    Ok(())
}

/// The manifest revision `number` applied, decompressed; `None` when it was
/// never recorded (revisions from before manifests were stored, or not applied).
pub async fn manifest(conn: &mut Conn, uid: &str, number: i64) -> Result<Option<Vec<u8>>> {
    let row =
        sqlx::query("SELECT manifest FROM revisions WHERE deployment_uid = $1 AND number = $2")
            .bind(uid)
            .bind(number)
            .fetch_optional(conn)
            .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    match row.try_get::<Option<Vec<u8>>, _>("manifest")? {
        Some(bytes) => Ok(Some(decompress(&bytes).map_err(|e| {
            StoreError::Corrupt(format!("manifest of revision {number} of {uid}: {e}"))
        })?)),
        None => Ok(None),
    }
}

fn compress(bytes: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        // Writing to memory only fails when allocation does.
        .map_err(|e| StoreError::Corrupt(format!("compressing a manifest: {e}")))
}

fn decompress(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}
