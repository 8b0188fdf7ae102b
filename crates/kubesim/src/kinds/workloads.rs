//! Workloads: Deployments, StatefulSets, DaemonSets, ReplicaSets,
//! ReplicationControllers, Jobs and CronJobs — their status from the create
//! on, defaults, selectors that must match the template, immutable fields.
//! (Their pod templates are defaulted by [`crate::defaults`]; the simulated
//! controllers live in [`crate::controllers`].)

use serde_json::{Value, json};

use super::{KindBehaviour, default_if_missing};
use crate::errors::Cause;
use crate::resources::ResourceInfo;

pub struct Deployment;
pub struct StatefulSet;
pub struct DaemonSet;
pub struct ReplicaSet;
pub struct ReplicationController;
pub struct Job;
pub struct CronJob;

/// apps/v1 workloads need a selector that selects their template.
fn validate_selector(obj: &Value, causes: &mut Vec<Cause>) {
    if obj["spec"]["selector"].is_null() {
        causes.push(Cause::required("spec.selector", ""));
    } else {
        let sel = crate::selector::LabelSelector::from_object(&obj["spec"]["selector"]);
        let tmpl =
            json!({"metadata": {"labels": obj["spec"]["template"]["metadata"]["labels"].clone()}});
        if !sel.matches(&tmpl) {
            let labels = &obj["spec"]["template"]["metadata"]["labels"];
            causes.push(Cause::invalid(
                "spec.template.metadata.labels",
                &format!(
                    "map[string]string{{{}}}",
                    labels
                        .as_object()
                        .map(|m| m
                            .iter()
                            .map(|(k, v)| format!("{k:?}:{v}"))
                            .collect::<Vec<_>>()
                            .join(", "))
                        .unwrap_or_default()
                ),
                "`selector` does not match template `labels`",
            ));
        }
    }
}

impl KindBehaviour for Deployment {
    fn initial_status(&self) -> Option<Value> {
        Some(json!({}))
    }

    fn default(&self, obj: &mut Value) {
        default_if_missing(obj, &["spec", "replicas"], json!(1));
        default_if_missing(obj, &["spec", "revisionHistoryLimit"], json!(10));
        default_if_missing(obj, &["spec", "progressDeadlineSeconds"], json!(600));
        default_if_missing(
            obj,
            &["spec", "strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
        );
    }

    fn validate_create(&self, obj: &Value, causes: &mut Vec<Cause>) {
        validate_selector(obj, causes);
    }
}

impl KindBehaviour for StatefulSet {
    fn initial_status(&self) -> Option<Value> {
        Some(json!({"replicas": 0}))
    }

    fn default(&self, obj: &mut Value) {
        default_if_missing(obj, &["spec", "replicas"], json!(1));
        default_if_missing(obj, &["spec", "podManagementPolicy"], json!("OrderedReady"));
        default_if_missing(obj, &["spec", "revisionHistoryLimit"], json!(10));
        default_if_missing(
            obj,
            &["spec", "updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
        );
        default_if_missing(
            obj,
            &["spec", "persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
        );
    }

    fn validate_create(&self, obj: &Value, causes: &mut Vec<Cause>) {
        validate_selector(obj, causes);
    }

    fn validate_update(
        &self,
        _info: &ResourceInfo,
        old: &Value,
        new: &Value,
        causes: &mut Vec<Cause>,
    ) {
        let strip = |v: &Value| {
            let mut s = v["spec"].clone();
            if let Some(m) = s.as_object_mut() {
                for k in [
                    "replicas",
                    "ordinals",
                    "template",
                    "updateStrategy",
                    "persistentVolumeClaimRetentionPolicy",
                    "minReadySeconds",
                ] {
                    m.remove(k);
                }
                // Templates are PersistentVolumeClaims whose TypeMeta and
                // status the API server does not compare (they do not
                // survive conversion to the internal type).
                if let Some(ts) = m
                    .get_mut("volumeClaimTemplates")
                    .and_then(Value::as_array_mut)
                {
                    for t in ts {
                        if let Some(t) = t.as_object_mut() {
                            t.remove("apiVersion");
                            t.remove("kind");
                            t.remove("status");
                        }
                    }
                }
            }
            s
        };
        if strip(old) != strip(new) {
            causes.push(Cause::forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ));
        }
    }
}

impl KindBehaviour for DaemonSet {
    fn initial_status(&self) -> Option<Value> {
        Some(json!({
            "currentNumberScheduled": 0,
            "numberMisscheduled": 0,
            "desiredNumberScheduled": 0,
            "numberReady": 0,
        }))
    }

    fn default(&self, obj: &mut Value) {
        default_if_missing(obj, &["spec", "revisionHistoryLimit"], json!(10));
        default_if_missing(
            obj,
            &["spec", "updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}),
        );
    }

    fn validate_create(&self, obj: &Value, causes: &mut Vec<Cause>) {
        validate_selector(obj, causes);
    }
}

impl KindBehaviour for ReplicaSet {
    fn initial_status(&self) -> Option<Value> {
        Some(json!({"replicas": 0}))
    }

    fn default(&self, obj: &mut Value) {
        default_if_missing(obj, &["spec", "replicas"], json!(1));
    }

    fn validate_create(&self, obj: &Value, causes: &mut Vec<Cause>) {
        validate_selector(obj, causes);
    }
}

impl KindBehaviour for ReplicationController {
    fn initial_status(&self) -> Option<Value> {
        Some(json!({"replicas": 0}))
    }
}

impl KindBehaviour for Job {
    fn initial_status(&self) -> Option<Value> {
        Some(json!({}))
    }

    fn default(&self, obj: &mut Value) {
        default_if_missing(obj, &["spec", "backoffLimit"], json!(6));
        default_if_missing(obj, &["spec", "completions"], json!(1));
        default_if_missing(obj, &["spec", "parallelism"], json!(1));
        default_if_missing(obj, &["spec", "completionMode"], json!("NonIndexed"));
    }

    fn validate_update(
        &self,
        _info: &ResourceInfo,
        old: &Value,
        new: &Value,
        causes: &mut Vec<Cause>,
    ) {
        if old["spec"]["template"] != new["spec"]["template"] {
            causes.push(Cause::invalid(
                "spec.template",
                "core.PodTemplateSpec{...}",
                "field is immutable",
            ));
        }
        if old["spec"]["completions"] != new["spec"]["completions"] {
            causes.push(Cause::invalid(
                "spec.completions",
                &new["spec"]["completions"].to_string(),
                "field is immutable",
            ));
        }
    }
}

impl KindBehaviour for CronJob {
    fn initial_status(&self) -> Option<Value> {
        Some(json!({}))
    }
}
