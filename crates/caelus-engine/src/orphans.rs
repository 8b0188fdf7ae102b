//! The cluster side of the orphan scan: list every object carrying this
//! installation's label (one label-selected list per kind the cluster
//! serves), and delete one exactly — guarded by its uid and resourceVersion,
//! so an object changed or recreated since the scan saw it is never removed.
//! Which objects are orphans is decided elsewhere (`caelus_core::orphans`),
//! from the database.

use std::collections::BTreeMap;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Preconditions};
use kube::discovery::{Scope, verbs};
use serde_json::Value;

use crate::Engine;
use crate::error::{EngineError, Result, describe, is_not_found};
use crate::object::{INSTALLATION_LABEL, ObjectRef};
use crate::resolve::Resolved;

/// One object of this installation, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledObject {
    pub oref: ObjectRef,
    pub uid: String,
    pub resource_version: String,
    pub labels: BTreeMap<String, String>,
    /// `metadata.creationTimestamp` (RFC 3339).
    pub created: Option<String>,
    /// Has `metadata.ownerReferences`.
    pub owned: bool,
    /// Carries `helm.sh/hook`.
    pub hook: bool,
    /// Finalizers holding it, when it is being deleted (`deletionTimestamp`
    /// set): `metadata.finalizers`, and a namespace's `spec.finalizers`.
    pub terminating: Option<Vec<String>>,
    /// For a terminating namespace: the messages of its conditions that are
    /// True (what the namespace controller says it is waiting for).
    pub conditions: Vec<String>,
}

/// What a guarded delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExactDelete {
    Deleted,
    /// It was already gone.
    Gone,
    /// Its uid or resourceVersion differs from what was seen: left alone.
    Changed,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn labelled(kind: &Resolved, obj: &DynamicObject) -> Option<LabelledObject> {
    let v = serde_json::to_value(obj).ok()?;
    let m = &v["metadata"];
    let labels: BTreeMap<String, String> = serde_json::from_value(m["labels"].clone()).ok()?;
    let terminating = m["deletionTimestamp"].as_str().map(|_| {
        let mut f = strings(&m["finalizers"]);
        f.extend(strings(&v["spec"]["finalizers"]));
        f
    });
    let conditions = v["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == "True")
        .filter_map(|c| c["message"].as_str().map(str::to_string))
        .collect();
    Some(LabelledObject {
        oref: ObjectRef {
            api_version: kind.ar.api_version.clone(),
            kind: kind.ar.kind.clone(),
            namespace: m["namespace"].as_str().map(str::to_string),
            name: m["name"].as_str()?.to_string(),
        },
        uid: m["uid"].as_str().unwrap_or_default().to_string(),
        resource_version: m["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        labels,
        created: m["creationTimestamp"].as_str().map(str::to_string),
        owned: m["ownerReferences"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        hook: m["annotations"]["helm.sh/hook"].is_string(),
        terminating,
        conditions,
    })
}

impl Engine {
    /// Every object labelled `caelus.io/installation=<this installation>`,
    /// of every kind the cluster serves that can be listed and deleted
    /// (discovery is refreshed first, so kinds installed since are seen).
    pub async fn list_labelled(&self) -> Result<Vec<LabelledObject>> {
        let selector = format!("{INSTALLATION_LABEL}={}", self.config().installation_id);
        let params = ListParams::default().labels(&selector);
        let discovery = self.inner.resolver.refreshed().await?;
        let mut out = Vec::new();
        for group in discovery.groups() {
            for (ar, caps) in group.recommended_resources() {
                if !caps.supports_operation(verbs::LIST) || !caps.supports_operation(verbs::DELETE)
                {
                    continue;
                }
                // Events are records, not objects Caelus creates.
                if ar.kind == "Event" {
                    continue;
                }
                let kind = Resolved {
                    namespaced: caps.scope == Scope::Namespaced,
                    ar,
                };
                let api: Api<DynamicObject> = Api::all_with(self.client().clone(), &kind.ar);
                let list = match api.list(&params).await {
                    Ok(l) => l,
                    Err(e) if is_not_found(&e) => continue,
                    // Least-privilege RBAC (the chart's ClusterRole) grants only
                    // the kinds Caelus may create: a kind it may not list is one
                    // it could not have created either, so it holds no orphans.
                    Err(e) if describe(&e).0 == 403 => {
                        tracing::debug!(kind = %kind.ar.kind, "not allowed to list; skipped");
                        continue;
                    }
                    Err(e) => return Err(EngineError::api(format!("list {}", kind.ar.kind), e)),
                };
                out.extend(list.items.iter().filter_map(|o| labelled(&kind, o)));
            }
        }
        Ok(out)
    }

    /// Deletes `o` only if it is still the object that was listed (same uid
    /// and resourceVersion). Namespaces are deleted like anything else: their
    /// finalizers are left to the namespace controller.
    pub async fn delete_exact(&self, o: &LabelledObject) -> Result<ExactDelete> {
        let kind = self
            .inner
            .resolver
            .resolve(&o.oref.api_version, &o.oref.kind)
            .await?;
        let api = kind.api(self.client(), o.oref.namespace.as_deref());
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(o.uid.clone()),
                resource_version: Some(o.resource_version.clone()),
            }),
            ..DeleteParams::background()
        };
        match api.delete(&o.oref.name, &params).await {
            Ok(_) => Ok(ExactDelete::Deleted),
            Err(e) if is_not_found(&e) => Ok(ExactDelete::Gone),
            Err(e) if describe(&e).0 == 409 => Ok(ExactDelete::Changed),
            Err(e) => Err(EngineError::object("delete", &o.oref, e)),
        }
    }
}
