//! Orphan scan and clean (design §9): the adapter between the cluster
//! (objects carrying this installation's label, from the engine), the
//! database (what it accounts for) and the pure rule in `caelus_core::orphans`.
//!
//! Cleaning re-reads the database for every orphan at the moment it is about
//! to delete it, so a deployment created after the scan keeps its namespace;
//! deletes are guarded by uid and resourceVersion; every deletion is audited.

use std::collections::BTreeMap;
use std::time::Duration;

use caelus_core::orphans::{Candidate, DeploymentRecord, Facts, ObjectKey, Shape, Verdict, judge};
use caelus_core::status::{DesiredState, Phase};
use caelus_engine::{
    DEPLOYMENT_PROJECTION_KIND, DEPLOYMENT_UID_LABEL, Engine, EngineError, ExactDelete,
    INSTALLATION_LABEL, LIMIT_RANGE_NAME, LabelledObject, NETWORK_POLICY_NAME, ObjectRef,
    PROJECTION_GROUP, QUOTA_NAME, TEMPLATE_PROJECTION_KIND, TEMPLATE_VERSION_LABEL,
};
use caelus_store::deployments::{self, Deployment};
use caelus_store::events::{self, NewEvent};
use caelus_store::{Store, StoreError, now_ms, revisions, templates};
use serde::Serialize;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum OrphanError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// One orphan the scan found: what, where, why, how old.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    /// Why it is an orphan.
    pub reason: String,
    pub age_seconds: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_uid: Option<String>,
    /// Already being deleted but held by these finalizers: reported, never forced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stuck_on_finalizers: Option<Vec<String>>,
    /// A stuck namespace's conditions (what it waits for).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<String>,
    #[serde(skip)]
    object: LabelledObject,
    #[serde(skip)]
    candidate: Candidate,
}

/// What a clean did with each finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanReport {
    /// `true` unless asked to `confirm`: nothing was deleted.
    pub dry_run: bool,
    /// Deleted (or, in a dry run, what would be).
    pub deleted: Vec<Finding>,
    /// Kept after all, each with why (the database accounts for it now, it
    /// changed since the scan, it is stuck on finalizers).
    pub kept: Vec<Kept>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Kept {
    #[serde(flatten)]
    pub finding: Finding,
    pub why_kept: String,
}

/// Scans and cleans one installation's orphans.
#[derive(Clone)]
pub struct OrphanScanner {
    pub store: Store,
    pub engine: Engine,
    /// Nothing younger is an orphan: its creation may be in flight.
    pub min_age: Duration,
}

fn age_of(created: Option<&str>) -> Duration {
    let Some(created) = created else {
        return Duration::ZERO;
    };
    let Ok(at) =
        time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
    else {
        return Duration::ZERO;
    };
    let age = time::OffsetDateTime::now_utc() - at;
    Duration::try_from(age).unwrap_or(Duration::ZERO)
}

fn key_of(r: &ObjectRef) -> ObjectKey {
    ObjectKey {
        group: r.group().to_string(),
        kind: r.kind.clone(),
        namespace: r.namespace.clone(),
        name: r.name.clone(),
    }
}

fn shape_of(o: &LabelledObject) -> Shape {
    let group = o.oref.group();
    match (group, o.oref.kind.as_str()) {
        ("", "Namespace") => Shape::Namespace,
        (PROJECTION_GROUP, DEPLOYMENT_PROJECTION_KIND) => Shape::DeploymentProjection {
            uid: o
                .labels
                .get(DEPLOYMENT_UID_LABEL)
                .cloned()
                .unwrap_or_default(),
        },
        (PROJECTION_GROUP, TEMPLATE_PROJECTION_KIND) => Shape::TemplateProjection {
            template_version_id: o
                .labels
                .get(TEMPLATE_VERSION_LABEL)
                .cloned()
                .unwrap_or_default(),
        },
        _ if o.oref.namespace.is_some() => Shape::Namespaced,
        _ => Shape::ClusterScoped,
    }
}

fn candidate_of(o: &LabelledObject) -> Candidate {
    Candidate {
        key: key_of(&o.oref),
        shape: shape_of(o),
        installation: o.labels.get(INSTALLATION_LABEL).cloned(),
        deployment_uid: o.labels.get(DEPLOYMENT_UID_LABEL).cloned(),
        age: age_of(o.created.as_deref()),
        owned: o.owned,
        hook: o.hook,
        terminating: o.terminating.clone(),
    }
}

/// The isolation objects Caelus puts in every deployment namespace.
fn isolation_keys(namespace: &str) -> Vec<ObjectKey> {
    [
        ("networking.k8s.io", "NetworkPolicy", NETWORK_POLICY_NAME),
        ("", "ResourceQuota", QUOTA_NAME),
        ("", "LimitRange", LIMIT_RANGE_NAME),
    ]
    .into_iter()
    .map(|(group, kind, name)| ObjectKey {
        group: group.into(),
        kind: kind.into(),
        namespace: Some(namespace.into()),
        name: name.into(),
    })
    .collect()
}

impl OrphanScanner {
    /// What the database says about the rows `c` may belong to, read now.
    async fn facts(&self, c: &Candidate) -> Result<(Facts, Option<Deployment>), OrphanError> {
        let mut conn = self.store.conn().await?;
        let namespace = match c.shape {
            Shape::Namespace => Some(c.key.name.clone()),
            Shape::ClusterScoped | Shape::TemplateProjection { .. } => None,
            _ => c.key.namespace.clone(),
        };
        let mut row = match &namespace {
            Some(ns) => deployments::by_namespace(&mut conn, ns).await?,
            None => None,
        };
        if row.is_none()
            && namespace.is_none()
            && let Some(uid) = &c.deployment_uid
        {
            row = deployments::get(&mut conn, uid, None).await?;
        }
        let deployment = match &row {
            None => DeploymentRecord::Missing,
            Some(d) if d.phase == Phase::Deleted => DeploymentRecord::Deleted,
            Some(d) => {
                let mut accounted = isolation_keys(&d.namespace_name);
                let newest = revisions::list(&mut conn, &d.uid, None, 1).await?;
                let deployed = revisions::last_deployed(&mut conn, &d.uid).await?;
                for r in newest.iter().chain(deployed.iter()) {
                    let inventory: Vec<ObjectRef> =
                        serde_json::from_value(r.inventory.clone()).unwrap_or_default();
                    accounted.extend(inventory.iter().map(key_of));
                }
                DeploymentRecord::Live {
                    namespace: d.namespace_name.clone(),
                    being_deleted: d.desired_state == DesiredState::Absent,
                    accounted,
                    pass_in_flight: d.lease_owner.is_some()
                        && d.lease_expires_at.is_some_and(|t| t >= now_ms())
                        && d.observed_generation < d.generation,
                }
            }
        };
        let template_exists = match &c.shape {
            Shape::TemplateProjection {
                template_version_id,
            } => templates::get_by_id(&mut conn, template_version_id)
                .await?
                .is_some_and(|t| t.lifecycle != caelus_core::lifecycle::Lifecycle::Draft),
            _ => false,
        };
        Ok((
            Facts {
                deployment,
                template_exists,
            },
            row,
        ))
    }

    fn installation(&self) -> &str {
        &self.engine.config().installation_id
    }

    /// Every orphan of this installation now (nothing is deleted), and the
    /// `caelus_orphans{kind}` metric set to their counts.
    pub async fn scan(&self) -> Result<Vec<Finding>, OrphanError> {
        let mut found = Vec::new();
        for object in self.engine.list_labelled().await? {
            let candidate = candidate_of(&object);
            let (facts, _) = self.facts(&candidate).await?;
            let verdict = judge(self.installation(), self.min_age, &candidate, &facts);
            let (reason, stuck) = match verdict {
                Verdict::Keep(_) => continue,
                Verdict::Orphan(r) => (r, None),
                Verdict::Stuck { reason, finalizers } => (reason, Some(finalizers)),
            };
            found.push(Finding {
                api_version: object.oref.api_version.clone(),
                kind: object.oref.kind.clone(),
                namespace: object.oref.namespace.clone(),
                name: object.oref.name.clone(),
                uid: object.uid.clone(),
                reason: reason.to_string(),
                age_seconds: candidate.age.as_secs(),
                deployment_uid: candidate.deployment_uid.clone(),
                conditions: if stuck.is_some() {
                    object.conditions.clone()
                } else {
                    Vec::new()
                },
                stuck_on_finalizers: stuck,
                object,
                candidate,
            });
        }
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        for f in &found {
            *counts.entry(f.kind.clone()).or_default() += 1;
        }
        caelus_metrics::global().set_orphans(&counts);
        Ok(found)
    }

    /// Scans, then cleans what it found (see [`OrphanScanner::clean_found`]).
    pub async fn clean(&self, confirm: bool, actor: &str) -> Result<CleanReport, OrphanError> {
        let found = self.scan().await?;
        self.clean_found(found, confirm, actor).await
    }

    /// Deletes `found` (when `confirm`), each only if the database, read
    /// again right now, still does not account for it, and only if the object
    /// is still the one the scan saw. Stuck namespaces are reported, not forced.
    pub async fn clean_found(
        &self,
        found: Vec<Finding>,
        confirm: bool,
        actor: &str,
    ) -> Result<CleanReport, OrphanError> {
        let mut report = CleanReport {
            dry_run: !confirm,
            deleted: Vec::new(),
            kept: Vec::new(),
        };
        for f in found {
            let (facts, row) = self.facts(&f.candidate).await?;
            let reason = match judge(self.installation(), self.min_age, &f.candidate, &facts) {
                Verdict::Orphan(reason) => reason,
                Verdict::Stuck { finalizers, .. } => {
                    let why = format!(
                        "being deleted, held by finalizers {}; Caelus never removes finalizers",
                        finalizers.join(", ")
                    );
                    report.kept.push(Kept {
                        finding: f,
                        why_kept: why,
                    });
                    continue;
                }
                Verdict::Keep(why) => {
                    report.kept.push(Kept {
                        finding: f,
                        why_kept: why.to_string(),
                    });
                    continue;
                }
            };
            if !confirm {
                report.deleted.push(f);
                continue;
            }
            match self.engine.delete_exact(&f.object).await? {
                ExactDelete::Changed => {
                    report.kept.push(Kept {
                        finding: f,
                        why_kept: "changed or replaced since the scan saw it".into(),
                    });
                    continue;
                }
                ExactDelete::Gone => {
                    report.kept.push(Kept {
                        finding: f,
                        why_kept: "already gone".into(),
                    });
                    continue;
                }
                ExactDelete::Deleted => {}
            }
            self.audit(&f, &reason.to_string(), row.as_ref(), actor)
                .await?;
            report.deleted.push(f);
        }
        Ok(report)
    }

    async fn audit(
        &self,
        f: &Finding,
        reason: &str,
        row: Option<&Deployment>,
        actor: &str,
    ) -> Result<(), OrphanError> {
        let what = match &f.namespace {
            Some(ns) => format!("{} {ns}/{}", f.kind, f.name),
            None => format!("{} {}", f.kind, f.name),
        };
        let mut conn = self.store.conn().await?;
        events::insert(
            &mut conn,
            &NewEvent {
                deployment_uid: row.map(|d| d.uid.as_str()),
                tenant: row.map(|d| d.tenant.as_str()),
                subject: format!("orphan/{}", what.replace(' ', "/")),
                action: "orphan.delete",
                actor,
                message: format!("deleted orphan {what}: {reason}"),
                details: json!({
                    "apiVersion": f.api_version, "kind": f.kind, "namespace": f.namespace,
                    "name": f.name, "uid": f.uid, "reason": reason, "ageSeconds": f.age_seconds,
                }),
            },
            now_ms(),
        )
        .await?;
        Ok(())
    }
}
