//! Namespaces: `Active` from the create on, the `kubernetes` finalizer in
//! `spec.finalizers` holding their deletion in `Terminating` (the namespace
//! controller in [`crate::controllers`] empties them), and the objects every
//! new namespace gets.

use serde_json::{Value, json};

use super::{KindBehaviour, default_if_missing};
use crate::meta::{self, name_of, now_rfc3339};
use crate::store::{EventType, StoreGuard};

pub struct Namespace;

impl KindBehaviour for Namespace {
    fn initial_status(&self) -> Option<Value> {
        Some(json!({"phase": "Active"}))
    }

    fn default(&self, obj: &mut Value) {
        default_if_missing(obj, &["spec", "finalizers"], json!(["kubernetes"]));
        let name = meta::name_of(obj).to_string();
        default_if_missing(
            obj,
            &["metadata", "labels", "kubernetes.io/metadata.name"],
            json!(name),
        );
    }

    fn after_commit(&self, g: &mut StoreGuard, created: bool, stored: &Value) {
        if created {
            seed_namespace(g, name_of(stored));
        }
    }

    fn spec_finalizers_hold_deletion(&self) -> bool {
        true
    }

    fn on_deletion_started(&self, obj: &mut Value) {
        obj["status"]["phase"] = json!("Terminating");
    }
}

/// What the ServiceAccount controller and the root-CA publisher put in every
/// new namespace: the `default` ServiceAccount and the `kube-root-ca.crt`
/// ConfigMap. Done with the namespace's creation so a Pod created right
/// after it finds its ServiceAccount (on a real cluster this races).
fn seed_namespace(g: &mut StoreGuard, ns: &str) {
    let now = now_rfc3339();
    let seeds = [
        (
            "serviceaccounts",
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
        ),
        (
            "configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "kube-root-ca.crt", "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
            "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\nMIIBkubesimSimulatedClusterCA\n-----END CERTIFICATE-----\n"}}),
        ),
    ];
    for (resource, mut obj) in seeds {
        let Some(info) = g.registry.find("", "v1", resource).cloned() else {
            continue;
        };
        if g.get(&info, ns, name_of(&obj)).is_some() {
            continue;
        }
        let m = meta::meta_mut(&mut obj);
        m.insert("namespace".into(), json!(ns));
        m.insert("uid".into(), json!(meta::new_uid()));
        m.insert("creationTimestamp".into(), json!(now));
        g.put(&info, obj, EventType::Added);
    }
}
