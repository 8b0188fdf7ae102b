//! Certification of a template version before it is published: a checklist
//! over the objects its chart renders with default values (plus facts about
//! the chart), each item pass, fail or warn with its reason; and the rule
//! that publishing needs a passing certification of the same chart.
//!
//! The canary items (install, tests, upgrade, delete) are found by the API
//! against a cluster; they come here as items to report like the others.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::change::describe_risks;
use crate::pod_security::pod_template_of;
use crate::render_policy::{Rule, Violation, describe};
use crate::upgrade::data_continuity;

/// The ids of the checklist's items, in report order.
pub const POLICY_ISOLATION: &str = "policy.isolation";
pub const POLICY_POD_SECURITY: &str = "policy.pod-security";
pub const RESOURCES: &str = "resources";
pub const PROBES: &str = "probes";
pub const IMAGES_PINNED: &str = "images.pinned";
pub const VALUES_SCHEMA: &str = "values.schema";
pub const DATA_CONTINUITY: &str = "data-continuity";
pub const CANARY_INSTALL: &str = "canary.install";
pub const CANARY_TESTS: &str = "canary.tests";
pub const CANARY_UPGRADE: &str = "canary.upgrade";
pub const CANARY_DELETE: &str = "canary.delete";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    /// Worth a look, but does not fail the certification.
    Warn,
    Fail,
}

impl fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "fail",
        })
    }
}

/// One item of the checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckItem {
    /// Which check (`resources`, `images.pinned`, `canary.install`, …).
    pub check: String,
    pub status: CheckStatus,
    /// Why: the offending objects and containers, or what was verified.
    pub reason: String,
}

impl CheckItem {
    pub fn new(check: &str, status: CheckStatus, reason: impl Into<String>) -> Self {
        Self {
            check: check.to_string(),
            status,
            reason: reason.into(),
        }
    }

    pub fn pass(check: &str, reason: impl Into<String>) -> Self {
        Self::new(check, CheckStatus::Pass, reason)
    }

    pub fn warn(check: &str, reason: impl Into<String>) -> Self {
        Self::new(check, CheckStatus::Warn, reason)
    }

    pub fn fail(check: &str, reason: impl Into<String>) -> Self {
        Self::new(check, CheckStatus::Fail, reason)
    }
}

/// What a certification found, stored on the template version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CertificationReport {
    /// No item failed.
    pub passed: bool,
    /// The chart digest certified: a draft whose chart changed since is not certified.
    pub chart_digest: String,
    /// RFC 3339 time of the certification.
    pub certified_at: String,
    /// Who ran it.
    pub certified_by: String,
    pub items: Vec<CheckItem>,
}

impl CertificationReport {
    pub fn new(
        chart_digest: &str,
        certified_at: &str,
        certified_by: &str,
        items: Vec<CheckItem>,
    ) -> Self {
        Self {
            passed: items.iter().all(|i| i.status != CheckStatus::Fail),
            chart_digest: chart_digest.to_string(),
            certified_at: certified_at.to_string(),
            certified_by: certified_by.to_string(),
            items,
        }
    }

    /// The failed items' checks, for a refusal message.
    pub fn failed_checks(&self) -> Vec<&str> {
        self.items
            .iter()
            .filter(|i| i.status == CheckStatus::Fail)
            .map(|i| i.check.as_str())
            .collect()
    }
}

/// What the static checklist looks at.
pub struct ChecklistInput<'a> {
    /// The rendered CRDs and objects (not hooks).
    pub objects: &'a [Value],
    /// The rendered hooks' objects (all events, `test` included).
    pub hooks: &'a [Value],
    /// The render policy's verdict over all of them.
    pub violations: &'a [Violation],
    /// The chart ships `values.schema.json`.
    pub values_schema_present: bool,
    /// The previous published version and its render with defaults, if any.
    pub previous: Option<(&'a str, &'a [Value])>,
}

/// The static checklist, in report order.
pub fn checklist(input: &ChecklistInput<'_>) -> Vec<CheckItem> {
    let (pod_security, isolation): (Vec<Violation>, Vec<Violation>) = input
        .violations
        .iter()
        .cloned()
        .partition(|v| v.rule == Rule::PodSecurity);
    let all: Vec<&Value> = input.objects.iter().chain(input.hooks).collect();
    vec![
        policy_item(
            POLICY_ISOLATION,
            &isolation,
            "every object stays in the deployment's namespace and within its capabilities",
        ),
        policy_item(
            POLICY_POD_SECURITY,
            &pod_security,
            "every pod template meets the template's Pod Security level",
        ),
        resources_item(&all),
        probes_item(input.objects),
        images_item(&all),
        if input.values_schema_present {
            CheckItem::pass(VALUES_SCHEMA, "the chart ships values.schema.json")
        } else {
            CheckItem::fail(
                VALUES_SCHEMA,
                "the chart has no values.schema.json: user values are not validated",
            )
        },
        continuity_item(input.objects, input.previous),
    ]
}

fn policy_item(check: &str, violations: &[Violation], ok: &str) -> CheckItem {
    if violations.is_empty() {
        CheckItem::pass(check, ok)
    } else {
        CheckItem::fail(check, describe(violations))
    }
}

/// Every container (init containers too) of an object's pod template:
/// (`Kind/name`, container name, container).
fn containers(object: &Value) -> Vec<(String, String, &Value)> {
    let Some((_, template)) = pod_template_of(object) else {
        return Vec::new();
    };
    let owner = format!(
        "{}/{}",
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["name"].as_str().unwrap_or("?")
    );
    ["initContainers", "containers"]
        .iter()
        .flat_map(|list| template["spec"][list].as_array().into_iter().flatten())
        .map(|c| {
            (
                owner.clone(),
                c["name"].as_str().unwrap_or("?").to_string(),
                c,
            )
        })
        .collect()
}

fn non_empty(v: &Value) -> bool {
    v.as_object().is_some_and(|m| !m.is_empty())
}

fn resources_item(objects: &[&Value]) -> CheckItem {
    let mut missing = Vec::new();
    let mut count = 0;
    for o in objects {
        for (owner, name, c) in containers(o) {
            count += 1;
            let requests = non_empty(&c["resources"]["requests"]);
            let limits = non_empty(&c["resources"]["limits"]);
            let lacks = match (requests, limits) {
                (true, true) => continue,
                (false, false) => "requests and limits",
                (false, true) => "requests",
                (true, false) => "limits",
            };
            missing.push(format!(
                "{owner} container {name:?} has no resource {lacks}"
            ));
        }
    }
    if missing.is_empty() {
        CheckItem::pass(
            RESOURCES,
            format!("all {count} container(s) set resource requests and limits"),
        )
    } else {
        CheckItem::fail(RESOURCES, missing.join("; "))
    }
}

/// Long-running workloads need probes; Jobs, CronJobs and hooks run to completion.
fn probes_item(objects: &[Value]) -> CheckItem {
    let long_running = |o: &Value| {
        matches!(
            o["kind"].as_str(),
            Some("Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Pod")
        )
    };
    let mut no_readiness = Vec::new();
    let mut no_liveness = Vec::new();
    let mut count = 0;
    for o in objects.iter().filter(|o| long_running(o)) {
        // Only regular containers serve: init containers run to completion.
        let Some((_, template)) = pod_template_of(o) else {
            continue;
        };
        let owner = format!(
            "{}/{}",
            o["kind"].as_str().unwrap_or("?"),
            o["metadata"]["name"].as_str().unwrap_or("?")
        );
        for c in template["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
        {
            count += 1;
            let name = c["name"].as_str().unwrap_or("?");
            if !non_empty(&c["readinessProbe"]) {
                no_readiness.push(format!("{owner} container {name:?}"));
            }
            if !non_empty(&c["livenessProbe"]) {
                no_liveness.push(format!("{owner} container {name:?}"));
            }
        }
    }
    if !no_readiness.is_empty() {
        let mut reason = format!("no readiness probe: {}", no_readiness.join(", "));
        if !no_liveness.is_empty() {
            reason.push_str(&format!("; no liveness probe: {}", no_liveness.join(", ")));
        }
        CheckItem::fail(PROBES, reason)
    } else if !no_liveness.is_empty() {
        CheckItem::warn(
            PROBES,
            format!("no liveness probe: {}", no_liveness.join(", ")),
        )
    } else {
        CheckItem::pass(
            PROBES,
            format!("all {count} long-running container(s) have readiness and liveness probes"),
        )
    }
}

/// Why an image reference is not pinned, or `None` when it is (a tag other
/// than `latest`, or a digest).
pub fn unpinned(image: &str) -> Option<&'static str> {
    if image.trim().is_empty() {
        return Some("has no image");
    }
    if image.contains('@') {
        return None;
    }
    // The tag follows the last ':' after the last '/' (a ':' before it is a registry port).
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        None => Some("is untagged (means latest)"),
        Some((_, "")) => Some("has an empty tag"),
        Some((_, "latest")) => Some("uses the mutable tag latest"),
        Some(_) => None,
    }
}

fn images_item(objects: &[&Value]) -> CheckItem {
    let mut bad = Vec::new();
    let mut count = 0;
    for o in objects {
        for (owner, name, c) in containers(o) {
            count += 1;
            let image = c["image"].as_str().unwrap_or_default();
            if let Some(why) = unpinned(image) {
                bad.push(format!("{owner} container {name:?} image {image:?} {why}"));
            }
        }
    }
    if bad.is_empty() {
        CheckItem::pass(
            IMAGES_PINNED,
            format!("all {count} container image(s) are pinned by tag or digest"),
        )
    } else {
        CheckItem::fail(IMAGES_PINNED, bad.join("; "))
    }
}

fn continuity_item(objects: &[Value], previous: Option<(&str, &[Value])>) -> CheckItem {
    let Some((version, before)) = previous else {
        return CheckItem::pass(
            DATA_CONTINUITY,
            "no previous published version to upgrade from",
        );
    };
    let risks = data_continuity(before, objects);
    if risks.is_empty() {
        CheckItem::pass(
            DATA_CONTINUITY,
            format!("an upgrade from {version} keeps every volume"),
        )
    } else {
        CheckItem::fail(
            DATA_CONTINUITY,
            format!(
                "an upgrade from {version} would lose data: {}",
                describe_risks(&risks)
            ),
        )
    }
}

/// The canary items when there is no cluster to run them on.
pub fn canary_skipped() -> Vec<CheckItem> {
    [CANARY_INSTALL, CANARY_TESTS, CANARY_UPGRADE, CANARY_DELETE]
        .iter()
        .map(|c| CheckItem::warn(c, "skipped (no cluster)"))
        .collect()
}

/// On what grounds a draft may be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishBasis {
    /// The server does not require certification.
    NotRequired,
    /// A passing certification of this very chart.
    Certified,
    /// An admin skipped certification (recorded in the audit event).
    Skipped,
}

/// Whether a draft may be published: with `required`, it needs a passing
/// certification of its current chart digest, unless `skip` (admins only:
/// publishing is admin-only already). `Err` says why not.
pub fn publish_basis(
    required: bool,
    report: Option<&CertificationReport>,
    chart_digest: &str,
    skip: bool,
) -> Result<PublishBasis, String> {
    if skip {
        return Ok(PublishBasis::Skipped);
    }
    if !required {
        return Ok(PublishBasis::NotRequired);
    }
    match report {
        None => Err(
            "this version has not been certified: run `caelus template certify` first, or publish with skip_certification (recorded)"
                .into(),
        ),
        Some(r) if r.chart_digest != chart_digest => Err(format!(
            "the certification was of chart {}, the version's chart is now {chart_digest}: certify it again",
            r.chart_digest
        )),
        Some(r) if !r.passed => Err(format!(
            "the certification failed ({}): fix the chart and certify again, or publish with skip_certification (recorded)",
            r.failed_checks().join(", ")
        )),
        Some(_) => Ok(PublishBasis::Certified),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container(name: &str, image: &str) -> Value {
        json!({
            "name": name,
            "image": image,
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
            "readinessProbe": {"httpGet": {"path": "/", "port": 80}},
            "livenessProbe": {"httpGet": {"path": "/", "port": 80}},
        })
    }

    fn deployment(name: &str, containers: Vec<Value>) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {"template": {"metadata": {}, "spec": {"containers": containers}}},
        })
    }

    fn item<'a>(items: &'a [CheckItem], check: &str) -> &'a CheckItem {
        items.iter().find(|i| i.check == check).unwrap()
    }

    fn run(objects: &[Value], hooks: &[Value]) -> Vec<CheckItem> {
        checklist(&ChecklistInput {
            objects,
            hooks,
            violations: &[],
            values_schema_present: true,
            previous: None,
        })
    }

    #[test]
    fn a_good_chart_passes_every_item() {
        let objects = [deployment("web", vec![container("app", "nginx:1.27.0")])];
        let items = run(&objects, &[]);
        let checks: Vec<&str> = items.iter().map(|i| i.check.as_str()).collect();
        assert_eq!(
            checks,
            [
                POLICY_ISOLATION,
                POLICY_POD_SECURITY,
                RESOURCES,
                PROBES,
                IMAGES_PINNED,
                VALUES_SCHEMA,
                DATA_CONTINUITY
            ]
        );
        assert!(
            items.iter().all(|i| i.status == CheckStatus::Pass),
            "{items:?}"
        );
        assert!(CertificationReport::new("sha256:x", "t", "admin", items).passed);
    }

    #[test]
    fn image_references_table() {
        let cases = [
            ("nginx:1.27.0", None),
            ("registry:5000/team/app:v2", None),
            ("nginx@sha256:abc", None),
            ("nginx:latest@sha256:abc", None),
            ("nginx", Some("is untagged (means latest)")),
            ("registry:5000/team/app", Some("is untagged (means latest)")),
            ("nginx:latest", Some("uses the mutable tag latest")),
            ("nginx:", Some("has an empty tag")),
            ("", Some("has no image")),
        ];
        for (image, want) in cases {
            assert_eq!(unpinned(image), want, "{image}");
        }
    }

    #[test]
    fn each_bad_container_is_named_in_its_item() {
        let mut bare = json!({"name": "bare", "image": "busybox"});
        bare["readinessProbe"] = json!({"exec": {"command": ["true"]}});
        let mut no_limits = container("half", "nginx:latest");
        no_limits["resources"] = json!({"requests": {"cpu": "1m"}});
        no_limits.as_object_mut().unwrap().remove("livenessProbe");
        let objects = [deployment("web", vec![bare, no_limits])];
        let items = run(&objects, &[]);

        let res = item(&items, RESOURCES);
        assert_eq!(res.status, CheckStatus::Fail);
        assert!(
            res.reason
                .contains("Deployment/web container \"bare\" has no resource requests and limits"),
            "{}",
            res.reason
        );
        assert!(
            res.reason.contains("\"half\" has no resource limits"),
            "{}",
            res.reason
        );

        let img = item(&items, IMAGES_PINNED);
        assert_eq!(img.status, CheckStatus::Fail);
        assert!(
            img.reason.contains("\"busybox\" is untagged"),
            "{}",
            img.reason
        );
        assert!(
            img.reason
                .contains("\"nginx:latest\" uses the mutable tag latest")
        );

        // Readiness everywhere, liveness missing: a warning, not a failure.
        let probes = item(&items, PROBES);
        assert_eq!(probes.status, CheckStatus::Warn, "{probes:?}");
        assert!(probes.reason.contains("\"bare\"") && probes.reason.contains("\"half\""));
    }

    #[test]
    fn missing_readiness_fails_and_jobs_need_no_probes() {
        let mut c = container("app", "nginx:1");
        c.as_object_mut().unwrap().remove("readinessProbe");
        let job = json!({
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
            "spec": {"template": {"spec": {"containers": [
                {"name": "m", "image": "busybox:1.36", "resources": {"requests": {"cpu": "1m"}, "limits": {"cpu": "1"}}}
            ]}}},
        });
        let items = run(std::slice::from_ref(&job), &[]);
        assert_eq!(item(&items, PROBES).status, CheckStatus::Pass);
        let items = run(&[deployment("web", vec![c]), job], &[]);
        let probes = item(&items, PROBES);
        assert_eq!(probes.status, CheckStatus::Fail);
        assert!(
            probes
                .reason
                .contains("no readiness probe: Deployment/web container \"app\"")
        );
    }

    #[test]
    fn hook_containers_are_checked_for_resources_and_images() {
        let hook = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-test"},
            "spec": {"containers": [{"name": "curl", "image": "curlimages/curl"}]},
        });
        let items = run(
            &[deployment("web", vec![container("app", "nginx:1")])],
            &[hook],
        );
        assert!(item(&items, RESOURCES).reason.contains("Pod/web-test"));
        assert!(item(&items, IMAGES_PINNED).reason.contains("Pod/web-test"));
        // Hooks run to completion: no probes asked of them.
        assert_eq!(item(&items, PROBES).status, CheckStatus::Pass);
    }

    #[test]
    fn policy_violations_split_into_isolation_and_pod_security() {
        let v = |rule, kind: &str| Violation {
            kind: kind.into(),
            name: "x".into(),
            hook: None,
            rule,
            message: format!("{rule} says no"),
        };
        let violations = [
            v(Rule::PodSecurity, "Deployment"),
            v(Rule::ClusterScoped, "ClusterRole"),
        ];
        let objects = [deployment("web", vec![container("app", "nginx:1")])];
        let items = checklist(&ChecklistInput {
            objects: &objects,
            hooks: &[],
            violations: &violations,
            values_schema_present: false,
            previous: None,
        });
        let ps = item(&items, POLICY_POD_SECURITY);
        assert_eq!(ps.status, CheckStatus::Fail);
        assert!(ps.reason.contains("pod-security says no") && !ps.reason.contains("ClusterRole"));
        let iso = item(&items, POLICY_ISOLATION);
        assert_eq!(iso.status, CheckStatus::Fail);
        assert!(iso.reason.contains("ClusterRole"));
        assert_eq!(item(&items, VALUES_SCHEMA).status, CheckStatus::Fail);
        let report = CertificationReport::new("d", "t", "a", items);
        assert!(!report.passed);
        assert_eq!(
            report.failed_checks(),
            [POLICY_ISOLATION, POLICY_POD_SECURITY, VALUES_SCHEMA]
        );
    }

    #[test]
    fn data_continuity_against_the_previous_version() {
        let pvc = |size: &str| {
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                   "spec": {"resources": {"requests": {"storage": size}}}})
        };
        let before = [pvc("10Gi")];
        let check = |objects: &[Value]| {
            checklist(&ChecklistInput {
                objects,
                hooks: &[],
                violations: &[],
                values_schema_present: true,
                previous: Some(("1.0.0", &before)),
            })
        };
        let items = check(&[pvc("10Gi")]);
        assert_eq!(item(&items, DATA_CONTINUITY).status, CheckStatus::Pass);
        let items = check(&[]);
        let dc = item(&items, DATA_CONTINUITY);
        assert_eq!(dc.status, CheckStatus::Fail);
        assert!(
            dc.reason.contains("from 1.0.0") && dc.reason.contains("data"),
            "{}",
            dc.reason
        );
    }

    #[test]
    fn warnings_do_not_fail_a_certification() {
        let report = CertificationReport::new("d", "t", "a", canary_skipped());
        assert!(report.passed);
        assert!(
            report
                .items
                .iter()
                .all(|i| i.reason == "skipped (no cluster)")
        );
    }

    #[test]
    fn publish_basis_table() {
        let report = |passed_items: bool, digest: &str| {
            let items = if passed_items {
                vec![CheckItem::pass(RESOURCES, "ok")]
            } else {
                vec![CheckItem::fail(RESOURCES, "no")]
            };
            CertificationReport::new(digest, "t", "a", items)
        };
        let good = report(true, "sha256:a");
        let bad = report(false, "sha256:a");
        let stale = report(true, "sha256:old");
        type Case<'a> = (
            bool,
            Option<&'a CertificationReport>,
            bool,
            Result<PublishBasis, &'a str>,
        );
        let cases: [Case; 8] = [
            (false, None, false, Ok(PublishBasis::NotRequired)),
            (false, Some(&bad), false, Ok(PublishBasis::NotRequired)),
            (true, None, false, Err("has not been certified")),
            (
                true,
                Some(&bad),
                false,
                Err("certification failed (resources)"),
            ),
            (true, Some(&stale), false, Err("certify it again")),
            (true, Some(&good), false, Ok(PublishBasis::Certified)),
            (true, None, true, Ok(PublishBasis::Skipped)),
            (true, Some(&bad), true, Ok(PublishBasis::Skipped)),
        ];
        for (required, r, skip, want) in cases {
            let got = publish_basis(required, r, "sha256:a", skip);
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w),
                (Err(g), Err(w)) => assert!(g.contains(w), "{g}"),
                (g, w) => panic!("required={required} skip={skip}: got {g:?}, want {w:?}"),
            }
        }
    }
}
