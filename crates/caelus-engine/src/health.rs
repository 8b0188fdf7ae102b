//! Health of one live object, kstatus-like, as a pure function of the
//! object the API server returned. A controller's status only counts once
//! it has observed the current generation; otherwise it describes an older
//! spec.

use caelus_core::status::ObjectHealth;
use serde_json::Value;

pub const HEALTHY: &str = "Healthy";
pub const PROGRESSING: &str = "Progressing";
pub const FAILED: &str = "Failed";
pub const MISSING: &str = "Missing";

fn health(obj: &Value, state: &str, message: impl Into<String>) -> ObjectHealth {
    ObjectHealth {
        kind: obj["kind"].as_str().unwrap_or_default().to_string(),
        name: obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        health: state.to_string(),
        message: message.into(),
    }
}

/// Health of an object that should exist but does not.
pub fn missing(kind: &str, name: &str) -> ObjectHealth {
    ObjectHealth {
        kind: kind.to_string(),
        name: name.to_string(),
        health: MISSING.to_string(),
        message: "not found".to_string(),
    }
}

pub fn is_healthy(h: &ObjectHealth) -> bool {
    h.health == HEALTHY
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn condition_true<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    condition(obj, type_).filter(|c| c["status"] == "True")
}

/// `reason: message` of a condition, whichever parts it has.
fn explain(c: &Value) -> String {
    match (c["reason"].as_str(), c["message"].as_str()) {
        (Some(r), Some(m)) if !r.is_empty() && !m.is_empty() => format!("{r}: {m}"),
        (_, Some(m)) if !m.is_empty() => m.to_string(),
        (Some(r), _) => r.to_string(),
        _ => String::new(),
    }
}

/// `Some(message)` when the controller has not seen the current spec yet.
fn generation_pending(obj: &Value) -> Option<String> {
    let generation = obj["metadata"]["generation"].as_i64()?;
    let observed = int(&obj["status"]["observedGeneration"]);
    (observed < generation).then(|| {
        format!(
            "waiting for the controller to observe generation {generation} (observed {observed})"
        )
    })
}

/// Health of `obj` (a live object as JSON).
pub fn object_health(obj: &Value) -> ObjectHealth {
    if obj["metadata"]["deletionTimestamp"].is_string() {
        return health(obj, PROGRESSING, "being deleted");
    }
    let group = obj["apiVersion"]
        .as_str()
        .and_then(|v| v.rsplit_once('/'))
        .map(|(g, _)| g)
        .unwrap_or("");
    match (group, obj["kind"].as_str().unwrap_or_default()) {
        ("apps", "Deployment") => deployment(obj),
        ("apps", "StatefulSet") => statefulset(obj),
        ("apps", "DaemonSet") => daemonset(obj),
        ("batch", "Job") => job(obj),
        ("", "PersistentVolumeClaim") => pvc(obj),
        ("", "Pod") => pod(obj),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd(obj),
        _ => health(obj, HEALTHY, ""),
    }
}

fn deployment(obj: &Value) -> ObjectHealth {
    // Conditions too describe the observed generation only: a deadline
    // exceeded by the previous spec says nothing about the new one.
    if let Some(m) = generation_pending(obj) {
        return health(obj, PROGRESSING, m);
    }
    if let Some(c) = condition(obj, "Progressing")
        .filter(|c| c["status"] == "False" && c["reason"] == "ProgressDeadlineExceeded")
    {
        return health(obj, FAILED, explain(c));
    }
    let s = &obj["status"];
    let want = obj["spec"]["replicas"].as_i64().unwrap_or(1);
    let (updated, available, total) = (
        int(&s["updatedReplicas"]),
        int(&s["availableReplicas"]),
        int(&s["replicas"]),
    );
    if updated < want {
        return health(
            obj,
            PROGRESSING,
            format!("{updated} of {want} replicas updated"),
        );
    }
    if total > updated {
        return health(
            obj,
            PROGRESSING,
            format!("{} old replicas pending termination", total - updated),
        );
    }
    if available < want {
        return health(
            obj,
            PROGRESSING,
            format!("{available} of {want} updated replicas available"),
        );
    }
    health(
        obj,
        HEALTHY,
        format!("{available} of {want} replicas available"),
    )
}

fn statefulset(obj: &Value) -> ObjectHealth {
    if let Some(m) = generation_pending(obj) {
        return health(obj, PROGRESSING, m);
    }
    let s = &obj["status"];
    let want = obj["spec"]["replicas"].as_i64().unwrap_or(1);
    let ready = int(&s["readyReplicas"]);
    if ready < want {
        return health(
            obj,
            PROGRESSING,
            format!("{ready} of {want} replicas ready"),
        );
    }
    // OnDelete sets never converge the revisions by themselves.
    let on_delete = obj["spec"]["updateStrategy"]["type"] == "OnDelete";
    if !on_delete && s["currentRevision"] != s["updateRevision"] {
        return health(
            obj,
            PROGRESSING,
            format!(
                "rolling out revision {} ({} of {want} updated)",
                s["updateRevision"].as_str().unwrap_or("?"),
                int(&s["updatedReplicas"])
            ),
        );
    }
    health(obj, HEALTHY, format!("{ready} of {want} replicas ready"))
}

fn daemonset(obj: &Value) -> ObjectHealth {
    if let Some(m) = generation_pending(obj) {
        return health(obj, PROGRESSING, m);
    }
    let s = &obj["status"];
    let desired = int(&s["desiredNumberScheduled"]);
    let updated = int(&s["updatedNumberScheduled"]);
    let ready = int(&s["numberReady"]);
    if updated < desired {
        return health(
            obj,
            PROGRESSING,
            format!("{updated} of {desired} scheduled pods updated"),
        );
    }
    if ready < desired {
        return health(
            obj,
            PROGRESSING,
            format!("{ready} of {desired} scheduled pods ready"),
        );
    }
    health(obj, HEALTHY, format!("{ready} of {desired} pods ready"))
}

fn job(obj: &Value) -> ObjectHealth {
    if let Some(c) = condition_true(obj, "Failed") {
        return health(obj, FAILED, explain(c));
    }
    if let Some(c) = condition_true(obj, "Complete") {
        return health(obj, HEALTHY, explain(c));
    }
    if obj["spec"]["suspend"] == true {
        return health(obj, PROGRESSING, "suspended");
    }
    let s = &obj["status"];
    health(
        obj,
        PROGRESSING,
        format!(
            "running: {} active, {} succeeded, {} failed",
            int(&s["active"]),
            int(&s["succeeded"]),
            int(&s["failed"])
        ),
    )
}

fn pvc(obj: &Value) -> ObjectHealth {
    match obj["status"]["phase"].as_str() {
        Some("Bound") => health(obj, HEALTHY, "Bound"),
        Some("Lost") => health(obj, FAILED, "Lost: the bound volume no longer exists"),
        Some(p) => health(obj, PROGRESSING, p),
        None => health(obj, PROGRESSING, "Pending"),
    }
}

fn pod(obj: &Value) -> ObjectHealth {
    match obj["status"]["phase"].as_str() {
        Some("Succeeded") => health(obj, HEALTHY, "Succeeded"),
        Some("Failed") => health(
            obj,
            FAILED,
            obj["status"]["message"].as_str().unwrap_or("Failed"),
        ),
        Some("Running") if condition_true(obj, "Ready").is_some() => health(obj, HEALTHY, "Ready"),
        Some(p) => health(obj, PROGRESSING, p),
        None => health(obj, PROGRESSING, "Pending"),
    }
}

fn crd(obj: &Value) -> ObjectHealth {
    match condition_true(obj, "Established") {
        Some(_) => health(obj, HEALTHY, "Established"),
        None => health(obj, PROGRESSING, "waiting to be established"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state(obj: &Value) -> String {
        object_health(obj).health
    }

    fn deploy(replicas: Option<i64>, generation: i64, status: Value) -> Value {
        let mut spec = json!({});
        if let Some(r) = replicas {
            spec["replicas"] = json!(r);
        }
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "generation": generation},
               "spec": spec, "status": status})
    }

    #[test]
    fn deployment_rolled_out_and_available_is_healthy() {
        let d = deploy(
            Some(2),
            3,
            json!({"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
        );
        let h = object_health(&d);
        assert_eq!((h.kind.as_str(), h.name.as_str()), ("Deployment", "web"));
        assert_eq!(h.health, HEALTHY);
    }

    #[test]
    fn deployment_status_of_an_older_generation_does_not_count() {
        let d = deploy(
            Some(2),
            4,
            json!({"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
        );
        let h = object_health(&d);
        assert_eq!(h.health, PROGRESSING);
        assert!(h.message.contains("generation 4"), "{}", h.message);
    }

    #[test]
    fn deployment_replicas_default_to_one() {
        let ready = deploy(
            None,
            1,
            json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}),
        );
        assert_eq!(state(&ready), HEALTHY);
        let none = deploy(None, 1, json!({"observedGeneration": 1}));
        assert_eq!(state(&none), PROGRESSING);
    }

    #[test]
    fn deployment_waiting_for_available_or_updated_replicas_is_progressing() {
        let unavailable = deploy(
            Some(2),
            1,
            json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1}),
        );
        let h = object_health(&unavailable);
        assert_eq!(h.health, PROGRESSING);
        assert_eq!(h.message, "1 of 2 updated replicas available");
        let rolling = deploy(
            Some(2),
            1,
            json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2}),
        );
        assert_eq!(object_health(&rolling).message, "1 of 2 replicas updated");
        let old_pods = deploy(
            Some(2),
            1,
            json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}),
        );
        assert_eq!(state(&old_pods), PROGRESSING);
    }

    #[test]
    fn deployment_scaled_to_zero_is_healthy() {
        let d = deploy(Some(0), 2, json!({"observedGeneration": 2}));
        assert_eq!(state(&d), HEALTHY);
    }

    #[test]
    fn deployment_past_its_progress_deadline_has_failed() {
        let d = deploy(
            Some(1),
            1,
            json!({"observedGeneration": 1, "conditions": [{"type": "Progressing", "status": "False",
                "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"web-1\" has timed out progressing."}]}),
        );
        let h = object_health(&d);
        assert_eq!(h.health, FAILED);
        assert_eq!(
            h.message,
            "ProgressDeadlineExceeded: ReplicaSet \"web-1\" has timed out progressing."
        );
        // ... but not once a new spec awaits the controller.
        let mut upgraded = d.clone();
        upgraded["metadata"]["generation"] = json!(2);
        assert_eq!(state(&upgraded), PROGRESSING);
    }

    fn sts(status: Value, strategy: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
               "metadata": {"name": "db", "generation": 2},
               "spec": {"replicas": 3, "updateStrategy": {"type": strategy}}, "status": status})
    }

    #[test]
    fn statefulset_needs_ready_replicas_and_the_update_revision_current() {
        let ok = json!({"observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 3,
                        "currentRevision": "db-2", "updateRevision": "db-2"});
        assert_eq!(state(&sts(ok, "RollingUpdate")), HEALTHY);
        let not_ready = json!({"observedGeneration": 2, "readyReplicas": 2,
                               "currentRevision": "db-2", "updateRevision": "db-2"});
        let h = object_health(&sts(not_ready, "RollingUpdate"));
        assert_eq!(
            (h.health.as_str(), h.message.as_str()),
            (PROGRESSING, "2 of 3 replicas ready")
        );
        let rolling = json!({"observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 1,
                             "currentRevision": "db-1", "updateRevision": "db-2"});
        assert_eq!(state(&sts(rolling.clone(), "RollingUpdate")), PROGRESSING);
        // OnDelete: pods move to the new revision only when deleted by hand.
        assert_eq!(state(&sts(rolling, "OnDelete")), HEALTHY);
        let stale = json!({"observedGeneration": 1, "readyReplicas": 3,
                           "currentRevision": "db-2", "updateRevision": "db-2"});
        assert_eq!(state(&sts(stale, "RollingUpdate")), PROGRESSING);
    }

    fn ds(status: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
               "metadata": {"name": "agent", "generation": 1}, "status": status})
    }

    #[test]
    fn daemonset_needs_every_scheduled_pod_updated_and_ready() {
        assert_eq!(
            state(&ds(
                json!({"observedGeneration": 1, "desiredNumberScheduled": 3,
                             "updatedNumberScheduled": 3, "numberReady": 3})
            )),
            HEALTHY
        );
        assert_eq!(
            object_health(&ds(
                json!({"observedGeneration": 1, "desiredNumberScheduled": 3,
                                     "updatedNumberScheduled": 2, "numberReady": 3})
            ))
            .message,
            "2 of 3 scheduled pods updated"
        );
        assert_eq!(
            state(&ds(
                json!({"observedGeneration": 1, "desiredNumberScheduled": 3,
                             "updatedNumberScheduled": 3, "numberReady": 1})
            )),
            PROGRESSING
        );
        assert_eq!(
            state(&ds(
                json!({"observedGeneration": 0, "desiredNumberScheduled": 0})
            )),
            PROGRESSING
        );
    }

    fn job_with(conditions: Value) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "generation": 1},
               "spec": {}, "status": {"active": 1, "conditions": conditions}})
    }

    #[test]
    fn job_is_healthy_when_complete_and_failed_with_its_message() {
        assert_eq!(
            state(&job_with(json!([{"type": "Complete", "status": "True"}]))),
            HEALTHY
        );
        let failed = object_health(&job_with(json!([
            {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": "x"},
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
             "message": "Job has reached the specified backoff limit"}])));
        assert_eq!(failed.health, FAILED);
        assert_eq!(
            failed.message,
            "BackoffLimitExceeded: Job has reached the specified backoff limit"
        );
        let running = object_health(&job_with(json!([])));
        assert_eq!(running.health, PROGRESSING);
        assert_eq!(running.message, "running: 1 active, 0 succeeded, 0 failed");
        // A condition present but False does not count.
        assert_eq!(
            state(&job_with(json!([{"type": "Complete", "status": "False"}]))),
            PROGRESSING
        );
    }

    #[test]
    fn pvc_is_healthy_once_bound() {
        let pvc = |phase: Value| {
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                   "status": {"phase": phase}})
        };
        assert_eq!(state(&pvc(json!("Bound"))), HEALTHY);
        assert_eq!(state(&pvc(json!("Pending"))), PROGRESSING);
        assert_eq!(state(&pvc(Value::Null)), PROGRESSING);
        assert_eq!(state(&pvc(json!("Lost"))), FAILED);
    }

    #[test]
    fn crds_are_healthy_once_established() {
        let crd = |conditions: Value| {
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                   "metadata": {"name": "widgets.example.com"}, "status": {"conditions": conditions}})
        };
        assert_eq!(
            state(&crd(json!([{"type": "Established", "status": "True"}]))),
            HEALTHY
        );
        assert_eq!(state(&crd(json!([]))), PROGRESSING);
    }

    #[test]
    fn other_kinds_are_healthy_once_they_exist() {
        for obj in [
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "status": {}}),
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "generation": 5}}),
        ] {
            assert_eq!(state(&obj), HEALTHY, "{obj}");
        }
    }

    #[test]
    fn kinds_are_matched_with_their_group() {
        // A custom resource that happens to be called Deployment is not apps/v1's.
        let custom = json!({"apiVersion": "example.com/v1", "kind": "Deployment",
                            "metadata": {"name": "x", "generation": 2}});
        assert_eq!(state(&custom), HEALTHY);
    }

    #[test]
    fn objects_being_deleted_are_not_healthy() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "c", "deletionTimestamp": "2025-01-01T00:00:00Z"}});
        assert_eq!(state(&cm), PROGRESSING);
    }

    #[test]
    fn missing_objects_say_so() {
        let h = missing("Service", "web");
        assert_eq!(
            (h.health.as_str(), h.message.as_str()),
            (MISSING, "not found")
        );
    }
}
