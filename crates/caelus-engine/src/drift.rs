//! Drift: does a live object still hold what Caelus applied?
//!
//! The comparison is pure ([`drifted_fields`]): only fields Caelus set are
//! looked at, so defaults and fields other controllers own never count.
//! Live objects come from one label-selected watch per kind, shared by every
//! deployment and started on first use, so a quiet resync reads from memory
//! and sends nothing to the API server. A kind whose cache is not ready yet
//! is read with GET, and a suspected drift is confirmed with GET before it is
//! reported (the cache may trail our own last apply).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::health::object_health;
use base64::Engine as _;
use caelus_core::status::ObjectHealth;
use futures::StreamExt;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Engine;
use crate::error::Result;
use crate::object::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, ObjectRef};
use crate::resolve::Resolved;

/// One object that no longer matches what Caelus applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    pub object: ObjectRef,
    /// The object is gone.
    pub missing: bool,
    /// Dotted paths of fields Caelus set that were changed or removed.
    pub fields: Vec<String>,
}

/// Metadata the API server owns; never compared.
const SERVER_METADATA: &[&str] = &[
    "resourceVersion",
    "uid",
    "managedFields",
    "creationTimestamp",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Path segments under which strings are resource quantities (`500m` is
/// `0.5`, `1Gi` is `1024Mi`): the API server may print them canonically.
const QUANTITY_PARENTS: &[&str] = &[
    "requests",
    "limits",
    "hard",
    "capacity",
    "overhead",
    "default",
    "defaultRequest",
    "max",
    "min",
    "maxLimitRequestRatio",
];

/// Paths of every field set in `applied` whose value in `live` differs or
/// is gone. Lists of objects with a `name` are matched by name
/// (`containers[name=app].image`), other lists by index (`ports[0].port`);
/// lists of scalars are compared whole. `status` and server-owned metadata
/// are ignored.
pub fn drifted_fields(applied: &Value, live: &Value) -> Vec<String> {
    let applied = secret_string_data_as_data(applied);
    let mut out = Vec::new();
    let Some(fields) = applied.as_object() else {
        return out;
    };
    for (key, value) in fields {
        match key.as_str() {
            "status" => {}
            "metadata" => {
                let Some(meta) = value.as_object() else {
                    continue;
                };
                for (k, v) in meta {
                    if !SERVER_METADATA.contains(&k.as_str()) {
                        walk(
                            &join("metadata", k),
                            k,
                            v,
                            live["metadata"].get(k),
                            &mut out,
                        );
                    }
                }
            }
            _ => walk(key, key, value, live.get(key), &mut out),
        }
    }
    out
}

fn join(path: &str, key: &str) -> String {
    if key.contains('.') || key.contains('/') {
        format!("{path}[\"{key}\"]")
    } else {
        format!("{path}.{key}")
    }
}

/// The zero values Go's `omitempty` drops: applying them and finding
/// nothing is not drift.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
    }
}

fn walk(path: &str, key: &str, applied: &Value, live: Option<&Value>, out: &mut Vec<String>) {
    let live = live.filter(|l| !l.is_null());
    match (applied, live) {
        // `null` in an apply means "not set by me": nothing to compare.
        (Value::Null, _) => {}
        (a, None) if is_zero(a) => {}
        (_, None) => out.push(path.to_string()),
        (Value::Object(a), Some(Value::Object(l))) => {
            for (k, v) in a {
                walk(&join(path, k), k, v, l.get(k), out);
            }
        }
        (Value::Array(a), Some(Value::Array(l))) => compare_lists(path, a, l, out),
        (a, Some(l)) => {
            if !scalar_eq(a, l, holds_quantity(path, key)) {
                out.push(path.to_string());
            }
        }
    }
}

fn element_name(v: &Value) -> Option<&str> {
    v.get("name")?.as_str()
}

fn compare_lists(path: &str, applied: &[Value], live: &[Value], out: &mut Vec<String>) {
    let by_name = !applied.is_empty()
        && applied
            .iter()
            .all(|e| e.is_object() && element_name(e).is_some());
    if by_name {
        for a in applied {
            let name = element_name(a).unwrap_or_default();
            let here = format!("{path}[name={name}]");
            match live.iter().find(|l| element_name(l) == Some(name)) {
                Some(l) => walk(&here, "", a, Some(l), out),
                None => out.push(here),
            }
        }
    } else if applied.iter().all(Value::is_object) {
        for (i, a) in applied.iter().enumerate() {
            walk(&format!("{path}[{i}]"), "", a, live.get(i), out);
        }
    } else if applied.len() != live.len()
        || applied
            .iter()
            .zip(live)
            .any(|(a, l)| !scalar_eq(a, l, false))
    {
        // Lists of scalars (args, finalizers) are atomic: one value.
        out.push(path.to_string());
    }
}

/// Whether the field at `path` holds a resource quantity.
fn holds_quantity(path: &str, key: &str) -> bool {
    key == "sizeLimit"
        || path
            .split(['.', '['])
            .any(|segment| QUANTITY_PARENTS.contains(&segment))
}

fn scalar_eq(a: &Value, l: &Value, quantities: bool) -> bool {
    if a == l {
        return true;
    }
    if let (Some(x), Some(y)) = (a.as_f64(), l.as_f64()) {
        return x == y;
    }
    if !quantities {
        return false;
    }
    // `cpu: 1` (a YAML number) is stored as "1", "0.5" as "500m".
    match (quantity(a), quantity(l)) {
        (Some(x), Some(y)) => (x - y).abs() <= f64::EPSILON * x.abs().max(y.abs()).max(1.0),
        _ => false,
    }
}

/// A resource quantity as a number, if `v` is one (`1`, `"250m"`, `"1Gi"`, `"1e3"`).
fn quantity(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_quantity(s),
        _ => None,
    }
}

fn parse_quantity(s: &str) -> Option<f64> {
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let s = s.trim();
    for (suffix, factor) in SUFFIXES {
        if let Some(number) = s.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    s.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// `stringData` is write-only: the server folds it into `data` (base64).
fn secret_string_data_as_data(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if obj["kind"] != "Secret" || obj["apiVersion"] != "v1" {
        return obj;
    }
    let Some(Value::Object(string_data)) = obj.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return obj;
    };
    if !obj["data"].is_object() {
        obj["data"] = Value::Object(Map::new());
    }
    for (k, v) in string_data {
        let text = v.as_str().unwrap_or_default();
        obj["data"][k] = Value::String(base64::engine::general_purpose::STANDARD.encode(text));
    }
    obj
}

/// What a look at the live objects found: drift, and each object's health.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveState {
    pub drifts: Vec<Drift>,
    pub health: Vec<ObjectHealth>,
}

impl Engine {
    /// Compares the live state of `applied_objects` (as last applied, in
    /// `namespace`) with what was applied. Reads come from the shared watch
    /// caches; a GET is only made for kinds whose cache is not ready and to
    /// confirm a suspected drift. Never writes.
    pub async fn detect_drift(
        &self,
        namespace: &str,
        applied_objects: &[Value],
    ) -> Result<Vec<Drift>> {
        Ok(self.inspect_live(namespace, applied_objects).await?.drifts)
    }

    /// [`Engine::detect_drift`] plus the health of every object, from the same
    /// reads: a resync learns both without extra requests. Never writes.
    pub async fn inspect_live(
        &self,
        namespace: &str,
        applied_objects: &[Value],
    ) -> Result<LiveState> {
        let mut drifts = Vec::new();
        let mut health = Vec::with_capacity(applied_objects.len());
        for obj in applied_objects {
            let p = self.prepare(namespace, obj).await?;
            let t = &p.target;
            let cached = self
                .inner
                .watches
                .get(&t.kind, t.oref.namespace.as_deref(), &t.oref.name);
            let live = match cached {
                Cached::Present(live) if drifted_fields(&p.body, &live).is_empty() => Some(live),
                // Suspected drift, or nothing cached yet: confirm with the API server.
                _ => self.get(t).await?,
            };
            match live {
                None => {
                    drifts.push(Drift {
                        object: t.oref.clone(),
                        missing: true,
                        fields: Vec::new(),
                    });
                    health.push(crate::health::missing(&t.oref.kind, &t.oref.name));
                }
                Some(live) => {
                    let fields = drifted_fields(&p.body, &live);
                    if !fields.is_empty() {
                        drifts.push(Drift {
                            object: t.oref.clone(),
                            missing: false,
                            fields,
                        });
                    }
                    health.push(object_health(&live));
                }
            }
        }
        Ok(LiveState { drifts, health })
    }
}

/// What the watch cache knows about one object.
pub(crate) enum Cached {
    /// The kind's cache has not finished its first list (or lost its watch).
    NotReady,
    Absent,
    Present(Value),
}

/// The label-selected watches, one per kind, shared by all deployments.
pub(crate) struct Watches {
    client: Client,
    kinds: Mutex<HashMap<Resolved, Arc<KindWatch>>>,
}

struct KindWatch {
    store: Store<DynamicObject>,
    ready: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KindWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Watches {
    pub fn new(client: Client) -> Self {
        Watches {
            client,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    /// The live object from the kind's cache, starting the kind's watch on
    /// first use.
    pub fn get(&self, kind: &Resolved, namespace: Option<&str>, name: &str) -> Cached {
        let watch = self.watch(kind);
        if !watch.ready.load(Ordering::Acquire) {
            return Cached::NotReady;
        }
        let mut key = reflector::ObjectRef::new_with(name, kind.ar.clone());
        if let (true, Some(ns)) = (kind.namespaced, namespace) {
            key = key.within(ns);
        }
        match watch.store.get(&key) {
            Some(obj) => serde_json::to_value(&*obj).map_or(Cached::NotReady, Cached::Present),
            None => Cached::Absent,
        }
    }

    fn watch(&self, kind: &Resolved) -> Arc<KindWatch> {
        let mut kinds = self.kinds.lock().expect("watches lock");
        kinds
            .entry(kind.clone())
            .or_insert_with(|| Arc::new(self.start(kind)))
            .clone()
    }

    fn start(&self, kind: &Resolved) -> KindWatch {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &kind.ar);
        let writer = reflector::store::Writer::new(kind.ar.clone());
        let store = writer.as_reader();
        let ready = Arc::new(AtomicBool::new(false));
        let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}");
        let stream = watcher(api, watcher::Config::default().labels(&selector))
            .default_backoff()
            // Managed fields are most of an object's size and never compared.
            .modify(|o: &mut DynamicObject| o.metadata.managed_fields = None)
            .reflect(writer);
        let flag = ready.clone();
        let kind_name = kind.ar.kind.clone();
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(watcher::Event::InitDone)
                    | Ok(watcher::Event::Apply(_))
                    | Ok(watcher::Event::Delete(_)) => flag.store(true, Ordering::Release),
                    Ok(_) => {}
                    Err(e) => {
                        // Until the watch is back, reads go to the API server.
                        flag.store(false, Ordering::Release);
                        tracing::debug!(kind = %kind_name, error = %e, "drift watch interrupted");
                    }
                }
            }
        });
        KindWatch { store, ready, task }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "d-1",
                         "labels": {"app.kubernetes.io/managed-by": "caelus", "tier": "front"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [
                        {"name": "app", "image": "nginx:1.27", "args": ["-g", "daemon off;"],
                         "ports": [{"containerPort": 80}],
                         "resources": {"requests": {"cpu": "0.5", "memory": "1Gi"}}},
                        {"name": "sidecar", "image": "busybox"}
                    ]}
                }
            }
        })
    }

    /// What the server returns for `deployment()`: defaults, server
    /// metadata, status, canonical quantities, other managers' fields.
    fn live() -> Value {
        let mut l = deployment();
        l["metadata"]["uid"] = json!("u-1");
        l["metadata"]["resourceVersion"] = json!("42");
        l["metadata"]["generation"] = json!(3);
        l["metadata"]["creationTimestamp"] = json!("2025-01-01T00:00:00Z");
        l["metadata"]["managedFields"] = json!([{"manager": "caelus"}]);
        l["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "1"});
        l["spec"]["strategy"] = json!({"type": "RollingUpdate"});
        l["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] =
            json!("500m");
        l["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
        l["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] = json!("TCP");
        l["status"] = json!({"replicas": 2});
        l
    }

    #[test]
    fn an_untouched_object_with_server_defaults_has_no_drift() {
        assert_eq!(drifted_fields(&deployment(), &live()), Vec::<String>::new());
    }

    #[test]
    fn a_changed_field_is_named_by_its_path() {
        let mut l = live();
        l["spec"]["replicas"] = json!(5);
        l["spec"]["template"]["spec"]["containers"][1]["image"] = json!("busybox:evil");
        assert_eq!(
            drifted_fields(&deployment(), &l),
            vec![
                "spec.replicas",
                "spec.template.spec.containers[name=sidecar].image"
            ]
        );
    }

    #[test]
    fn containers_are_matched_by_name_not_position() {
        let mut l = live();
        let mut cs = l["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .clone();
        cs.reverse();
        l["spec"]["template"]["spec"]["containers"] = json!(cs);
        assert!(drifted_fields(&deployment(), &l).is_empty());
        cs.retain(|c| c["name"] != "sidecar");
        l["spec"]["template"]["spec"]["containers"] = json!(cs);
        assert_eq!(
            drifted_fields(&deployment(), &l),
            vec!["spec.template.spec.containers[name=sidecar]"]
        );
    }

    #[test]
    fn removed_labels_and_fields_count_and_label_keys_are_quoted() {
        let mut l = live();
        l["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("app.kubernetes.io/managed-by");
        l["spec"]["template"]["spec"]["containers"][0]["resources"] = json!({});
        assert_eq!(
            drifted_fields(&deployment(), &l),
            vec![
                "metadata.labels[\"app.kubernetes.io/managed-by\"]",
                "spec.template.spec.containers[name=app].resources.requests",
            ]
        );
    }

    #[test]
    fn lists_without_names_compare_by_index_and_scalar_lists_whole() {
        let mut l = live();
        l["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(8080);
        l["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["-g"]);
        assert_eq!(
            drifted_fields(&deployment(), &l),
            vec![
                "spec.template.spec.containers[name=app].args",
                "spec.template.spec.containers[name=app].ports[0].containerPort",
            ]
        );
    }

    #[test]
    fn fields_added_by_others_are_not_drift() {
        let mut l = live();
        l["metadata"]["labels"]["added-by-someone"] = json!("x");
        l["spec"]["template"]["spec"]["containers"][0]["env"] =
            json!([{"name": "X", "value": "1"}]);
        assert!(drifted_fields(&deployment(), &l).is_empty());
    }

    #[test]
    fn status_and_server_metadata_in_the_applied_object_are_ignored() {
        let mut a = deployment();
        a["status"] = json!({"replicas": 9});
        a["metadata"]["resourceVersion"] = json!("1");
        assert!(drifted_fields(&a, &live()).is_empty());
    }

    #[test]
    fn zero_values_the_server_omits_are_not_drift() {
        let mut a = deployment();
        a["spec"]["template"]["spec"]["hostNetwork"] = json!(false);
        a["spec"]["template"]["spec"]["volumes"] = json!([]);
        a["spec"]["template"]["spec"]["containers"][0]["workingDir"] = json!("");
        a["spec"]["paused"] = Value::Null;
        assert!(drifted_fields(&a, &live()).is_empty());
    }

    #[test]
    fn quantities_compare_by_value() {
        assert_eq!(parse_quantity("500m"), Some(0.5));
        assert_eq!(parse_quantity("1Gi"), Some(1_073_741_824.0));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("abc"), None);
        let cm = |v: Value| json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"}, "spec": {"hard": {"cpu": v}}});
        assert!(drifted_fields(&cm(json!(2)), &cm(json!("2"))).is_empty());
        assert!(drifted_fields(&cm(json!("2000m")), &cm(json!("2"))).is_empty());
        assert_eq!(
            drifted_fields(&cm(json!("2")), &cm(json!("3"))),
            vec!["spec.hard.cpu"]
        );
        // Elsewhere strings are just strings: an image tag "1.0" is not "1".
        let tag = |t: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"tag": t}});
        assert_eq!(drifted_fields(&tag("1.0"), &tag("1")), vec!["data.tag"]);
    }

    #[test]
    fn secret_string_data_is_compared_as_the_data_it_becomes() {
        let applied = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                             "stringData": {"password": "hunter2"}});
        let live = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                          "data": {"password": "aHVudGVyMg=="}});
        assert!(drifted_fields(&applied, &live).is_empty());
        let edited = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                            "data": {"password": "b3RoZXI="}});
        assert_eq!(drifted_fields(&applied, &edited), vec!["data.password"]);
    }
}
