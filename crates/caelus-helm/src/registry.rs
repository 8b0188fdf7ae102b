//! Per-registry settings and the registry clients built from them.

use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::HelmError;
use crate::ffi::{HelmLibrary, RegistryHandle};
use crate::reference::is_loopback_host;

/// How to talk to one registry (`host[:port]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrySettings {
    /// Plain HTTP instead of HTTPS. `None`: plain HTTP for loopback hosts
    /// only (the dev/test registry), HTTPS everywhere else.
    pub plain_http: Option<bool>,
    /// Accept any TLS certificate (self-signed registries).
    #[serde(default)]
    pub insecure_skip_tls_verify: bool,
    pub credentials: Option<Credentials>,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

impl RegistrySettings {
    pub fn plain_http_for(&self, registry: &str) -> bool {
        self.plain_http
            .unwrap_or_else(|| is_loopback_host(registry))
    }
}

/// A libhelm_c registry client for one registry. Calls are serialised: the
/// binding does not promise a client may be used from two threads at once.
#[derive(Debug)]
pub(crate) struct RegistryClient {
    pub plain_http: bool,
    pub insecure: bool,
    pub handle: Mutex<RegistryHandle>,
}

impl RegistryClient {
    /// Build a client (and log in when credentials are set). Logins go to a
    /// credentials file under the data dir, never the user's Helm config.
    pub fn connect(
        lib: &'static HelmLibrary,
        registry: &str,
        settings: &RegistrySettings,
        credentials_file: &Path,
    ) -> Result<Self, HelmError> {
        let plain_http = settings.plain_http_for(registry);
        let options = json!({
            "plain_http": plain_http,
            "credentials_file": credentials_file.to_string_lossy(),
        });
        let handle = lib
            .registry_client_new(&options.to_string())
            .map_err(|e| e.into_registry(registry, registry))?;
        if let Some(c) = &settings.credentials {
            let opts = json!({
                "plain_http": plain_http,
                "insecure": settings.insecure_skip_tls_verify,
            });
            lib.registry_login(
                &handle,
                registry,
                &c.username,
                &c.password,
                &opts.to_string(),
            )
            .map_err(|e| e.into_registry(registry, registry))?;
        }
        Ok(RegistryClient {
            plain_http,
            insecure: settings.insecure_skip_tls_verify,
            handle: Mutex::new(handle),
        })
    }

    /// Options JSON for pull/push with this client's transport settings.
    pub fn transfer_options(&self, extra: serde_json::Value) -> String {
        let mut o = json!({
            "plain_http": self.plain_http,
            "insecure_skip_tls_verify": self.insecure,
        });
        if let (Some(o), Some(extra)) = (o.as_object_mut(), extra.as_object()) {
            o.extend(extra.clone());
        }
        o.to_string()
    }
}
