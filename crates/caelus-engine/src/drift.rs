//! Drift: does a live object still hold what Caelus applied?
//!
//! The comparison is core's ([`caelus_core::drift`]): only fields Caelus
//! applied are looked at, list items are matched by the keys of the
//! cluster's own OpenAPI schema (the built-in table where it serves none),
//! values after the server's normalization, and a template's ignore rules
//! are honoured. Live objects come from the shared watch caches, so a quiet
//! resync reads from memory and sends nothing to the API server. A
//! suspicion is settled by the API server itself: the object is read again
//! (the cache may trail our own last apply) and, if it still differs,
//! applied with `dryRun=All`; only fields the server says a re-apply would
//! change are drift.

use crate::health::object_health;
use base64::Engine as _;
use caelus_core::drift::{confirmed_changes, drifted_fields as owned_changes};
use caelus_core::list_keys::ListKeys;
use caelus_core::status::ObjectHealth;
use caelus_core::template::DriftIgnoreRule;
use caelus_core::upgrade::FieldChange;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Engine;
use crate::apply::{Prepared, label_as_ours};
use crate::error::Result;
use crate::object::{DEPLOYMENT_UID_LABEL, ObjectRef};
use crate::watches::Cached;

/// One object that no longer matches what Caelus applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    pub object: ObjectRef,
    /// The object is gone.
    pub missing: bool,
    /// Paths of fields Caelus set that were changed or removed.
    pub fields: Vec<String>,
    /// The same fields with their values: `from` live, `to` as applied.
    #[serde(default)]
    pub changes: Vec<FieldChange>,
}

/// Paths of every field set in `applied` whose value in `live` differs or
/// is gone, with the built-in list keys and no ignore rules.
pub fn drifted_fields(applied: &Value, live: &Value) -> Vec<String> {
    owned_changes(
        &secret_string_data_as_data(applied),
        live,
        &ListKeys::fallback(),
        &[],
    )
    .into_iter()
    .map(|c| c.path)
    .collect()
}

/// `stringData` is write-only: the server folds it into `data` (base64).
fn secret_string_data_as_data(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if obj["kind"] != "Secret" || obj["apiVersion"] != "v1" {
        return obj;
    }
    let Some(Value::Object(string_data)) = obj.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return obj;
    };
    if !obj["data"].is_object() {
        obj["data"] = Value::Object(Map::new());
    }
    for (k, v) in string_data {
        let text = v.as_str().unwrap_or_default();
        obj["data"][k] = Value::String(base64::engine::general_purpose::STANDARD.encode(text));
    }
    obj
}

/// What a look at the live objects found: drift, and each object's health.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveState {
    pub drifts: Vec<Drift>,
    pub health: Vec<ObjectHealth>,
}

/// Whether a suspected change is among those the server confirmed: the
/// same field, a field inside it, or a list or object containing it.
fn confirmed_by(suspect: &FieldChange, server: &[FieldChange]) -> bool {
    let nested = |outer: &str, inner: &str| {
        inner.len() > outer.len()
            && inner.starts_with(outer)
            && matches!(inner.as_bytes()[outer.len()], b'.' | b'[')
    };
    server.iter().any(|c| {
        c.path == suspect.path || nested(&suspect.path, &c.path) || nested(&c.path, &suspect.path)
    })
}

impl Engine {
    /// Compares the live state of `applied_objects` (as last applied, in
    /// `namespace`) with what was applied. Reads come from the shared watch
    /// caches; the API server is only asked for kinds whose cache is not
    /// ready and to settle a suspected drift. Never writes.
    pub async fn detect_drift(
        &self,
        namespace: &str,
        applied_objects: &[Value],
    ) -> Result<Vec<Drift>> {
        Ok(self.inspect_live(namespace, applied_objects).await?.drifts)
    }

    /// [`Engine::detect_drift`] plus the health of every object, from the same
    /// reads: a resync learns both without extra requests. Never writes.
    pub async fn inspect_live(
        &self,
        namespace: &str,
        applied_objects: &[Value],
    ) -> Result<LiveState> {
        self.inspect_live_with(namespace, applied_objects, &[])
            .await
    }

    /// [`Engine::inspect_live`] with a template's ignore rules: ignored
    /// fields are never reported.
    pub async fn inspect_live_with(
        &self,
        namespace: &str,
        applied_objects: &[Value],
        ignore: &[DriftIgnoreRule],
    ) -> Result<LiveState> {
        let mut drifts = Vec::new();
        let mut health = Vec::with_capacity(applied_objects.len());
        for obj in applied_objects {
            let mut p = self.prepare(namespace, obj).await?;
            p.body = secret_string_data_as_data(&p.body);
            let keys = self.inner.openapi.for_kind(&p.target.kind).await;
            let t = &p.target;
            let cached = self
                .inner
                .watches
                .get(&t.kind, t.oref.namespace.as_deref(), &t.oref.name);
            let live = match cached {
                Cached::Present(live)
                    if owned_changes(&p.body, &live, &keys, ignore).is_empty() =>
                {
                    Some(live)
                }
                // Suspected drift, or nothing cached yet: ask the API server.
                _ => self.get(t).await?,
            };
            match live {
                None => {
                    drifts.push(Drift {
                        object: t.oref.clone(),
                        missing: true,
                        fields: Vec::new(),
                        changes: Vec::new(),
                    });
                    health.push(crate::health::missing(&t.oref.kind, &t.oref.name));
                }
                Some(live) => {
                    let suspected = owned_changes(&p.body, &live, &keys, ignore);
                    let changes = if suspected.is_empty() {
                        suspected
                    } else {
                        self.settle(&p, &live, &keys, suspected).await?
                    };
                    if !changes.is_empty() {
                        drifts.push(Drift {
                            object: t.oref.clone(),
                            missing: false,
                            fields: changes.iter().map(|c| c.path.clone()).collect(),
                            changes,
                        });
                    }
                    health.push(object_health(&live));
                }
            }
        }
        Ok(LiveState { drifts, health })
    }

    /// Settles a suspicion with a dry-run apply of exactly what a correction
    /// would send: the suspected changes the server confirms.
    async fn settle(
        &self,
        p: &Prepared,
        live: &Value,
        keys: &ListKeys,
        suspected: Vec<FieldChange>,
    ) -> Result<Vec<FieldChange>> {
        let mut body = p.body.clone();
        if let Some(uid) = body["metadata"]["labels"][DEPLOYMENT_UID_LABEL]
            .as_str()
            .map(str::to_string)
        {
            label_as_ours(&mut body, &uid, &self.config().installation_id);
        }
        let would_be = self.ssa_dry_run(&p.target, &body).await?;
        let server = confirmed_changes(live, &would_be, keys);
        let (confirmed, misread): (Vec<_>, Vec<_>) = suspected
            .into_iter()
            .partition(|c| confirmed_by(c, &server));
        if !misread.is_empty() {
            tracing::debug!(
                object = %p.target.oref,
                fields = ?misread.iter().map(|c| &c.path).collect::<Vec<_>>(),
                "suspected drift the API server does not confirm"
            );
        }
        Ok(confirmed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_string_data_is_compared_as_the_data_it_becomes() {
        let applied = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                             "stringData": {"password": "hunter2"}});
        let live = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                          "data": {"password": "aHVudGVyMg=="}});
        assert!(drifted_fields(&applied, &live).is_empty());
        let edited = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                            "data": {"password": "b3RoZXI="}});
        assert_eq!(drifted_fields(&applied, &edited), vec!["data.password"]);
    }

    #[test]
    fn a_suspicion_counts_only_where_the_server_agrees() {
        let change = |p: &str| FieldChange {
            path: p.into(),
            from: None,
            to: None,
        };
        let server = vec![
            change("spec.replicas"),
            change("spec.template.spec.containers[name=app].volumeMounts[mountPath=/run]"),
            change("spec.template.spec.containers[name=app].args"),
        ];
        assert!(confirmed_by(&change("spec.replicas"), &server));
        assert!(!confirmed_by(&change("spec.replicasX"), &server));
        assert!(confirmed_by(
            &change("spec.template.spec.containers[name=app].volumeMounts[mountPath=/run].subPath"),
            &server
        ));
        assert!(confirmed_by(
            &change("spec.template.spec.containers[name=app]"),
            &server
        ));
        assert!(!confirmed_by(&change("data.GREETING"), &server));
    }
}
