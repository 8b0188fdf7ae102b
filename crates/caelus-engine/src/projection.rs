//! Read-only projections of database rows for `kubectl` users (design §9):
//! a namespaced `CaelusDeployment` per deployment (in its own namespace) and
//! a cluster-scoped `CaelusTemplate` per published template version.
//!
//! Caelus writes them (server-side apply as its field manager, spec and then
//! the status subresource) and never reads them as input: the watch here only
//! tells the reconciler that someone else touched one, so it can be put back.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use caelus_core::status::ObjectHealth;
use futures::{Stream, StreamExt};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

use crate::Engine;
use crate::error::{EngineError, Result, is_not_found};
use crate::object::{DEPLOYMENT_UID_LABEL, INSTALLATION_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE};

/// The CRDs, from the one copy in the repository that the installer chart ships.
pub const CRDS: [&str; 2] = [
    include_str!("../../../deploy/chart/crds/caelusdeployments.caelus.io.yaml"),
    include_str!("../../../deploy/chart/crds/caelustemplates.caelus.io.yaml"),
];
pub const PROJECTION_GROUP: &str = "caelus.io";
pub const PROJECTION_API_VERSION: &str = "caelus.io/v1alpha1";
pub const DEPLOYMENT_PROJECTION_KIND: &str = "CaelusDeployment";
pub const TEMPLATE_PROJECTION_KIND: &str = "CaelusTemplate";
/// Label naming the template version a `CaelusTemplate` projects.
pub const TEMPLATE_VERSION_LABEL: &str = "caelus.io/template-version-id";

/// Which row a projection shows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProjectionKey {
    /// A deployment, by uid.
    Deployment(String),
    /// A template version, by id.
    Template(String),
}

/// What a `CaelusDeployment` shows of a deployment row.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentView {
    pub uid: String,
    pub namespace: String,
    pub tenant: String,
    pub display_name: String,
    pub product: String,
    pub version: String,
    pub template_version_id: String,
    pub desired_state: String,
    pub generation: i64,
    pub values: Value,
    pub phase: String,
    pub message: String,
    pub observed_generation: i64,
    pub revision: Option<i64>,
    pub last_error: Option<String>,
    /// Kubernetes-style conditions, as stored.
    pub conditions: Value,
    pub objects: Vec<ObjectHealth>,
}

/// What a `CaelusTemplate` shows of a template version row.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateView {
    pub id: String,
    pub product: String,
    pub version: String,
    pub chart_ref: String,
    pub chart_digest: String,
    pub values_allowlist: Vec<String>,
    /// published | deprecated | retired
    pub lifecycle: String,
}

/// One projection object, split the way it is written: the main resource
/// (metadata and spec) and the status subresource.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    pub key: ProjectionKey,
    pub kind: &'static str,
    /// `None` for `CaelusTemplate` (cluster-scoped).
    pub namespace: Option<String>,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub spec: Value,
    pub status: Value,
}

/// The object name of a template version's projection: `{product}-{version}`
/// made a DNS subdomain (semver build metadata `+` becomes `-`).
pub fn template_projection_name(product: &str, version: &str) -> String {
    format!("{product}-{version}")
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn base_labels(installation_id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string()),
        (INSTALLATION_LABEL.to_string(), installation_id.to_string()),
    ])
}

impl Projection {
    pub fn of_deployment(installation_id: &str, d: &DeploymentView) -> Projection {
        let mut labels = base_labels(installation_id);
        labels.insert(DEPLOYMENT_UID_LABEL.to_string(), d.uid.clone());
        let healthy = d
            .objects
            .iter()
            .filter(|o| o.health == crate::HEALTHY)
            .count();
        let mut status = json!({
            "phase": d.phase,
            "message": d.message,
            "observedGeneration": d.observed_generation,
            "readyObjects": format!("{healthy}/{}", d.objects.len()),
            "conditions": d.conditions,
            "objects": d.objects,
        });
        if let Some(r) = d.revision {
            status["revision"] = json!(r);
        }
        if let Some(e) = &d.last_error {
            status["lastError"] = json!(e);
        }
        Projection {
            key: ProjectionKey::Deployment(d.uid.clone()),
            kind: DEPLOYMENT_PROJECTION_KIND,
            namespace: Some(d.namespace.clone()),
            name: d.uid.clone(),
            labels,
            spec: json!({
                "uid": d.uid,
                "tenant": d.tenant,
                "displayName": d.display_name,
                "product": d.product,
                "version": d.version,
                "templateVersionId": d.template_version_id,
                "desiredState": d.desired_state,
                "generation": d.generation,
                "values": d.values,
            }),
            status,
        }
    }

    pub fn of_template(installation_id: &str, t: &TemplateView) -> Projection {
        let mut labels = base_labels(installation_id);
        labels.insert(TEMPLATE_VERSION_LABEL.to_string(), t.id.clone());
        Projection {
            key: ProjectionKey::Template(t.id.clone()),
            kind: TEMPLATE_PROJECTION_KIND,
            namespace: None,
            name: template_projection_name(&t.product, &t.version),
            labels,
            spec: json!({
                "templateVersionId": t.id,
                "product": t.product,
                "version": t.version,
                "chartRef": t.chart_ref,
                "chartDigest": t.chart_digest,
                "valuesAllowlist": t.values_allowlist,
            }),
            status: json!({"lifecycle": t.lifecycle}),
        }
    }

    fn metadata(&self) -> Value {
        let mut m = json!({"name": self.name, "labels": self.labels});
        if let Some(ns) = &self.namespace {
            m["namespace"] = json!(ns);
        }
        m
    }

    fn metadata_without_labels(&self) -> Value {
        let mut m = self.metadata();
        m.as_object_mut().map(|o| o.remove("labels"));
        m
    }

    /// The main resource as applied: metadata and spec.
    pub fn main_body(&self) -> Value {
        json!({
            "apiVersion": PROJECTION_API_VERSION,
            "kind": self.kind,
            "metadata": self.metadata(),
            "spec": self.spec,
        })
    }

    /// The status subresource as applied.
    pub fn status_body(&self) -> Value {
        json!({
            "apiVersion": PROJECTION_API_VERSION,
            "kind": self.kind,
            "metadata": self.metadata_without_labels(),
            "status": self.status,
        })
    }

    /// Fingerprints of the main resource and of the status, so a writer
    /// can skip what has not changed since it last wrote it.
    pub fn fingerprints(&self) -> (u64, u64) {
        (fingerprint(&self.main_body()), fingerprint(&self.status))
    }
}

fn fingerprint(v: &Value) -> u64 {
    let mut h = DefaultHasher::new();
    v.to_string().hash(&mut h);
    h.finish()
}

fn projection_resource(kind: &str) -> ApiResource {
    let plural = if kind == DEPLOYMENT_PROJECTION_KIND {
        "caelusdeployments"
    } else {
        "caelustemplates"
    };
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(PROJECTION_GROUP, "v1alpha1", kind),
        plural,
    )
}

/// A projection as the watch saw it: who wrote it, not what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectionSeen {
    pub key: ProjectionKey,
    pub kind: &'static str,
    pub namespace: Option<String>,
    pub name: String,
    pub resource_version: String,
    /// Field managers other than Caelus's own (`kubectl-edit`, …).
    pub other_managers: Vec<String>,
    /// The projection was deleted.
    pub deleted: bool,
}

fn seen(
    kind: &'static str,
    obj: &DynamicObject,
    own_manager: &str,
    deleted: bool,
) -> Option<ProjectionSeen> {
    let labels = obj.metadata.labels.as_ref()?;
    let key = if kind == DEPLOYMENT_PROJECTION_KIND {
        ProjectionKey::Deployment(labels.get(DEPLOYMENT_UID_LABEL)?.clone())
    } else {
        ProjectionKey::Template(labels.get(TEMPLATE_VERSION_LABEL)?.clone())
    };
    let mut other_managers: Vec<String> = obj
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .filter(|m| m != own_manager)
        .collect();
    other_managers.sort();
    other_managers.dedup();
    Some(ProjectionSeen {
        key,
        kind,
        namespace: obj.metadata.namespace.clone(),
        name: obj.metadata.name.clone().unwrap_or_default(),
        resource_version: obj.metadata.resource_version.clone().unwrap_or_default(),
        other_managers,
        deleted,
    })
}

impl Engine {
    /// Installs (or updates) the projection CRDs and waits until the API
    /// server serves them (`Established`).
    pub async fn install_crds(&self) -> Result<()> {
        let crd_resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        );
        let api: Api<DynamicObject> = Api::all_with(self.client().clone(), &crd_resource);
        let params = PatchParams::apply(&self.config().field_manager).force();
        for doc in CRDS {
            let crd: Value = yaml_serde::from_str(doc)
                .map_err(|e| EngineError::InvalidObject(format!("projection CRD: {e}")))?;
            let name = crd["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            api.patch(&name, &params, &Patch::Apply(&crd))
                .await
                .map_err(|e| EngineError::api(format!("install CRD {name}"), e))?;
            for round in 0.. {
                let live = api
                    .get(&name)
                    .await
                    .map_err(|e| EngineError::api(format!("read CRD {name}"), e))?;
                let live = serde_json::to_value(live).unwrap_or_default();
                let established = live["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Established" && c["status"] == "True");
                if established {
                    break;
                }
                tokio::time::sleep(self.config().poll_pause(round)).await;
            }
        }
        Ok(())
    }

    fn projection_api(&self, kind: &str, namespace: Option<&str>) -> Api<DynamicObject> {
        let ar = projection_resource(kind);
        match namespace {
            Some(ns) => Api::namespaced_with(self.client().clone(), ns, &ar),
            None => Api::all_with(self.client().clone(), &ar),
        }
    }

    /// Server-side applies the main resource (when `main`) and then the
    /// status (when `status`), forced; returns the last resourceVersion.
    pub async fn write_projection(
        &self,
        p: &Projection,
        main: bool,
        status: bool,
    ) -> Result<String> {
        let api = self.projection_api(p.kind, p.namespace.as_deref());
        let params = PatchParams::apply(&self.config().field_manager).force();
        let context = || format!("write {} {}", p.kind, p.name);
        let mut rv = String::new();
        if main {
            let o = api
                .patch(&p.name, &params, &Patch::Apply(&p.main_body()))
                .await
                .map_err(|e| EngineError::api(context(), e))?;
            rv = o.metadata.resource_version.unwrap_or_default();
        }
        if status {
            let o = api
                .patch_status(&p.name, &params, &Patch::Apply(&p.status_body()))
                .await
                .map_err(|e| EngineError::api(context(), e))?;
            rv = o.metadata.resource_version.unwrap_or_default();
        }
        Ok(rv)
    }

    /// Puts a hand-edited projection back: the main resource is replaced as a
    /// whole (so fields another manager added go too), guarded by the
    /// resourceVersion that was seen, then the status is applied again.
    /// `Ok(None)` when the object changed meanwhile (someone else reverted it).
    pub async fn replace_projection(
        &self,
        p: &Projection,
        seen_rv: &str,
    ) -> Result<Option<String>> {
        let api = self.projection_api(p.kind, p.namespace.as_deref());
        let mut body = p.main_body();
        body["metadata"]["resourceVersion"] = json!(seen_rv);
        let obj: DynamicObject = serde_json::from_value(body)
            .map_err(|e| EngineError::InvalidObject(format!("projection {}: {e}", p.name)))?;
        let params = PostParams {
            field_manager: Some(self.config().field_manager.clone()),
            ..Default::default()
        };
        match api.replace(&p.name, &params, &obj).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => return Ok(None),
            Err(e) => return Err(EngineError::api(format!("revert {} {}", p.kind, p.name), e)),
        }
        self.write_projection(p, false, true).await.map(Some)
    }

    /// Deletes a projection; `false` when it was already gone.
    pub async fn delete_projection(
        &self,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<bool> {
        let api = self.projection_api(kind, namespace);
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(EngineError::api(format!("delete {kind} {name}"), e)),
        }
    }

    /// Every change to this installation's projections, as who-wrote-it
    /// summaries. The stream retries with backoff while the CRDs are missing
    /// or the watch drops; it ends only when dropped.
    pub fn watch_projections(&self) -> impl Stream<Item = ProjectionSeen> + Send + 'static {
        let selector = format!(
            "{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{INSTALLATION_LABEL}={}",
            self.config().installation_id
        );
        let own = self.config().field_manager.clone();
        let streams = [DEPLOYMENT_PROJECTION_KIND, TEMPLATE_PROJECTION_KIND].map(|kind| {
            let api = self.projection_api(kind, None);
            let own = own.clone();
            watcher(api, watcher::Config::default().labels(&selector))
                .default_backoff()
                .filter_map(move |event| {
                    let out = match event {
                        Ok(watcher::Event::Apply(o)) => seen(kind, &o, &own, false),
                        Ok(watcher::Event::Delete(o)) => seen(kind, &o, &own, true),
                        Ok(_) => None,
                        Err(e) => {
                            tracing::debug!(kind, error = %e, "projection watch interrupted");
                            None
                        }
                    };
                    std::future::ready(out)
                })
                .boxed()
        });
        futures::stream::select_all(streams)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> DeploymentView {
        DeploymentView {
            uid: "u1".into(),
            namespace: "d-u1".into(),
            tenant: "acme".into(),
            display_name: "my web".into(),
            product: "web".into(),
            version: "1.0.0".into(),
            template_version_id: "t1".into(),
            desired_state: "present".into(),
            generation: 2,
            values: json!({"replicaCount": 2}),
            phase: "Ready".into(),
            message: "all good".into(),
            observed_generation: 2,
            revision: Some(2),
            last_error: None,
            conditions: json!([{"type": "Ready", "status": "True"}]),
            objects: vec![
                ObjectHealth {
                    kind: "Deployment".into(),
                    name: "web".into(),
                    health: "Healthy".into(),
                    message: String::new(),
                },
                ObjectHealth {
                    kind: "Job".into(),
                    name: "x".into(),
                    health: "Progressing".into(),
                    message: String::new(),
                },
            ],
        }
    }

    #[test]
    fn a_deployment_projection_carries_desired_state_and_status_with_ownership_labels() {
        let p = Projection::of_deployment("prod", &view());
        let main = p.main_body();
        assert_eq!(main["apiVersion"], "caelus.io/v1alpha1");
        assert_eq!(main["metadata"]["namespace"], "d-u1");
        assert_eq!(main["metadata"]["name"], "u1");
        assert_eq!(main["metadata"]["labels"]["caelus.io/installation"], "prod");
        assert_eq!(main["metadata"]["labels"]["caelus.io/deployment-uid"], "u1");
        assert_eq!(main["spec"]["generation"], 2);
        assert_eq!(main["spec"]["values"]["replicaCount"], 2);
        assert!(main.get("status").is_none());
        let status = p.status_body();
        assert_eq!(status["status"]["phase"], "Ready");
        assert_eq!(status["status"]["readyObjects"], "1/2");
        assert_eq!(status["status"]["revision"], 2);
        assert!(status["status"].get("lastError").is_none());
    }

    #[test]
    fn fingerprints_change_with_status_only_when_status_changes() {
        let a = Projection::of_deployment("prod", &view());
        let mut v = view();
        v.phase = "Degraded".into();
        let b = Projection::of_deployment("prod", &v);
        assert_eq!(a.fingerprints().0, b.fingerprints().0);
        assert_ne!(a.fingerprints().1, b.fingerprints().1);
        v.generation = 3;
        let c = Projection::of_deployment("prod", &v);
        assert_ne!(a.fingerprints().0, c.fingerprints().0);
    }

    #[test]
    fn template_projections_are_cluster_scoped_and_named_after_product_and_version() {
        let p = Projection::of_template(
            "prod",
            &TemplateView {
                id: "t1".into(),
                product: "web".into(),
                version: "1.0.0+Build.5".into(),
                chart_ref: "oci://r/charts/web".into(),
                chart_digest: "sha256:ab".into(),
                values_allowlist: vec!["replicaCount".into()],
                lifecycle: "retired".into(),
            },
        );
        assert_eq!(p.name, "web-1.0.0-build.5");
        assert!(p.main_body()["metadata"].get("namespace").is_none());
        assert_eq!(p.labels["caelus.io/template-version-id"], "t1");
        assert_eq!(p.status_body()["status"]["lifecycle"], "retired");
    }

    #[test]
    fn the_embedded_crds_are_the_caelus_io_kinds_with_printer_columns() {
        let docs: Vec<Value> = CRDS
            .iter()
            .map(|d| yaml_serde::from_str(d).unwrap())
            .collect();
        assert_eq!(docs[0]["spec"]["names"]["kind"], DEPLOYMENT_PROJECTION_KIND);
        assert_eq!(docs[0]["spec"]["scope"], "Namespaced");
        assert_eq!(docs[1]["spec"]["names"]["kind"], TEMPLATE_PROJECTION_KIND);
        assert_eq!(docs[1]["spec"]["scope"], "Cluster");
        let columns = |d: &Value| -> Vec<String> {
            d["spec"]["versions"][0]["additionalPrinterColumns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            columns(&docs[0]),
            ["Tenant", "Product", "Version", "Phase", "Ready", "Age"]
        );
        assert_eq!(
            columns(&docs[1]),
            ["Product", "Version", "Lifecycle", "Digest"]
        );
        for d in &docs {
            assert_eq!(d["spec"]["group"], PROJECTION_GROUP);
            assert_eq!(
                d["spec"]["versions"][0]["subresources"]["status"],
                json!({})
            );
        }
    }
}
