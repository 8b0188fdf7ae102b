//! `caelus dev`'s local OCI registry and demo catalog, so a newcomer sees a
//! product at once: the repository's `web` test chart, pushed and published.

use crate::client::Client;
use anyhow::{Context, Result};
use caelus_helm::HelmEngine;
use caelus_helm::local_registry;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Child;

pub const DEMO_PRODUCT: &str = "web";

/// A `docker-registry` child process on loopback; stopped on drop.
pub struct DevRegistry {
    child: Child,
    port: u16,
}

impl DevRegistry {
    pub fn start(dir: &Path, port: u16) -> Result<DevRegistry> {
        std::fs::create_dir_all(dir)?;
        let child = local_registry::spawn(dir, port, None).with_context(|| {
            format!(
                "cannot start {} on port {port}",
                local_registry::REGISTRY_BINARY
            )
        })?;
        Ok(DevRegistry { child, port })
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for DevRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The repository's test charts: next to the working directory, or in the source tree.
fn charts_dir() -> Option<PathBuf> {
    [
        PathBuf::from("testdata/charts"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/charts"),
    ]
    .into_iter()
    .find(|p| p.join(DEMO_PRODUCT).is_dir())
}

/// Publishes the demo product through the API, once: only into an empty catalog.
pub async fn seed(client: &Client, helm: &HelmEngine, registry: &DevRegistry) -> Result<()> {
    let products = client.call("list_products", &[], &[], None).await?;
    if products["items"]
        .as_array()
        .is_some_and(|items| !items.is_empty())
    {
        return Ok(());
    }
    let charts =
        charts_dir().context("testdata/charts not found; run caelus dev from the repository")?;
    client
        .call(
            "create_product",
            &[],
            &[],
            Some(&json!({"slug": DEMO_PRODUCT, "name": "Demo web app",
                          "description": "A small web app (Deployment, Service, ConfigMap) to try Caelus with."})),
        )
        .await?;
    for version in ["1.0.0", "2.0.0"] {
        let dir = charts.join(DEMO_PRODUCT).join(version);
        helm.push_chart_dir(&dir, &format!("oci://{}/charts", registry.host()))
            .await
            .with_context(|| format!("cannot push {}", dir.display()))?;
        let body = json!({
            "version": version,
            "chart": format!("oci://{}/charts/{DEMO_PRODUCT}:{version}", registry.host()),
            "values_allowlist": ["replicaCount", "config.greeting", "resources.*", "ingress.*"],
            "publish": true,
            // The demo is published at start, uncertified: recorded as skipped.
            "skip_certification": true,
        });
        client
            .call(
                "create_template_version",
                &[("product", DEMO_PRODUCT)],
                &[],
                Some(&body),
            )
            .await?;
    }
    println!("  demo catalog: product '{DEMO_PRODUCT}' (versions 1.0.0 and 2.0.0) published");
    Ok(())
}
