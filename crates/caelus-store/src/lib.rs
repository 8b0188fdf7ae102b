//! Caelus persistence. One repository layer over PostgreSQL and SQLite (sqlx `Any`),
//! with backend-specific SQL only where the two differ (claiming work, ids).
//!
//! Repositories are plain functions over `&mut AnyConnection`, so an API handler
//! runs every write of one request — and its audit event — in one transaction.

mod db;
pub mod deployments;
mod error;
pub mod events;
pub mod page;
pub mod products;
pub mod queue;
pub mod revisions;
pub mod templates;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tokens;
pub mod ui_sessions;

pub use db::{Backend, Store, Tx, now_ms};
pub use error::StoreError;
pub use page::{Cursor, Page};
pub use sqlx::AnyConnection as Conn;
/// The driver error inside `StoreError::Database`, for callers that classify it.
pub use sqlx::Error as StoreErrorSource;

pub(crate) fn dynamic(sql: String) -> sqlx::AssertSqlSafe<String> {
    // Only ever called with SQL assembled from constants in this crate; values are bound.
    sqlx::AssertSqlSafe(sql)
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
