//! Turning Helm's raw render output (one text per template file) into the
//! objects Caelus applies: split multi-document YAML, drop NOTES.txt,
//! partials and empty documents, separate hooks, label everything, sort in
//! Helm's install order and hash the result. Pure functions, no FFI.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::error::HelmError;
use crate::order::sort_in_install_order;

/// Label put on every rendered object.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "caelus";
/// Label naming the Caelus deployment an object belongs to.
pub const DEPLOYMENT_UID_LABEL: &str = "caelus.io/deployment-uid";

pub const HOOK_ANNOTATION: &str = "helm.sh/hook";
pub const HOOK_WEIGHT_ANNOTATION: &str = "helm.sh/hook-weight";
pub const HOOK_DELETE_POLICY_ANNOTATION: &str = "helm.sh/hook-delete-policy";

/// Whether a render is for a first install or an upgrade; Helm exposes it
/// to templates as `.Release.IsInstall` / `.Release.IsUpgrade`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevisionKind {
    Install,
    Upgrade,
}

/// What to render.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderRequest {
    /// User values (merged over the chart's defaults by Helm).
    pub values: Value,
    pub release_name: String,
    pub namespace: String,
    /// Helm's `.Release.Revision` (1 for the first install).
    pub revision: u32,
    pub kind: RevisionKind,
    /// `.Capabilities.KubeVersion`, e.g. `v1.32.0`; Helm's default if unset.
    pub kube_version: Option<String>,
    /// Written into the `caelus.io/deployment-uid` label of every object.
    pub deployment_uid: String,
    /// Where Helm's `lookup` reads from. `None` (the default): no cluster,
    /// every lookup is empty, as in `helm template`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup: Option<LookupCluster>,
}

/// A cluster for Helm's `lookup`: a kubeconfig whose credentials can read
/// only what the render may see (Caelus gives it a namespace-scoped,
/// read-only endpoint; see `caelus_engine::lookup`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupCluster {
    /// The kubeconfig document (YAML or JSON).
    pub kubeconfig: String,
}

impl fmt::Debug for LookupCluster {
    // The kubeconfig may carry a credential: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LookupCluster { .. }")
    }
}

impl RenderRequest {
    /// Revision `revision` of a release: the first revision installs, later ones upgrade.
    pub fn for_revision(
        values: Value,
        release_name: &str,
        namespace: &str,
        revision: i64,
        deployment_uid: &str,
    ) -> RenderRequest {
        RenderRequest {
            values,
            release_name: release_name.to_string(),
            namespace: namespace.to_string(),
            revision: revision.clamp(1, i64::from(u32::MAX)) as u32,
            kind: if revision <= 1 {
                RevisionKind::Install
            } else {
                RevisionKind::Upgrade
            },
            kube_version: None,
            deployment_uid: deployment_uid.to_string(),
            lookup: None,
        }
    }
}

/// Helm hook events (`helm.sh/hook`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookEvent {
    PreInstall,
    PostInstall,
    PreDelete,
    PostDelete,
    PreUpgrade,
    PostUpgrade,
    PreRollback,
    PostRollback,
    /// `test` (and its old alias `test-success`): run by `helm test` only.
    Test,
}

impl HookEvent {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pre-install" => Self::PreInstall,
            "post-install" => Self::PostInstall,
            "pre-delete" => Self::PreDelete,
            "post-delete" => Self::PostDelete,
            "pre-upgrade" => Self::PreUpgrade,
            "post-upgrade" => Self::PostUpgrade,
            "pre-rollback" => Self::PreRollback,
            "post-rollback" => Self::PostRollback,
            "test" | "test-success" => Self::Test,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PreInstall => "pre-install",
            Self::PostInstall => "post-install",
            Self::PreDelete => "pre-delete",
            Self::PostDelete => "post-delete",
            Self::PreUpgrade => "pre-upgrade",
            Self::PostUpgrade => "post-upgrade",
            Self::PreRollback => "pre-rollback",
            Self::PostRollback => "post-rollback",
            Self::Test => "test",
        }
    }
}

impl fmt::Display for HookEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `helm.sh/hook-delete-policy` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookDeletePolicy {
    /// Delete the previous instance before creating the hook (Helm's default).
    BeforeHookCreation,
    HookSucceeded,
    HookFailed,
}

impl HookDeletePolicy {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "before-hook-creation" => Self::BeforeHookCreation,
            "hook-succeeded" => Self::HookSucceeded,
            "hook-failed" => Self::HookFailed,
            _ => return None,
        })
    }
}

/// A hook object with its parsed annotations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hook {
    pub kind: String,
    pub name: String,
    /// Template file that produced it, e.g. `hooks/templates/pre-install.yaml`.
    pub template: String,
    pub events: Vec<HookEvent>,
    /// `helm.sh/hook-weight` (0 when absent or not an integer, as in Helm).
    pub weight: i32,
    /// Never empty: `before-hook-creation` when the chart names none.
    pub delete_policies: Vec<HookDeletePolicy>,
    pub object: Value,
}

/// The result of one render.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rendered {
    /// Ordinary objects, in Helm's install order.
    pub objects: Vec<Value>,
    /// Hooks, ordered by kind then by (weight, name) as Helm runs them.
    pub hooks: Vec<Hook>,
    /// The chart's CRDs (`crds/` of the chart and its subcharts).
    pub crds: Vec<Value>,
    /// The top-level chart's rendered NOTES.txt, if any.
    pub notes: Option<String>,
    /// `sha256:<hex>` of the canonical JSON of CRDs, objects and hooks.
    pub manifest_hash: String,
}

impl Rendered {
    /// Hooks that run on `event`, in execution order.
    pub fn hooks_for(&self, event: HookEvent) -> impl Iterator<Item = &Hook> {
        self.hooks.iter().filter(move |h| h.events.contains(&event))
    }

    /// Everything as one multi-document YAML stream (CRDs, objects, hooks),
    /// what `caelus template render` prints.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        let docs = self
            .crds
            .iter()
            .chain(self.objects.iter())
            .chain(self.hooks.iter().map(|h| &h.object));
        for doc in docs {
            out.push_str("---\n");
            // Serialising a JSON value to YAML cannot fail.
            out.push_str(&yaml_serde::to_string(doc).unwrap_or_default());
        }
        out
    }
}

/// One YAML document split out of a template, before classification.
struct Document {
    template: String,
    object: Map<String, Value>,
}

/// Assemble a [`Rendered`] from Helm's per-template output and the chart's
/// CRD files (`(filename, yaml)` pairs).
pub fn assemble(
    chart_name: &str,
    templates: &BTreeMap<String, String>,
    crd_files: &[(String, String)],
    deployment_uid: &str,
) -> Result<Rendered, HelmError> {
    let notes_path = format!("{chart_name}/templates/NOTES.txt");
    let mut notes = None;
    let mut documents = Vec::new();
    // BTreeMap: template paths in sorted order, so output is deterministic.
    for (path, text) in templates {
        if path.ends_with("NOTES.txt") {
            // Only the top-level chart's notes are shown, as in Helm.
            if *path == notes_path && !text.trim().is_empty() {
                notes = Some(text.clone());
            }
            continue;
        }
        let base = path.rsplit('/').next().unwrap_or(path);
        if base.starts_with('_') {
            continue; // partials (helpers) render nothing useful
        }
        documents.extend(split_documents(path, text)?);
    }

    let mut objects = Vec::new();
    let mut hooks = Vec::new();
    for mut doc in documents {
        label(&mut doc.object, deployment_uid);
        match hook_of(&doc)? {
            HookClass::NotAHook => objects.push(Value::Object(doc.object)),
            HookClass::Hook(h) => hooks.push(h),
            HookClass::UnknownEvents(events) => {
                // Helm skips objects whose hook annotation it does not know.
                tracing::info!(template = %doc.template, %events, "skipping unknown hook");
            }
        }
    }
    sort_in_install_order(&mut objects, |o| kind_of(o));
    sort_in_install_order(&mut hooks, |h| &h.kind);
    // Helm runs hooks by weight, then name; stable so kind order breaks ties.
    hooks.sort_by(|a, b| a.weight.cmp(&b.weight).then_with(|| a.name.cmp(&b.name)));

    let mut crds = Vec::new();
    for (file, text) in crd_files {
        for mut doc in split_documents(file, text)? {
            label(&mut doc.object, deployment_uid);
            crds.push(Value::Object(doc.object));
        }
    }

    let manifest_hash = manifest_hash(&crds, &objects, &hooks);
    Ok(Rendered {
        objects,
        hooks,
        crds,
        notes,
        manifest_hash,
    })
}

/// Split a template's text into YAML documents, dropping empty ones.
fn split_documents(template: &str, text: &str) -> Result<Vec<Document>, HelmError> {
    let bad = |message: String| HelmError::BadManifest {
        template: template.to_string(),
        message,
    };
    let mut out = Vec::new();
    if text.trim().is_empty() {
        return Ok(out);
    }
    for de in yaml_serde::Deserializer::from_str(text) {
        let value = Value::deserialize(de).map_err(|e| bad(e.to_string()))?;
        match value {
            Value::Null => continue, // empty document or comments only
            Value::Object(object) => {
                if object.is_empty() {
                    continue;
                }
                for field in ["apiVersion", "kind"] {
                    let text = object.get(field).and_then(Value::as_str);
                    if text.is_none_or(str::is_empty) {
                        return Err(bad(format!("object has no {field}")));
                    }
                }
                out.push(Document {
                    template: template.to_string(),
                    object,
                });
            }
            other => {
                return Err(bad(format!(
                    "expected a Kubernetes object, found {}",
                    json_type(&other)
                )));
            }
        }
    }
    Ok(out)
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Add Caelus's labels to `metadata.labels` (creating it if needed).
fn label(object: &mut Map<String, Value>, deployment_uid: &str) {
    let metadata = object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !metadata.is_object() {
        *metadata = Value::Object(Map::new());
    }
    let metadata = metadata.as_object_mut().expect("metadata is an object");
    let labels = metadata
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()));
    if !labels.is_object() {
        *labels = Value::Object(Map::new());
    }
    let labels = labels.as_object_mut().expect("labels is an object");
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into());
    // A uid the chart set itself is kept, so that the policy check sees
    // (and refuses) a chart claiming another deployment's objects.
    labels
        .entry(DEPLOYMENT_UID_LABEL)
        .or_insert_with(|| deployment_uid.into());
}

/// `kind` of a rendered object ("" when absent).
pub fn kind_of(object: &Value) -> &str {
    object.get("kind").and_then(Value::as_str).unwrap_or("")
}

/// `metadata.name` of a rendered object ("" when absent).
pub fn name_of(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

enum HookClass {
    NotAHook,
    Hook(Hook),
    UnknownEvents(String),
}

fn annotation<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object
        .get("metadata")?
        .get("annotations")?
        .get(key)?
        .as_str()
}

fn hook_of(doc: &Document) -> Result<HookClass, HelmError> {
    let Some(events_text) = annotation(&doc.object, HOOK_ANNOTATION) else {
        return Ok(HookClass::NotAHook);
    };
    let mut events = Vec::new();
    for e in events_text.split(',') {
        match HookEvent::parse(&e.trim().to_ascii_lowercase()) {
            Some(ev) if !events.contains(&ev) => events.push(ev),
            Some(_) => {}
            None => return Ok(HookClass::UnknownEvents(events_text.to_string())),
        }
    }
    let weight = annotation(&doc.object, HOOK_WEIGHT_ANNOTATION)
        .and_then(|w| w.trim().parse::<i32>().ok())
        .unwrap_or(0);
    let mut delete_policies = Vec::new();
    if let Some(text) = annotation(&doc.object, HOOK_DELETE_POLICY_ANNOTATION) {
        for p in text.split(',') {
            match HookDeletePolicy::parse(&p.trim().to_ascii_lowercase()) {
                Some(p) if !delete_policies.contains(&p) => delete_policies.push(p),
                Some(_) => {}
                None => {
                    tracing::info!(template = %doc.template, policy = p, "ignoring unknown hook delete policy")
                }
            }
        }
    }
    if delete_policies.is_empty() {
        delete_policies.push(HookDeletePolicy::BeforeHookCreation);
    }
    let object = Value::Object(doc.object.clone());
    Ok(HookClass::Hook(Hook {
        kind: kind_of(&object).to_string(),
        name: name_of(&object).to_string(),
        template: doc.template.clone(),
        events,
        weight,
        delete_policies,
        object,
    }))
}

/// JSON with object keys sorted at every level and no whitespace, so equal
/// values always serialise to equal bytes (whatever map order serde_json
/// was built with).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// `sha256:<hex>` of a value's canonical JSON.
pub fn value_hash(value: &Value) -> String {
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(canonical_json(value)))
    )
}

/// The manifest hash: each CRD, object and hook as canonical JSON, one per
/// line, with a section marker so moving an object between sections changes
/// the hash.
fn manifest_hash(crds: &[Value], objects: &[Value], hooks: &[Hook]) -> String {
    let mut h = Sha256::new();
    let mut feed = |section: &str, v: &Value| {
        h.update(section.as_bytes());
        h.update(canonical_json(v).as_bytes());
        h.update(b"\n");
    };
    crds.iter().for_each(|v| feed("crd ", v));
    objects.iter().for_each(|v| feed("object ", v));
    hooks.iter().for_each(|hk| feed("hook ", &hk.object));
    format!("sha256:{}", hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn templates(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn splits_labels_sorts_and_drops_notes_partials_and_empties() {
        let t = templates(&[
            ("web/templates/NOTES.txt", "Thanks for installing"),
            ("web/templates/_helpers.tpl", ""),
            ("web/templates/empty.yaml", "\n# nothing here\n"),
            (
                "web/templates/app.yaml",
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n---\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  labels:\n    app.kubernetes.io/managed-by: Helm\n",
            ),
            (
                "web/templates/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: '1'}\n",
            ),
            ("web/charts/sub/templates/NOTES.txt", "sub notes"),
        ]);
        let r = assemble("web", &t, &[], "uid-1").unwrap();
        let kinds: Vec<&str> = r.objects.iter().map(kind_of).collect();
        assert_eq!(kinds, vec!["ConfigMap", "Service", "Deployment"]);
        assert_eq!(r.notes.as_deref(), Some("Thanks for installing"));
        for o in &r.objects {
            assert_eq!(o["metadata"]["labels"][MANAGED_BY_LABEL], "caelus");
            assert_eq!(o["metadata"]["labels"][DEPLOYMENT_UID_LABEL], "uid-1");
        }
        assert!(r.hooks.is_empty());
        assert!(r.manifest_hash.starts_with("sha256:"));
    }

    #[test]
    fn hooks_are_separated_with_weights_and_policies() {
        let hook = |name: &str, events: &str, weight: &str, policy: Option<&str>| {
            let mut s = format!(
                "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n  annotations:\n    helm.sh/hook: \"{events}\"\n    helm.sh/hook-weight: \"{weight}\"\n"
            );
            if let Some(p) = policy {
                s.push_str(&format!("    helm.sh/hook-delete-policy: {p}\n"));
            }
            s
        };
        let t = templates(&[
            (
                "h/templates/a.yaml",
                &hook("late", "post-install", "5", Some("hook-succeeded")),
            ),
            (
                "h/templates/b.yaml",
                &hook("early", "pre-install,pre-upgrade", "-5", None),
            ),
            ("h/templates/c.yaml", &hook("bad", "crd-install", "0", None)),
            (
                "h/templates/d.yaml",
                &hook(
                    "zero",
                    "pre-install",
                    "x",
                    Some("hook-succeeded,hook-failed"),
                ),
            ),
        ]);
        let r = assemble("h", &t, &[], "u").unwrap();
        assert!(r.objects.is_empty());
        let names: Vec<&str> = r.hooks.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, vec!["early", "zero", "late"]);
        let early = &r.hooks[0];
        assert_eq!(
            early.events,
            vec![HookEvent::PreInstall, HookEvent::PreUpgrade]
        );
        assert_eq!(early.weight, -5);
        assert_eq!(
            early.delete_policies,
            vec![HookDeletePolicy::BeforeHookCreation]
        );
        assert_eq!(r.hooks[1].weight, 0);
        assert_eq!(
            r.hooks[1].delete_policies,
            vec![
                HookDeletePolicy::HookSucceeded,
                HookDeletePolicy::HookFailed
            ]
        );
        assert_eq!(r.hooks_for(HookEvent::PreUpgrade).count(), 1);
        assert_eq!(
            r.hooks[2].object["metadata"]["labels"][MANAGED_BY_LABEL],
            "caelus"
        );
    }

    #[test]
    fn crds_are_parsed_and_labelled() {
        let crd = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\n";
        let r = assemble(
            "c",
            &BTreeMap::new(),
            &[("crds/w.yaml".into(), crd.into())],
            "u",
        )
        .unwrap();
        assert_eq!(r.crds.len(), 1);
        assert_eq!(r.crds[0]["metadata"]["labels"][DEPLOYMENT_UID_LABEL], "u");
    }

    #[test]
    fn bad_documents_name_the_template() {
        let t = templates(&[("x/templates/bad.yaml", "- just\n- a list\n")]);
        let e = assemble("x", &t, &[], "u").unwrap_err();
        assert!(e.to_string().contains("x/templates/bad.yaml"), "{e}");
        let t = templates(&[(
            "x/templates/nokind.yaml",
            "apiVersion: v1\nmetadata: {name: a}\n",
        )]);
        let e = assemble("x", &t, &[], "u").unwrap_err();
        assert!(e.to_string().contains("no kind"), "{e}");
    }

    #[test]
    fn hash_is_stable_and_sensitive() {
        let t1 = templates(&[(
            "a/templates/c.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: '1', b: '2'}\n",
        )]);
        let t2 = templates(&[(
            "a/templates/c.yaml",
            "apiVersion: v1\nkind: ConfigMap\ndata: {b: '2', a: '1'}\nmetadata: {name: c}\n",
        )]);
        let t3 = templates(&[(
            "a/templates/c.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: '1', b: '3'}\n",
        )]);
        let h = |t| assemble("a", t, &[], "u").unwrap().manifest_hash;
        assert_eq!(h(&t1), h(&t2));
        assert_ne!(h(&t1), h(&t3));
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let v = json!({"b": [ {"y": 1, "x": 2} ], "a": "s\"q"});
        assert_eq!(canonical_json(&v), r#"{"a":"s\"q","b":[{"x":2,"y":1}]}"#);
        assert_eq!(
            value_hash(&v),
            value_hash(&json!({"a": "s\"q", "b": [{"x": 2, "y": 1}]}))
        );
    }

    #[test]
    fn to_yaml_emits_all_documents() {
        let t = templates(&[(
            "a/templates/c.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
        )]);
        let y = assemble("a", &t, &[], "u").unwrap().to_yaml();
        assert!(y.starts_with("---\n"));
        assert!(y.contains("kind: ConfigMap"));
    }
}
