use crate::dynamic;
use crate::error::{json_col, to_json};
use crate::page::{Cursor, Page, paginate};
use crate::{Conn, Result, StoreError};
use caelus_core::lifecycle::Lifecycle;
use caelus_core::template::Capabilities;
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

#[derive(Debug, Clone, PartialEq)]
pub struct TemplateVersion {
    pub id: String,
    pub product_id: String,
    /// Joined from products, for display.
    pub product_slug: String,
    pub version: String,
    pub chart_ref: String,
    pub chart_digest: String,
    pub chart_metadata: Value,
    pub default_values: Value,
    pub values_schema: Option<Value>,
    pub values_allowlist: Vec<String>,
    pub capabilities: Capabilities,
    pub lifecycle: Lifecycle,
    pub created_at: i64,
    pub updated_at: i64,
}

const SELECT: &str = "SELECT tv.*, p.slug AS product_slug FROM template_versions tv JOIN products p ON p.id = tv.product_id";

fn from_row(r: &AnyRow) -> Result<TemplateVersion> {
    let lifecycle: String = r.try_get("lifecycle")?;
    let schema: Option<String> = r.try_get("values_schema")?;
    Ok(TemplateVersion {
        id: r.try_get("id")?,
        product_id: r.try_get("product_id")?,
        product_slug: r.try_get("product_slug")?,
        version: r.try_get("version")?,
        chart_ref: r.try_get("chart_ref")?,
        chart_digest: r.try_get("chart_digest")?,
        chart_metadata: json_col("chart_metadata", &r.try_get::<String, _>("chart_metadata")?)?,
        default_values: json_col("default_values", &r.try_get::<String, _>("default_values")?)?,
        values_schema: schema.map(|s| json_col("values_schema", &s)).transpose()?,
        values_allowlist: json_col(
            "values_allowlist",
            &r.try_get::<String, _>("values_allowlist")?,
        )?,
        capabilities: json_col("capabilities", &r.try_get::<String, _>("capabilities")?)?,
        lifecycle: lifecycle.parse().map_err(StoreError::Corrupt)?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

pub async fn insert(conn: &mut Conn, t: &TemplateVersion) -> Result<()> {
    sqlx::query(
        "INSERT INTO template_versions (id, product_id, version, chart_ref, chart_digest, chart_metadata,
            default_values, values_schema, values_allowlist, capabilities, lifecycle, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&t.id)
    .bind(&t.product_id)
    .bind(&t.version)
    .bind(&t.chart_ref)
    .bind(&t.chart_digest)
    .bind(to_json(&t.chart_metadata))
    .bind(to_json(&t.default_values))
    .bind(t.values_schema.as_ref().map(to_json))
    .bind(to_json(&t.values_allowlist))
    .bind(to_json(&t.capabilities))
    .bind(t.lifecycle.as_str())
    .bind(t.created_at)
    .bind(t.updated_at)
    .execute(conn)
    .await
    .map_err(StoreError::unique(format!(
        "version {} of product '{}'",
        t.version, t.product_slug
    )))?;
    Ok(())
}

pub async fn get(
    conn: &mut Conn,
    product_slug: &str,
    version: &str,
) -> Result<Option<TemplateVersion>> {
    sqlx::query(dynamic(format!(
        "{SELECT} WHERE p.slug = $1 AND tv.version = $2"
    )))
    .bind(product_slug)
    .bind(version)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

pub async fn get_by_id(conn: &mut Conn, id: &str) -> Result<Option<TemplateVersion>> {
    sqlx::query(dynamic(format!("{SELECT} WHERE tv.id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Versions of one product, oldest first; `deployable_only` hides drafts and retired ones.
pub async fn list(
    conn: &mut Conn,
    product_id: &str,
    deployable_only: bool,
    limit: i64,
    after: Option<&Cursor>,
) -> Result<Page<TemplateVersion>> {
    let (key, id) = after.map_or((i64::MIN, String::new()), |c| (c.key, c.id.clone()));
    let filter = if deployable_only {
        "AND tv.lifecycle IN ('published', 'deprecated')"
    } else {
        ""
    };
    let rows = sqlx::query(dynamic(format!(
        "{SELECT} WHERE tv.product_id = $1 {filter}
           AND (tv.created_at > $2 OR (tv.created_at = $2 AND tv.id > $3))
         ORDER BY tv.created_at, tv.id LIMIT $4"
    )))
    .bind(product_id)
    .bind(key)
    .bind(id)
    .bind(limit + 1)
    .fetch_all(conn)
    .await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok(paginate(items, limit, |t| Cursor {
        key: t.created_at,
        id: t.id.clone(),
    }))
}

/// Rewrites the spec of a draft, forgetting its certification (it was of
/// another spec). The `lifecycle = 'draft'` guard makes the database
/// itself refuse to change a published version, even if a caller forgot to check.
pub async fn update_draft(conn: &mut Conn, t: &TemplateVersion) -> Result<()> {
    let done = sqlx::query(
        "UPDATE template_versions SET chart_ref = $1, chart_digest = $2, chart_metadata = $3,
            default_values = $4, values_schema = $5, values_allowlist = $6, capabilities = $7, updated_at = $8,
            certification = NULL
         WHERE id = $9 AND lifecycle = 'draft'",
    )
    .bind(&t.chart_ref)
    .bind(&t.chart_digest)
    .bind(to_json(&t.chart_metadata))
    .bind(to_json(&t.default_values))
    .bind(t.values_schema.as_ref().map(to_json))
    .bind(to_json(&t.values_allowlist))
    .bind(to_json(&t.capabilities))
    .bind(t.updated_at)
    .bind(&t.id)
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("draft version {}", t.version)));
    }
    Ok(())
}

/// Moves the lifecycle, guarded by the state the caller checked the move from.
pub async fn set_lifecycle(
    conn: &mut Conn,
    id: &str,
    from: Lifecycle,
    to: Lifecycle,
    at: i64,
) -> Result<()> {
    let done = sqlx::query("UPDATE template_versions SET lifecycle = $1, updated_at = $2 WHERE id = $3 AND lifecycle = $4")
        .bind(to.as_str())
        .bind(at)
        .bind(id)
        .bind(from.as_str())
        .execute(conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!(
            "template version {id} in state {from}"
        )));
    }
    Ok(())
}

/// Every template version past draft (published, deprecated, retired), of
/// every product: what the `CaelusTemplate` projections show.
pub async fn list_past_draft(conn: &mut Conn) -> Result<Vec<TemplateVersion>> {
    let rows = sqlx::query(dynamic(format!(
        "{SELECT} WHERE tv.lifecycle <> 'draft' ORDER BY tv.created_at, tv.id"
    )))
    .fetch_all(conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// The last certification report of a version (JSON), if it was certified.
pub async fn certification(conn: &mut Conn, id: &str) -> Result<Option<Value>> {
    let row = sqlx::query("SELECT certification FROM template_versions WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let text: Option<String> = row.try_get("certification")?;
    text.map(|t| json_col("certification", &t)).transpose()
}

/// Stores a draft's certification report, replacing the previous one. Only
/// drafts are certified: a published version's report is what it was published on.
pub async fn set_certification(conn: &mut Conn, id: &str, report: &Value, at: i64) -> Result<()> {
    let done = sqlx::query(
        "UPDATE template_versions SET certification = $1, updated_at = $2 WHERE id = $3 AND lifecycle = 'draft'",
    )
    .bind(to_json(report))
    .bind(at)
    .bind(id)
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("draft template version {id}")));
    }
    Ok(())
}

/// [`certification`] of a version named by its product and version.
pub async fn certification_by_version(
    conn: &mut Conn,
    product_slug: &str,
    version: &str,
) -> Result<Option<Value>> {
    let row = sqlx::query(
        "SELECT tv.certification FROM template_versions tv JOIN products p ON p.id = tv.product_id
         WHERE p.slug = $1 AND tv.version = $2",
    )
    .bind(product_slug)
    .bind(version)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let text: Option<String> = row.try_get("certification")?;
    text.map(|t| json_col("certification", &t)).transpose()
}
