//! One revision onto the cluster: pre-hooks, server-side apply in waves
//! that keep Helm's install order where the API server depends on it,
//! prune, post-hooks, then wait for health.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use caelus_core::status::ObjectHealth;
use caelus_helm::order::apply_wave;
use caelus_helm::{Hook, HookEvent};
use futures::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Notify, futures::Notified};

use crate::Engine;
use crate::calls::Target;
use crate::error::{EngineError, Result};
use crate::health::{self, FAILED, is_healthy, object_health};
use crate::hooks::hooks_for;
use crate::object::{
    DEPLOYMENT_UID_LABEL, INSTALLATION_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, ObjectRef,
    set_label,
};
use crate::watches::Cached;

/// What to apply for one revision.
#[derive(Debug, Clone)]
pub struct ApplyRequest {
    pub namespace: String,
    pub deployment_uid: String,
    /// Rendered objects, already in Helm's install order.
    pub objects: Vec<Value>,
    /// All hooks of the render; those of `pre_event`/`post_event` run.
    pub hooks: Vec<Hook>,
    /// `PreInstall`, `PreUpgrade` or `PreRollback`.
    pub pre_event: HookEvent,
    /// `PostInstall`, `PostUpgrade` or `PostRollback`.
    pub post_event: HookEvent,
    /// The inventory of the last applied revision (empty on first install).
    pub previous_inventory: Vec<ObjectRef>,
    /// How long objects (and each hook) may take to become healthy.
    pub health_timeout: Duration,
    /// [`Engine::ensure_namespace`] created the namespace in this pass: no
    /// namespaced object in it can be anyone else's, so their ownership is
    /// not read before the first write (cluster-scoped objects, and the
    /// objects Kubernetes itself puts in every new namespace, still are).
    pub namespace_created: bool,
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplyOutcome {
    /// The objects applied, in install order: store it on the revision.
    pub inventory: Vec<ObjectRef>,
    /// Health of every inventory object at the end (all `Healthy`).
    pub health: Vec<ObjectHealth>,
    /// Objects of the previous inventory deleted because the render lacks them.
    pub pruned: Vec<ObjectRef>,
    /// Objects the render lacks but that `helm.sh/resource-policy: keep` kept.
    pub kept: Vec<ObjectRef>,
    /// Objects the render lacks that someone else owns now (recreated or
    /// relabelled since): left in place, never deleted.
    #[serde(default)]
    pub not_owned: Vec<ObjectRef>,
}

/// Live progress of an apply, for `--wait` output and events.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    HookStarted {
        event: HookEvent,
        kind: String,
        name: String,
    },
    HookSucceeded {
        event: HookEvent,
        kind: String,
        name: String,
    },
    Applied {
        object: ObjectRef,
        done: usize,
        total: usize,
    },
    Pruned {
        object: ObjectRef,
    },
    Kept {
        object: ObjectRef,
    },
    /// One round of health checks: `ready` of `total` objects healthy.
    Health {
        ready: usize,
        total: usize,
    },
}

/// What the shared watch cache can say about an object's health.
enum FromCache {
    /// It holds the object at the generation written or later.
    Current(ObjectHealth),
    /// Its watch runs but has not seen that generation yet.
    Behind,
    /// No watch to read (not listed yet, interrupted), or no generation to
    /// compare with.
    Unavailable,
}

/// How long a warm watch may lag behind a write before the API server is
/// asked instead.
const WATCH_LAG: Duration = Duration::from_millis(500);

/// A rendered object made ready to send: resolved, in its namespace.
pub(crate) struct Prepared {
    pub target: Target,
    pub body: Value,
}

impl Engine {
    /// Applies one revision. See the crate README for the sequence. On
    /// failure, what was already applied stays; the reconciler should record
    /// [`crate::inventory_of`] of the request's objects together with the
    /// previous inventory so a later pass can still prune them.
    pub async fn apply<F>(&self, req: ApplyRequest, progress: F) -> Result<ApplyOutcome>
    where
        F: Fn(Progress) + Send + Sync,
    {
        let progress: &(dyn Fn(Progress) + Send + Sync) = &progress;
        // Resolve everything first: an unknown kind or a policy violation
        // fails the pass before anything is written. Custom resources whose
        // CRD is part of this same apply are resolved once the CRD is in.
        let crds = crd_kinds(&req.objects);
        let mut slots = Vec::with_capacity(req.objects.len());
        for obj in &req.objects {
            match self.prepare(&req.namespace, obj).await {
                Ok(mut p) => {
                    label_as_ours(
                        &mut p.body,
                        &req.deployment_uid,
                        &self.config().installation_id,
                    );
                    slots.push(Some(p));
                }
                Err(EngineError::UnknownKind { .. }) if defined_by(&crds, obj) => slots.push(None),
                Err(e) => return Err(e),
            }
        }

        // Ownership before the first write: every object and every hook this
        // revision would write is read, and one that exists and belongs to
        // someone else refuses the whole revision.
        let mut hook_targets = Vec::new();
        for event in [req.pre_event, req.post_event] {
            for hook in hooks_for(&req.hooks, event) {
                match self.prepare(&req.namespace, &hook.object).await {
                    Ok(p) => hook_targets.push((p.target, event)),
                    // Its kind comes with this revision's CRDs: checked when it runs.
                    Err(EngineError::UnknownKind { .. }) if defined_by(&crds, &hook.object) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let mut checks: Vec<(&Target, Option<HookEvent>)> =
            slots.iter().flatten().map(|p| (&p.target, None)).collect();
        checks.extend(hook_targets.iter().map(|(t, event)| (t, Some(*event))));
        checks.retain(|(t, _)| may_exist_already(&req, t));
        self.check_ownership(&checks, &req.deployment_uid).await?;

        self.run_hooks(&req, req.pre_event, progress).await?;
        let (objects, applied) = self.apply_in_order(&req, slots, progress).await?;
        let inventory: Vec<ObjectRef> = objects.iter().map(|p| p.target.oref.clone()).collect();
        let (pruned, kept, not_owned) = self
            .prune(
                &req.namespace,
                &req.previous_inventory,
                &inventory,
                &req.deployment_uid,
                progress,
            )
            .await?;
        self.run_hooks(&req, req.post_event, progress).await?;
        let health = self
            .wait_healthy(&objects, &applied, req.health_timeout, progress)
            .await?;
        Ok(ApplyOutcome {
            inventory,
            health,
            pruned,
            kept,
            not_owned,
        })
    }

    /// Resolves `obj` and places it in `namespace`. A namespaced object that
    /// names another namespace is refused: each deployment stays in its own.
    pub(crate) async fn prepare(&self, namespace: &str, obj: &Value) -> Result<Prepared> {
        let mut oref = ObjectRef::from_object(obj)?;
        let mut body = obj.clone();
        let kind = self
            .inner
            .resolver
            .resolve(&oref.api_version, &oref.kind)
            .await?;
        if kind.namespaced {
            match oref.namespace.as_deref() {
                Some(ns) if ns != namespace => {
                    return Err(EngineError::Policy(format!(
                        "{} {} names namespace {ns}; objects must stay in {namespace}",
                        oref.kind, oref.name
                    )));
                }
                _ => {}
            }
            oref.namespace = Some(namespace.to_string());
            body["metadata"]["namespace"] = Value::String(namespace.to_string());
        } else {
            oref.namespace = None;
        }
        Ok(Prepared {
            target: Target { oref, kind },
            body,
        })
    }

    /// Server-side apply by waves ([`apply_wave`]): the objects of one wave
    /// go out concurrently (bounded), waves one after the other. `slots`
    /// holds the prepared objects, in install order, `None` for those
    /// waiting for their CRD. Answers the objects (in install order) with
    /// what the API server answered to each apply.
    async fn apply_in_order(
        &self,
        req: &ApplyRequest,
        mut slots: Vec<Option<Prepared>>,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<(Vec<Prepared>, Vec<Value>)> {
        let refs = crate::object::inventory_of(&req.objects)?;
        let total = refs.len();
        let done = AtomicUsize::new(0);
        let concurrency = self.config().apply_concurrency.max(1);
        let mut applied: Vec<Value> = vec![Value::Null; total];
        let mut waves: Vec<(u8, usize)> = refs
            .iter()
            .enumerate()
            .map(|(i, r)| (apply_wave(&r.kind), i))
            .collect();
        waves.sort();
        for wave in waves.chunk_by(|a, b| a.0 == b.0) {
            let members: Vec<usize> = wave.iter().map(|&(_, i)| i).collect();
            let mut newly_served = Vec::new();
            for &i in &members {
                if slots[i].is_some() {
                    continue;
                }
                let mut p = self
                    .prepare_when_served(&req.namespace, &req.objects[i], req.health_timeout)
                    .await?;
                label_as_ours(
                    &mut p.body,
                    &req.deployment_uid,
                    &self.config().installation_id,
                );
                slots[i] = Some(p);
                newly_served.push(i);
            }
            // Kinds served only now (their CRD was just applied): their
            // objects are checked before any of the wave is written.
            let checks: Vec<(&Target, Option<HookEvent>)> = newly_served
                .iter()
                .filter_map(|&i| slots[i].as_ref())
                .map(|p| (&p.target, None))
                .filter(|(t, _)| may_exist_already(req, t))
                .collect();
            self.check_ownership(&checks, &req.deployment_uid).await?;
            // Futures are built in a loop rather than by a closure over `&Prepared`:
            // the closure form makes the whole apply future impossible to prove
            // `Send` (rust-lang/rust#102211), and callers spawn it.
            let mut group = Vec::new();
            for &i in &members {
                let Some(p) = &slots[i] else { continue };
                let done = &done;
                group.push(async move {
                    let live = self.ssa(&p.target, &p.body).await?;
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    progress(Progress::Applied {
                        object: p.target.oref.clone(),
                        done: n,
                        total,
                    });
                    Ok::<_, EngineError>((i, live))
                });
            }
            for (i, live) in stream::iter(group)
                .buffer_unordered(concurrency)
                .try_collect::<Vec<_>>()
                .await?
            {
                applied[i] = live;
            }
        }
        // Every slot is filled by now: the waves prepared the waiting ones.
        Ok(slots.into_iter().flatten().zip(applied).unzip())
    }

    /// [`Engine::prepare`], waiting up to `timeout` for a just-applied CRD
    /// to be served (it is established asynchronously).
    async fn prepare_when_served(
        &self,
        namespace: &str,
        obj: &Value,
        timeout: Duration,
    ) -> Result<Prepared> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut round = 0u32;
        loop {
            match self.prepare(namespace, obj).await {
                Err(EngineError::UnknownKind { .. }) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(self.config().poll_pause(round)).await;
                    round = round.saturating_add(1);
                }
                other => return other,
            }
        }
    }

    /// Health of `p` as the API server has it now; transient read errors
    /// count as "Progressing" so a flaky API server does not fail a rollout.
    async fn read_health(&self, p: &Prepared) -> ObjectHealth {
        let oref = &p.target.oref;
        match self.get(&p.target).await {
            Ok(Some(live)) => object_health(&live),
            Ok(None) => health::missing(&oref.kind, &oref.name),
            Err(e) => ObjectHealth {
                kind: oref.kind.clone(),
                name: oref.name.clone(),
                health: health::PROGRESSING.into(),
                message: format!("could not read: {e}"),
            },
        }
    }

    /// Health of `p` from the shared watch cache, if the cache holds it at
    /// least at the generation this apply wrote (`written`, the API
    /// server's answer). Resource versions are opaque and may not be
    /// compared (API concepts, "Resource versions"); generations may, and
    /// only a spec change moves them, so a cached copy of that generation
    /// or later is as new as what was written.
    fn cached_health(&self, p: &Prepared, written: &Value) -> FromCache {
        let Some(wrote) = written["metadata"]["generation"].as_i64() else {
            return FromCache::Unavailable;
        };
        let oref = &p.target.oref;
        match self
            .inner
            .watches
            .get(&p.target.kind, oref.namespace.as_deref(), &oref.name)
        {
            Cached::NotReady => FromCache::Unavailable,
            Cached::Present(live) if live["metadata"]["generation"].as_i64() >= Some(wrote) => {
                FromCache::Current(object_health(&live))
            }
            // Not seen yet, or an older generation: the watch is behind.
            Cached::Present(_) | Cached::Absent => FromCache::Behind,
        }
    }

    /// Waits until every object is healthy, one fails for good, or
    /// `timeout` passes. The first look is at what each apply answered
    /// (the object as stored, status included), so objects healthy once
    /// written (ConfigMaps, Services, ...) are never read again. Those not
    /// healthy yet are followed as Helm's `wait=watcher` follows them: read
    /// from the shared watch cache and looked at again whenever the watch of
    /// their kind sees an event; read from the API server, with a growing
    /// pause, only while the cache cannot answer (cold, or behind).
    async fn wait_healthy(
        &self,
        objects: &[Prepared],
        applied: &[Value],
        timeout: Duration,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<Vec<ObjectHealth>> {
        let start = tokio::time::Instant::now();
        let deadline = start + timeout;
        // Reads from the API server, for what the caches cannot answer, go
        // out at most this often, with a growing pause.
        let mut polls = 0u32;
        let mut next_poll = start + self.config().poll_pause(0);
        let mut health: Vec<ObjectHealth> = applied.iter().map(object_health).collect();
        loop {
            let pending: Vec<usize> = (0..health.len())
                .filter(|&i| !is_healthy(&health[i]))
                .collect();
            // Armed before the cache is read, so an event between the read
            // and the wait still wakes it.
            let mut signals: Vec<Arc<Notify>> = Vec::new();
            for &i in &pending {
                let signal = self.inner.watches.changed(&objects[i].target.kind);
                if !signals.iter().any(|s| Arc::ptr_eq(s, &signal)) {
                    signals.push(signal);
                }
            }
            // (Loops, not closures, build the futures: rust-lang/rust#102211.)
            let mut woken: Vec<Pin<Box<Notified<'_>>>> = Vec::with_capacity(signals.len());
            for s in &signals {
                let mut w = Box::pin(s.notified());
                w.as_mut().enable();
                woken.push(w);
            }
            let now = tokio::time::Instant::now();
            let poll_due = now >= next_poll;
            let mut asked = Vec::new();
            for &i in &pending {
                match self.cached_health(&objects[i], &applied[i]) {
                    FromCache::Current(h) => health[i] = h,
                    // A warm watch catches up on its own; one that stays
                    // behind for long is not trusted.
                    FromCache::Behind if poll_due && now - start >= WATCH_LAG => asked.push(i),
                    FromCache::Unavailable if poll_due => asked.push(i),
                    FromCache::Behind | FromCache::Unavailable => {}
                }
            }
            if poll_due {
                polls = polls.saturating_add(1);
                next_poll = now + self.config().poll_pause(polls);
            }
            let mut reads = Vec::with_capacity(asked.len());
            for &i in &asked {
                reads.push(self.read_health(&objects[i]));
            }
            let answers: Vec<ObjectHealth> = stream::iter(reads)
                .buffered(self.config().apply_concurrency.max(1))
                .collect()
                .await;
            for (i, h) in asked.into_iter().zip(answers) {
                health[i] = h;
            }
            let ready = health.iter().filter(|h| is_healthy(h)).count();
            progress(Progress::Health {
                ready,
                total: health.len(),
            });
            if ready == health.len() {
                return Ok(health);
            }
            let failed: Vec<ObjectHealth> = health
                .iter()
                .filter(|h| h.health == FAILED)
                .cloned()
                .collect();
            if !failed.is_empty() {
                return Err(EngineError::Unhealthy { failed, health });
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                let unhealthy = health.iter().filter(|h| !is_healthy(h)).cloned().collect();
                return Err(EngineError::HealthTimeout {
                    timeout,
                    unhealthy,
                    health,
                });
            }
            let pause = tokio::time::sleep_until(next_poll.min(deadline));
            if woken.is_empty() {
                pause.await;
            } else {
                tokio::select! {
                    _ = pause => {}
                    _ = futures::future::select_all(woken) => {}
                }
            }
        }
    }
}

/// Every object Caelus applies carries the managed-by label (the drift
/// watches select on it), its deployment's uid and the installation id (so
/// the orphan scan can tell this installation's objects from others').
pub(crate) fn label_as_ours(body: &mut Value, deployment_uid: &str, installation_id: &str) {
    set_label(body, MANAGED_BY_LABEL, MANAGED_BY_VALUE);
    set_label(body, DEPLOYMENT_UID_LABEL, deployment_uid);
    set_label(body, INSTALLATION_LABEL, installation_id);
}

/// Whether `t` may exist before this apply writes it, i.e. its ownership
/// must be read first. In a namespace created by this pass only what
/// Kubernetes itself puts in every new namespace may: the `default`
/// ServiceAccount (ServiceAccount controller) and the `kube-root-ca.crt`
/// ConfigMap (root CA publisher).
fn may_exist_already(req: &ApplyRequest, t: &Target) -> bool {
    if !req.namespace_created || !t.kind.namespaced {
        return true;
    }
    let o = &t.oref;
    o.group().is_empty()
        && matches!(
            (o.kind.as_str(), o.name.as_str()),
            ("ServiceAccount", "default") | ("ConfigMap", "kube-root-ca.crt")
        )
}

/// (group, kind) of the custom resources the CRDs among `objects` define.
fn crd_kinds(objects: &[Value]) -> Vec<(String, String)> {
    objects
        .iter()
        .filter(|o| {
            o["kind"] == "CustomResourceDefinition"
                && o["apiVersion"]
                    .as_str()
                    .is_some_and(|v| v.starts_with("apiextensions.k8s.io/"))
        })
        .filter_map(|crd| {
            let group = crd["spec"]["group"].as_str()?;
            let kind = crd["spec"]["names"]["kind"].as_str()?;
            Some((group.to_string(), kind.to_string()))
        })
        .collect()
}

fn defined_by(crds: &[(String, String)], obj: &Value) -> bool {
    ObjectRef::from_object(obj)
        .is_ok_and(|r| crds.iter().any(|(g, k)| r.group() == g && r.kind == *k))
}
