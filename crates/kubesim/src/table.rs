//! `meta.k8s.io/v1` `Table` answers, as the API server gives them to a client
//! that asks with `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`
//! (kubectl `get` does, so it prints the server's columns).
//!
//! Built-in kinds get the columns of kubectl's printers
//! (k8s.io/kubernetes pkg/printers/internalversion/printers.go); custom
//! resources get their CRD version's `additionalPrinterColumns`
//! (k8s.io/apiextensions-apiserver pkg/registry/customresource/tableconvertor);
//! other kinds get Name and Age.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::resources::ResourceInfo;

/// What a row's `object` holds (`?includeObject=`; the API server's default
/// is `Metadata`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

/// A client's request for a Table: which Table version and what each row carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableRequest {
    /// `meta.k8s.io/v1` or `meta.k8s.io/v1beta1`.
    pub api_version: &'static str,
    pub include: IncludeObject,
}

/// The Table the client's `Accept` asks for, if any: the first
/// `application/json;as=Table;g=meta.k8s.io;v=v1|v1beta1` range (the API
/// server takes the client's order; protobuf Tables are not served, so a
/// client listing one before a JSON Table gets the JSON one).
pub fn requested(accept: &str, include_object: Option<&str>) -> Option<TableRequest> {
    let api_version = accept.split(',').find_map(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        if media != "application/json" {
            return None;
        }
        let (mut as_, mut g, mut v) = ("", "", "");
        for p in parts {
            match p.split_once('=') {
                Some(("as", x)) => as_ = x,
                Some(("g", x)) => g = x,
                Some(("v", x)) => v = x,
                _ => {}
            }
        }
        match (as_, g, v) {
            ("Table", "meta.k8s.io", "v1") => Some("meta.k8s.io/v1"),
            ("Table", "meta.k8s.io", "v1beta1") => Some("meta.k8s.io/v1beta1"),
            _ => None,
        }
    })?;
    let include = match include_object {
        Some("None") => IncludeObject::None,
        Some("Object") => IncludeObject::Object,
        _ => IncludeObject::Metadata,
    };
    Some(TableRequest {
        api_version,
        include,
    })
}

/// How a column's cell is computed.
#[derive(Debug, Clone)]
enum Cell {
    Name,
    Age,
    /// A CRD column: a simple JSONPath with the column's type.
    Path(Vec<Step>, String),
    /// A built-in printer's cell, by column name.
    Builtin,
}

#[derive(Debug, Clone)]
struct Column {
    name: String,
    kind: String,
    format: String,
    description: String,
    priority: i64,
    cell: Cell,
}

fn col(name: &str, kind: &str, priority: i64, description: &str) -> Column {
    Column {
        name: name.into(),
        kind: kind.into(),
        format: String::new(),
        description: description.into(),
        priority,
        cell: Cell::Builtin,
    }
}

const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

fn name_col() -> Column {
    Column {
        format: "name".into(),
        cell: Cell::Name,
        ..col("Name", "string", 0, NAME_DOC)
    }
}

fn age_col() -> Column {
    Column {
        cell: Cell::Age,
        ..col("Age", "string", 0, AGE_DOC)
    }
}

/// The columns of a resource. `crd` is the CustomResourceDefinition serving
/// it, for custom resources.
fn columns(info: &ResourceInfo, crd: Option<&Value>) -> Vec<Column> {
    if info.crd.is_some() {
        return crd_columns(info, crd);
    }
    let b = |name: &str, kind: &str, priority: i64, doc: &str| col(name, kind, priority, doc);
    let containers = || {
        [
            b(
                "Containers",
                "string",
                1,
                "Names of each container in the template.",
            ),
            b(
                "Images",
                "string",
                1,
                "Images referenced by each container in the template.",
            ),
        ]
    };
    let selector = || b("Selector", "string", 1, "Label selector for pods.");
    let mut cols = vec![name_col()];
    match (info.group.as_str(), info.resource.as_str()) {
        ("", "pods") => cols.extend([
            b("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."),
            b("Status", "string", 0, "The aggregate status of the containers in this pod."),
            b("Restarts", "string", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
            age_col(),
            b("IP", "string", 1, "podIP address allocated to the pod."),
            b("Node", "string", 1, "NodeName indicates in which node this pod is scheduled."),
            b("Nominated Node", "string", 1, "nominatedNodeName is set only when this pod preempts other pods on the node."),
            b("Readiness Gates", "string", 1, "If specified, all readiness gates will be evaluated for pod readiness."),
        ]),
        ("apps", "deployments") => {
            cols.extend([
                b("Ready", "string", 0, "Number of the pod with ready state"),
                b("Up-to-date", "string", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
                b("Available", "string", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
                age_col(),
            ]);
            cols.extend(containers());
            cols.push(selector());
        }
        ("apps", "statefulsets") => {
            cols.extend([
                b("Ready", "string", 0, "Number of the pod with ready state"),
                age_col(),
            ]);
            cols.extend(containers());
        }
        ("apps", "replicasets") => {
            cols.extend([
                b("Desired", "integer", 0, "Replicas is the number of desired pods."),
                b("Current", "integer", 0, "Replicas is the most recently observed number of replicas."),
                b("Ready", "integer", 0, "The number of ready replicas for this replica set."),
                age_col(),
            ]);
            cols.extend(containers());
            cols.push(selector());
        }
        ("apps", "daemonsets") => {
            cols.extend([
                b("Desired", "integer", 0, "The total number of nodes that should be running the daemon pod."),
                b("Current", "integer", 0, "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
                b("Ready", "integer", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready."),
                b("Up-to-date", "integer", 0, "The total number of nodes that are running updated daemon pod"),
                b("Available", "integer", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available."),
                b("Node Selector", "string", 0, "NodeSelector is a selector which must be true for the pod to fit on a node."),
                age_col(),
            ]);
            cols.extend(containers());
            cols.push(selector());
        }
        ("batch", "jobs") => {
            cols.extend([
                b("Status", "string", 0, "Status of the job."),
                b("Completions", "string", 0, "The desired number of successfully finished pods the job should be run with."),
                b("Duration", "string", 0, "Time required to complete the job."),
                age_col(),
            ]);
            cols.extend(containers());
            cols.push(selector());
        }
        ("", "services") => cols.extend([
            b("Type", "string", 0, "type determines how the Service is exposed."),
            b("Cluster-IP", "string", 0, "clusterIP is the IP address of the service."),
            b("External-IP", "string", 0, "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
            b("Port(s)", "string", 0, "The list of ports that are exposed by this service."),
            age_col(),
            b("Selector", "string", 1, "Route service traffic to pods with label keys and values matching this selector."),
        ]),
        ("", "configmaps") => cols.extend([
            b("Data", "integer", 0, "Data contains the configuration data."),
            age_col(),
        ]),
        ("", "secrets") => cols.extend([
            b("Type", "string", 0, "Used to facilitate programmatic handling of secret data."),
            b("Data", "integer", 0, "Data contains the secret data."),
            age_col(),
        ]),
        ("", "namespaces") => cols.extend([
            b("Status", "string", 0, "The status of the namespace"),
            age_col(),
        ]),
        ("", "persistentvolumeclaims") => cols.extend([
            b("Status", "string", 0, "Phase represents the current phase of PersistentVolumeClaim."),
            b("Volume", "string", 0, "volumeName is the binding reference to the PersistentVolume backing this claim."),
            b("Capacity", "string", 0, "capacity represents the actual resources of the underlying volume."),
            b("Access Modes", "string", 0, "accessModes contains the actual access modes the volume backing the PVC has."),
            b("StorageClass", "string", 0, "StorageClassName is the name of the StorageClass required by the claim."),
            b("VolumeAttributesClass", "string", 0, "VolumeAttributesClass is the name of the VolumeAttributesClass the PVC is using."),
            age_col(),
            b("VolumeMode", "string", 1, "volumeMode defines what type of volume is required by the claim."),
        ]),
        // printers.go horizontalPodAutoscalerColumnDefinitions.
        ("autoscaling", "horizontalpodautoscalers") => cols.extend([
            b("Reference", "string", 0, "scaleTargetRef points to the target resource to scale, and is used to the pods for which metrics should be collected, as well as to actually change the replica count."),
            b("Targets", "string", 0, "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used)."),
            b("MinPods", "string", 0, "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down."),
            b("MaxPods", "integer", 0, "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up. It cannot be less that minReplicas."),
            b("Replicas", "integer", 0, "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler."),
            age_col(),
        ]),
        ("", "serviceaccounts") => cols.extend([
            b("Secrets", "string", 0, "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
            age_col(),
        ]),
        ("networking.k8s.io", "ingresses") => cols.extend([
            b("Class", "string", 0, "The name of the IngressClass resource."),
            b("Hosts", "string", 0, "Hosts that incoming requests are matched against before the ingress rule"),
            b("Address", "string", 0, "Address is a list containing ingress points for the load-balancer"),
            b("Ports", "string", 0, "Ports of TLS configurations that open"),
            age_col(),
        ]),
        ("", "events") => {
            // printers.go addEventHandlers: Name is a wide column here.
            cols = vec![
                b("Last Seen", "string", 0, "Time when last occurrence of the event was recorded."),
                b("Type", "string", 0, "Type of this event."),
                b("Reason", "string", 0, "Reason is why the action was taken. It is human-readable."),
                b("Object", "string", 0, "The object that this event is about."),
                b("Subobject", "string", 1, "The subobject that this event is about."),
                b("Source", "string", 1, "The component reporting this event."),
                b("Message", "string", 0, "A human-readable description of the status of this operation."),
                b("First Seen", "string", 1, "Time when first occurrence of the event was recorded."),
                b("Count", "string", 1, "The number of times this event has occurred."),
                Column {
                    priority: 1,
                    ..name_col()
                },
            ];
        }
        _ => cols.push(age_col()),
    }
    cols
}

/// A CRD version's columns: Name, then `additionalPrinterColumns`, or Age
/// when it declares none (apiextensions-apiserver customresource_handler.go
/// defaults the columns to `.metadata.creationTimestamp` as `Age`, type date).
fn crd_columns(info: &ResourceInfo, crd: Option<&Value>) -> Vec<Column> {
    let declared: Vec<Value> = crd
        .and_then(|c| c["spec"]["versions"].as_array())
        .into_iter()
        .flatten()
        .filter(|v| v["name"] == info.version.as_str())
        .flat_map(|v| {
            v["additionalPrinterColumns"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let mut cols = vec![name_col()];
    if declared.is_empty() {
        cols.push(Column {
            cell: Cell::Path(parse_path(".metadata.creationTimestamp"), "date".into()),
            ..col("Age", "date", 0, AGE_DOC)
        });
        return cols;
    }
    for c in declared {
        let path = c["jsonPath"].as_str().unwrap_or_default();
        let kind = c["type"].as_str().unwrap_or("string").to_string();
        // tableconvertor.go: the description defaults to the JSONPath.
        let description = match c["description"].as_str() {
            Some(d) if !d.is_empty() => d.to_string(),
            _ => format!("Custom resource definition column (in JSONPath format): {path}"),
        };
        cols.push(Column {
            name: c["name"].as_str().unwrap_or_default().to_string(),
            format: c["format"].as_str().unwrap_or_default().to_string(),
            description,
            priority: c["priority"].as_i64().unwrap_or(0),
            cell: Cell::Path(parse_path(path), kind.clone()),
            kind,
        });
    }
    cols
}

/// A Table of `objects`. `list_meta` is the list's metadata (or, for one
/// object, its resourceVersion); `now` the time ages are measured against.
pub fn table(
    req: TableRequest,
    info: &ResourceInfo,
    crd: Option<&Value>,
    objects: &[Value],
    list_meta: Value,
    with_headers: bool,
    now: OffsetDateTime,
) -> Value {
    let cols = columns(info, crd);
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let cells: Vec<Value> = cols.iter().map(|c| cell(info, c, o, now)).collect();
            let mut row = json!({"cells": cells});
            match req.include {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": o["metadata"],
                    });
                }
                IncludeObject::Object => {
                    let mut full = o.clone();
                    full["apiVersion"] = json!(info.api_version());
                    full["kind"] = json!(info.kind);
                    row["object"] = full;
                }
            }
            row
        })
        .collect();
    let mut t = json!({
        "kind": "Table",
        "apiVersion": req.api_version,
        "metadata": list_meta,
        "rows": rows,
    });
    // A watch sends the column definitions with its first event only
    // (apiserver handlers/watch.go sets TableOptions.NoHeaders afterwards).
    if with_headers {
        t["columnDefinitions"] = cols
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "type": c.kind,
                    "format": c.format,
                    "description": c.description,
                    "priority": c.priority,
                })
            })
            .collect();
    } else {
        t["columnDefinitions"] = json!([]);
    }
    t
}

fn timestamp(v: &Value) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(v.as_str()?, &Rfc3339).ok()
}

/// `translateTimestampSince`: the age of a timestamp, `<unknown>` without one.
fn since(v: &Value, now: OffsetDateTime) -> String {
    match timestamp(v) {
        Some(t) => human_duration(now - t),
        None => "<unknown>".into(),
    }
}

/// apimachinery `duration.HumanDuration`: 2 significant units at most.
pub fn human_duration(d: time::Duration) -> String {
    let secs = d.whole_seconds();
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        return match secs % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return match (hours / 24) % 365 {
            0 => format!("{}y", hours / 24 / 365),
            dy => format!("{}y{dy}d", hours / 24 / 365),
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn cell(info: &ResourceInfo, c: &Column, o: &Value, now: OffsetDateTime) -> Value {
    match &c.cell {
        Cell::Name => o["metadata"]["name"].clone(),
        Cell::Age => json!(since(&o["metadata"]["creationTimestamp"], now)),
        Cell::Path(steps, kind) => crd_cell(steps, kind, o, now),
        Cell::Builtin => builtin_cell(info, &c.name, o, now),
    }
}

/// tableconvertor.go: the first JSONPath result, as the column's type
/// (`cellForJSONValue`); strings print scalars as text, objects as JSON;
/// `date` is an age; a missing or mistyped value is `null`.
fn crd_cell(steps: &[Step], kind: &str, o: &Value, now: OffsetDateTime) -> Value {
    let Some(v) = eval(steps, o).into_iter().next() else {
        return Value::Null;
    };
    match (kind, v) {
        (_, Value::Null) => Value::Null,
        ("string", Value::String(s)) => json!(s),
        ("string", other) => json!(other.to_string()),
        ("integer", Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map_or(Value::Null, |i| json!(i)),
        ("number", Value::Number(n)) => n.as_f64().map_or(Value::Null, |f| json!(f)),
        ("boolean", Value::Bool(b)) => json!(b),
        ("date", Value::String(_)) => match timestamp(v) {
            Some(_) => json!(since(v, now)),
            None => json!("<invalid>"),
        },
        _ => Value::Null,
    }
}

/// One step of the simple JSONPath CRD columns use.
#[derive(Debug, Clone)]
enum Step {
    Field(String),
    Index(i64),
    All,
    /// `[?(@.a.b=="x")]` (or `!=`).
    Filter(Vec<String>, bool, Value),
}

/// Parses `.a.b`, `.a[0].b`, `.a[*].b`, `.a['x.y']`,
/// `.a[?(@.type=="Ready")].status` (braces allowed around the whole).
fn parse_path(p: &str) -> Vec<Step> {
    let p = p.trim();
    let p = p
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(p);
    let chars: Vec<char> = p.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let start = i + 1;
                i = start;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                if !name.is_empty() {
                    steps.push(Step::Field(name));
                }
            }
            '[' => {
                // Find the matching `]` outside quotes.
                let start = i + 1;
                let mut quote: Option<char> = None;
                i = start;
                while i < chars.len() {
                    match (quote, chars[i]) {
                        (None, '\'' | '"') => quote = Some(chars[i]),
                        (Some(q), c) if c == q => quote = None,
                        (None, ']') => break,
                        _ => {}
                    }
                    i += 1;
                }
                let inner: String = chars[start..i.min(chars.len())].iter().collect();
                i += 1;
                steps.push(bracket(inner.trim()));
            }
            _ => {
                // A path without a leading dot: `a.b`.
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                steps.push(Step::Field(chars[start..i].iter().collect()));
            }
        }
    }
    steps
}

fn unquote(s: &str) -> Option<&str> {
    s.strip_prefix('\'')
        .and_then(|x| x.strip_suffix('\''))
        .or_else(|| s.strip_prefix('"').and_then(|x| x.strip_suffix('"')))
}

fn bracket(inner: &str) -> Step {
    if inner == "*" {
        return Step::All;
    }
    if let Some(name) = unquote(inner) {
        return Step::Field(name.to_string());
    }
    if let Ok(n) = inner.parse::<i64>() {
        return Step::Index(n);
    }
    if let Some(f) = inner.strip_prefix("?(").and_then(|x| x.strip_suffix(')')) {
        let (lhs, eq, rhs) = match (f.split_once("=="), f.split_once("!=")) {
            (Some((l, r)), _) => (l, true, r),
            (None, Some((l, r))) => (l, false, r),
            _ => (f, true, "true"),
        };
        let path: Vec<String> = lhs
            .trim()
            .trim_start_matches('@')
            .split('.')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let rhs = rhs.trim();
        let value = match unquote(rhs) {
            Some(s) => json!(s),
            None => serde_json::from_str(rhs).unwrap_or_else(|_| json!(rhs)),
        };
        return Step::Filter(path, eq, value);
    }
    Step::Field(inner.to_string())
}

/// Every value the path reaches, in document order.
fn eval<'a>(steps: &[Step], root: &'a Value) -> Vec<&'a Value> {
    let mut cur = vec![root];
    for s in steps {
        let mut next = Vec::new();
        for v in cur {
            match s {
                Step::Field(f) => {
                    if let Some(x) = v.get(f) {
                        next.push(x);
                    }
                }
                Step::Index(n) => {
                    if let Some(a) = v.as_array() {
                        let idx = if *n < 0 { a.len() as i64 + n } else { *n };
                        if let Some(x) = usize::try_from(idx).ok().and_then(|i| a.get(i)) {
                            next.push(x);
                        }
                    }
                }
                Step::All => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Filter(path, eq, want) => {
                    for item in v.as_array().into_iter().flatten() {
                        let got = path.iter().try_fold(item, |x, k| x.get(k));
                        if got.is_some_and(|g| (g == want) == *eq) {
                            next.push(item);
                        }
                    }
                }
            }
        }
        cur = next;
    }
    cur
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn none_if_empty(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

/// `labels.FormatLabels`: `a=b,c=d` sorted, `<none>` when empty.
fn format_labels(m: &Value) -> String {
    let mut kv: Vec<String> = m
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    kv.sort();
    none_if_empty(kv.join(","))
}

/// `metav1.LabelSelectorAsSelector(...).String()`.
fn format_selector(sel: &Value) -> String {
    let mut parts: Vec<String> = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or_default();
        let mut vals: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        vals.sort();
        parts.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", vals.join(",")),
            "NotIn" => format!("{key} notin ({})", vals.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => continue,
        });
    }
    parts.sort();
    none_if_empty(parts.join(","))
}

fn template_containers(spec: &Value) -> (String, String) {
    let cs = spec["containers"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = cs.iter().filter_map(|c| c["name"].as_str()).collect();
    let images: Vec<&str> = cs.iter().filter_map(|c| c["image"].as_str()).collect();
    (names.join(","), images.join(","))
}

fn builtin_cell(info: &ResourceInfo, column: &str, o: &Value, now: OffsetDateTime) -> Value {
    let spec = &o["spec"];
    let status = &o["status"];
    match (info.resource.as_str(), column) {
        ("pods", _) => pod_cell(column, o, now),
        (_, "Containers") => json!(template_containers(&spec["template"]["spec"]).0),
        (_, "Images") => json!(template_containers(&spec["template"]["spec"]).1),
        ("services", "Selector") => json!(format_labels(&spec["selector"])),
        (_, "Selector") => json!(format_selector(&spec["selector"])),
        ("deployments" | "statefulsets", "Ready") => json!(format!(
            "{}/{}",
            int(&status["readyReplicas"]),
            spec["replicas"].as_i64().unwrap_or(1)
        )),
        ("deployments", "Up-to-date") => json!(int(&status["updatedReplicas"])),
        ("deployments", "Available") => json!(int(&status["availableReplicas"])),
        ("replicasets", "Desired") => json!(spec["replicas"].as_i64().unwrap_or(1)),
        ("replicasets", "Current") => json!(int(&status["replicas"])),
        ("replicasets", "Ready") => json!(int(&status["readyReplicas"])),
        ("daemonsets", "Desired") => json!(int(&status["desiredNumberScheduled"])),
        ("daemonsets", "Current") => json!(int(&status["currentNumberScheduled"])),
        ("daemonsets", "Ready") => json!(int(&status["numberReady"])),
        ("daemonsets", "Up-to-date") => json!(int(&status["updatedNumberScheduled"])),
        ("daemonsets", "Available") => json!(int(&status["numberAvailable"])),
        ("daemonsets", "Node Selector") => {
            json!(format_labels(&spec["template"]["spec"]["nodeSelector"]))
        }
        ("jobs", "Status") => json!(job_status(o)),
        ("jobs", "Completions") => {
            let succeeded = int(&status["succeeded"]);
            // printers.go printJob: without completions, "n/1 of p" for parallel jobs.
            json!(
                match (spec["completions"].as_i64(), int(&spec["parallelism"])) {
                    (Some(c), _) => format!("{succeeded}/{c}"),
                    (None, p) if p > 1 => format!("{succeeded}/1 of {p}"),
                    (None, _) => format!("{succeeded}/1"),
                }
            )
        }
        ("jobs", "Duration") => {
            json!(match timestamp(&status["startTime"]) {
                None => String::new(),
                Some(start) => {
                    let end = timestamp(&status["completionTime"]).unwrap_or(now);
                    human_duration(end - start)
                }
            })
        }
        ("services", "Type") => json!(spec["type"].as_str().unwrap_or("ClusterIP")),
        ("services", "Cluster-IP") => json!(match spec["clusterIP"].as_str() {
            None | Some("") => "<none>",
            Some(ip) => ip,
        }),
        ("services", "External-IP") => json!(service_external_ip(o)),
        ("services", "Port(s)") => {
            let ports: Vec<String> = spec["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let proto = p["protocol"].as_str().unwrap_or("TCP");
                    match p["nodePort"].as_i64() {
                        Some(np) if np > 0 => format!("{}:{np}/{proto}", int(&p["port"])),
                        _ => format!("{}/{proto}", int(&p["port"])),
                    }
                })
                .collect();
            json!(none_if_empty(ports.join(",")))
        }
        ("configmaps", "Data") => json!(
            o["data"].as_object().map_or(0, |m| m.len())
                + o["binaryData"].as_object().map_or(0, |m| m.len())
        ),
        ("secrets", "Type") => json!(o["type"].as_str().unwrap_or("Opaque")),
        ("secrets", "Data") => json!(o["data"].as_object().map_or(0, |m| m.len())),
        ("namespaces", "Status") => json!(status["phase"].as_str().unwrap_or("Active")),
        ("persistentvolumeclaims", _) => pvc_cell(column, o),
        ("serviceaccounts", "Secrets") => json!(o["secrets"].as_array().map_or(0, Vec::len)),
        ("ingresses", _) => ingress_cell(column, o),
        ("horizontalpodautoscalers", _) => hpa_cell(column, o),
        ("events", _) => event_cell(column, o, now),
        _ => Value::Null,
    }
}

/// printers.go printHorizontalPodAutoscaler, on the v2 shape.
fn hpa_cell(column: &str, o: &Value) -> Value {
    let o = crate::conversion::hpa_as_v2(o);
    let spec = &o["spec"];
    match column {
        "Reference" => json!(format!(
            "{}/{}",
            spec["scaleTargetRef"]["kind"].as_str().unwrap_or_default(),
            spec["scaleTargetRef"]["name"].as_str().unwrap_or_default()
        )),
        "Targets" => json!(hpa_metrics(&o)),
        "MinPods" => json!(match spec["minReplicas"].as_i64() {
            Some(n) => n.to_string(),
            None => "<unset>".into(),
        }),
        "MaxPods" => json!(int(&spec["maxReplicas"])),
        "Replicas" => json!(int(&o["status"]["currentReplicas"])),
        _ => Value::Null,
    }
}

/// printers.go formatHPAMetrics: `cpu: <unknown>/80%`, two metrics at most.
fn hpa_metrics(o: &Value) -> String {
    let specs = o["spec"]["metrics"].as_array().cloned().unwrap_or_default();
    if specs.is_empty() {
        return "<none>".into();
    }
    let statuses = o["status"]["currentMetrics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let q = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "0".into(),
        v => v.to_string(),
    };
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let ty = spec["type"].as_str().unwrap_or_default();
            let key = match ty {
                "External" => "external",
                "Pods" => "pods",
                "Object" => "object",
                "Resource" => "resource",
                "ContainerResource" => "containerResource",
                _ => return "<unknown type>".to_string(),
            };
            let s = &spec[key];
            let st = statuses
                .get(i)
                .map(|st| &st[key])
                .filter(|st| st.is_object());
            let cur = |f: &str| match st {
                Some(st) if !st["current"][f].is_null() => q(&st["current"][f]),
                _ => "<unknown>".into(),
            };
            let t = &s["target"];
            match key {
                "external" | "object" if !t["averageValue"].is_null() => {
                    format!("{}/{} (avg)", cur("averageValue"), q(&t["averageValue"]))
                }
                "external" | "object" => format!("{}/{}", cur("value"), q(&t["value"])),
                "pods" => format!("{}/{}", cur("averageValue"), q(&t["averageValue"])),
                _ => {
                    let name = s["name"].as_str().unwrap_or_default();
                    if !t["averageValue"].is_null() {
                        format!("{name}: {}/{}", cur("averageValue"), q(&t["averageValue"]))
                    } else {
                        let current =
                            match st.and_then(|st| st["current"]["averageUtilization"].as_i64()) {
                                Some(u) => format!("{u}%"),
                                None => "<unknown>".into(),
                            };
                        let target = match t["averageUtilization"].as_i64() {
                            Some(u) => format!("{u}%"),
                            None => "<auto>".into(),
                        };
                        format!("{name}: {current}/{target}")
                    }
                }
            }
        })
        .collect();
    let max = 2;
    if list.len() > max {
        format!("{} + {} more...", list[..max].join(", "), list.len() - max)
    } else {
        list.join(", ")
    }
}

fn pod_cell(column: &str, o: &Value, now: OffsetDateTime) -> Value {
    let status = &o["status"];
    let statuses = status["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    match column {
        "Ready" => {
            let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses.iter().filter(|c| c["ready"] == true).count();
            json!(format!("{ready}/{total}"))
        }
        "Status" => json!(pod_reason(o)),
        "Restarts" => {
            let restarts: i64 = statuses.iter().map(|c| int(&c["restartCount"])).sum();
            // printers.go printPod: "n (age ago)" after the last restart.
            let last = statuses
                .iter()
                .filter_map(|c| timestamp(&c["lastState"]["terminated"]["finishedAt"]))
                .max();
            json!(match last {
                Some(t) if restarts > 0 => format!("{restarts} ({} ago)", human_duration(now - t)),
                _ => restarts.to_string(),
            })
        }
        "IP" => json!(none_if_empty(
            status["podIP"].as_str().unwrap_or_default().to_string()
        )),
        "Node" => json!(none_if_empty(
            o["spec"]["nodeName"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        )),
        "Nominated Node" => json!(none_if_empty(
            status["nominatedNodeName"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        )),
        "Readiness Gates" => {
            let gates = o["spec"]["readinessGates"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if gates.is_empty() {
                return json!("<none>");
            }
            let conds = status["conditions"].as_array().cloned().unwrap_or_default();
            let ready = gates
                .iter()
                .filter(|g| {
                    conds
                        .iter()
                        .any(|c| c["type"] == g["conditionType"] && c["status"] == "True")
                })
                .count();
            json!(format!("{ready}/{}", gates.len()))
        }
        _ => Value::Null,
    }
}

/// printers.go printPod: the phase, or the reason of the last container
/// that is not running; `Terminating` once deleted.
fn pod_reason(o: &Value) -> String {
    let status = &o["status"];
    let mut reason = status["reason"]
        .as_str()
        .or_else(|| status["phase"].as_str())
        .unwrap_or("Pending")
        .to_string();
    let mut has_running = false;
    for c in status["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
    {
        let st = &c["state"];
        if let Some(r) = st["waiting"]["reason"].as_str().filter(|r| !r.is_empty()) {
            reason = r.to_string();
        } else if let Some(r) = st["terminated"]["reason"]
            .as_str()
            .filter(|r| !r.is_empty())
        {
            reason = r.to_string();
        } else if st["terminated"].is_object() {
            reason = format!("ExitCode:{}", int(&st["terminated"]["exitCode"]));
        } else if st["running"].is_object() && c["ready"] == true {
            has_running = true;
        }
    }
    if reason == "Completed" && has_running {
        reason = "Running".into();
    }
    if o["metadata"]["deletionTimestamp"].is_string() && reason != "NodeLost" {
        reason = "Terminating".into();
    }
    reason
}

/// printers.go printJob's status: the job's terminal or current condition.
fn job_status(o: &Value) -> &'static str {
    let has = |t: &str| {
        o["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == t && c["status"] == "True")
    };
    if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if o["metadata"]["deletionTimestamp"].is_string() {
        "Terminating"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else if has("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else if has("Suspended") {
        "Suspended"
    } else {
        "Running"
    }
}

/// printers.go getServiceExternalIP.
fn service_external_ip(o: &Value) -> String {
    let spec = &o["spec"];
    let external: Vec<&str> = spec["externalIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    match spec["type"].as_str().unwrap_or("ClusterIP") {
        "ClusterIP" | "NodePort" => none_if_empty(external.join(",")),
        "LoadBalancer" => {
            let mut ips: Vec<&str> = o["status"]["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["ip"].as_str().or_else(|| i["hostname"].as_str()))
                .collect();
            ips.extend(external);
            if ips.is_empty() {
                "<pending>".into()
            } else {
                ips.join(",")
            }
        }
        "ExternalName" => spec["externalName"].as_str().unwrap_or_default().into(),
        _ => "<unknown>".into(),
    }
}

fn pvc_cell(column: &str, o: &Value) -> Value {
    let spec = &o["spec"];
    let bound = spec["volumeName"].as_str().is_some_and(|v| !v.is_empty());
    match column {
        "Status" => json!(if o["metadata"]["deletionTimestamp"].is_string() {
            "Terminating"
        } else {
            o["status"]["phase"].as_str().unwrap_or("Pending")
        }),
        "Volume" => json!(spec["volumeName"].as_str().unwrap_or_default()),
        "Capacity" if bound => {
            json!(
                o["status"]["capacity"]["storage"]
                    .as_str()
                    .unwrap_or_default()
            )
        }
        "Access Modes" if bound => {
            // helper.GetAccessModesAsString: in this fixed order.
            let modes: Vec<&str> = o["status"]["accessModes"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|m| m.as_str().map(str::to_string))
                .collect::<Vec<_>>()
                .iter()
                .fold(Vec::new(), |mut acc: Vec<&str>, m| {
                    let short = match m.as_str() {
                        "ReadWriteOnce" => "RWO",
                        "ReadOnlyMany" => "ROX",
                        "ReadWriteMany" => "RWX",
                        "ReadWriteOncePod" => "RWOP",
                        _ => return acc,
                    };
                    if !acc.contains(&short) {
                        acc.push(short);
                    }
                    acc
                });
            let order = ["RWO", "ROX", "RWX", "RWOP"];
            let sorted: Vec<&str> = order.into_iter().filter(|m| modes.contains(m)).collect();
            json!(sorted.join(","))
        }
        "Capacity" | "Access Modes" => json!(""),
        "StorageClass" => json!(spec["storageClassName"].as_str().unwrap_or_default()),
        "VolumeAttributesClass" => json!(
            spec["volumeAttributesClassName"]
                .as_str()
                .unwrap_or("<unset>")
        ),
        "VolumeMode" => json!(spec["volumeMode"].as_str().unwrap_or("<unset>")),
        _ => Value::Null,
    }
}

fn ingress_cell(column: &str, o: &Value) -> Value {
    let spec = &o["spec"];
    match column {
        "Class" => json!(spec["ingressClassName"].as_str().unwrap_or("<none>")),
        "Hosts" => {
            // printers.go formatHosts: at most 3, then "+ N more...".
            let hosts: Vec<&str> = spec["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["host"].as_str())
                .filter(|h| !h.is_empty())
                .collect();
            json!(match hosts.len() {
                0 => "*".to_string(),
                n if n > 3 => format!("{} + {} more...", hosts[..3].join(","), n - 3),
                _ => hosts.join(","),
            })
        }
        "Address" => {
            let addrs: Vec<&str> = o["status"]["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["ip"].as_str().or_else(|| i["hostname"].as_str()))
                .collect();
            json!(addrs.join(","))
        }
        "Ports" => json!(if spec["tls"].as_array().is_some_and(|t| !t.is_empty()) {
            "80, 443"
        } else {
            "80"
        }),
        _ => Value::Null,
    }
}

fn event_cell(column: &str, o: &Value, now: OffsetDateTime) -> Value {
    let first = if o["firstTimestamp"].is_string() {
        &o["firstTimestamp"]
    } else {
        &o["eventTime"]
    };
    let last = if o["lastTimestamp"].is_string() {
        &o["lastTimestamp"]
    } else {
        first
    };
    let obj = &o["involvedObject"];
    match column {
        "Last Seen" => json!(since(last, now)),
        "First Seen" => json!(since(first, now)),
        "Type" => o["type"].clone(),
        "Reason" => o["reason"].clone(),
        "Object" => json!(format!(
            "{}/{}",
            obj["kind"].as_str().unwrap_or_default().to_lowercase(),
            obj["name"].as_str().unwrap_or_default()
        )),
        "Subobject" => json!(obj["fieldPath"].as_str().unwrap_or_default()),
        "Source" => {
            let comp = o["source"]["component"]
                .as_str()
                .or_else(|| o["reportingComponent"].as_str())
                .unwrap_or_default();
            json!(match o["source"]["host"].as_str() {
                Some(h) if !h.is_empty() => format!("{comp}, {h}"),
                _ => comp.to_string(),
            })
        }
        "Message" => json!(o["message"].as_str().unwrap_or_default().trim()),
        "Count" => json!(o["count"].as_i64().unwrap_or(1).to_string()),
        "Name" => o["metadata"]["name"].clone(),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_accept_header_asks_for_a_v1_table() {
        let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        let r = requested(accept, None).unwrap();
        assert_eq!(r.api_version, "meta.k8s.io/v1");
        assert_eq!(r.include, IncludeObject::Metadata);
        assert_eq!(
            requested(accept, Some("Object")).unwrap().include,
            IncludeObject::Object
        );
        assert!(requested("application/json", None).is_none());
        assert!(
            requested(
                "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io",
                None
            )
            .is_none()
        );
    }

    #[test]
    fn simple_jsonpaths_as_crds_use_them() {
        let o = json!({"status": {"conditions": [
            {"type": "Progressing", "status": "True"},
            {"type": "Ready", "status": "False"}
        ]}, "spec": {"items": [{"b": 3}], "x.y": "dotted"}});
        let one = |p: &str| eval(&parse_path(p), &o).first().map(|v| (*v).clone());
        assert_eq!(
            one(r#".status.conditions[?(@.type=="Ready")].status"#),
            Some(json!("False"))
        );
        assert_eq!(one(".spec.items[0].b"), Some(json!(3)));
        assert_eq!(one(".spec['x.y']"), Some(json!("dotted")));
        assert_eq!(one("{.spec.items[-1].b}"), Some(json!(3)));
        assert_eq!(one(".spec.missing"), None);
    }

    #[test]
    fn human_durations_match_apimachinery() {
        let d = time::Duration::seconds;
        assert_eq!(human_duration(d(5)), "5s");
        assert_eq!(human_duration(d(119)), "119s");
        assert_eq!(human_duration(d(150)), "2m30s");
        assert_eq!(human_duration(d(600)), "10m");
        assert_eq!(human_duration(d(3 * 3600 + 60)), "3h1m");
        assert_eq!(human_duration(d(30 * 3600)), "30h");
        assert_eq!(human_duration(d(50 * 3600)), "2d2h");
        assert_eq!(human_duration(d(-5)), "<invalid>");
    }
}
