//! Per-kind behaviour of built-in resources, one module per kind (or family
//! of kinds), behind [`KindBehaviour`]: the parts of the API server's
//! per-resource strategies (`pkg/registry/<group>/<resource>/strategy.go`)
//! that clients observe — status from the create on, defaults, validation,
//! create/update side effects and what happens around storage. The verb code
//! in [`crate::api`] and [`crate::validation`] stays generic and asks
//! [`behaviour`] for the kind at hand; every method defaults to "nothing".

use serde_json::{Value, json};

use crate::errors::Cause;
use crate::resources::ResourceInfo;
use crate::store::StoreGuard;

mod config;
mod crd;
mod namespace;
mod pvc;
mod service;
mod simple;
mod workloads;

/// What one kind does beyond the generic verbs. Methods are called by the
/// generic code at the matching step; all default to no-ops.
pub trait KindBehaviour: Sync {
    /// The status an object has from its create on (see
    /// [`crate::validation::initial_status`]).
    fn initial_status(&self) -> Option<Value> {
        None
    }

    /// Defaults of the kind, after the shared ones (list keys, pod templates).
    fn default(&self, _obj: &mut Value) {}

    /// Create-time validation beyond names and values.
    fn validate_create(&self, _obj: &Value, _causes: &mut Vec<Cause>) {}

    /// Update-time validation: immutable fields, with the API server's messages.
    fn validate_update(
        &self,
        _info: &ResourceInfo,
        _old: &Value,
        _new: &Value,
        _causes: &mut Vec<Cause>,
    ) {
    }

    /// Changes the server makes to a new object after defaulting, before
    /// admission (a Service's clusterIP, a CRD's status). `allocate_ip`
    /// hands out the next Service IP.
    fn on_create(&self, _obj: &mut Value, _allocate_ip: &dyn Fn() -> String) {}

    /// Changes the server makes to an updated object after defaulting,
    /// before validation.
    fn on_update(&self, _old: &Value, _new: &mut Value) {}

    /// After a create (`created`) or update is stored.
    fn after_commit(&self, _g: &mut StoreGuard, _created: bool, _stored: &Value) {}

    /// After an object is gone from storage.
    fn after_remove(&self, _g: &mut StoreGuard, _gone: &Value) {}

    /// Whether `spec.finalizers` hold a deletion like `metadata.finalizers`
    /// (Namespaces: the namespace controller's `kubernetes` finalizer).
    fn spec_finalizers_hold_deletion(&self) -> bool {
        false
    }

    /// When a deletion starts waiting on finalizers (a Namespace turns `Terminating`).
    fn on_deletion_started(&self, _obj: &mut Value) {}
}

/// Kinds without behaviour of their own.
struct Generic;
impl KindBehaviour for Generic {}

/// The behaviours, keyed by (group, resource) like storage.
static KINDS: &[((&str, &str), &dyn KindBehaviour)] = &[
    (("", "namespaces"), &namespace::Namespace),
    (("", "services"), &service::Service),
    (("", "persistentvolumeclaims"), &pvc::PersistentVolumeClaim),
    (("", "configmaps"), &config::ImmutableData),
    (("", "secrets"), &config::ImmutableData),
    (
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        &crd::CustomResourceDefinition,
    ),
    (("apps", "deployments"), &workloads::Deployment),
    (("apps", "statefulsets"), &workloads::StatefulSet),
    (("apps", "daemonsets"), &workloads::DaemonSet),
    (("apps", "replicasets"), &workloads::ReplicaSet),
    (
        ("", "replicationcontrollers"),
        &workloads::ReplicationController,
    ),
    (("batch", "jobs"), &workloads::Job),
    (("batch", "cronjobs"), &workloads::CronJob),
    (("", "pods"), &simple::Pod),
    (("", "persistentvolumes"), &simple::PersistentVolume),
    (("", "limitranges"), &simple::LimitRange),
    (("", "resourcequotas"), &simple::EmptyStatus),
    (("", "nodes"), &simple::EmptyStatus),
    (("networking.k8s.io", "ingresses"), &simple::Ingress),
    (
        ("policy", "poddisruptionbudgets"),
        &simple::PodDisruptionBudget,
    ),
    (
        ("autoscaling", "horizontalpodautoscalers"),
        &simple::HorizontalPodAutoscaler,
    ),
];

/// The behaviour of a (group, resource); a no-op one for kinds without any.
pub fn behaviour(group: &str, resource: &str) -> &'static dyn KindBehaviour {
    KINDS
        .iter()
        .find(|((g, r), _)| *g == group && *r == resource)
        .map_or(&Generic, |(_, b)| *b)
}

/// The behaviour of a served resource.
pub fn of(info: &ResourceInfo) -> &'static dyn KindBehaviour {
    behaviour(&info.group, &info.resource)
}

/// Sets `path` to `value` unless it already holds a non-null value,
/// creating the objects on the way.
pub(crate) fn default_if_missing(obj: &mut Value, path: &[&str], value: Value) {
    let mut cur = obj;
    for p in &path[..path.len() - 1] {
        if !cur[*p].is_object() {
            cur[*p] = json!({});
        }
        cur = &mut cur[*p];
    }
    let last = path[path.len() - 1];
    if cur.get(last).is_none_or(Value::is_null) {
        cur[last] = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_kind_is_served_and_others_get_the_generic_behaviour() {
        let reg = crate::resources::Registry::default();
        for ((g, r), _) in KINDS {
            assert!(
                reg.all().iter().any(|i| i.group == *g && i.resource == *r),
                "{g}/{r} is not a built-in resource"
            );
        }
        assert!(behaviour("", "namespaces").spec_finalizers_hold_deletion());
        assert!(!behaviour("", "configmaps").spec_finalizers_hold_deletion());
        assert!(
            behaviour("rbac.authorization.k8s.io", "roles")
                .initial_status()
                .is_none()
        );
    }
}
