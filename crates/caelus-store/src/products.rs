use crate::page::{Cursor, Page, paginate};
use crate::{Conn, Result, StoreError};
use sqlx::Row;
use sqlx::any::AnyRow;

#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub created_at: i64,
}

fn from_row(r: &AnyRow) -> Result<Product> {
    Ok(Product {
        id: r.try_get("id")?,
        slug: r.try_get("slug")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        created_at: r.try_get("created_at")?,
    })
}

pub async fn insert(conn: &mut Conn, p: &Product) -> Result<()> {
    sqlx::query(
        "INSERT INTO products (id, slug, name, description, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&p.id)
    .bind(&p.slug)
    .bind(&p.name)
    .bind(&p.description)
    .bind(p.created_at)
    .execute(conn)
    .await
    .map_err(StoreError::unique(format!("product '{}'", p.slug)))?;
    Ok(())
}

pub async fn get(conn: &mut Conn, slug: &str) -> Result<Option<Product>> {
    sqlx::query("SELECT * FROM products WHERE slug = $1")
        .bind(slug)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Products ordered by creation.
pub async fn list(conn: &mut Conn, limit: i64, after: Option<&Cursor>) -> Result<Page<Product>> {
    let (key, id) = after.map_or((i64::MIN, String::new()), |c| (c.key, c.id.clone()));
    let rows = sqlx::query(
        "SELECT * FROM products WHERE (created_at > $1 OR (created_at = $1 AND id > $2))
         ORDER BY created_at, id LIMIT $3",
    )
    .bind(key)
    .bind(id)
    .bind(limit + 1)
    .fetch_all(conn)
    .await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok(paginate(items, limit, |p| Cursor {
        key: p.created_at,
        id: p.id.clone(),
    }))
}
