//! Services: defaults, a clusterIP allocated at create and kept afterwards,
//! `spec.type` checked.

use serde_json::{Value, json};

use super::{KindBehaviour, default_if_missing};
use crate::errors::Cause;
use crate::resources::ResourceInfo;

pub struct Service;

/// Go's `%#v` of a string slice, used in clusterIP messages.
fn go_string_slice(v: &Value) -> String {
    let items: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| format!("{:?}", s.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    format!("[]string{{{}}}", items.join(", "))
}

impl KindBehaviour for Service {
    fn initial_status(&self) -> Option<Value> {
        Some(json!({"loadBalancer": {}}))
    }

    fn default(&self, obj: &mut Value) {
        default_if_missing(obj, &["spec", "type"], json!("ClusterIP"));
        default_if_missing(obj, &["spec", "sessionAffinity"], json!("None"));
        crate::defaults::service(obj);
        if let Some(ports) = obj["spec"]["ports"].as_array_mut() {
            for p in ports {
                if p.get("targetPort").is_none() {
                    p["targetPort"] = p["port"].clone();
                }
            }
        }
    }

    fn validate_create(&self, obj: &Value, causes: &mut Vec<Cause>) {
        if let Some(t) = obj["spec"]["type"].as_str()
            && !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&t)
        {
            causes.push(Cause::not_supported(
                "spec.type",
                t,
                &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
            ));
        }
    }

    fn validate_update(
        &self,
        _info: &ResourceInfo,
        old: &Value,
        new: &Value,
        causes: &mut Vec<Cause>,
    ) {
        let old_ip = &old["spec"]["clusterIP"];
        let new_ip = &new["spec"]["clusterIP"];
        // An update that omits clusterIP keeps it (as PUT with a cleared
        // field is defaulted back by kubectl); changing it is rejected.
        if old_ip.is_string() && new_ip.is_string() && old_ip != new_ip {
            causes.push(Cause::invalid(
                "spec.clusterIPs[0]",
                &go_string_slice(&json!([new_ip])),
                "may not change once set",
            ));
        }
    }

    fn on_create(&self, obj: &mut Value, allocate_ip: &dyn Fn() -> String) {
        let t = obj["spec"]["type"].as_str().unwrap_or("ClusterIP");
        if t != "ExternalName" && obj["spec"]["clusterIP"].is_null() {
            let ip = allocate_ip();
            obj["spec"]["clusterIP"] = json!(ip);
            obj["spec"]["clusterIPs"] = json!([ip]);
        }
    }

    fn on_update(&self, old: &Value, new: &mut Value) {
        if new["spec"]["clusterIP"].is_null() {
            new["spec"]["clusterIP"] = old["spec"]["clusterIP"].clone();
            new["spec"]["clusterIPs"] = old["spec"]["clusterIPs"].clone();
        }
    }
}
