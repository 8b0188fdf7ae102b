//! PersistentVolumeClaims: `Pending` from the create on, a spec immutable but
//! for a growing storage request.

use serde_json::{Value, json};

use super::{KindBehaviour, default_if_missing};
use crate::errors::Cause;
use crate::resources::ResourceInfo;

pub struct PersistentVolumeClaim;

/// Parses a resource quantity into bytes-ish units for comparison.
pub fn parse_quantity(q: &str) -> f64 {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().unwrap_or(0.0);
    let mult = match suffix {
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "m" => 1e-3,
        _ => 1.0,
    };
    n * mult
}

impl KindBehaviour for PersistentVolumeClaim {
    fn initial_status(&self) -> Option<Value> {
        Some(json!({"phase": "Pending"}))
    }

    fn default(&self, obj: &mut Value) {
        default_if_missing(obj, &["spec", "volumeMode"], json!("Filesystem"));
    }

    fn validate_update(
        &self,
        _info: &ResourceInfo,
        old: &Value,
        new: &Value,
        causes: &mut Vec<Cause>,
    ) {
        let storage = |v: &Value| {
            v["spec"]["resources"]["requests"]["storage"]
                .as_str()
                .map(String::from)
        };
        let strip = |v: &Value| {
            let mut s = v["spec"].clone();
            if let Some(m) = s.as_object_mut() {
                m.remove("volumeName");
                m.remove("volumeAttributesClassName");
            }
            if let Some(req) = s
                .get_mut("resources")
                .and_then(|r| r.get_mut("requests"))
                .and_then(Value::as_object_mut)
            {
                req.remove("storage");
            }
            s
        };
        if strip(old) != strip(new) {
            causes.push(Cause::forbidden(
                "spec",
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
            ));
        }
        if let (Some(o), Some(n)) = (storage(old), storage(new))
            && parse_quantity(&n) < parse_quantity(&o)
        {
            causes.push(Cause::forbidden(
                "spec.resources.requests.storage",
                "field can not be less than previous value",
            ));
        }
    }
}
