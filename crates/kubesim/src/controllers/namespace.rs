//! The namespace controller: deletes the contents of a Terminating
//! namespace, reports progress in the real conditions, and removes the
//! `kubernetes` finalizer once the namespace is empty.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Ctx, MANAGER};
use crate::api::{DeleteOptions, Propagation};
use crate::meta::{finalizers, is_deleting, name_of, now_rfc3339};

fn condition(t: &str, status: bool, reason: &str, message: &str, now: &str) -> Value {
    json!({
        "type": t,
        "status": if status { "True" } else { "False" },
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    })
}

pub fn sync(ctx: &mut Ctx, ns: &str) {
    let Some(ns_info) = ctx.info("", "namespaces") else {
        return;
    };
    let Ok(namespace) = ctx.api.get(&ns_info, "", ns) else {
        return;
    };
    if !is_deleting(&namespace) {
        return;
    }
    let contents = ctx.api.lock().in_namespace(ns);
    for ((group, resource), obj) in &contents {
        if is_deleting(obj) {
            continue;
        }
        if let Some(info) = ctx.info(group, resource) {
            let opts = DeleteOptions {
                propagation: Some(Propagation::Background),
                ..Default::default()
            };
            let _ = ctx.api.delete(&info, ns, name_of(obj), &opts);
        }
    }
    let remaining = ctx.api.lock().in_namespace(ns);
    if remaining.is_empty() {
        let _ = ctx
            .api
            .modify(&ns_info, "", ns, Some("finalize"), MANAGER, |o| {
                let mut n = o.clone();
                let f: Vec<Value> = o["spec"]["finalizers"]
                    .as_array()
                    .map(|a| a.iter().filter(|f| *f != "kubernetes").cloned().collect())
                    .unwrap_or_default();
                n["spec"]["finalizers"] = Value::Array(f);
                Some(n)
            });
        return;
    }
    // Exactly the messages of the namespace deleter.
    let mut by_resource: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_finalizer: BTreeMap<String, usize> = BTreeMap::new();
    for ((group, resource), obj) in &remaining {
        *by_resource
            .entry(format!("{resource}.{group}"))
            .or_default() += 1;
        for f in finalizers(obj) {
            *by_finalizer.entry(f).or_default() += 1;
        }
    }
    let now = now_rfc3339();
    let resources: Vec<String> = by_resource
        .iter()
        .map(|(r, n)| format!("{r} has {n} resource instances"))
        .collect();
    let fins: Vec<String> = by_finalizer
        .iter()
        .map(|(f, n)| format!("{f} in {n} resource instances"))
        .collect();
    let conditions = vec![
        condition(
            "NamespaceDeletionDiscoveryFailure",
            false,
            "ResourcesDiscovered",
            "All resources successfully discovered",
            &now,
        ),
        condition(
            "NamespaceDeletionGroupVersionParsingFailure",
            false,
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed",
            &now,
        ),
        condition(
            "NamespaceDeletionContentFailure",
            false,
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization",
            &now,
        ),
        condition(
            "NamespaceContentRemaining",
            true,
            "SomeResourcesRemain",
            &format!("Some resources are remaining: {}", resources.join(", ")),
            &now,
        ),
        if fins.is_empty() {
            condition(
                "NamespaceFinalizersRemaining",
                false,
                "ContentHasNoFinalizers",
                "All content-preserving finalizers finished",
                &now,
            )
        } else {
            condition(
                "NamespaceFinalizersRemaining",
                true,
                "SomeFinalizersRemain",
                &format!(
                    "Some content in the namespace has finalizers remaining: {}",
                    fins.join(", ")
                ),
                &now,
            )
        },
    ];
    let _ = ctx
        .api
        .modify(&ns_info, "", ns, Some("status"), MANAGER, |o| {
            let mut n = o.clone();
            for c in &conditions {
                crate::meta::set_condition(&mut n, c.clone());
            }
            // lastTransitionTime only moves when a status flips.
            (n != *o).then_some(n)
        });
}
