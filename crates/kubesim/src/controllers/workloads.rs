//! Workload controllers: Deployments (via ReplicaSets), StatefulSets (and
//! their PVCs), DaemonSets, Jobs, PVC binding and Pods. No pods are created
//! for workloads; their status is reported as if the pods were running.

use serde_json::{Value, json};

use super::{Ctx, Key, MANAGER};
use crate::api::WriteOptions;
use crate::errors::ApiResult;
use crate::meta::{self, is_deleting, now_rfc3339, short_hash};

/// Pod-template (or object) annotation: the workload never becomes ready.
pub const NEVER_READY: &str = "kubesim.caelus.io/never-ready";
/// Pod-template (or object) annotation: the Job fails (BackoffLimitExceeded).
pub const JOB_FAIL: &str = "kubesim.caelus.io/job-fail";

fn annotated(obj: &Value, key: &str) -> bool {
    obj["spec"]["template"]["metadata"]["annotations"][key] == "true"
        || obj["metadata"]["annotations"][key] == "true"
}

fn load(ctx: &Ctx, key: &Key) -> Option<(crate::resources::ResourceInfo, Value)> {
    let info = ctx.info(&key.0, &key.1)?;
    let obj = ctx.api.get(&info, &key.2, &key.3).ok()?;
    (!is_deleting(&obj)).then_some((info, obj))
}

fn replicas(obj: &Value) -> i64 {
    obj["spec"]["replicas"].as_i64().unwrap_or(1)
}

/// Writes `status` through `/status` if it differs (keeping condition times).
fn set_status(
    ctx: &Ctx,
    info: &crate::resources::ResourceInfo,
    key: &Key,
    status: Value,
) -> ApiResult<()> {
    ctx.api
        .modify(info, &key.2, &key.3, Some("status"), MANAGER, |o| {
            let mut n = o.clone();
            let conds = status["conditions"].as_array().cloned().unwrap_or_default();
            let mut s = status.clone();
            if let Some(m) = s.as_object_mut() {
                m.remove("conditions");
            }
            let old_conds = o["status"]["conditions"].clone();
            n["status"] = s;
            if old_conds.is_array() {
                n["status"]["conditions"] = old_conds;
            }
            for c in conds {
                meta::set_condition(&mut n, c);
            }
            if let Some(cs) = n["status"]["conditions"].as_array_mut() {
                let wanted: Vec<&Value> = status["conditions"]
                    .as_array()
                    .map(|a| a.iter().map(|c| &c["type"]).collect())
                    .unwrap_or_default();
                cs.retain(|c| wanted.contains(&&c["type"]));
            }
            (n["status"] != o["status"]).then_some(n)
        })?;
    Ok(())
}

fn cond(t: &str, status: bool, reason: &str, message: &str) -> Value {
    let now = now_rfc3339();
    json!({
        "type": t,
        "status": if status { "True" } else { "False" },
        "lastUpdateTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    })
}

fn owner_ref(owner: &Value, kind: &str, api_version: &str) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": meta::name_of(owner),
        "uid": meta::uid_of(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

fn owned_by(obj: &Value, uid: &str) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|r| r.iter().any(|r| r["uid"] == uid))
}

pub fn deployment(ctx: &mut Ctx, key: &Key) -> ApiResult<()> {
    let Some((info, d)) = load(ctx, key) else {
        return Ok(());
    };
    let Some(rs_info) = ctx.info("apps", "replicasets") else {
        return Ok(());
    };
    let n = replicas(&d);
    let hash = short_hash(&d["spec"]["template"]);
    let rs_name = format!("{}-{}", key.3, hash);
    let uid = meta::uid_of(&d).to_string();
    // Scale down ReplicaSets of older templates, ensure the current one.
    let owned: Vec<Value> = ctx
        .api
        .lock()
        .range(&rs_info, Some(&key.2), None)
        .filter(|(_, o)| owned_by(o, &uid))
        .map(|(_, o)| (**o).clone())
        .collect();
    for rs in &owned {
        let want = if meta::name_of(rs) == rs_name { n } else { 0 };
        if replicas(rs) != want {
            ctx.api
                .modify(&rs_info, &key.2, meta::name_of(rs), None, MANAGER, |o| {
                    let mut x = o.clone();
                    x["spec"]["replicas"] = json!(want);
                    Some(x)
                })?;
        }
    }
    if !owned.iter().any(|rs| meta::name_of(rs) == rs_name) {
        let mut template = d["spec"]["template"].clone();
        template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
        let mut selector = d["spec"]["selector"].clone();
        selector["matchLabels"]["pod-template-hash"] = json!(hash);
        let mut labels = d["spec"]["template"]["metadata"]["labels"].clone();
        if !labels.is_object() {
            labels = json!({});
        }
        labels["pod-template-hash"] = json!(hash);
        let rs = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rs_name,
                "namespace": key.2,
                "labels": labels,
                "annotations": {"deployment.kubernetes.io/desired-replicas": n.to_string(), "deployment.kubernetes.io/revision": (owned.len() + 1).to_string()},
                "ownerReferences": [owner_ref(&d, "Deployment", "apps/v1")],
            },
            "spec": {"replicas": n, "selector": selector, "template": template},
        });
        let opts = WriteOptions {
            field_manager: Some(MANAGER.into()),
            ..Default::default()
        };
        match ctx.api.create(&rs_info, &key.2, rs, &opts) {
            Ok(_) => {}
            Err(e) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    let generation = d["metadata"]["generation"].as_i64().unwrap_or(1);
    let ready = !annotated(&d, NEVER_READY) && ctx.rollout_done(key, &d);
    let status = if ready {
        json!({
            "observedGeneration": generation,
            "replicas": n,
            "updatedReplicas": n,
            "readyReplicas": n,
            "availableReplicas": n,
            "conditions": [
                cond("Available", true, "MinimumReplicasAvailable", "Deployment has minimum availability."),
                cond("Progressing", true, "NewReplicaSetAvailable", &format!("ReplicaSet \"{rs_name}\" has successfully progressed.")),
            ],
        })
    } else {
        json!({
            "observedGeneration": generation,
            "replicas": n,
            "updatedReplicas": n,
            "unavailableReplicas": n,
            "conditions": [
                cond("Available", n == 0, if n == 0 { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
                    if n == 0 { "Deployment has minimum availability." } else { "Deployment does not have minimum availability." }),
                cond("Progressing", true, "ReplicaSetUpdated", &format!("ReplicaSet \"{rs_name}\" is progressing.")),
            ],
        })
    };
    set_status(ctx, &info, key, strip_zero(status))
}

/// Drops zero counters, as Go's `omitempty` does in real statuses.
fn strip_zero(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.retain(|k, v| k == "replicas" || v.as_i64() != Some(0));
    }
    v
}

pub fn replicaset(ctx: &mut Ctx, key: &Key) -> ApiResult<()> {
    let Some((info, rs)) = load(ctx, key) else {
        return Ok(());
    };
    let n = replicas(&rs);
    let ready = if annotated(&rs, NEVER_READY) || !ctx.rollout_done(key, &rs) {
        0
    } else {
        n
    };
    let status = json!({
        "observedGeneration": rs["metadata"]["generation"],
        "replicas": n,
        "fullyLabeledReplicas": n,
        "readyReplicas": ready,
        "availableReplicas": ready,
    });
    set_status(ctx, &info, key, strip_zero(status))
}

pub fn statefulset(ctx: &mut Ctx, key: &Key) -> ApiResult<()> {
    let Some((info, sts)) = load(ctx, key) else {
        return Ok(());
    };
    let Some(pvc_info) = ctx.info("", "persistentvolumeclaims") else {
        return Ok(());
    };
    let n = replicas(&sts);
    // PVCs from volumeClaimTemplates: <template>-<sts>-<ordinal>. They are
    // never deleted on scale-down or StatefulSet deletion (Retain policy).
    let delete_with_set =
        sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete";
    let start = sts["spec"]["ordinals"]["start"].as_i64().unwrap_or(0);
    for tmpl in sts["spec"]["volumeClaimTemplates"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        for i in start..start + n {
            let name = format!("{}-{}-{}", meta::name_of(&tmpl), key.3, i);
            if ctx.api.get(&pvc_info, &key.2, &name).is_ok() {
                continue;
            }
            let mut labels = tmpl["metadata"]["labels"].clone();
            if !labels.is_object() {
                labels = json!({});
            }
            for (k, v) in sts["spec"]["selector"]["matchLabels"]
                .as_object()
                .cloned()
                .unwrap_or_default()
            {
                labels[k] = v;
            }
            let mut pvc = json!({
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": name, "namespace": key.2, "labels": labels},
                "spec": tmpl["spec"].clone(),
            });
            if delete_with_set {
                pvc["metadata"]["ownerReferences"] =
                    json!([owner_ref(&sts, "StatefulSet", "apps/v1")]);
            }
            let opts = WriteOptions {
                field_manager: Some(MANAGER.into()),
                ..Default::default()
            };
            match ctx.api.create(&pvc_info, &key.2, pvc, &opts) {
                Ok(_) => {}
                Err(e) if e.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
    }
    let revision = format!("{}-{}", key.3, &short_hash(&sts["spec"]["template"])[..8]);
    let ready = if annotated(&sts, NEVER_READY) || !ctx.rollout_done(key, &sts) {
        0
    } else {
        n
    };
    let status = json!({
        "observedGeneration": sts["metadata"]["generation"],
        "replicas": n,
        "readyReplicas": ready,
        "currentReplicas": n,
        "updatedReplicas": n,
        "availableReplicas": ready,
        "currentRevision": revision,
        "updateRevision": revision,
        "collisionCount": 0,
    });
    let mut status = strip_zero(status);
    status["collisionCount"] = json!(0);
    set_status(ctx, &info, key, status)
}

pub fn daemonset(ctx: &mut Ctx, key: &Key) -> ApiResult<()> {
    let Some((info, ds)) = load(ctx, key) else {
        return Ok(());
    };
    // One simulated node.
    let ready = if annotated(&ds, NEVER_READY) || !ctx.rollout_done(key, &ds) {
        0
    } else {
        1
    };
    let status = json!({
        "observedGeneration": ds["metadata"]["generation"],
        "desiredNumberScheduled": 1,
        "currentNumberScheduled": 1,
        "updatedNumberScheduled": 1,
        "numberMisscheduled": 0,
        "numberReady": ready,
        "numberAvailable": ready,
        "numberUnavailable": 1 - ready,
    });
    let mut s = status;
    if ready == 1 {
        s.as_object_mut().unwrap().remove("numberUnavailable");
    } else {
        s.as_object_mut().unwrap().remove("numberAvailable");
    }
    set_status(ctx, &info, key, s)
}

pub fn job(ctx: &mut Ctx, key: &Key) -> ApiResult<()> {
    let Some((info, job)) = load(ctx, key) else {
        return Ok(());
    };
    let finished = job["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True")
    });
    if finished || job["spec"]["suspend"] == json!(true) {
        return Ok(());
    }
    let start = job["status"]["startTime"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(now_rfc3339);
    let completions = job["spec"]["completions"].as_i64().unwrap_or(1);
    let status = if !ctx.rollout_done(key, &job) {
        json!({"startTime": start, "active": job["spec"]["parallelism"].as_i64().unwrap_or(1), "ready": 0, "terminating": 0})
    } else if annotated(&job, JOB_FAIL) {
        let msg = "Job has reached the specified backoff limit";
        json!({
            "startTime": start,
            "failed": job["spec"]["backoffLimit"].as_i64().unwrap_or(6) + 1,
            "ready": 0,
            "terminating": 0,
            "conditions": [
                cond("FailureTarget", true, "BackoffLimitExceeded", msg),
                cond("Failed", true, "BackoffLimitExceeded", msg),
            ],
        })
    } else {
        let msg = "Reached expected number of succeeded pods";
        json!({
            "startTime": start,
            "completionTime": now_rfc3339(),
            "succeeded": completions,
            "ready": 0,
            "terminating": 0,
            "uncountedTerminatedPods": {},
            "conditions": [
                cond("SuccessCriteriaMet", true, "CompletionsReached", msg),
                cond("Complete", true, "CompletionsReached", msg),
            ],
        })
    };
    set_status(ctx, &info, key, status)
}

pub fn pvc(ctx: &mut Ctx, key: &Key) -> ApiResult<()> {
    let Some((info, pvc)) = load(ctx, key) else {
        return Ok(());
    };
    if pvc["status"]["phase"] == "Bound" {
        return Ok(());
    }
    let volume = format!("pvc-{}", meta::uid_of(&pvc));
    ctx.api.modify(&info, &key.2, &key.3, None, MANAGER, |o| {
        let mut n = o.clone();
        n["spec"]["volumeName"] = json!(volume);
        n["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] = json!("yes");
        n["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] = json!("yes");
        Some(n)
    })?;
    let status = json!({
        "phase": "Bound",
        "accessModes": pvc["spec"]["accessModes"],
        "capacity": {"storage": pvc["spec"]["resources"]["requests"]["storage"].clone()},
    });
    ctx.api
        .modify(&info, &key.2, &key.3, Some("status"), MANAGER, |o| {
            let mut n = o.clone();
            n["status"] = status;
            Some(n)
        })?;
    Ok(())
}

pub fn pod(ctx: &mut Ctx, key: &Key) -> ApiResult<()> {
    let Some((info, pod)) = load(ctx, key) else {
        return Ok(());
    };
    if pod["status"]["phase"] == "Running" || !ctx.rollout_done(key, &pod) {
        return Ok(());
    }
    let ready = pod["metadata"]["annotations"][NEVER_READY] != "true";
    let now = now_rfc3339();
    let status = json!({
        "phase": "Running",
        "podIP": "10.244.0.10",
        "hostIP": "10.0.0.1",
        "startTime": now,
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": if ready { "True" } else { "False" }, "lastTransitionTime": now},
            {"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": now},
        ],
    });
    ctx.api
        .modify(&info, &key.2, &key.3, Some("status"), MANAGER, |o| {
            let mut n = o.clone();
            n["status"] = status;
            Some(n)
        })?;
    Ok(())
}
