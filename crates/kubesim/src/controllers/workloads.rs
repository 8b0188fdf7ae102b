//! Workload controllers: Deployments (via ReplicaSets), StatefulSets (and
//! their PVCs), DaemonSets and Jobs create Pods through the API (so
//! admission applies to them as on a real cluster), PVCs bind, and a
//! simulated kubelet runs Pods. Workload status is computed from the Pods.

use serde_json::{Value, json};

use super::{Ctx, Key, MANAGER};
use crate::api::WriteOptions;
use crate::errors::ApiResult;
use crate::meta::{self, is_deleting, now_rfc3339, short_hash};

/// Pod-template (or object) annotation: the workload never becomes ready.
/// (kubesim's knobs live outside Caelus's reserved `caelus.io` domain, which
/// charts may not set.)
pub const NEVER_READY: &str = "sim.kubesim.dev/never-ready";
/// Pod-template (or object) annotation: the Job fails (BackoffLimitExceeded).
pub const JOB_FAIL: &str = "sim.kubesim.dev/job-fail";

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

/// Pods of the StatefulSet's name that no controller owns and whose labels
/// match its selector are adopted, as the controller's ClaimPods does: after
/// a StatefulSet is deleted with `propagationPolicy: Orphan` and created
/// again, the new one takes over the running pods.
fn adopt_orphaned_pods(ctx: &Ctx, sts: &Value) {
    let Some(pod_info) = ctx.info("", "pods") else {
        return;
    };
    let selector = &sts["spec"]["selector"];
    let Some(labels) = selector["matchLabels"]
        .as_object()
        .filter(|m| !m.is_empty())
    else {
        return;
    };
    // Only plain label selectors are matched here.
    if selector["matchExpressions"]
        .as_array()
        .is_some_and(|e| !e.is_empty())
    {
        return;
    }
    let ns = meta::namespace_of(sts);
    let prefix = format!("{}-", meta::name_of(sts));
    let orphan = |o: &Value| {
        !is_deleting(o)
            && meta::name_of(o).starts_with(&prefix)
            && !o["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["controller"] == true))
            && labels
                .iter()
                .all(|(k, v)| o["metadata"]["labels"][k.as_str()] == *v)
    };
    let names: Vec<String> = ctx
        .api
        .lock()
        .range(&pod_info, Some(ns), None)
        .filter(|(_, o)| orphan(o))
        .map(|(_, o)| meta::name_of(o).to_string())
        .collect();
    for name in names {
        let _ = ctx.api.modify(&pod_info, ns, &name, None, MANAGER, |o| {
            orphan(o).then(|| {
                let mut n = o.clone();
                let mut refs = n["metadata"]["ownerReferences"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                refs.push(owner_ref(sts, "StatefulSet", "apps/v1"));
                n["metadata"]["ownerReferences"] = json!(refs);
                n
            })
        });
    }
}

/// Pods a controller owns (by controller reference), oldest name first.
fn owned_pods(ctx: &Ctx, ns: &str, uid: &str) -> Vec<Value> {
    let Some(pod_info) = ctx.info("", "pods") else {
        return vec![];
    };
    ctx.api
        .lock()
        .range(&pod_info, Some(ns), None)
        .filter(|(_, o)| owned_by(o, uid) && !is_deleting(o))
        .map(|(_, o)| (**o).clone())
        .collect()
}

fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn pod_phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or("Pending")
}

/// The controller a Pod is created for.
#[derive(Clone, Copy)]
struct Owner<'a> {
    obj: &'a Value,
    kind: &'a str,
    api_version: &'a str,
}

/// Creates a Pod from a template through the API (so admission applies).
/// `name` is a fixed name or a `generateName` prefix (ending in `-`).
fn create_pod(
    ctx: &Ctx,
    ns: &str,
    owner: Owner<'_>,
    template: &Value,
    name: &str,
    extra_labels: &[(&str, String)],
    node: Option<&str>,
) -> ApiResult<Value> {
    let Some(pod_info) = ctx.info("", "pods") else {
        return Err(crate::errors::ApiError::internal("pods are not served"));
    };
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    for (k, v) in extra_labels {
        labels[*k] = json!(v);
    }
    let mut metadata = json!({
        "namespace": ns,
        "labels": labels,
        "ownerReferences": [owner_ref(owner.obj, owner.kind, owner.api_version)],
    });
    if let Some(a) = template["metadata"]["annotations"].as_object() {
        metadata["annotations"] = json!(a);
    }
    // The simulator's own annotations also work on the owning object.
    for a in [NEVER_READY, JOB_FAIL] {
        if annotated(owner.obj, a) {
            metadata["annotations"][a] = json!("true");
        }
    }
    if name.ends_with('-') {
        metadata["generateName"] = json!(name);
    } else {
        metadata["name"] = json!(name);
    }
    let mut spec = template["spec"].clone();
    if let Some(n) = node {
        spec["nodeName"] = json!(n);
    }
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec});
    let opts = WriteOptions {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    ctx.api.create(&pod_info, ns, pod, &opts)
}

fn delete_pod(ctx: &Ctx, pod: &Value) {
    if let Some(pod_info) = ctx.info("", "pods") {
        let _ = ctx.api.delete(
            &pod_info,
            meta::namespace_of(pod),
            meta::name_of(pod),
            &Default::default(),
        );
    }
}

/// Records an Event about `obj`, as controllers do (`kubectl describe` shows them).
fn event(ctx: &Ctx, obj: &Value, kind: &str, type_: &str, reason: &str, message: &str) {
    let Some(info) = ctx.info("", "events") else {
        return;
    };
    let ns = meta::namespace_of(obj);
    let now = now_rfc3339();
    let ev = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": format!("{}.", meta::name_of(obj)), "namespace": ns},
        "involvedObject": {
            "apiVersion": obj["apiVersion"], "kind": kind, "name": meta::name_of(obj),
            "namespace": ns, "uid": meta::uid_of(obj),
            "resourceVersion": obj["metadata"]["resourceVersion"],
        },
        "type": type_,
        "reason": reason,
        "message": message,
        "source": {"component": "kube-controller-manager"},
        "reportingComponent": "kube-controller-manager",
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    });
    let opts = WriteOptions {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    let _ = ctx.api.create(&info, ns, ev, &opts);
}

/// The revision annotation of a ReplicaSet (0 when absent).
fn revision(rs: &Value) -> i64 {
    rs["metadata"]["annotations"][REVISION]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

const REVISION: &str = "deployment.kubernetes.io/revision";

/// The Deployment controller: one ReplicaSet per pod template (named by its
/// hash, the `pod-template-hash` label), older ones scaled to zero, and
/// `deployment.kubernetes.io/revision` on the Deployment and its ReplicaSets
/// (a rollback to an older template gives its ReplicaSet the next revision,
/// as pkg/controller/deployment/sync.go does). Status comes from the
/// ReplicaSets, including their `ReplicaFailure` condition.
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
    let owned: Vec<Value> = ctx
        .api
        .lock()
        .range(&rs_info, Some(&key.2), None)
        .filter(|(_, o)| owned_by(o, &uid))
        .map(|(_, o)| (**o).clone())
        .collect();
    let max_rev = owned.iter().map(revision).max().unwrap_or(0);
    let current = owned.iter().find(|rs| meta::name_of(rs) == rs_name);
    let cur_rev = match current {
        Some(rs) if revision(rs) == max_rev => max_rev,
        _ => max_rev + 1,
    };
    for rs in &owned {
        let is_current = meta::name_of(rs) == rs_name;
        let want = if is_current { n } else { 0 };
        let want_rev = if is_current { cur_rev } else { revision(rs) };
        if replicas(rs) != want || revision(rs) != want_rev {
            ctx.api
                .modify(&rs_info, &key.2, meta::name_of(rs), None, MANAGER, |o| {
                    let mut x = o.clone();
                    x["spec"]["replicas"] = json!(want);
                    x["metadata"]["annotations"][REVISION] = json!(want_rev.to_string());
                    x["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] =
                        json!(n.to_string());
                    Some(x)
                })?;
        }
    }
    // Old, scaled-down ReplicaSets beyond revisionHistoryLimit are deleted.
    let limit = d["spec"]["revisionHistoryLimit"]
        .as_i64()
        .unwrap_or(10)
        .max(0) as usize;
    let mut old: Vec<&Value> = owned
        .iter()
        .filter(|rs| meta::name_of(rs) != rs_name && replicas(rs) == 0)
        .collect();
    old.sort_by_key(|rs| revision(rs));
    if old.len() > limit {
        for rs in &old[..old.len() - limit] {
            let _ = ctx
                .api
                .delete(&rs_info, &key.2, meta::name_of(rs), &Default::default());
        }
    }
    if current.is_none() {
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
                "annotations": {
                    "deployment.kubernetes.io/desired-replicas": n.to_string(),
                    "deployment.kubernetes.io/max-replicas": (n + 1).to_string(),
                    REVISION: cur_rev.to_string(),
                },
                "ownerReferences": [owner_ref(&d, "Deployment", "apps/v1")],
            },
            "spec": {"replicas": n, "selector": selector, "template": template},
        });
        let mut rs = rs;
        for a in [NEVER_READY, JOB_FAIL] {
            if d["metadata"]["annotations"][a] == "true" {
                rs["metadata"]["annotations"][a] = json!("true");
            }
        }
        let opts = WriteOptions {
            field_manager: Some(MANAGER.into()),
            ..Default::default()
        };
        match ctx.api.create(&rs_info, &key.2, rs, &opts) {
            Ok(_) => event(
                ctx,
                &d,
                "Deployment",
                "Normal",
                "ScalingReplicaSet",
                &format!("Scaled up replica set {rs_name} from 0 to {n}"),
            ),
            Err(e) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    if d["metadata"]["annotations"][REVISION] != json!(cur_rev.to_string()) {
        ctx.api.modify(&info, &key.2, &key.3, None, MANAGER, |o| {
            let mut x = o.clone();
            if !x["metadata"]["annotations"].is_object() {
                x["metadata"]["annotations"] = json!({});
            }
            x["metadata"]["annotations"][REVISION] = json!(cur_rev.to_string());
            Some(x)
        })?;
    }
    // Status from the ReplicaSets as they are now.
    let sets: Vec<Value> = ctx
        .api
        .lock()
        .range(&rs_info, Some(&key.2), None)
        .filter(|(_, o)| owned_by(o, &uid))
        .map(|(_, o)| (**o).clone())
        .collect();
    let sum = |f: &str| -> i64 {
        sets.iter()
            .map(|rs| rs["status"][f].as_i64().unwrap_or(0))
            .sum()
    };
    let new_rs = sets.iter().find(|rs| meta::name_of(rs) == rs_name);
    let updated = new_rs.map_or(0, |rs| rs["status"]["replicas"].as_i64().unwrap_or(0));
    let new_ready = new_rs.map_or(0, |rs| rs["status"]["readyReplicas"].as_i64().unwrap_or(0));
    let failure = new_rs.and_then(|rs| {
        rs["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "ReplicaFailure" && c["status"] == "True")
            .cloned()
    });
    let generation = d["metadata"]["generation"].as_i64().unwrap_or(1);
    let total = sum("replicas");
    let ready = sum("readyReplicas");
    let available = sum("availableReplicas");
    let complete = new_ready >= n && updated == n && total == n;
    let mut conditions = vec![
        if available >= n {
            cond(
                "Available",
                true,
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        } else {
            cond(
                "Available",
                false,
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        },
        if complete {
            cond(
                "Progressing",
                true,
                "NewReplicaSetAvailable",
                &format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
            )
        } else {
            cond(
                "Progressing",
                true,
                "ReplicaSetUpdated",
                &format!("ReplicaSet \"{rs_name}\" is progressing."),
            )
        },
    ];
    if let Some(f) = failure {
        conditions.push(cond(
            "ReplicaFailure",
            true,
            "FailedCreate",
            f["message"].as_str().unwrap_or_default(),
        ));
    }
    let status = json!({
        "observedGeneration": generation,
        "replicas": total,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "unavailableReplicas": (n - available).max(0),
        "conditions": conditions,
    });
    set_status(ctx, &info, key, strip_zero(status))
}

/// Drops zero counters, as Go's `omitempty` does in real statuses.
fn strip_zero(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.retain(|k, v| k == "replicas" || v.as_i64() != Some(0));
    }
    v
}

/// The ReplicaSet controller: `spec.replicas` Pods named `<rs>-<random>`;
/// a refused Pod create becomes the `ReplicaFailure` condition with reason
/// `FailedCreate` and the API server's message (and a FailedCreate event).
pub fn replicaset(ctx: &mut Ctx, key: &Key) -> ApiResult<()> {
    let Some((info, rs)) = load(ctx, key) else {
        return Ok(());
    };
    let n = replicas(&rs);
    let uid = meta::uid_of(&rs).to_string();
    let mut pods = owned_pods(ctx, &key.2, &uid);
    let mut failure = None;
    while (pods.len() as i64) < n {
        match create_pod(
            ctx,
            &key.2,
            Owner {
                obj: &rs,
                kind: "ReplicaSet",
                api_version: "apps/v1",
            },
            &rs["spec"]["template"],
            &format!("{}-", key.3),
            &[],
            None,
        ) {
            Ok(p) => {
                event(
                    ctx,
                    &rs,
                    "ReplicaSet",
                    "Normal",
                    "SuccessfulCreate",
                    &format!("Created pod: {}", meta::name_of(&p)),
                );
                pods.push(p);
            }
            Err(e) => {
                event(
                    ctx,
                    &rs,
                    "ReplicaSet",
                    "Warning",
                    "FailedCreate",
                    &format!("Error creating: {}", e.message),
                );
                failure = Some(e.message);
                break;
            }
        }
    }
    while pods.len() as i64 > n {
        if let Some(p) = pods.pop() {
            delete_pod(ctx, &p);
            event(
                ctx,
                &rs,
                "ReplicaSet",
                "Normal",
                "SuccessfulDelete",
                &format!("Deleted pod: {}", meta::name_of(&p)),
            );
        }
    }
    let ready = pods.iter().filter(|p| pod_ready(p)).count() as i64;
    let mut status = json!({
        "observedGeneration": rs["metadata"]["generation"],
        "replicas": pods.len(),
        "fullyLabeledReplicas": pods.len(),
        "readyReplicas": ready,
        "availableReplicas": ready,
    });
    if let Some(msg) = failure {
        status["conditions"] = json!([cond("ReplicaFailure", true, "FailedCreate", &msg)]);
    } else if let Some(c) = rs["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "ReplicaFailure"))
        && (pods.len() as i64) < n
    {
        status["conditions"] = json!([c]);
    }
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
    adopt_orphaned_pods(ctx, &sts);
    // Pods <sts>-<ordinal>; pods of an older revision are replaced.
    let uid = meta::uid_of(&sts).to_string();
    let pods = owned_pods(ctx, &key.2, &uid);
    let mut failure = None;
    for p in &pods {
        let ordinal = meta::name_of(p)
            .rsplit('-')
            .next()
            .and_then(|o| o.parse::<i64>().ok())
            .unwrap_or(-1);
        let stale = p["metadata"]["labels"]["controller-revision-hash"] != json!(revision);
        if ordinal < start || ordinal >= start + n || stale {
            delete_pod(ctx, p);
        }
    }
    for i in start..start + n {
        let name = format!("{}-{}", key.3, i);
        if pods.iter().any(|p| meta::name_of(p) == name) {
            continue;
        }
        let mut template = sts["spec"]["template"].clone();
        // Claims from volumeClaimTemplates are mounted by name.
        for tmpl in sts["spec"]["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let claim = format!("{}-{}-{}", meta::name_of(tmpl), key.3, i);
            if !template["spec"]["volumes"].is_array() {
                template["spec"]["volumes"] = json!([]);
            }
            if let Some(vs) = template["spec"]["volumes"].as_array_mut() {
                vs.push(json!({"name": meta::name_of(tmpl), "persistentVolumeClaim": {"claimName": claim}}));
            }
        }
        template["spec"]["hostname"] = json!(name);
        if let Some(svc) = sts["spec"]["serviceName"].as_str() {
            template["spec"]["subdomain"] = json!(svc);
        }
        let labels = [
            ("controller-revision-hash", revision.clone()),
            ("statefulset.kubernetes.io/pod-name", name.clone()),
            ("apps.kubernetes.io/pod-index", i.to_string()),
        ];
        match create_pod(
            ctx,
            &key.2,
            Owner {
                obj: &sts,
                kind: "StatefulSet",
                api_version: "apps/v1",
            },
            &template,
            &name,
            &labels,
            None,
        ) {
            Ok(_) => {}
            Err(e) if e.code == 409 => {}
            Err(e) => {
                event(
                    ctx,
                    &sts,
                    "StatefulSet",
                    "Warning",
                    "FailedCreate",
                    &format!(
                        "create Pod {name} in StatefulSet {} failed error: {}",
                        key.3, e.message
                    ),
                );
                failure = Some(e.message);
                break;
            }
        }
    }
    let pods = owned_pods(ctx, &key.2, &uid);
    let ready = pods.iter().filter(|p| pod_ready(p)).count() as i64;
    let current = pods.len() as i64;
    let status = json!({
        "observedGeneration": sts["metadata"]["generation"],
        "replicas": current,
        "readyReplicas": ready,
        "currentReplicas": current,
        "updatedReplicas": current,
        "availableReplicas": ready,
        "currentRevision": revision,
        "updateRevision": revision,
        "collisionCount": 0,
    });
    let mut status = strip_zero(status);
    status["collisionCount"] = json!(0);
    if failure.is_some() {
        tracing::debug!(?key, ?failure, "statefulset pod refused");
    }
    set_status(ctx, &info, key, status)
}

/// The DaemonSet controller: one Pod per simulated Node.
pub fn daemonset(ctx: &mut Ctx, key: &Key) -> ApiResult<()> {
    let Some((info, ds)) = load(ctx, key) else {
        return Ok(());
    };
    let nodes: Vec<String> = match ctx.info("", "nodes") {
        Some(ni) => ctx
            .api
            .lock()
            .range(&ni, None, None)
            .map(|(_, o)| meta::name_of(o).to_string())
            .collect(),
        None => vec![],
    };
    let hash = short_hash(&ds["spec"]["template"])[..10].to_string();
    let uid = meta::uid_of(&ds).to_string();
    let pods = owned_pods(ctx, &key.2, &uid);
    for p in &pods {
        let node = p["spec"]["nodeName"].as_str().unwrap_or_default();
        if !nodes.iter().any(|n| n == node)
            || p["metadata"]["labels"]["controller-revision-hash"] != json!(hash)
        {
            delete_pod(ctx, p);
        }
    }
    for node in &nodes {
        let has = pods.iter().any(|p| {
            p["spec"]["nodeName"] == json!(node)
                && p["metadata"]["labels"]["controller-revision-hash"] == json!(hash)
        });
        if has {
            continue;
        }
        let labels = [
            ("controller-revision-hash", hash.clone()),
            (
                "pod-template-generation",
                ds["metadata"]["generation"]
                    .as_i64()
                    .unwrap_or(1)
                    .to_string(),
            ),
        ];
        if let Err(e) = create_pod(
            ctx,
            &key.2,
            Owner {
                obj: &ds,
                kind: "DaemonSet",
                api_version: "apps/v1",
            },
            &ds["spec"]["template"],
            &format!("{}-", key.3),
            &labels,
            Some(node),
        ) {
            event(
                ctx,
                &ds,
                "DaemonSet",
                "Warning",
                "FailedCreate",
                &format!("Error creating: {}", e.message),
            );
            break;
        }
    }
    let pods = owned_pods(ctx, &key.2, &uid);
    let ready = pods.iter().filter(|p| pod_ready(p)).count() as i64;
    let desired = nodes.len() as i64;
    let mut status = json!({
        "observedGeneration": ds["metadata"]["generation"],
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": pods.len(),
        "updatedNumberScheduled": pods.len(),
        "numberMisscheduled": 0,
        "numberReady": ready,
        "numberAvailable": ready,
        "numberUnavailable": desired - ready,
    });
    if let Some(m) = status.as_object_mut() {
        if ready == 0 {
            m.remove("numberAvailable");
        }
        if desired - ready <= 0 {
            m.remove("numberUnavailable");
        }
    }
    set_status(ctx, &info, key, status)
}

/// The Job controller: runs `parallelism` Pods at a time until
/// `completions` succeeded, or fails past `backoffLimit`.
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
    let parallelism = job["spec"]["parallelism"].as_i64().unwrap_or(1);
    let backoff = job["spec"]["backoffLimit"].as_i64().unwrap_or(6);
    let uid = meta::uid_of(&job).to_string();
    let pods = owned_pods(ctx, &key.2, &uid);
    let succeeded = pods.iter().filter(|p| pod_phase(p) == "Succeeded").count() as i64;
    let failed = pods.iter().filter(|p| pod_phase(p) == "Failed").count() as i64;
    let mut active = pods
        .iter()
        .filter(|p| !matches!(pod_phase(p), "Succeeded" | "Failed"))
        .count() as i64;
    let status = if failed > backoff {
        let msg = "Job has reached the specified backoff limit";
        for p in pods
            .iter()
            .filter(|p| !matches!(pod_phase(p), "Succeeded" | "Failed"))
        {
            delete_pod(ctx, p);
        }
        json!({
            "startTime": start,
            "failed": failed,
            "succeeded": succeeded,
            "ready": 0,
            "terminating": 0,
            "uncountedTerminatedPods": {},
            "conditions": [
                cond("FailureTarget", true, "BackoffLimitExceeded", msg),
                cond("Failed", true, "BackoffLimitExceeded", msg),
            ],
        })
    } else if succeeded >= completions {
        let msg = "Reached expected number of succeeded pods";
        json!({
            "startTime": start,
            "completionTime": now_rfc3339(),
            "succeeded": succeeded,
            "failed": failed,
            "ready": 0,
            "terminating": 0,
            "uncountedTerminatedPods": {},
            "conditions": [
                cond("SuccessCriteriaMet", true, "CompletionsReached", msg),
                cond("Complete", true, "CompletionsReached", msg),
            ],
        })
    } else {
        let want = parallelism.min(completions - succeeded);
        let labels = [
            ("batch.kubernetes.io/controller-uid", uid.clone()),
            ("batch.kubernetes.io/job-name", key.3.clone()),
            ("controller-uid", uid.clone()),
            ("job-name", key.3.clone()),
        ];
        while active < want {
            match create_pod(
                ctx,
                &key.2,
                Owner {
                    obj: &job,
                    kind: "Job",
                    api_version: "batch/v1",
                },
                &job["spec"]["template"],
                &format!("{}-", key.3),
                &labels,
                None,
            ) {
                Ok(p) => {
                    event(
                        ctx,
                        &job,
                        "Job",
                        "Normal",
                        "SuccessfulCreate",
                        &format!("Created pod: {}", meta::name_of(&p)),
                    );
                    active += 1;
                }
                Err(e) => {
                    event(
                        ctx,
                        &job,
                        "Job",
                        "Warning",
                        "FailedCreate",
                        &format!("Error creating: {}", e.message),
                    );
                    break;
                }
            }
        }
        let ready = pods.iter().filter(|p| pod_ready(p)).count() as i64;
        json!({"startTime": start, "active": active, "succeeded": succeeded, "failed": failed, "ready": ready, "terminating": 0, "uncountedTerminatedPods": {}})
    };
    let mut status = status;
    if let Some(m) = status.as_object_mut() {
        m.retain(|k, v| {
            !matches!(k.as_str(), "succeeded" | "failed" | "active") || v.as_i64() != Some(0)
        });
    }
    set_status(ctx, &info, key, status)
}

pub fn pvc(ctx: &mut Ctx, key: &Key) -> ApiResult<()> {
    let Some((info, pvc)) = load(ctx, key) else {
        return Ok(());
    };
    if pvc["status"]["phase"] == "Bound" {
        // An allowed expansion completes: the capacity follows the request.
        let want = pvc["spec"]["resources"]["requests"]["storage"].clone();
        if !want.is_null() && pvc["status"]["capacity"]["storage"] != want {
            ctx.api
                .modify(&info, &key.2, &key.3, Some("status"), MANAGER, |o| {
                    let mut n = o.clone();
                    n["status"]["capacity"]["storage"] = want;
                    Some(n)
                })?;
        }
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

/// The kubelet, simulated: a scheduled Pod starts, its containers run and it
/// becomes Ready (unless annotated never-ready); Pods of Jobs run to
/// completion (`Succeeded`, or `Failed` with the job-fail annotation).
pub fn pod(ctx: &mut Ctx, key: &Key) -> ApiResult<()> {
    let Some((info, pod)) = load(ctx, key) else {
        return Ok(());
    };
    let phase = pod_phase(&pod).to_string();
    if matches!(phase.as_str(), "Running" | "Succeeded" | "Failed") || !ctx.rollout_done(key, &pod)
    {
        return Ok(());
    }
    let job_pod = pod["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|r| r.iter().any(|r| r["kind"] == "Job"));
    let never_ready = pod["metadata"]["annotations"][NEVER_READY] == "true";
    let fails = pod["metadata"]["annotations"][JOB_FAIL] == "true";
    let now = now_rfc3339();
    let (phase, ready) = match (job_pod, fails) {
        (true, true) => ("Failed", false),
        (true, false) => ("Succeeded", false),
        _ => ("Running", !never_ready),
    };
    let t = |b: bool| if b { "True" } else { "False" };
    let statuses: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let state = match phase {
                "Running" => json!({"running": {"startedAt": now}}),
                _ => json!({"terminated": {
                    "exitCode": if phase == "Failed" { 1 } else { 0 },
                    "reason": if phase == "Failed" { "Error" } else { "Completed" },
                    "startedAt": now, "finishedAt": now}}),
            };
            json!({
                "name": c["name"], "image": c["image"],
                "imageID": format!("docker.io/library/{}@sha256:{}", c["image"].as_str().unwrap_or_default(), short_hash(&c["image"])),
                "containerID": format!("containerd://{}", short_hash(&json!([c["name"], now]))),
                "ready": ready, "started": phase == "Running", "restartCount": 0, "state": state,
            })
        })
        .collect();
    let status = json!({
        "phase": phase,
        "podIP": "10.244.0.10",
        "podIPs": [{"ip": "10.244.0.10"}],
        "hostIP": "10.0.0.1",
        "hostIPs": [{"ip": "10.0.0.1"}],
        "startTime": now,
        "qosClass": qos_class(&pod),
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": t(phase == "Running"), "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "Ready", "status": t(ready), "lastTransitionTime": now},
            {"type": "ContainersReady", "status": t(ready), "lastTransitionTime": now},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        ],
        "containerStatuses": statuses,
    });
    if pod["spec"]["nodeName"].is_null() {
        ctx.api.modify(&info, &key.2, &key.3, None, MANAGER, |o| {
            let mut n = o.clone();
            n["spec"]["nodeName"] = json!("kubesim-node");
            Some(n)
        })?;
    }
    ctx.api
        .modify(&info, &key.2, &key.3, Some("status"), MANAGER, |o| {
            let mut n = o.clone();
            n["status"] = status;
            Some(n)
        })?;
    Ok(())
}

/// `Guaranteed` when every container's requests equal its limits for cpu and
/// memory, `BestEffort` when none sets any, else `Burstable`.
fn qos_class(pod: &Value) -> &'static str {
    let cs: Vec<&Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let none = cs.iter().all(|c| {
        c["resources"]["requests"]
            .as_object()
            .is_none_or(|m| m.is_empty())
            && c["resources"]["limits"]
                .as_object()
                .is_none_or(|m| m.is_empty())
    });
    if none {
        return "BestEffort";
    }
    let guaranteed = cs.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let l = &c["resources"]["limits"][*r];
            !l.is_null() && c["resources"]["requests"][*r] == *l
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}
