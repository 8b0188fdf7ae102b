//! Certify a draft before it is published: the static checklist over its
//! render with default values and, when this server has a cluster, a canary:
//! installed in a certification namespace of its own, tested with the chart's
//! test hooks, upgraded from the previous published version, deleted.

use super::Audit;
use super::templates::visible_version;
use crate::auth::Actor;
use crate::charts;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::views::rfc3339;
use axum::Json;
use axum::extract::{Path, State};
use caelus_core::certification::{
    self, CANARY_DELETE, CANARY_INSTALL, CANARY_TESTS, CANARY_UPGRADE, CertificationReport,
    CheckItem, ChecklistInput,
};
use caelus_core::lifecycle::Lifecycle;
use caelus_engine::{ApplyOutcome, ApplyRequest, Engine, NamespaceTarget, UninstallRequest};
use caelus_helm::{CheckedRender, HookEvent, RenderRequest, RevisionKind, RevisionPolicy};
use caelus_store::templates::{self, TemplateVersion};
use caelus_store::{StoreError, now_ms};
use serde_json::{Value, json};
use std::time::Duration;

/// Release name of every canary (its namespace is its own).
pub const CANARY_RELEASE: &str = "canary";
/// Prefix of the certification namespaces.
pub const CANARY_NAMESPACE_PREFIX: &str = "caelus-certify-";

/// One canary: its own uid, namespace and release.
struct Canary {
    uid: String,
    namespace: String,
}

impl Canary {
    fn new() -> Self {
        let uid = uuid::Uuid::new_v4().to_string();
        let namespace = format!("{CANARY_NAMESPACE_PREFIX}{}", &uid[..8]);
        Canary { uid, namespace }
    }

    fn request(&self, revision: i64) -> RenderRequest {
        RenderRequest::for_revision(
            serde_json::json!({}),
            CANARY_RELEASE,
            &self.namespace,
            revision,
            &self.uid,
        )
    }
}

fn objects_of(checked: &CheckedRender) -> Vec<Value> {
    let mut objects = checked.rendered.crds.clone();
    objects.extend(checked.rendered.objects.iter().cloned());
    objects
}

/// The render seam with default values for `request`.
async fn render(
    state: &AppState,
    t: &TemplateVersion,
    request: &RenderRequest,
) -> ApiResult<CheckedRender> {
    let chart = charts::chart_of(&state.helm, t).await?;
    state
        .helm
        .render_revision(&chart, request, &RevisionPolicy::from(&t.capabilities))
        .await
        .map_err(|e| charts::chart_error("chart", e))
}

/// The newest published (or deprecated) version of the product older than `t`.
async fn previous_published(
    state: &AppState,
    t: &TemplateVersion,
) -> ApiResult<Option<TemplateVersion>> {
    let Ok(mine) = semver::Version::parse(&t.version) else {
        return Ok(None);
    };
    let mut conn = state.store.conn().await?;
    let mut best: Option<(semver::Version, TemplateVersion)> = None;
    let mut cursor = None;
    loop {
        let page = templates::list(&mut conn, &t.product_id, true, 200, cursor.as_ref()).await?;
        for v in page.items {
            if let Ok(sv) = semver::Version::parse(&v.version)
                && sv < mine
                && best.as_ref().is_none_or(|(b, _)| sv > *b)
            {
                best = Some((sv, v));
            }
        }
        match page.next_cursor {
            Some(c) => cursor = Some(caelus_store::Cursor::decode(&c).map_err(ApiError::internal)?),
            None => break,
        }
    }
    Ok(best.map(|(_, v)| v))
}

/// Installs (or upgrades) one revision of a canary through the engine and
/// waits for it to be healthy. `Err` is the reason, for the item.
async fn apply(
    engine: &Engine,
    canary: &Canary,
    t: &TemplateVersion,
    checked: &mut CheckedRender,
    request: &RenderRequest,
    previous: &[caelus_engine::ObjectRef],
) -> Result<ApplyOutcome, String> {
    // Policy again with the cluster's answer for each kind's scope, as the worker does.
    let objects = objects_of(checked);
    let refs: Vec<&Value> = caelus_helm::checked::all_objects(&checked.rendered);
    let scopes = engine.scope_table(&refs).await.map_err(|e| e.to_string())?;
    checked.recheck(request, &RevisionPolicy::from(&t.capabilities), &|av, k| {
        scopes.scope_of(av, k)
    });
    if let Some(refusal) = checked.refusal() {
        return Err(refusal);
    }
    let namespace_created = engine
        .ensure_namespace(&NamespaceTarget {
            name: canary.namespace.clone(),
            deployment_uid: canary.uid.clone(),
            pod_security: t.capabilities.pod_security,
        })
        .await
        .map_err(|e| e.to_string())?;
    let install = previous.is_empty();
    engine
        .apply(
            ApplyRequest {
                namespace: canary.namespace.clone(),
                deployment_uid: canary.uid.clone(),
                objects,
                hooks: checked.rendered.hooks.clone(),
                pre_event: if install {
                    HookEvent::PreInstall
                } else {
                    HookEvent::PreUpgrade
                },
                post_event: if install {
                    HookEvent::PostInstall
                } else {
                    HookEvent::PostUpgrade
                },
                previous_inventory: previous.to_vec(),
                health_timeout: Duration::from_secs(u64::from(
                    t.capabilities.health_timeout_seconds,
                )),
                namespace_created,
            },
            |_| {},
        )
        .await
        .map_err(|e| e.to_string())
}

/// Deletes a canary (its delete hooks, objects and namespace). `Err` is the reason.
async fn delete(
    engine: &Engine,
    canary: &Canary,
    t: &TemplateVersion,
    inventory: Vec<caelus_engine::ObjectRef>,
    hooks: Vec<caelus_helm::Hook>,
) -> Result<String, String> {
    let request = UninstallRequest {
        namespace: canary.namespace.clone(),
        deployment_uid: canary.uid.clone(),
        inventory,
        hooks,
        hook_timeout: Duration::from_secs(u64::from(t.capabilities.health_timeout_seconds)),
        keep_volumes: false,
    };
    // Namespaces take a moment to go: a few rounds, then report where it is.
    for _ in 0..30 {
        match engine.uninstall(&request).await {
            Ok(caelus_engine::UninstallStatus::Gone) => {
                return Ok(format!("namespace {} deleted", canary.namespace));
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(format!(
        "namespace {} is still terminating; the orphan scan reports it if it stays",
        canary.namespace
    ))
}

/// Canary one: a fresh install of the draft, Ready, its tests, deleted.
async fn fresh_canary(
    state: &AppState,
    engine: &Engine,
    t: &TemplateVersion,
    items: &mut Vec<CheckItem>,
) -> ApiResult<()> {
    let canary = Canary::new();
    let request = canary.request(1);
    let mut checked = render(state, t, &request).await?;
    let hooks = checked.rendered.hooks.clone();
    let inventory = caelus_engine::inventory_of(&objects_of(&checked)).unwrap_or_default();
    match apply(engine, &canary, t, &mut checked, &request, &[]).await {
        Ok(outcome) => {
            items.push(CheckItem::pass(
                CANARY_INSTALL,
                format!(
                    "installed in namespace {}: {} object(s) healthy",
                    canary.namespace,
                    outcome.health.len()
                ),
            ));
            let timeout = Duration::from_secs(u64::from(t.capabilities.health_timeout_seconds));
            let tests: Vec<caelus_helm::Hook> = checked
                .rendered
                .hooks
                .iter()
                .filter(|h| h.events.contains(&HookEvent::Test))
                .cloned()
                .collect();
            items.push(
                match engine
                    .run_tests(&canary.namespace, &canary.uid, &tests, timeout)
                    .await
                {
                    Ok(results) if results.is_empty() => {
                        CheckItem::warn(CANARY_TESTS, "the chart has no test hooks")
                    }
                    Ok(results) => {
                        let failed: Vec<String> = results
                            .iter()
                            .filter(|r| !r.passed)
                            .map(|r| format!("{}/{}: {}", r.kind, r.name, r.message))
                            .collect();
                        if failed.is_empty() {
                            CheckItem::pass(
                                CANARY_TESTS,
                                format!(
                                    "{} test(s) passed: {}",
                                    results.len(),
                                    results
                                        .iter()
                                        .map(|r| format!("{}/{}", r.kind, r.name))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            )
                        } else {
                            CheckItem::fail(CANARY_TESTS, format!("failed: {}", failed.join("; ")))
                        }
                    }
                    Err(e) => {
                        CheckItem::fail(CANARY_TESTS, format!("the tests could not run: {e}"))
                    }
                },
            );
        }
        Err(reason) => {
            items.push(CheckItem::fail(CANARY_INSTALL, reason));
            items.push(CheckItem::warn(
                CANARY_TESTS,
                "not run: the canary did not install",
            ));
        }
    }
    items.push(match delete(engine, &canary, t, inventory, hooks).await {
        Ok(how) => CheckItem::pass(CANARY_DELETE, how),
        Err(reason) => CheckItem::fail(CANARY_DELETE, reason),
    });
    Ok(())
}

/// Canary two: the previous published version installed, upgraded to the
/// draft, Ready, deleted. The item says how the upgrade went (and the delete).
async fn upgrade_canary(
    state: &AppState,
    engine: &Engine,
    t: &TemplateVersion,
    previous: &TemplateVersion,
) -> ApiResult<CheckItem> {
    let canary = Canary::new();
    let first = canary.request(1);
    // Rendered before anything is written: a failure here leaves nothing behind.
    let mut old = render(state, previous, &first).await?;
    let mut written = caelus_engine::inventory_of(&objects_of(&old)).unwrap_or_default();
    let mut hooks = old.rendered.hooks.clone();
    let result = upgrade_steps(
        state,
        engine,
        &canary,
        t,
        previous,
        &mut old,
        &mut written,
        &mut hooks,
    )
    .await;
    // Whatever was written of either revision goes, whatever happened.
    let deleted = delete(engine, &canary, t, written, hooks).await;
    Ok(match (result, deleted) {
        (Ok(how), Ok(_)) => CheckItem::pass(CANARY_UPGRADE, how),
        (Ok(how), Err(e)) => {
            CheckItem::fail(CANARY_UPGRADE, format!("{how}, but not deleted: {e}"))
        }
        (Err(reason), _) => CheckItem::fail(CANARY_UPGRADE, reason),
    })
}

/// Install `previous`, then upgrade to `t` rendered as `helm upgrade` would
/// (revision 2, `lookup` reading the canary's namespace, so charts that find
/// their generated Secrets keep them). `written` grows with what may need
/// deleting; `hooks` are the delete hooks of what runs.
#[allow(clippy::too_many_arguments)]
async fn upgrade_steps(
    state: &AppState,
    engine: &Engine,
    canary: &Canary,
    t: &TemplateVersion,
    previous: &TemplateVersion,
    old: &mut CheckedRender,
    written: &mut Vec<caelus_engine::ObjectRef>,
    hooks: &mut Vec<caelus_helm::Hook>,
) -> Result<String, String> {
    let first = canary.request(1);
    let installed = apply(engine, canary, previous, old, &first, &[])
        .await
        .map_err(|reason| format!("{} did not install: {reason}", previous.version))?;
    let mut second = canary.request(2);
    second.kind = RevisionKind::Upgrade;
    let scope = engine.scope_lookups(&mut second).await;
    let rendered = render(state, t, &second).await;
    drop(scope);
    let mut new = rendered.map_err(|e| format!("the upgrade did not render: {}", e.detail))?;
    for r in caelus_engine::inventory_of(&objects_of(&new)).unwrap_or_default() {
        if !written.contains(&r) {
            written.push(r);
        }
    }
    // Its delete hooks are the ones a deletion runs from now on.
    *hooks = new.rendered.hooks.clone();
    let upgraded = apply(engine, canary, t, &mut new, &second, &installed.inventory)
        .await
        .map_err(|reason| format!("the upgrade from {} failed: {reason}", previous.version))?;
    Ok(format!(
        "upgraded from {} in namespace {}: {} object(s) healthy",
        previous.version,
        canary.namespace,
        upgraded.health.len()
    ))
}

/// Certify a draft (admin): the checklist over its render with default values
/// (policy, resources, probes, pinned images, values schema, data continuity
/// against the previous published version) and, with a cluster, a canary
/// install, its test hooks, an upgrade from the previous published version
/// and the canary's deletion. The report is stored on the version.
#[utoipa::path(post, path = "/api/v1/products/{product}/versions/{version}/certify", tag = "templates",
    operation_id = "certify_template_version",
    params(("product" = String, Path, description = "Product slug"), ("version" = String, Path, description = "Version")),
    responses((status = 200, body = CertificationReport), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn certify_template_version(
    State(state): State<AppState>,
    actor: Actor,
    Path((product, version)): Path<(String, String)>,
) -> ApiResult<Json<CertificationReport>> {
    actor.require_admin("certify template versions")?;
    let t = visible_version(&mut *state.store.conn().await?, &actor, &product, &version).await?;
    if t.lifecycle != Lifecycle::Draft {
        return Err(ApiError::conflict(format!(
            "version {version} of '{product}' is {}: only drafts are certified",
            t.lifecycle
        )));
    }
    // The static checklist: the draft and the previous published version,
    // rendered with defaults through the one render seam.
    let preview = Canary::new().request(1);
    let checked = render(&state, &t, &preview).await?;
    let previous = previous_published(&state, &t).await?;
    let previous_objects = match &previous {
        Some(p) => Some(objects_of(&render(&state, p, &preview).await?)),
        None => None,
    };
    let hook_objects: Vec<Value> = checked
        .rendered
        .hooks
        .iter()
        .map(|h| h.object.clone())
        .collect();
    let mut items = certification::checklist(&ChecklistInput {
        objects: &objects_of(&checked),
        hooks: &hook_objects,
        violations: &checked.violations,
        values_schema_present: t.values_schema.is_some(),
        previous: previous
            .as_ref()
            .zip(previous_objects.as_deref())
            .map(|(p, o)| (p.version.as_str(), o)),
    });

    match &state.cluster {
        None => items.extend(certification::canary_skipped()),
        // A canary of a render the policy refuses would be refused likewise.
        Some(_) if !checked.is_allowed() => {
            for check in [CANARY_INSTALL, CANARY_TESTS, CANARY_UPGRADE, CANARY_DELETE] {
                items.push(CheckItem::warn(
                    check,
                    "not run: the render is refused by policy",
                ));
            }
        }
        Some(engine) => {
            fresh_canary(&state, engine, &t, &mut items).await?;
            let upgrade = match &previous {
                Some(p) => upgrade_canary(&state, engine, &t, p).await?,
                None => CheckItem::pass(
                    CANARY_UPGRADE,
                    "no previous published version to upgrade from",
                ),
            };
            // Report order: install, tests, upgrade, delete.
            let at = items
                .iter()
                .position(|i| i.check == CANARY_DELETE)
                .unwrap_or(items.len());
            items.insert(at, upgrade);
        }
    }

    let now = now_ms();
    let report = CertificationReport::new(&t.chart_digest, &rfc3339(now), &actor.label(), items);
    let mut tx = state.store.begin().await?;
    let stored = serde_json::to_value(&report).map_err(ApiError::internal)?;
    templates::set_certification(&mut tx, &t.id, &stored, now)
        .await
        .map_err(|e| match e {
            // Published (or changed) meanwhile.
            StoreError::NotFound(_) => ApiError::conflict(format!(
                "version {version} of '{product}' is no longer a draft"
            )),
            e => e.into(),
        })?;
    Audit {
        actor: &actor,
        action: "template.certify",
        subject: format!("product/{product}/version/{version}"),
        deployment_uid: None,
        tenant: None,
        message: format!(
            "certification of version {version} of '{product}' {}",
            if report.passed {
                "passed".to_string()
            } else {
                format!("failed: {}", report.failed_checks().join(", "))
            }
        ),
        details: json!({"chart": t.chart_ref, "passed": report.passed, "failed": report.failed_checks()}),
    }
    .write(&mut tx)
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(Json(report))
}
