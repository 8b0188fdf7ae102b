//! The resource table: which group/version/resources the simulator serves.
//!
//! Built-in kinds come from a static table; CustomResourceDefinitions add
//! entries at run time (see [`ResourceInfo::from_crd`]). Discovery, OpenAPI
//! and request routing are all generated from this one table so they can never
//! disagree about what exists.

use serde_json::Value;

/// One served resource in one API version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    pub group: String,
    pub version: String,
    /// Plural, lower-case name used in URLs (`deployments`).
    pub resource: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Whether `/status` is a separate subresource (status writes on the main
    /// resource are then ignored, and spec writes on `/status` too).
    pub has_status: bool,
    /// Whether `metadata.generation` is maintained (bumped on spec changes).
    pub has_generation: bool,
    /// Set for resources served because of a CRD, so they disappear with it.
    pub crd: Option<String>,
    /// The CRD's OpenAPI schema for this version, if any.
    pub schema: Option<Value>,
    /// Whether a CRD version declares `subresources.scale`.
    pub scale: bool,
}

impl ResourceInfo {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The group-resource as the API server prints it in messages:
    /// `configmaps` or `deployments.apps`.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// The qualified kind used in `Invalid` messages: `ConfigMap` or `StatefulSet.apps`.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn verbs(&self) -> Vec<&'static str> {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }

    /// Builds the served resources of a CRD object (one per served version).
    pub fn from_crd(crd: &Value) -> Vec<ResourceInfo> {
        let spec = &crd["spec"];
        let group = spec["group"].as_str().unwrap_or_default().to_string();
        let names = &spec["names"];
        let plural = names["plural"].as_str().unwrap_or_default().to_string();
        let kind = names["kind"].as_str().unwrap_or_default().to_string();
        let singular = names["singular"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| kind.to_lowercase());
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let namespaced = spec["scope"].as_str() != Some("Cluster");
        let crd_name = crd["metadata"]["name"].as_str().map(str::to_string);
        let mut out = Vec::new();
        for v in spec["versions"].as_array().into_iter().flatten() {
            if v["served"].as_bool() == Some(false) {
                continue;
            }
            out.push(ResourceInfo {
                group: group.clone(),
                version: v["name"].as_str().unwrap_or_default().to_string(),
                resource: plural.clone(),
                singular: singular.clone(),
                kind: kind.clone(),
                namespaced,
                short_names: strings(&names["shortNames"]),
                categories: strings(&names["categories"]),
                has_status: v["subresources"]["status"].is_object(),
                scale: v["subresources"]["scale"].is_object(),
                has_generation: true,
                crd: crd_name.clone(),
                schema: v["schema"]["openAPIV3Schema"]
                    .as_object()
                    .map(|_| v["schema"]["openAPIV3Schema"].clone()),
            });
        }
        out
    }
}

/// (group, version, resource, kind, namespaced, short names, has /status)
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    bool,
);

const BUILTINS: &[Row] = &[
    ("", "v1", "namespaces", "Namespace", false, &["ns"], true),
    ("", "v1", "configmaps", "ConfigMap", true, &["cm"], false),
    ("", "v1", "secrets", "Secret", true, &[], false),
    ("", "v1", "services", "Service", true, &["svc"], true),
    (
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        true,
        &["sa"],
        false,
    ),
    (
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
        &["pvc"],
        true,
    ),
    (
        "",
        "v1",
        "persistentvolumes",
        "PersistentVolume",
        false,
        &["pv"],
        true,
    ),
    ("", "v1", "pods", "Pod", true, &["po"], true),
    // Served (kubectl's default `apply --prune` allowlist names it) but run
    // by no simulated controller.
    (
        "",
        "v1",
        "replicationcontrollers",
        "ReplicationController",
        true,
        &["rc"],
        true,
    ),
    ("", "v1", "events", "Event", true, &["ev"], false),
    (
        "",
        "v1",
        "resourcequotas",
        "ResourceQuota",
        true,
        &["quota"],
        true,
    ),
    (
        "",
        "v1",
        "limitranges",
        "LimitRange",
        true,
        &["limits"],
        false,
    ),
    ("", "v1", "endpoints", "Endpoints", true, &["ep"], false),
    ("", "v1", "nodes", "Node", false, &["no"], true),
    (
        "apps",
        "v1",
        "deployments",
        "Deployment",
        true,
        &["deploy"],
        true,
    ),
    (
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        true,
        &["sts"],
        true,
    ),
    ("apps", "v1", "daemonsets", "DaemonSet", true, &["ds"], true),
    (
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        true,
        &["rs"],
        true,
    ),
    (
        "apps",
        "v1",
        "controllerrevisions",
        "ControllerRevision",
        true,
        &[],
        false,
    ),
    ("batch", "v1", "jobs", "Job", true, &[], true),
    ("batch", "v1", "cronjobs", "CronJob", true, &["cj"], true),
    (
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        true,
        &["netpol"],
        false,
    ),
    (
        "networking.k8s.io",
        "v1",
        "ingresses",
        "Ingress",
        true,
        &["ing"],
        true,
    ),
    (
        "networking.k8s.io",
        "v1",
        "ingressclasses",
        "IngressClass",
        false,
        &[],
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "Role",
        true,
        &[],
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
        true,
        &[],
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "ClusterRole",
        false,
        &[],
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        &[],
        false,
    ),
    (
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
        &["pdb"],
        true,
    ),
    (
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        true,
        &["hpa"],
        true,
    ),
    // Served as v1 too (`kubectl autoscale`), stored as v2: see conversion.rs.
    // v2 first, as the API server prefers it.
    (
        "autoscaling",
        "v1",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        true,
        &["hpa"],
        true,
    ),
    (
        "coordination.k8s.io",
        "v1",
        "leases",
        "Lease",
        true,
        &[],
        false,
    ),
    (
        "storage.k8s.io",
        "v1",
        "storageclasses",
        "StorageClass",
        false,
        &["sc"],
        false,
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
        true,
    ),
];

/// The built-in resources, in discovery order.
pub fn builtins() -> Vec<ResourceInfo> {
    BUILTINS
        .iter()
        .map(
            |&(group, version, resource, kind, namespaced, short, has_status)| {
                let categories = match resource {
                    "pods"
                    | "replicationcontrollers"
                    | "services"
                    | "deployments"
                    | "statefulsets"
                    | "daemonsets"
                    | "replicasets"
                    | "jobs"
                    | "cronjobs"
                    | "horizontalpodautoscalers" => {
                        vec!["all".to_string()]
                    }
                    _ => vec![],
                };
                ResourceInfo {
                    group: group.into(),
                    version: version.into(),
                    resource: resource.into(),
                    singular: kind.to_lowercase(),
                    kind: kind.into(),
                    namespaced,
                    short_names: short.iter().map(|s| s.to_string()).collect(),
                    categories,
                    has_status,
                    // Kinds with a spec/status split keep a generation; plain data
                    // kinds (ConfigMap, Secret, RBAC...) do not, as in Kubernetes.
                    has_generation: has_status && resource != "namespaces" && resource != "nodes",
                    crd: None,
                    schema: None,
                    scale: false,
                }
            },
        )
        .collect()
}

/// All resources currently served: built-ins plus those of established CRDs.
#[derive(Debug, Clone)]
pub struct Registry {
    resources: Vec<ResourceInfo>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            resources: builtins(),
        }
    }
}

impl Registry {
    pub fn all(&self) -> &[ResourceInfo] {
        &self.resources
    }

    pub fn find(&self, group: &str, version: &str, resource: &str) -> Option<&ResourceInfo> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.resource == resource)
    }

    /// Finds by kind; used to resolve owner references and apply bodies.
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceInfo> {
        self.resources
            .iter()
            .find(|r| r.api_version() == api_version && r.kind == kind)
    }

    /// Distinct (group, resource) pairs; storage is per group-resource.
    pub fn group_resources(&self) -> Vec<&ResourceInfo> {
        let mut seen = std::collections::BTreeSet::new();
        self.resources
            .iter()
            .filter(|r| seen.insert((r.group.clone(), r.resource.clone())))
            .collect()
    }

    /// Group names with their versions, in registration order (core group first).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for r in &self.resources {
            match out.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) => {
                    if !versions.contains(&r.version) {
                        versions.push(r.version.clone())
                    }
                }
                None => out.push((r.group.clone(), vec![r.version.clone()])),
            }
        }
        out
    }

    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<&ResourceInfo> {
        self.resources
            .iter()
            .filter(|r| r.group == group && r.version == version)
            .collect()
    }

    /// Replaces the resources contributed by one CRD.
    pub fn set_crd(&mut self, crd_name: &str, infos: Vec<ResourceInfo>) {
        self.resources
            .retain(|r| r.crd.as_deref() != Some(crd_name));
        self.resources.extend(infos);
    }
}
