//! Conversion between served versions of a built-in kind that share one
//! storage version, as the API server converts through its internal type.
//!
//! Only HorizontalPodAutoscalers have two shapes here: they are stored as
//! autoscaling/v2 and also served as autoscaling/v1 (what `kubectl autoscale`
//! v1.32 writes). The rules are those of `pkg/apis/autoscaling/v1/conversion.go`
//! in k8s.io/kubernetes: the CPU utilization metric is v1's
//! `targetCPUUtilizationPercentage`; every other metric, the metric statuses and
//! the conditions travel in the `autoscaling.alpha.kubernetes.io/*` annotations
//! of the v1 object (in v1's `MetricSpec`/`MetricStatus` shapes), and no
//! metric at all means CPU at 80%. Writes through v1 therefore keep what v1
//! cannot express, as long as the client sends the annotations back.

use serde_json::{Map, Value, json};

use crate::resources::ResourceInfo;

/// `autoscaling.MetricSpecsAnnotation` and friends (`pkg/apis/autoscaling/annotations.go`).
const METRIC_SPECS: &str = "autoscaling.alpha.kubernetes.io/metrics";
const METRIC_STATUSES: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";
const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";
/// `autoscaling.DefaultCPUUtilization`.
const DEFAULT_CPU_UTILIZATION: i64 = 80;

/// The version a (group, resource) is stored in when another version of it is
/// served too.
pub fn storage_version(info: &ResourceInfo) -> Option<&'static str> {
    match (
        info.group.as_str(),
        info.resource.as_str(),
        info.version.as_str(),
    ) {
        ("autoscaling", "horizontalpodautoscalers", "v1") => Some("v2"),
        _ => None,
    }
}

/// The stored object as `info`'s version shows it (with its apiVersion and kind).
pub fn from_storage(info: &ResourceInfo, stored: &Value) -> Value {
    let mut o = if storage_version(info).is_some() {
        hpa_v2_to_v1(stored)
    } else {
        stored.clone()
    };
    o["apiVersion"] = json!(info.api_version());
    o["kind"] = json!(info.kind);
    o
}

/// An object sent in `info`'s version, in the storage version (`storage`).
pub fn to_storage(
    info: &ResourceInfo,
    storage: &ResourceInfo,
    obj: Value,
) -> Result<Value, String> {
    if storage_version(info).is_none() {
        return Ok(obj);
    }
    let mut o = hpa_v1_to_v2(obj)?;
    o["apiVersion"] = json!(storage.api_version());
    o["kind"] = json!(storage.kind);
    Ok(o)
}

/// An HPA in the v2 shape, whichever version it is served in (printers work on v2).
pub fn hpa_as_v2(o: &Value) -> std::borrow::Cow<'_, Value> {
    if o["apiVersion"] == "autoscaling/v1" {
        std::borrow::Cow::Owned(hpa_v1_to_v2(o.clone()).unwrap_or_else(|_| o.clone()))
    } else {
        std::borrow::Cow::Borrowed(o)
    }
}

fn set(m: &mut Map<String, Value>, k: &str, v: &Value) {
    if !v.is_null() {
        m.insert(k.into(), v.clone());
    }
}

fn is_cpu_utilization(m: &Value) -> bool {
    m["type"] == "Resource"
        && m["resource"]["name"] == "cpu"
        && !m["resource"]["target"]["averageUtilization"].is_null()
}

/// Drops the round-trip annotations (`DropRoundTripHorizontalPodAutoscalerAnnotations`).
fn drop_round_trip(obj: &mut Value) {
    let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(a) = m.get_mut("annotations").and_then(Value::as_object_mut) {
        for k in [METRIC_SPECS, METRIC_STATUSES, CONDITIONS, BEHAVIOR] {
            a.remove(k);
        }
        if a.is_empty() {
            m.remove("annotations");
        }
    }
}

fn hpa_v2_to_v1(v2: &Value) -> Value {
    let mut out = json!({"metadata": v2["metadata"].clone()});
    drop_round_trip(&mut out);
    let s2 = &v2["spec"];
    let mut spec = Map::new();
    set(&mut spec, "scaleTargetRef", &s2["scaleTargetRef"]);
    set(&mut spec, "minReplicas", &s2["minReplicas"]);
    set(&mut spec, "maxReplicas", &s2["maxReplicas"]);
    let metrics = s2["metrics"].as_array().cloned().unwrap_or_default();
    // The first CPU metric decides (Convert_autoscaling_HorizontalPodAutoscalerSpec_To_v1_...).
    if let Some(cpu) = metrics
        .iter()
        .find(|m| m["type"] == "Resource" && m["resource"]["name"] == "cpu")
    {
        set(
            &mut spec,
            "targetCPUUtilizationPercentage",
            &cpu["resource"]["target"]["averageUtilization"],
        );
    }
    out["spec"] = Value::Object(spec);
    let st2 = &v2["status"];
    if st2.is_object() {
        let mut st = Map::new();
        set(&mut st, "observedGeneration", &st2["observedGeneration"]);
        set(&mut st, "lastScaleTime", &st2["lastScaleTime"]);
        // Not omitempty in v1's types.go.
        st.insert(
            "currentReplicas".into(),
            json!(st2["currentReplicas"].as_i64().unwrap_or(0)),
        );
        st.insert(
            "desiredReplicas".into(),
            json!(st2["desiredReplicas"].as_i64().unwrap_or(0)),
        );
        if let Some(cpu) = st2["currentMetrics"].as_array().and_then(|ms| {
            ms.iter()
                .rev()
                .find(|m| m["type"] == "Resource" && m["resource"]["name"] == "cpu")
        }) {
            set(
                &mut st,
                "currentCPUUtilizationPercentage",
                &cpu["resource"]["current"]["averageUtilization"],
            );
        }
        out["status"] = Value::Object(st);
    }
    let others: Vec<Value> = metrics
        .iter()
        .filter(|m| !is_cpu_utilization(m))
        .map(metric_spec_v2_to_v1)
        .collect();
    let statuses: Vec<Value> = st2["currentMetrics"]
        .as_array()
        .into_iter()
        .flatten()
        .map(metric_status_v2_to_v1)
        .collect();
    let conditions = st2["conditions"].as_array().cloned().unwrap_or_default();
    for (key, list) in [
        (METRIC_SPECS, others),
        (METRIC_STATUSES, statuses),
        (CONDITIONS, conditions),
    ] {
        if !list.is_empty() {
            out["metadata"]["annotations"][key] = json!(Value::Array(list).to_string());
        }
    }
    out
}

fn hpa_v1_to_v2(v1: Value) -> Result<Value, String> {
    let mut out = json!({"metadata": v1["metadata"].clone()});
    let ann = |k: &str| -> Result<Option<Vec<Value>>, String> {
        match v1["metadata"]["annotations"][k].as_str() {
            None => Ok(None),
            Some(s) => serde_json::from_str::<Vec<Value>>(s)
                .map(Some)
                .map_err(|e| format!("error decoding annotation {k}: {e}")),
        }
    };
    let s1 = &v1["spec"];
    let mut spec = Map::new();
    set(&mut spec, "scaleTargetRef", &s1["scaleTargetRef"]);
    set(&mut spec, "minReplicas", &s1["minReplicas"]);
    set(&mut spec, "maxReplicas", &s1["maxReplicas"]);
    let cpu = |pct: &Value| json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": pct}}});
    // Annotated metrics first, then the CPU one (as upstream orders them).
    let mut metrics: Vec<Value> = ann(METRIC_SPECS)?
        .unwrap_or_default()
        .iter()
        .map(metric_spec_v1_to_v2)
        .collect();
    if !s1["targetCPUUtilizationPercentage"].is_null() {
        metrics.push(cpu(&s1["targetCPUUtilizationPercentage"]));
    }
    if metrics.is_empty() {
        // v1's implicit default, made explicit in the conversion.
        metrics.push(cpu(&json!(DEFAULT_CPU_UTILIZATION)));
    }
    spec.insert("metrics".into(), Value::Array(metrics));
    out["spec"] = Value::Object(spec);
    let st1 = &v1["status"];
    if st1.is_object() {
        let mut st = Map::new();
        set(&mut st, "observedGeneration", &st1["observedGeneration"]);
        set(&mut st, "lastScaleTime", &st1["lastScaleTime"]);
        set(&mut st, "currentReplicas", &st1["currentReplicas"]);
        set(&mut st, "desiredReplicas", &st1["desiredReplicas"]);
        if !st1["currentCPUUtilizationPercentage"].is_null() {
            st.insert(
                "currentMetrics".into(),
                json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": st1["currentCPUUtilizationPercentage"]}}}]),
            );
        }
        out["status"] = Value::Object(st);
    }
    // The annotated statuses have more information than the CPU percentage.
    if let Some(ms) = ann(METRIC_STATUSES)? {
        out["status"]["currentMetrics"] = ms.iter().map(metric_status_v1_to_v2).collect();
    }
    if let Some(cs) = ann(CONDITIONS)? {
        out["status"]["conditions"] = Value::Array(cs);
    }
    drop_round_trip(&mut out);
    Ok(out)
}

/// `MetricTarget` from v1's flat target fields.
fn target(value: &Value, average_value: &Value, utilization: &Value, default_type: &str) -> Value {
    let ty = if !utilization.is_null() {
        "Utilization"
    } else if !value.is_null() {
        "Value"
    } else if !average_value.is_null() {
        "AverageValue"
    } else {
        default_type
    };
    let mut t = Map::new();
    t.insert("type".into(), json!(ty));
    set(&mut t, "value", value);
    set(&mut t, "averageValue", average_value);
    set(&mut t, "averageUtilization", utilization);
    Value::Object(t)
}

fn identifier(name: &Value, selector: &Value) -> Value {
    let mut m = Map::new();
    set(&mut m, "name", name);
    set(&mut m, "selector", selector);
    Value::Object(m)
}

fn object(pairs: &[(&str, &Value)]) -> Value {
    let mut m = Map::new();
    for (k, v) in pairs {
        set(&mut m, k, v);
    }
    Value::Object(m)
}

fn metric_spec_v1_to_v2(m: &Value) -> Value {
    let ty = m["type"].clone();
    let n = Value::Null;
    match ty.as_str().unwrap_or_default() {
        "Resource" | "ContainerResource" => {
            let key = if ty == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let r = &m[key];
            let t = target(
                &n,
                &r["targetAverageValue"],
                &r["targetAverageUtilization"],
                "AverageValue",
            );
            json!({"type": ty, key: object(&[("name", &r["name"]), ("container", &r["container"]), ("target", &t)])})
        }
        "Pods" => {
            let p = &m["pods"];
            let t = target(&n, &p["targetAverageValue"], &n, "AverageValue");
            json!({"type": ty, "pods": {"metric": identifier(&p["metricName"], &p["selector"]), "target": t}})
        }
        "Object" => {
            let o = &m["object"];
            let t = if o["averageValue"].is_null() {
                target(&o["targetValue"], &n, &n, "Value")
            } else {
                object(&[
                    ("type", &json!("AverageValue")),
                    ("value", &o["targetValue"]),
                    ("averageValue", &o["averageValue"]),
                ])
            };
            json!({"type": ty, "object": {"describedObject": o["target"], "metric": identifier(&o["metricName"], &o["selector"]), "target": t}})
        }
        "External" => {
            let e = &m["external"];
            let t = target(
                &e["targetValue"],
                &e["targetAverageValue"],
                &n,
                "AverageValue",
            );
            json!({"type": ty, "external": {"metric": identifier(&e["metricName"], &e["metricSelector"]), "target": t}})
        }
        _ => m.clone(),
    }
}

fn metric_spec_v2_to_v1(m: &Value) -> Value {
    let ty = m["type"].clone();
    match ty.as_str().unwrap_or_default() {
        "Resource" | "ContainerResource" => {
            let key = if ty == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let r = &m[key];
            let t = &r["target"];
            json!({"type": ty, key: object(&[("name", &r["name"]), ("container", &r["container"]), ("targetAverageUtilization", &t["averageUtilization"]), ("targetAverageValue", &t["averageValue"])])})
        }
        "Pods" => {
            let p = &m["pods"];
            json!({"type": ty, "pods": object(&[("metricName", &p["metric"]["name"]), ("targetAverageValue", &p["target"]["averageValue"]), ("selector", &p["metric"]["selector"])])})
        }
        "Object" => {
            let o = &m["object"];
            json!({"type": ty, "object": object(&[("target", &o["describedObject"]), ("metricName", &o["metric"]["name"]), ("targetValue", &o["target"]["value"]), ("selector", &o["metric"]["selector"]), ("averageValue", &o["target"]["averageValue"])])})
        }
        "External" => {
            let e = &m["external"];
            json!({"type": ty, "external": object(&[("metricName", &e["metric"]["name"]), ("metricSelector", &e["metric"]["selector"]), ("targetValue", &e["target"]["value"]), ("targetAverageValue", &e["target"]["averageValue"])])})
        }
        _ => m.clone(),
    }
}

fn metric_status_v1_to_v2(m: &Value) -> Value {
    let ty = m["type"].clone();
    match ty.as_str().unwrap_or_default() {
        "Resource" | "ContainerResource" => {
            let key = if ty == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let r = &m[key];
            let cur = object(&[
                ("averageValue", &r["currentAverageValue"]),
                ("averageUtilization", &r["currentAverageUtilization"]),
            ]);
            json!({"type": ty, key: object(&[("name", &r["name"]), ("container", &r["container"]), ("current", &cur)])})
        }
        "Pods" => {
            let p = &m["pods"];
            json!({"type": ty, "pods": {"metric": identifier(&p["metricName"], &p["selector"]), "current": object(&[("averageValue", &p["currentAverageValue"])])}})
        }
        "Object" => {
            let o = &m["object"];
            json!({"type": ty, "object": {"describedObject": o["target"], "metric": identifier(&o["metricName"], &o["selector"]), "current": object(&[("value", &o["currentValue"]), ("averageValue", &o["averageValue"])])}})
        }
        "External" => {
            let e = &m["external"];
            json!({"type": ty, "external": {"metric": identifier(&e["metricName"], &e["metricSelector"]), "current": object(&[("value", &e["currentValue"]), ("averageValue", &e["currentAverageValue"])])}})
        }
        _ => m.clone(),
    }
}

fn metric_status_v2_to_v1(m: &Value) -> Value {
    let ty = m["type"].clone();
    match ty.as_str().unwrap_or_default() {
        "Resource" | "ContainerResource" => {
            let key = if ty == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let r = &m[key];
            let c = &r["current"];
            json!({"type": ty, key: object(&[("name", &r["name"]), ("container", &r["container"]), ("currentAverageUtilization", &c["averageUtilization"]), ("currentAverageValue", &c["averageValue"])])})
        }
        "Pods" => {
            let p = &m["pods"];
            json!({"type": ty, "pods": object(&[("metricName", &p["metric"]["name"]), ("currentAverageValue", &p["current"]["averageValue"]), ("selector", &p["metric"]["selector"])])})
        }
        "Object" => {
            let o = &m["object"];
            json!({"type": ty, "object": object(&[("target", &o["describedObject"]), ("metricName", &o["metric"]["name"]), ("currentValue", &o["current"]["value"]), ("selector", &o["metric"]["selector"]), ("averageValue", &o["current"]["averageValue"])])})
        }
        "External" => {
            let e = &m["external"];
            json!({"type": ty, "external": object(&[("metricName", &e["metric"]["name"]), ("metricSelector", &e["metric"]["selector"]), ("currentValue", &e["current"]["value"]), ("currentAverageValue", &e["current"]["averageValue"])])})
        }
        _ => m.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infos() -> (ResourceInfo, ResourceInfo) {
        let reg = crate::resources::Registry::default();
        let v1 = reg
            .find("autoscaling", "v1", "horizontalpodautoscalers")
            .cloned()
            .unwrap();
        let v2 = reg
            .find("autoscaling", "v2", "horizontalpodautoscalers")
            .cloned()
            .unwrap();
        (v1, v2)
    }

    #[test]
    fn cpu_percent_is_the_utilization_metric() {
        let (v1, v2) = infos();
        let sent = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 80}});
        let stored = to_storage(&v1, &v2, sent).unwrap();
        assert_eq!(stored["apiVersion"], "autoscaling/v2");
        assert_eq!(
            stored["spec"]["metrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}])
        );
        let back = from_storage(&v1, &stored);
        assert_eq!(back["spec"]["targetCPUUtilizationPercentage"], 80);
        assert!(back["spec"].get("metrics").is_none());
        assert!(back["metadata"].get("annotations").is_none(), "{back}");
    }

    #[test]
    fn no_target_defaults_to_80_percent() {
        let (v1, v2) = infos();
        let sent = json!({"metadata": {"name": "x"}, "spec": {"maxReplicas": 2}});
        let stored = to_storage(&v1, &v2, sent).unwrap();
        assert_eq!(
            stored["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
    }

    #[test]
    fn other_metrics_and_conditions_round_trip_through_annotations() {
        let (v1, v2) = infos();
        let stored = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "annotations": {"keep": "me"}},
            "spec": {"maxReplicas": 5, "metrics": [
                {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}},
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
            ]},
            "status": {"currentReplicas": 2, "desiredReplicas": 2,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 40, "averageValue": "100m"}}}],
                "conditions": [{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale"}]}});
        let v1obj = from_storage(&v1, &stored);
        assert_eq!(v1obj["spec"]["targetCPUUtilizationPercentage"], 50);
        assert_eq!(v1obj["status"]["currentCPUUtilizationPercentage"], 40);
        let ann = &v1obj["metadata"]["annotations"];
        assert_eq!(ann["keep"], "me");
        let specs: Value = serde_json::from_str(ann[METRIC_SPECS].as_str().unwrap()).unwrap();
        assert_eq!(
            specs,
            json!([{"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "10"}}])
        );
        assert!(
            ann[CONDITIONS]
                .as_str()
                .unwrap()
                .contains("ReadyForNewScale")
        );
        // Back to v2: nothing lost, annotations gone.
        let again = to_storage(&v1, &v2, v1obj).unwrap();
        assert_eq!(again["spec"], stored["spec"]);
        assert_eq!(again["status"], stored["status"]);
        assert_eq!(again["metadata"]["annotations"], json!({"keep": "me"}));
    }

    #[test]
    fn other_kinds_pass_through() {
        let reg = crate::resources::Registry::default();
        let d = reg.find("apps", "v1", "deployments").cloned().unwrap();
        let obj = json!({"metadata": {"name": "a"}, "spec": {"replicas": 1}});
        assert_eq!(to_storage(&d, &d, obj.clone()).unwrap(), obj);
        assert_eq!(from_storage(&d, &obj)["spec"], obj["spec"]);
    }
}
