//! Owner-reference garbage collection: dependents of a deleted owner are
//! deleted (background), and owners in foreground deletion wait for their
//! dependents before their `foregroundDeletion` finalizer is removed.

use serde_json::Value;

use super::{Ctx, Key, MANAGER};
use crate::api::{DeleteOptions, Propagation};
use crate::meta::{self, is_deleting, name_of, namespace_of, uid_of};

pub fn on_deleted(ctx: &mut Ctx, owner: &Value) {
    let uid = uid_of(owner).to_string();
    if uid.is_empty() {
        return;
    }
    let deps = ctx.api.lock().dependents_of(&uid);
    for ((group, resource), dep) in deps {
        let Some(info) = ctx.info(&group, &resource) else {
            continue;
        };
        let refs = dep["metadata"]["ownerReferences"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if refs.len() > 1 {
            // Other owners remain: only drop the reference to the deleted one.
            let _ = ctx.api.modify(
                &info,
                namespace_of(&dep),
                name_of(&dep),
                None,
                MANAGER,
                |o| {
                    let mut n = o.clone();
                    if let Some(r) = n["metadata"]["ownerReferences"].as_array_mut() {
                        r.retain(|r| r["uid"] != uid);
                    }
                    Some(n)
                },
            );
        } else if !is_deleting(&dep) {
            let opts = DeleteOptions {
                propagation: Some(Propagation::Background),
                ..Default::default()
            };
            let _ = ctx
                .api
                .delete(&info, namespace_of(&dep), name_of(&dep), &opts);
        }
    }
}

pub fn foreground(ctx: &mut Ctx, key: &Key) {
    let Some(info) = ctx.info(&key.0, &key.1) else {
        ctx.foreground.remove(key);
        return;
    };
    let Ok(owner) = ctx.api.get(&info, &key.2, &key.3) else {
        ctx.foreground.remove(key);
        return;
    };
    let uid = uid_of(&owner).to_string();
    let deps = ctx.api.lock().dependents_of(&uid);
    for ((group, resource), dep) in &deps {
        if is_deleting(dep) {
            continue;
        }
        if let Some(dinfo) = ctx.info(group, resource) {
            let opts = DeleteOptions {
                propagation: Some(Propagation::Foreground),
                ..Default::default()
            };
            let _ = ctx
                .api
                .delete(&dinfo, namespace_of(dep), name_of(dep), &opts);
        }
    }
    if ctx.api.lock().dependents_of(&uid).is_empty() {
        ctx.foreground.remove(key);
        let _ = ctx.api.modify(&info, &key.2, &key.3, None, MANAGER, |o| {
            let mut n = o.clone();
            let f: Vec<String> = meta::finalizers(o)
                .into_iter()
                .filter(|f| f != "foregroundDeletion")
                .collect();
            meta::set_finalizers(&mut n, &f);
            Some(n)
        });
    }
}
