//! How to reach what a deployment runs: endpoints derived from its live
//! Services and Ingresses, and the connection details (Secret keys) its
//! template lets the owner read. Pure: the adapters fetch the objects.

use crate::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// The placeholder a connection secret's name may contain.
pub const RELEASE_PLACEHOLDER: &str = "{{release}}";

/// One way in: a Service or an Ingress, as a user needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Endpoint {
    /// `Service` or `Ingress`.
    pub kind: String,
    pub name: String,
    /// A Service's type (`ClusterIP`, `NodePort`, `LoadBalancer`, `ExternalName`; `Headless`
    /// for `clusterIP: None`), or `Ingress`.
    #[serde(rename = "type")]
    pub type_: String,
    /// In-cluster DNS name (Services), or the external name of an `ExternalName` Service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    /// `80/TCP` (`http`), with `→30080` for a node port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// External addresses the cluster assigned (load balancer IPs or hostnames).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// What a browser opens: an Ingress's `https://host/path`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// Load balancer addresses from `status.loadBalancer.ingress` (Services and Ingresses).
fn lb_addresses(obj: &Value) -> Vec<String> {
    obj.pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| {
            i["ip"]
                .as_str()
                .or_else(|| i["hostname"].as_str())
                .map(String::from)
        })
        .collect()
}

/// The endpoint of a live Service in namespace `namespace`.
pub fn service_endpoint(svc: &Value, namespace: &str) -> Endpoint {
    let name = str_at(svc, "/metadata/name")
        .unwrap_or_default()
        .to_string();
    let spec = &svc["spec"];
    let mut type_ = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
    if type_ == "ClusterIP" && spec["clusterIP"].as_str() == Some("None") {
        type_ = "Headless".into();
    }
    let dns_name = if type_ == "ExternalName" {
        spec["externalName"].as_str().map(String::from)
    } else {
        Some(format!("{name}.{namespace}.svc.cluster.local"))
    };
    let ports = spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let mut s = format!(
                "{}/{}",
                p["port"].as_i64().unwrap_or_default(),
                p["protocol"].as_str().unwrap_or("TCP")
            );
            if let Some(np) = p["nodePort"].as_i64() {
                s.push_str(&format!("→{np}"));
            }
            if let Some(n) = p["name"].as_str().filter(|n| !n.is_empty()) {
                s.push_str(&format!(" ({n})"));
            }
            s
        })
        .collect();
    Endpoint {
        kind: "Service".into(),
        name,
        type_,
        dns_name,
        ports,
        addresses: lb_addresses(svc),
        urls: Vec::new(),
    }
}

/// The endpoint of a live Ingress: one URL per rule host and path, `https`
/// where a TLS entry covers the host.
pub fn ingress_endpoint(ing: &Value) -> Endpoint {
    let name = str_at(ing, "/metadata/name")
        .unwrap_or_default()
        .to_string();
    let spec = &ing["spec"];
    let tls_hosts: Vec<&str> = spec["tls"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["hosts"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    let addresses = lb_addresses(ing);
    let mut urls = Vec::new();
    for rule in spec["rules"].as_array().into_iter().flatten() {
        // A rule without a host matches any: the load balancer's address is the way in.
        let host = rule["host"]
            .as_str()
            .map(String::from)
            .or_else(|| addresses.first().cloned())
            .unwrap_or_else(|| "*".into());
        let scheme = if tls_hosts.contains(&host.as_str()) {
            "https"
        } else {
            "http"
        };
        let paths: Vec<&str> = rule
            .pointer("/http/paths")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|p| p["path"].as_str().unwrap_or("/"))
            .collect();
        if paths.is_empty() {
            urls.push(format!("{scheme}://{host}/"));
        }
        for path in paths {
            urls.push(format!("{scheme}://{host}{path}"));
        }
    }
    Endpoint {
        kind: "Ingress".into(),
        name,
        type_: "Ingress".into(),
        dns_name: None,
        ports: Vec::new(),
        addresses,
        urls,
    }
}

/// Secret keys of a deployment its owner may read (like Crossplane's
/// connection details), declared by the template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSecret {
    /// The Secret's name in the deployment's namespace; `{{release}}` stands for the
    /// deployment's release name (`{{release}}-postgresql`).
    pub secret: String,
    /// The keys of its data the owner may read.
    pub keys: Vec<String>,
}

impl ConnectionSecret {
    /// The Secret's name for release `release`.
    pub fn name_for(&self, release: &str) -> String {
        self.secret.replace(RELEASE_PLACEHOLDER, release)
    }

    /// A name that, with any release name, is a valid Secret name; keys that are
    /// valid Secret data keys (`[-._a-zA-Z0-9]+`).
    pub fn validate(&self, field: &str) -> Result<(), FieldError> {
        // Release names are DNS labels: a stand-in of that shape checks the rest.
        let sample = self.name_for("r");
        let valid_name = !sample.is_empty()
            && sample.len() <= 253
            && !sample.contains("{{")
            && sample.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !valid_name {
            return Err(FieldError::new(
                format!("{field}.secret"),
                "must be a Secret name (lowercase DNS subdomain), where {{release}} may stand for the release name",
            ));
        }
        if self.keys.is_empty() {
            return Err(FieldError::new(
                format!("{field}.keys"),
                "must name at least one key of the Secret",
            ));
        }
        for (i, key) in self.keys.iter().enumerate() {
            let ok = !key.is_empty()
                && key.len() <= 253
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !ok {
                return Err(FieldError::new(
                    format!("{field}.keys[{i}]"),
                    "must be a Secret data key (letters, digits, '-', '_' and '.')",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_service_reads_as_its_dns_name_ports_and_addresses() {
        let svc = json!({
            "metadata": {"name": "shop-web"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.0.0.5", "ports": [
                {"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080},
                {"port": 53, "protocol": "UDP"}
            ]},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}, {"hostname": "lb.example"}]}}
        });
        let e = service_endpoint(&svc, "d-123");
        assert_eq!(e.type_, "LoadBalancer");
        assert_eq!(
            e.dns_name.as_deref(),
            Some("shop-web.d-123.svc.cluster.local")
        );
        assert_eq!(e.ports, ["80/TCP→30080 (http)", "53/UDP"]);
        assert_eq!(e.addresses, ["203.0.113.7", "lb.example"]);
    }

    #[test]
    fn headless_and_external_name_services_say_what_they_are() {
        let headless =
            json!({"metadata": {"name": "db-hl"}, "spec": {"clusterIP": "None", "ports": []}});
        assert_eq!(service_endpoint(&headless, "ns").type_, "Headless");
        let ext = json!({"metadata": {"name": "x"}, "spec": {"type": "ExternalName", "externalName": "db.example.com"}});
        let e = service_endpoint(&ext, "ns");
        assert_eq!(e.dns_name.as_deref(), Some("db.example.com"));
    }

    #[test]
    fn an_ingress_reads_as_urls_with_https_where_tls_covers_the_host() {
        let ing = json!({
            "metadata": {"name": "web"},
            "spec": {
                "tls": [{"hosts": ["shop.example"]}],
                "rules": [
                    {"host": "shop.example", "http": {"paths": [{"path": "/"}, {"path": "/api"}]}},
                    {"host": "plain.example", "http": {"paths": [{"path": "/docs"}]}},
                    {"http": {"paths": [{"path": "/any"}]}}
                ]
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.1"}]}}
        });
        let e = ingress_endpoint(&ing);
        assert_eq!(
            e.urls,
            [
                "https://shop.example/",
                "https://shop.example/api",
                "http://plain.example/docs",
                "http://198.51.100.1/any"
            ]
        );
        assert_eq!(e.addresses, ["198.51.100.1"]);
    }

    #[test]
    fn connection_secret_names_take_the_release_and_are_checked() {
        let c = ConnectionSecret {
            secret: "{{release}}-postgresql".into(),
            keys: vec!["postgres-password".into()],
        };
        assert_eq!(c.name_for("r-1a2b"), "r-1a2b-postgresql");
        assert!(c.validate("capabilities.connection_secrets[0]").is_ok());

        let bad_name = ConnectionSecret {
            secret: "{{other}}-x".into(),
            ..c.clone()
        };
        let e = bad_name.validate("f").unwrap_err();
        assert_eq!(e.field, "f.secret");

        let no_keys = ConnectionSecret {
            keys: vec![],
            ..c.clone()
        };
        assert_eq!(no_keys.validate("f").unwrap_err().field, "f.keys");

        let bad_key = ConnectionSecret {
            keys: vec!["ok".into(), "no/slash".into()],
            ..c
        };
        assert_eq!(bad_key.validate("f").unwrap_err().field, "f.keys[1]");
    }
}
