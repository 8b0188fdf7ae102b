//! Simulated controllers (in the spirit of KWOK): one tokio task follows the
//! store's event history and reconciles workloads, namespaces and garbage
//! collection through the same [`Api`] that clients use.

mod gc;
mod namespace;
mod workloads;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::api::Api;
use crate::resources::ResourceInfo;
use crate::store::{Event, EventType};

/// The field manager the simulated controllers write as.
pub const MANAGER: &str = "kube-controller-manager";

/// (group, resource, namespace, name) of an object to look at again.
pub type Key = (String, String, String, String);

pub struct Ctx {
    pub api: Arc<Api>,
    pub rollout_delay: Duration,
    /// When each (uid, generation) was first seen, for the rollout delay.
    first_seen: HashMap<(String, i64), Instant>,
    /// Owners waiting for their dependents (foreground deletion).
    foreground: HashSet<Key>,
    requeue: mpsc::UnboundedSender<Key>,
}

impl Ctx {
    pub fn info(&self, group: &str, resource: &str) -> Option<ResourceInfo> {
        self.api.info_for(group, resource)
    }

    /// Whether the rollout delay has passed for this object generation; if
    /// not, schedules a re-check for when it will have.
    pub fn rollout_done(&mut self, key: &Key, obj: &serde_json::Value) -> bool {
        if self.rollout_delay.is_zero() {
            return true;
        }
        let uid = crate::meta::uid_of(obj).to_string();
        let generation = obj["metadata"]["generation"].as_i64().unwrap_or(0);
        let first = *self
            .first_seen
            .entry((uid, generation))
            .or_insert_with(Instant::now);
        let elapsed = first.elapsed();
        if elapsed >= self.rollout_delay {
            return true;
        }
        let tx = self.requeue.clone();
        let key = key.clone();
        let wait = self.rollout_delay - elapsed;
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let _ = tx.send(key);
        });
        false
    }
}

fn key_of(e: &Event) -> Key {
    (
        e.group.clone(),
        e.resource.clone(),
        e.namespace.clone(),
        crate::meta::name_of(&e.object).to_string(),
    )
}

/// Runs the controllers until the store is dropped or `shutdown` fires.
pub async fn run(
    api: Arc<Api>,
    rollout_delay: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Key>();
    let mut ctx = Ctx {
        api: api.clone(),
        rollout_delay,
        first_seen: HashMap::new(),
        foreground: HashSet::new(),
        requeue: tx,
    };
    let mut notify = api.store.subscribe();
    let mut last = 0u64;
    loop {
        match api.events_since(last) {
            Ok(events) => {
                for e in events {
                    last = e.rv;
                    handle_event(&mut ctx, &e);
                }
            }
            Err(_) => {
                // Fell behind the history: reconcile everything once.
                last = api.lock().resource_version();
                resync(&mut ctx);
            }
        }
        tokio::select! {
            r = notify.changed() => if r.is_err() { return },
            Some(key) = rx.recv() => reconcile(&mut ctx, &key),
            _ = shutdown.changed() => return,
        }
    }
}

/// The owning controller of an object (its `controller: true` owner
/// reference), as a key to reconcile when the object changes.
fn controller_of(obj: &serde_json::Value, ns: &str) -> Option<Key> {
    let r = obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)?;
    let (group, resource) = match r["kind"].as_str()? {
        "ReplicaSet" => ("apps", "replicasets"),
        "Deployment" => ("apps", "deployments"),
        "StatefulSet" => ("apps", "statefulsets"),
        "DaemonSet" => ("apps", "daemonsets"),
        "Job" => ("batch", "jobs"),
        _ => return None,
    };
    Some((
        group.to_string(),
        resource.to_string(),
        ns.to_string(),
        r["name"].as_str()?.to_string(),
    ))
}

fn handle_event(ctx: &mut Ctx, e: &Event) {
    let key = key_of(e);
    if let Some(owner) = controller_of(&e.object, &e.namespace) {
        // Dependents changed: the owner's status (or its pod count) follows.
        let owner = owner.clone();
        let res = e.kind;
        handle_kind(ctx, e, &key);
        if res == EventType::Deleted || !crate::meta::is_deleting(&e.object) {
            reconcile(ctx, &owner);
        }
        return;
    }
    handle_kind(ctx, e, &key);
}

fn handle_kind(ctx: &mut Ctx, e: &Event, key: &Key) {
    let key = key.clone();
    match e.kind {
        EventType::Deleted => {
            gc::on_deleted(ctx, &e.object);
            let pending: Vec<Key> = ctx.foreground.iter().cloned().collect();
            for k in pending {
                gc::foreground(ctx, &k);
            }
            if !e.namespace.is_empty() {
                namespace::sync(ctx, &e.namespace);
            }
        }
        EventType::Added | EventType::Modified => {
            if crate::meta::is_deleting(&e.object) {
                if crate::meta::finalizers(&e.object)
                    .iter()
                    .any(|f| f == "foregroundDeletion")
                {
                    ctx.foreground.insert(key.clone());
                    gc::foreground(ctx, &key);
                }
                if e.group.is_empty() && e.resource == "namespaces" {
                    namespace::sync(ctx, crate::meta::name_of(&e.object));
                } else if !e.namespace.is_empty() {
                    namespace::sync(ctx, &e.namespace);
                }
                return;
            }
            reconcile(ctx, &key);
        }
    }
}

fn reconcile(ctx: &mut Ctx, key: &Key) {
    let res = match (key.0.as_str(), key.1.as_str()) {
        ("apps", "deployments") => workloads::deployment(ctx, key),
        ("apps", "replicasets") => workloads::replicaset(ctx, key),
        ("apps", "statefulsets") => workloads::statefulset(ctx, key),
        ("apps", "daemonsets") => workloads::daemonset(ctx, key),
        ("batch", "jobs") => workloads::job(ctx, key),
        ("", "persistentvolumeclaims") => workloads::pvc(ctx, key),
        ("", "pods") => workloads::pod(ctx, key),
        _ => Ok(()),
    };
    if let Err(e) = res {
        tracing::debug!(?key, error = %e, "controller reconcile failed");
    }
}

fn resync(ctx: &mut Ctx) {
    for (g, r) in [
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("batch", "jobs"),
        ("", "persistentvolumeclaims"),
        ("", "pods"),
        ("", "namespaces"),
    ] {
        let objs = ctx.api.lock().all_of(g, r);
        for o in objs {
            let key = (
                g.to_string(),
                r.to_string(),
                crate::meta::namespace_of(&o).to_string(),
                crate::meta::name_of(&o).to_string(),
            );
            if r == "namespaces" {
                if crate::meta::is_deleting(&o) {
                    namespace::sync(ctx, &key.3);
                }
            } else {
                reconcile(ctx, &key);
            }
        }
    }
}

/// The documented pod-template annotations.
pub mod workloads_annotations {
    pub use super::workloads::{JOB_FAIL, NEVER_READY};
}
