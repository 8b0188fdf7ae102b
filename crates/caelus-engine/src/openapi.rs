//! List keys from the cluster's own OpenAPI v3 schema, so drift matches
//! list items exactly as the API server merges them. One document per group
//! version, fetched on first use and kept for the process; a cluster that
//! serves no schema (or a kind it does not describe) leaves the built-in
//! table in charge ([`ListKeys::fallback`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use caelus_core::list_keys::ListKeys;
use kube::Client;
use serde_json::Value;

use crate::resolve::Resolved;

/// Documents by group-version path (`apis/apps/v1`); `None` once a fetch
/// found nothing, so a cluster without OpenAPI is asked once.
pub(crate) struct OpenApiKeys {
    client: Client,
    index: tokio::sync::OnceCell<Option<Value>>,
    documents: Mutex<HashMap<String, Option<Arc<Value>>>>,
    kinds: Mutex<HashMap<Resolved, Arc<ListKeys>>>,
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

impl OpenApiKeys {
    pub fn new(client: Client) -> Self {
        OpenApiKeys {
            client,
            index: tokio::sync::OnceCell::new(),
            documents: Mutex::new(HashMap::new()),
            kinds: Mutex::new(HashMap::new()),
        }
    }

    async fn get_json(&self, url: &str) -> Option<Value> {
        let request = http::Request::get(url).body(Vec::new()).ok()?;
        match self.client.request::<Value>(request).await {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::debug!(url, error = %e, "no OpenAPI document; list keys from the built-in table");
                None
            }
        }
    }

    async fn document(&self, group: &str, version: &str) -> Option<Arc<Value>> {
        let path = gv_path(group, version);
        if let Some(known) = self.lock().get(&path) {
            return known.clone();
        }
        let index = self
            .index
            .get_or_init(|| self.get_json("/openapi/v3"))
            .await;
        let url = index
            .as_ref()
            .and_then(|i| i["paths"][&path]["serverRelativeURL"].as_str())
            .map(str::to_string);
        let doc = match url {
            Some(url) => self.get_json(&url).await.map(Arc::new),
            None => None,
        };
        self.lock().insert(path, doc.clone());
        doc
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<Arc<Value>>>> {
        lock(&self.documents)
    }

    /// The list keys of `kind`: from the cluster's schema when it has one.
    pub async fn for_kind(&self, kind: &Resolved) -> Arc<ListKeys> {
        if let Some(keys) = lock(&self.kinds).get(kind) {
            return keys.clone();
        }
        let ar = &kind.ar;
        let keys = match self.document(&ar.group, &ar.version).await {
            Some(doc) => ListKeys::from_openapi(&doc, &ar.group, &ar.version, &ar.kind)
                .unwrap_or_else(ListKeys::fallback),
            None => ListKeys::fallback(),
        };
        let keys = Arc::new(keys);
        lock(&self.kinds).insert(kind.clone(), keys.clone());
        keys
    }
}

/// A poisoned lock only means another task panicked mid-insert; a cache map
/// is still valid.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
