//! Throwaway databases for tests: a SQLite file in a temp dir, or a fresh schema in
//! the PostgreSQL named by `CAELUS_TEST_DATABASE_URL`, so tests run in parallel.

use crate::{Backend, Store};

pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub struct TestDb {
    pub store: Store,
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(std::path::PathBuf),
    Schema { admin_url: String, schema: String },
}

fn unique_name() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => Self::sqlite().await,
            Backend::Postgres => Self::postgres().await,
        }
    }

    pub async fn sqlite() -> TestDb {
        let dir = std::env::temp_dir().join(format!("caelus-test-{}", unique_name()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let url = format!("sqlite://{}", dir.join("caelus.db").display());
        let store = Store::connect(&url).await.expect("open sqlite");
        store.migrate().await.expect("migrate sqlite");
        TestDb {
            store,
            url,
            cleanup: Cleanup::Dir(dir),
        }
    }

    pub async fn postgres() -> TestDb {
        let admin_url = std::env::var("CAELUS_TEST_DATABASE_URL")
            .unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.to_string());
        let schema = format!("t_{}", unique_name());
        let admin = Store::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {admin_url} is needed for this test (scripts/test starts it): {e}"
            )
        });
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(admin.pool())
            .await
            .expect("create schema");
        admin.close().await;
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{sep}options=-c%20search_path%3D{schema}");
        let store = Store::connect(&url).await.expect("connect to test schema");
        store.migrate().await.expect("migrate postgres");
        TestDb {
            store,
            url,
            cleanup: Cleanup::Schema { admin_url, schema },
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Schema { admin_url, schema } => {
                // Drop runs inside the test's runtime; a separate thread with its own
                // runtime can still await the cleanup.
                let (url, schema) = (admin_url.clone(), schema.clone());
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build();
                    if let Ok(rt) = rt {
                        rt.block_on(async {
                            if let Ok(admin) = Store::connect(&url).await {
                                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                                    "DROP SCHEMA {schema} CASCADE"
                                )))
                                .execute(admin.pool())
                                .await;
                                admin.close().await;
                            }
                        });
                    }
                })
                .join();
            }
        }
    }
}

/// Runs each listed `async fn name(Backend)` twice, as tests `sqlite::name` and
/// `postgres::name`: every suite that touches the database covers both backends.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name($crate::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name($crate::Backend::Postgres).await })*
        }
    };
}
