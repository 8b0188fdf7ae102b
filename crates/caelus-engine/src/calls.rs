//! The few API calls the engine makes on single objects (apply, get,
//! delete), each retried briefly on transient errors so one dropped request
//! does not cost a whole reconcile pass. Longer outages surface as transient
//! errors for the reconciler's backoff.

use std::future::Future;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use serde_json::Value;

use crate::Engine;
use crate::error::{EngineError, Result, describe, is_not_found};
use crate::object::ObjectRef;
use crate::resolve::Resolved;

/// An object reference resolved to the API that serves it.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub oref: ObjectRef,
    pub kind: Resolved,
}

const ATTEMPTS: u32 = 3;

pub(crate) async fn retry<T, F, Fut>(mut call: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        match call().await {
            Err(e) if attempt < ATTEMPTS && describe(&e).2 => {
                tracing::debug!(error = %e, attempt, "transient API error, retrying");
                tokio::time::sleep(delay).await;
                delay *= 3;
                attempt += 1;
            }
            other => return other,
        }
    }
}

impl Engine {
    /// Resolves `oref`. Its namespace is normalised: none for cluster-scoped
    /// kinds, `namespace` for namespaced ones that do not name one (as in an
    /// inventory computed from rendered objects).
    pub(crate) async fn target(&self, oref: &ObjectRef, namespace: &str) -> Result<Target> {
        let kind = self
            .inner
            .resolver
            .resolve(&oref.api_version, &oref.kind)
            .await?;
        let mut oref = oref.clone();
        if !kind.namespaced {
            oref.namespace = None;
        } else if oref.namespace.is_none() {
            oref.namespace = Some(namespace.to_string());
        }
        Ok(Target { oref, kind })
    }

    fn api_for(&self, t: &Target) -> kube::Api<kube::api::DynamicObject> {
        t.kind.api(self.client(), t.oref.namespace.as_deref())
    }

    /// Server-side apply of `body` as Caelus, forced: the database wins
    /// over whatever another manager set on an object that is this
    /// deployment's. Callers check ownership first (`ownership.rs`): force
    /// never takes over someone else's object.
    pub(crate) async fn ssa(&self, t: &Target, body: &Value) -> Result<Value> {
        let api = self.api_for(t);
        let params = PatchParams::apply(&self.inner.config.field_manager).force();
        let patch = Patch::Apply(body);
        let obj = retry(|| api.patch(&t.oref.name, &params, &patch))
            .await
            .map_err(|e| EngineError::object("apply", &t.oref, e))?;
        let obj = serde_json::to_value(obj).unwrap_or_default();
        self.inner.watches.applied(&t.kind, &obj);
        Ok(obj)
    }

    /// What [`Engine::ssa`] of `body` would make of the object, from the
    /// API server (`dryRun=All`: admission and defaulting run, nothing is
    /// stored).
    pub(crate) async fn ssa_dry_run(&self, t: &Target, body: &Value) -> Result<Value> {
        let api = self.api_for(t);
        let params = PatchParams::apply(&self.inner.config.field_manager)
            .force()
            .dry_run();
        let patch = Patch::Apply(body);
        let obj = retry(|| api.patch(&t.oref.name, &params, &patch))
            .await
            .map_err(|e| EngineError::object("dry-run apply", &t.oref, e))?;
        Ok(serde_json::to_value(obj).unwrap_or_default())
    }

    /// The live object, `None` when it does not exist.
    pub(crate) async fn get(&self, t: &Target) -> Result<Option<Value>> {
        let api = self.api_for(t);
        match retry(|| api.get(&t.oref.name)).await {
            Ok(obj) => Ok(Some(serde_json::to_value(obj).unwrap_or_default())),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(EngineError::object("get", &t.oref, e)),
        }
    }
}
