//! Reads for "how do I reach it": a deployment's live Services and Ingresses
//! (turned into endpoints by core's `reach` rules) and the data of a Secret
//! in its namespace (for the connection details its template declares).

use crate::Engine;
use crate::error::{EngineError, Result, is_not_found};
use crate::object::DEPLOYMENT_UID_LABEL;
use caelus_core::reach::{Endpoint, ingress_endpoint, service_endpoint};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams};
use std::collections::BTreeMap;

impl Engine {
    /// The Services and Ingresses of deployment `uid` in `namespace` (the ones
    /// its chart created, by the deployment's label), as endpoints, Services first.
    pub async fn endpoints(&self, namespace: &str, uid: &str) -> Result<Vec<Endpoint>> {
        let params = ListParams::default().labels(&format!("{DEPLOYMENT_UID_LABEL}={uid}"));
        let services: Api<Service> = Api::namespaced(self.client().clone(), namespace);
        let ingresses: Api<Ingress> = Api::namespaced(self.client().clone(), namespace);
        let mut out = Vec::new();
        for s in services
            .list(&params)
            .await
            .map_err(|e| EngineError::api(format!("list services in {namespace}"), e))?
        {
            out.push(service_endpoint(&to_value(&s), namespace));
        }
        for i in ingresses
            .list(&params)
            .await
            .map_err(|e| EngineError::api(format!("list ingresses in {namespace}"), e))?
        {
            out.push(ingress_endpoint(&to_value(&i)));
        }
        out.sort_by(|a, b| (a.kind != "Service", &a.name).cmp(&(b.kind != "Service", &b.name)));
        Ok(out)
    }

    /// The decoded data of Secret `name` in `namespace` (`None`: no such Secret).
    /// Values that are not UTF-8 are left out.
    pub async fn secret_data(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>> {
        let secrets: Api<Secret> = Api::namespaced(self.client().clone(), namespace);
        let secret = match secrets.get(name).await {
            Ok(s) => s,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => {
                return Err(EngineError::api(
                    format!("get secret {namespace}/{name}"),
                    e,
                ));
            }
        };
        let mut data: BTreeMap<String, String> = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| String::from_utf8(v.0).ok().map(|v| (k, v)))
            .collect();
        // stringData is write-only on a real server; kept for clients that read it back.
        data.extend(secret.string_data.unwrap_or_default());
        Ok(Some(data))
    }
}

fn to_value<T: serde::Serialize>(o: &T) -> serde_json::Value {
    serde_json::to_value(o).unwrap_or_default()
}
