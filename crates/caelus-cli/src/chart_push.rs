//! `caelus chart push` and the local `--chart` of `template publish`: package a chart
//! directory (or take a `.tgz`) with the Helm engine and push it to an OCI registry.

use crate::cli::PushArgs;
use anyhow::{Context, Result, bail};
use base64::Engine as _;
use caelus_helm::{Credentials, HelmEngine, RegistrySettings};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A pushed chart: `oci://HOST/REPO/NAME:TAG` and its manifest digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub reference: String,
    pub digest: String,
    /// `oci://HOST/REPO/NAME@sha256:…`: exactly what was pushed.
    pub pinned: String,
}

/// A reference to a chart in a registry, as opposed to a local path.
pub fn is_remote(chart: &str) -> bool {
    chart.starts_with("oci://")
}

/// The registry (`host[:port]`) of `oci://HOST[:PORT]/REPO`.
pub fn registry_of(repository: &str) -> Result<&str> {
    let rest = repository
        .strip_prefix("oci://")
        .with_context(|| format!("{repository:?} is not an OCI repository: use oci://HOST/REPO"))?;
    match rest.split('/').next() {
        Some(host) if !host.is_empty() => Ok(host),
        _ => bail!("{repository:?} names no registry host: use oci://HOST/REPO"),
    }
}

/// The registry settings file (the server's `--registries` format).
pub fn read_registries(path: &Path) -> Result<BTreeMap<String, RegistrySettings>> {
    let doc = crate::client_commands::read_document(path)?;
    serde_json::from_value(doc).with_context(|| {
        format!(
            "{} is not a map of registry host to settings",
            path.display()
        )
    })
}

/// Credentials for `registry` in a docker config (`auths`: `auth` is base64 of
/// `user:password`, or `username` and `password` fields). Keys may carry a scheme.
/// Credential helpers (`credsStore`, `credHelpers`) are not consulted.
pub fn docker_credentials(config: &Value, registry: &str) -> Option<Credentials> {
    let auths = config.get("auths")?.as_object()?;
    let entry = auths.iter().find_map(|(key, entry)| {
        let host = key
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/');
        (host == registry || host.split('/').next() == Some(registry)).then_some(entry)
    })?;
    if let Some(auth) = entry.get("auth").and_then(Value::as_str) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (username, password) = decoded.split_once(':')?;
        return Some(Credentials {
            username: username.into(),
            password: password.into(),
        });
    }
    Some(Credentials {
        username: entry.get("username")?.as_str()?.into(),
        password: entry.get("password")?.as_str()?.into(),
    })
}

fn docker_config() -> Option<Value> {
    let path = match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => PathBuf::from(dir).join("config.json"),
        None => std::env::home_dir()?.join(".docker").join("config.json"),
    };
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// How to reach `registry`: the settings file's entry, the docker config's credentials
/// when that entry has none, and `--plain-http`.
fn settings_for(registry: &str, args: &PushArgs) -> Result<Vec<(String, RegistrySettings)>> {
    let mut all = match &args.registries {
        Some(path) => read_registries(path)?,
        None => BTreeMap::new(),
    };
    let target = all.entry(registry.to_string()).or_default();
    if target.credentials.is_none() {
        target.credentials = docker_config().and_then(|c| docker_credentials(&c, registry));
    }
    if args.plain_http {
        target.plain_http = Some(true);
    }
    Ok(all.into_iter().collect())
}

/// Packages (a directory) and pushes `chart` to `repository`, with a Helm engine of its
/// own whose cache is a scratch directory removed afterwards.
pub async fn push(chart: &Path, repository: &str, args: &PushArgs) -> Result<Pushed> {
    let registry = registry_of(repository)?.to_string();
    if !chart.exists() {
        bail!("no chart at {}", chart.display());
    }
    let scratch = std::env::temp_dir().join(format!(
        "caelus-push-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let helm = crate::processes::load_helm(&scratch, args.helm_lib.as_deref())?;
    for (host, settings) in settings_for(&registry, args)? {
        helm.set_registry(&host, settings);
    }
    let result = push_with(&helm, chart, repository).await;
    drop(helm);
    let _ = std::fs::remove_dir_all(&scratch);
    result.with_context(|| format!("cannot push {} to {repository}", chart.display()))
}

async fn push_with(helm: &HelmEngine, chart: &Path, repository: &str) -> Result<Pushed> {
    let loaded = helm.load_path(chart).await?;
    let info = helm.chart_info(&loaded).await?;
    drop(loaded);
    // Helm's push tags with the chart version, `+` written as `_` (OCI tags allow no `+`).
    let tag = info.version.replace('+', "_");
    let tagged = format!("{}/{}:{tag}", repository.trim_end_matches('/'), info.name);
    let resolved = if chart.is_dir() {
        helm.push_chart_dir(chart, repository).await?
    } else {
        helm.push(chart, repository).await?;
        helm.resolve(&tagged.parse()?).await?
    };
    let mut pinned = resolved.reference.clone();
    pinned.tag = None;
    Ok(Pushed {
        reference: tagged,
        digest: resolved.digest.to_string(),
        pinned: pinned.to_string(),
    })
}
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn docker_config_credentials() {
        let auth = base64::engine::general_purpose::STANDARD.encode("ci:s3cret:x");
        let config = json!({"auths": {
            "https://registry.example.com/": {"auth": auth},
            "127.0.0.1:5001": {"username": "dev", "password": "pw"},
            "broken.example.com": {"auth": "%%%"}
        }});
        let c = docker_credentials(&config, "registry.example.com").unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("ci", "s3cret:x")
        );
        let c = docker_credentials(&config, "127.0.0.1:5001").unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("dev", "pw"));
        assert!(docker_credentials(&config, "broken.example.com").is_none());
        assert!(docker_credentials(&config, "other.example.com").is_none());
        assert!(docker_credentials(&json!({}), "registry.example.com").is_none());
    }

    #[test]
    fn repositories_name_their_registry() {
        assert_eq!(
            registry_of("oci://127.0.0.1:5001/charts").unwrap(),
            "127.0.0.1:5001"
        );
        assert!(registry_of("127.0.0.1:5001/charts").is_err());
        assert!(registry_of("oci:///charts").is_err());
        assert!(is_remote("oci://r/x") && !is_remote("./charts/web"));
    }
}
