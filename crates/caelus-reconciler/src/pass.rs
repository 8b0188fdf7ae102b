//! One reconcile pass of one deployment: load, classify, then exactly one
//! action — deploy (install, upgrade, retry, rollback), check drift, or
//! uninstall. Each action lives in its own module; every write goes through
//! [`crate::commit`].

use crate::Reconciler;
use crate::status::stalled_generation;
use caelus_core::reconcile::{Action, Facts, Failed, next_action};
use caelus_core::remediation::{FailureOrigin, Remedy};
use caelus_core::revision::RevisionKind;
use caelus_core::status::Phase;
use caelus_engine::ObjectRef;
use caelus_helm::{
    ChartReference, CheckedRender, HelmError, RenderRequest, Rendered, RevisionPolicy,
};
use caelus_store::deployments::{self, Deployment};
use caelus_store::queue::{self, Lease};
use caelus_store::revisions::{self, Revision};
use caelus_store::templates::{self, TemplateVersion};
use caelus_store::{StoreError, now_ms};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("deployment {0} refers to a template version that does not exist")]
    MissingVersion(String),
}

impl From<sqlx::Error> for PassError {
    fn from(e: sqlx::Error) -> Self {
        PassError::Store(e.into())
    }
}

pub(crate) type PassResultOf<T> = Result<T, PassError>;

/// The actor of events a pass writes.
pub(crate) const SYSTEM: &str = "system";

/// Everything one pass reads before it acts.
pub(crate) struct Loaded {
    pub d: Deployment,
    pub version: TemplateVersion,
    pub last_deployed: Option<Revision>,
}

impl Reconciler {
    pub(crate) async fn pass(self: Arc<Self>, lease: Lease) {
        let span =
            tracing::info_span!("reconcile", uid = %lease.uid, generation = lease.generation);
        async move {
            // Dropped with the pass, even if the pass itself is aborted.
            let _renewer = AbortOnDrop(self.spawn_renewer(lease.clone()));
            let started = Instant::now();
            let result = self.reconcile(&lease).await;
            let seconds = started.elapsed().as_secs_f64();
            let metrics = caelus_metrics::global();
            match &result {
                Ok(outcome) => metrics.reconcile_finished(outcome, seconds),
                Err(PassError::Store(StoreError::LeaseLost(_))) => metrics.reconcile_finished("lease-lost", seconds),
                Err(_) => metrics.reconcile_finished("error", seconds),
            }
            match result {
                Ok(outcome) => {
                    tracing::info!(outcome, ms = started.elapsed().as_millis() as u64, "pass finished")
                }
                Err(PassError::Store(StoreError::LeaseLost(_))) => {
                    tracing::warn!("lease lost during the pass; another worker owns this deployment now")
                }
                Err(e) => {
                    tracing::error!(error = %e, "pass could not record its outcome; releasing the lease");
                    let _ = queue::release(&self.store, &lease).await;
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Renews the lease every third of its length while the pass runs.
    fn spawn_renewer(self: &Arc<Self>, lease: Lease) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let every = me.config.lease / 3;
            loop {
                tokio::time::sleep(every).await;
                let expires = now_ms() + me.config.lease.as_millis() as i64;
                if let Err(e) = queue::renew(&me.store, &lease, expires).await {
                    tracing::warn!(error = %e, "lease renewal failed");
                    return;
                }
            }
        })
    }

    async fn load(&self, lease: &Lease) -> PassResultOf<Loaded> {
        let mut c = self.store.conn().await?;
        let d = deployments::get(&mut c, &lease.uid, None)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("deployment {}", lease.uid)))?;
        let version = templates::get_by_id(&mut c, &d.template_version_id)
            .await?
            .ok_or_else(|| PassError::MissingVersion(d.uid.clone()))?;
        let last_deployed = revisions::last_deployed(&mut c, &d.uid).await?;
        Ok(Loaded {
            d,
            version,
            last_deployed,
        })
    }

    async fn reconcile(&self, lease: &Lease) -> PassResultOf<&'static str> {
        let l = self.load(lease).await?;
        let facts = facts_of(&l);
        let (state, action) = next_action(&facts);
        tracing::debug!(?state, ?action, "classified");
        match action {
            Action::None => {
                self.finish_unchanged(lease, &l.d, None).await?;
                Ok("idle")
            }
            Action::Uninstall => self.uninstall(lease, l).await,
            Action::Deploy(kind) => self.deploy(lease, l, kind).await,
            Action::CheckDrift => match l.last_deployed {
                Some(last) => self.check_drift(lease, l.d, l.version, last).await,
                // The state machine never asks for this; if the rows ever say
                // otherwise, the deployment shows it instead of the worker crashing.
                None => {
                    self.record_state_error(
                        lease,
                        &l.d,
                        "a drift check was chosen but no revision of this deployment is deployed",
                    )
                    .await
                }
            },
        }
    }

    /// The template version a revision was made from.
    pub(crate) async fn version_of(
        &self,
        revision: &Revision,
    ) -> PassResultOf<Option<TemplateVersion>> {
        let mut c = self.store.conn().await?;
        Ok(templates::get_by_id(&mut c, &revision.template_version_id).await?)
    }

    async fn chart(&self, version: &TemplateVersion) -> Result<caelus_helm::Chart, HelmError> {
        chart_of(&self.helm, version).await
    }

    /// What revision `revision` applied: its stored manifest, so a chart
    /// that can no longer be pulled never blocks a drift check or an
    /// uninstall. Revisions from before manifests were stored (or whose
    /// stored manifest cannot be read) are rendered again.
    pub(crate) async fn applied(
        &self,
        d: &Deployment,
        version: &TemplateVersion,
        revision: &Revision,
    ) -> Result<Arc<Rendered>, HelmError> {
        applied_by(&self.store, &self.helm, &self.engine, d, version, revision).await
    }

    /// The render request of a revision, with Helm's `lookup` reading the
    /// deployment's own namespace, as in `helm upgrade` (bitnami charts find
    /// their generated passwords this way). The scope must outlive the render.
    async fn lookup_request(
        &self,
        d: &Deployment,
        values: &Value,
        revision: i64,
        kind: RevisionKind,
    ) -> (RenderRequest, Option<caelus_engine::LookupScope>) {
        lookup_request(&self.engine, d, values, revision, kind).await
    }

    /// The render seam for a revision about to be applied: all rendered
    /// objects and core's policy over them, first with the static scope
    /// table, then with every kind's scope from the cluster's discovery.
    /// A kind the cluster cannot be asked about is an engine failure.
    pub(crate) async fn render_revision(
        &self,
        d: &Deployment,
        version: &TemplateVersion,
        values: &Value,
        revision: i64,
        kind: RevisionKind,
    ) -> Result<Result<CheckedRender, caelus_engine::EngineError>, HelmError> {
        let chart = self.chart(version).await?;
        let (request, scope) = self.lookup_request(d, values, revision, kind).await;
        let policy = RevisionPolicy::from(&version.capabilities);
        let checked = self.helm.render_revision(&chart, &request, &policy).await;
        drop(scope);
        let mut checked = checked?;
        if !checked.is_allowed() {
            return Ok(Ok(checked));
        }
        let objects = caelus_helm::checked::all_objects(&checked.rendered);
        let scopes = match self.engine.scope_table(&objects).await {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        checked.recheck(&request, &policy, &|av, k| scopes.scope_of(av, k));
        Ok(Ok(checked))
    }
}

async fn chart_of(
    helm: &caelus_helm::HelmEngine,
    version: &TemplateVersion,
) -> Result<caelus_helm::Chart, HelmError> {
    let reference: ChartReference = version.chart_ref.parse()?;
    helm.pull(&reference).await
}

/// [`Reconciler::applied`] for anyone with the store, the Helm engine and
/// the cluster (the API's diff compares what a drift pass compares).
pub(crate) async fn applied_by(
    store: &caelus_store::Store,
    helm: &caelus_helm::HelmEngine,
    engine: &caelus_engine::Engine,
    d: &Deployment,
    version: &TemplateVersion,
    revision: &Revision,
) -> Result<Arc<Rendered>, HelmError> {
    match stored_manifest(store, &d.uid, revision.number).await {
        Some(rendered) => Ok(Arc::new(rendered)),
        None => {
            render_deployed(
                helm,
                engine,
                d,
                version,
                &revision.user_values,
                revision.number,
                revision.kind,
            )
            .await
        }
    }
}

async fn stored_manifest(store: &caelus_store::Store, uid: &str, number: i64) -> Option<Rendered> {
    let bytes = match store.conn().await {
        Ok(mut c) => revisions::manifest(&mut c, uid, number).await,
        Err(e) => Err(e),
    };
    match bytes {
        Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
            Ok(rendered) => Some(rendered),
            Err(e) => {
                tracing::warn!(error = %e, number, "the stored manifest does not parse; rendering again");
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, number, "the stored manifest cannot be read; rendering again");
            None
        }
    }
}

/// Renders a revision already deployed, as it was (drift and uninstall of
/// revisions without a stored manifest): the kind decides Helm's
/// `.Release.IsInstall/IsUpgrade`, the number `.Release.Revision`; a revision
/// about to be applied goes through [`Reconciler::render_revision`].
async fn render_deployed(
    helm: &caelus_helm::HelmEngine,
    engine: &caelus_engine::Engine,
    d: &Deployment,
    version: &TemplateVersion,
    values: &Value,
    revision: i64,
    kind: RevisionKind,
) -> Result<Arc<Rendered>, HelmError> {
    let chart = chart_of(helm, version).await?;
    let (request, scope) = lookup_request(engine, d, values, revision, kind).await;
    let rendered = helm.render(&chart, &request).await;
    drop(scope);
    rendered
}

async fn lookup_request(
    engine: &caelus_engine::Engine,
    d: &Deployment,
    values: &Value,
    revision: i64,
    kind: RevisionKind,
) -> (RenderRequest, Option<caelus_engine::LookupScope>) {
    let mut request = render_request(d, values, revision, kind);
    let scope = engine.scope_lookups(&mut request).await;
    (request, scope)
}

fn render_request(
    d: &Deployment,
    values: &Value,
    revision: i64,
    kind: RevisionKind,
) -> RenderRequest {
    let mut request = RenderRequest::for_revision(
        values.clone(),
        &d.release_name,
        &d.namespace_name,
        revision,
        &d.uid,
    );
    request.kind = if kind.is_install() {
        caelus_helm::RevisionKind::Install
    } else {
        caelus_helm::RevisionKind::Upgrade
    };
    request
}

/// What the state machine looks at, read from the rows.
fn facts_of(l: &Loaded) -> Facts {
    let d = &l.d;
    let current = d.observed_generation == d.generation;
    let failure = match &d.failure {
        Some(f) if current && f.generation == d.generation => Some(Failed {
            origin: f.origin,
            remedy: f.remedy,
        }),
        Some(_) => None,
        // Rows written before failures were recorded: a failed pass is retried.
        None if current && d.last_error.is_some() && d.phase == Phase::Failed => Some(Failed {
            origin: FailureOrigin::from(RevisionKind::next(
                l.last_deployed.is_some(),
                d.rollback_to.is_some(),
            )),
            remedy: Remedy::Retry,
        }),
        None => None,
    };
    Facts {
        desired: d.desired_state,
        generation: d.generation,
        observed_generation: d.observed_generation,
        phase: d.phase,
        has_deployed_revision: l.last_deployed.is_some(),
        failure,
        stalled_generation: stalled_generation(&d.conditions),
        rollback_requested: d.rollback_to.is_some(),
    }
}

/// `rendered` as a revision stores it (see [`Reconciler::applied`]).
pub(crate) fn manifest_of(rendered: &Rendered) -> Vec<u8> {
    // A render is plain JSON values and strings: it always serialises.
    serde_json::to_vec(rendered).unwrap_or_default()
}

/// CRDs first, then the objects, as they are applied.
pub(crate) fn objects_of(rendered: &Rendered) -> Vec<Value> {
    let mut objects = rendered.crds.clone();
    objects.extend(rendered.objects.iter().cloned());
    objects
}

pub(crate) fn inventory_json(inventory: &[ObjectRef]) -> Value {
    serde_json::to_value(inventory).unwrap_or_else(|_| json!([]))
}

pub(crate) fn inventory_from(revision: Option<&Revision>) -> Vec<ObjectRef> {
    revision
        .and_then(|r| serde_json::from_value(r.inventory.clone()).ok())
        .unwrap_or_default()
}

/// `base` plus the objects of `more` it does not list yet.
pub(crate) fn union(mut base: Vec<ObjectRef>, more: &[ObjectRef]) -> Vec<ObjectRef> {
    for o in more {
        if !base.contains(o) {
            base.push(o.clone());
        }
    }
    base
}

pub(crate) fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Aborts a background task when dropped.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
