//! Where each rendered kind lives, from the cluster's own discovery: the
//! policy's cluster-scope rule is judged by what the API server serves, so
//! an instance of an already-installed cluster-scoped custom kind is not
//! mistaken for a namespaced object. Resolved for every kind of a revision
//! before its first write.

use std::collections::BTreeMap;

use caelus_core::render_policy::{self, PolicyObject, Scope};
use serde_json::Value;

use crate::Engine;
use crate::error::{EngineError, Result};

/// The scope of every kind of a render: the cluster's answer, else (a kind
/// whose CRD this same render installs) the render's CRD, else the built-in
/// table.
#[derive(Debug, Clone, Default)]
pub struct ScopeTable {
    served: BTreeMap<(String, String), Scope>,
    crds: Vec<(String, String, Scope)>,
}

impl ScopeTable {
    pub fn scope_of(&self, api_version: &str, kind: &str) -> Scope {
        if let Some(s) = self
            .served
            .get(&(api_version.to_string(), kind.to_string()))
        {
            return *s;
        }
        render_policy::static_scope(&self.crds, api_version, kind)
    }

    /// Kinds the cluster answered for (for tests and diagnostics).
    pub fn served(&self) -> usize {
        self.served.len()
    }
}

impl Engine {
    /// Resolve the kind of every object through discovery (refreshing it
    /// once for a kind it does not know yet).
    pub async fn scope_table(&self, objects: &[&Value]) -> Result<ScopeTable> {
        let plain: Vec<PolicyObject> = objects.iter().map(|o| PolicyObject::plain(o)).collect();
        let mut table = ScopeTable {
            served: BTreeMap::new(),
            crds: render_policy::crd_scopes(&plain),
        };
        for o in objects {
            let api_version = o["apiVersion"].as_str().unwrap_or("");
            let kind = o["kind"].as_str().unwrap_or("");
            if api_version.is_empty() || kind.is_empty() {
                continue;
            }
            let key = (api_version.to_string(), kind.to_string());
            if table.served.contains_key(&key) {
                continue;
            }
            match self.inner.resolver.resolve(api_version, kind).await {
                Ok(r) => {
                    let scope = if r.namespaced {
                        Scope::Namespaced
                    } else {
                        Scope::Cluster
                    };
                    table.served.insert(key, scope);
                }
                // Not served (yet): its CRD may come with this revision.
                Err(EngineError::UnknownKind { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(table)
    }
}
