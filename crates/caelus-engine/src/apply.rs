//! One revision onto the cluster: pre-hooks, server-side apply in Helm's
//! install order, prune, post-hooks, then wait for health.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use caelus_core::status::ObjectHealth;
use caelus_helm::{Hook, HookEvent};
use futures::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Engine;
use crate::calls::Target;
use crate::error::{EngineError, Result};
use crate::health::{self, FAILED, is_healthy, object_health};
use crate::hooks::hooks_for;
use crate::object::{
    DEPLOYMENT_UID_LABEL, INSTALLATION_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, ObjectRef,
    set_label,
};

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

    /// Server-side apply in install order: runs of the same kind go out
    /// concurrently (bounded), one kind after the other. `slots` holds the
    /// prepared objects, `None` for those waiting for their CRD. Answers
    /// the objects with what the API server answered to each apply.
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
        let mut start = 0;
        while start < total {
            let same_kind =
                |r: &ObjectRef| r.kind == refs[start].kind && r.group() == refs[start].group();
            let end = start + refs[start..].iter().take_while(|r| same_kind(r)).count();
            let waiting = slots[start..end].iter_mut().zip(&req.objects[start..end]);
            let mut newly_served = Vec::new();
            for (i, (slot, obj)) in waiting.enumerate().filter(|(_, (slot, _))| slot.is_none()) {
                let mut p = self
                    .prepare_when_served(&req.namespace, obj, req.health_timeout)
                    .await?;
                label_as_ours(
                    &mut p.body,
                    &req.deployment_uid,
                    &self.config().installation_id,
                );
                *slot = Some(p);
                newly_served.push(start + i);
            }
            // Kinds served only now (their CRD was just applied): their
            // objects are checked before any of the run is written.
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
            for (i, slot) in slots.iter().enumerate().take(end).skip(start) {
                let Some(p) = slot else { continue };
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
            start = end;
        }
        // Every slot is filled by now: the loop prepared the waiting ones.
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

    /// Health of each object now; transient read errors count as
    /// "Progressing" so a flaky API server does not fail a rollout.
    async fn read_health(&self, objects: &[&Prepared]) -> Vec<ObjectHealth> {
        let mut reads = Vec::with_capacity(objects.len());
        for &p in objects {
            reads.push(async move {
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
            });
        }
        stream::iter(reads)
            .buffered(self.config().apply_concurrency.max(1))
            .collect()
            .await
    }

    /// Polls health until every object is healthy, one fails for good, or
    /// `timeout` passes. The first look is at what each apply answered
    /// (the object as stored, status included), so objects healthy once
    /// written (ConfigMaps, Services, ...) are never read again; later
    /// rounds read only those not healthy yet, as Helm's waiter stops
    /// watching an object once it is ready.
    async fn wait_healthy(
        &self,
        objects: &[Prepared],
        applied: &[Value],
        timeout: Duration,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<Vec<ObjectHealth>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut round = 0u32;
        let mut health: Vec<ObjectHealth> = applied.iter().map(object_health).collect();
        loop {
            if round > 0 {
                let pending: Vec<usize> = (0..health.len())
                    .filter(|&i| !is_healthy(&health[i]))
                    .collect();
                let reads: Vec<&Prepared> = pending.iter().map(|&i| &objects[i]).collect();
                for (i, h) in pending.into_iter().zip(self.read_health(&reads).await) {
                    health[i] = h;
                }
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
            tokio::time::sleep(self.config().poll_pause(round).min(deadline - now)).await;
            round = round.saturating_add(1);
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
