//! The one render seam: every path that renders a revision — the
//! reconciler, upgrade and rollback plans and preflights, previews, and the
//! check at publish time — calls [`HelmEngine::render_revision`], which
//! returns *all* rendered objects (CRDs, ordinary objects, hooks of every
//! event including `test`) together with core's one policy check over all
//! of them. Nothing of a revision is written before its check passed.

use std::sync::Arc;

use caelus_core::render_policy::{
    self, PolicyContext, PolicyObject, RenderCapabilities, Scope, Violation,
};

use crate::chart::Chart;
use crate::engine::HelmEngine;
use crate::error::HelmError;
use crate::render::{DEPLOYMENT_UID_LABEL, RenderRequest, Rendered};

/// The scope of a kind (`apiVersion`, `kind`), as the cluster serves it.
pub type ScopeOf<'a> = &'a dyn Fn(&str, &str) -> Scope;

/// What the check needs besides the request (whose namespace and
/// deployment uid it uses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevisionPolicy {
    pub caps: RenderCapabilities,
}

impl From<&caelus_core::template::Capabilities> for RevisionPolicy {
    fn from(c: &caelus_core::template::Capabilities) -> Self {
        RevisionPolicy { caps: c.into() }
    }
}

/// A render and its policy verdict.
#[derive(Debug, Clone)]
pub struct CheckedRender {
    pub rendered: Arc<Rendered>,
    /// Empty when the revision may be applied.
    pub violations: Vec<Violation>,
}

impl CheckedRender {
    pub fn is_allowed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The refusal, for a status message or an error: every violation,
    /// naming object, hook event, rule and reason.
    pub fn refusal(&self) -> Option<String> {
        (!self.violations.is_empty()).then(|| {
            format!(
                "the rendered chart is refused by policy: {}",
                render_policy::describe(&self.violations)
            )
        })
    }

    /// Check again with the cluster's answer for each kind's scope (see
    /// [`check`]); the engine resolves kinds through discovery.
    pub fn recheck(
        &mut self,
        request: &RenderRequest,
        policy: &RevisionPolicy,
        scope_of: ScopeOf<'_>,
    ) {
        self.violations = check(&self.rendered, request, policy, Some(scope_of));
    }
}

/// Every object of a render, in the order Caelus writes them (CRDs,
/// objects, hooks), each hook with its events.
pub fn all_objects(rendered: &Rendered) -> Vec<&serde_json::Value> {
    rendered
        .crds
        .iter()
        .chain(rendered.objects.iter())
        .chain(rendered.hooks.iter().map(|h| &h.object))
        .collect()
}

/// Core's policy over every object of `rendered`, for the deployment the
/// request renders for. `scope_of` is the cluster's answer per
/// (`apiVersion`, `kind`); `None` uses the built-in table and the render's
/// own CRDs (previews without a cluster).
pub fn check(
    rendered: &Rendered,
    request: &RenderRequest,
    policy: &RevisionPolicy,
    scope_of: Option<ScopeOf<'_>>,
) -> Vec<Violation> {
    let hook_events: Vec<String> = rendered
        .hooks
        .iter()
        .map(|h| {
            h.events
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    let mut objects: Vec<PolicyObject> = rendered
        .crds
        .iter()
        .chain(rendered.objects.iter())
        .map(PolicyObject::plain)
        .collect();
    objects.extend(
        rendered
            .hooks
            .iter()
            .zip(&hook_events)
            .map(|(h, events)| PolicyObject {
                object: &h.object,
                hook: Some(events.as_str()),
            }),
    );
    let own = [(DEPLOYMENT_UID_LABEL, request.deployment_uid.as_str())];
    let ctx = PolicyContext {
        namespace: &request.namespace,
        caps: &policy.caps,
        own_labels: &own,
    };
    match scope_of {
        Some(f) => render_policy::check_rendered(&objects, &ctx, f),
        None => render_policy::check_rendered_static(&objects, &ctx),
    }
}

impl HelmEngine {
    /// Render a revision (within the render limits) and check every object
    /// it renders against policy, with the static scope table; the
    /// reconciler then re-checks with the cluster's discovery
    /// ([`CheckedRender::recheck`]) before its first write.
    pub async fn render_revision(
        &self,
        chart: &Chart,
        request: &RenderRequest,
        policy: &RevisionPolicy,
    ) -> Result<CheckedRender, HelmError> {
        let rendered = self.render(chart, request).await?;
        let violations = check(&rendered, request, policy, None);
        Ok(CheckedRender {
            rendered,
            violations,
        })
    }
}
