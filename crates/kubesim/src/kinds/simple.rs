//! Kinds whose behaviour is a status from the create on and/or defaults:
//! Pods, PersistentVolumes, LimitRanges, ResourceQuotas, Nodes, Ingresses,
//! PodDisruptionBudgets and HorizontalPodAutoscalers.

use serde_json::{Value, json};

use super::{KindBehaviour, default_if_missing};

pub struct Pod;
pub struct PersistentVolume;
pub struct LimitRange;
/// ResourceQuotas and Nodes: an empty status.
pub struct EmptyStatus;
pub struct Ingress;
pub struct PodDisruptionBudget;
pub struct HorizontalPodAutoscaler;

impl KindBehaviour for Pod {
    fn initial_status(&self) -> Option<Value> {
        Some(json!({"phase": "Pending"}))
    }

    fn default(&self, obj: &mut Value) {
        crate::defaults::pod(obj);
    }
}

impl KindBehaviour for PersistentVolume {
    fn initial_status(&self) -> Option<Value> {
        Some(json!({"phase": "Pending"}))
    }
}

impl KindBehaviour for LimitRange {
    fn default(&self, obj: &mut Value) {
        crate::defaults::limit_range(obj);
    }
}

impl KindBehaviour for EmptyStatus {
    fn initial_status(&self) -> Option<Value> {
        Some(json!({}))
    }
}

impl KindBehaviour for Ingress {
    fn initial_status(&self) -> Option<Value> {
        Some(json!({"loadBalancer": {}}))
    }
}

impl KindBehaviour for PodDisruptionBudget {
    fn initial_status(&self) -> Option<Value> {
        Some(json!({
            "disruptionsAllowed": 0,
            "currentHealthy": 0,
            "desiredHealthy": 0,
            "expectedPods": 0,
        }))
    }
}

impl KindBehaviour for HorizontalPodAutoscaler {
    fn initial_status(&self) -> Option<Value> {
        Some(json!({"desiredReplicas": 0}))
    }

    // pkg/apis/autoscaling/v2/defaults.go: one replica at least, CPU at 80%.
    fn default(&self, obj: &mut Value) {
        default_if_missing(obj, &["spec", "minReplicas"], json!(1));
        if obj["spec"]["metrics"].as_array().is_none_or(Vec::is_empty) {
            obj["spec"]["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}}]);
        }
    }
}
