//! The client's config file: named contexts (API URL and token), one of them current,
//! so nothing needs exporting. `caelus login` writes it, `caelus context …` manages it.
//!
//! Where: `$XDG_CONFIG_HOME/caelus/config.yaml`, else `~/.config/caelus/config.yaml`;
//! written with mode 0600 (it holds tokens) in a 0700 directory.
//!
//! Precedence, for each client command: a flag (`--url`, `--token`) wins over its
//! environment variable (`CAELUS_URL`, `CAELUS_TOKEN`), which wins over the context
//! (`--context`, else `CAELUS_CONTEXT`, else the file's current context).

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    #[serde(default)]
    pub contexts: BTreeMap<String, ContextEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextEntry {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Where `template publish --chart ./DIR` pushes charts (oci://HOST/REPO).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart_repository: Option<String>,
}

/// The config file's path, from the environment.
pub fn path() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::home_dir()
            .filter(|h| !h.as_os_str().is_empty())
            .context("neither XDG_CONFIG_HOME nor HOME is set: cannot find the caelus config")?
            .join(".config"),
    };
    Ok(base.join("caelus").join("config.yaml"))
}

impl Config {
    /// The file's contents; an absent file is an empty config.
    pub fn load(path: &Path) -> Result<Config> {
        match std::fs::read_to_string(path) {
            Ok(text) if text.trim().is_empty() => Ok(Config::default()),
            Ok(text) => yaml_serde::from_str(&text)
                .with_context(|| format!("{} is not a valid caelus config", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the file readable by its owner only (it holds tokens).
    pub fn save(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let text = yaml_serde::to_string(self)?;
        // Written beside it and renamed, so a reader never sees half a file.
        let tmp = path.with_extension("yaml.tmp");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        // The mode above applies only to a new file.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    /// The context a command uses: the named one (which must exist), else the current one.
    pub fn context(&self, name: Option<&str>) -> Result<Option<(&str, &ContextEntry)>> {
        match name.or(self.current_context.as_deref()) {
            None => Ok(None),
            Some(n) => match self.contexts.get_key_value(n) {
                Some((k, entry)) => Ok(Some((k.as_str(), entry))),
                None if name.is_some() => {
                    bail!(
                        "no context {n:?} in the caelus config (see `caelus context list`; `caelus login` adds one)"
                    )
                }
                // A current context that was removed by hand: as if there were none.
                None => Ok(None),
            },
        }
    }
}

/// Where a client command sends its requests, and with which token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    pub token: Option<String>,
    /// The context's chart repository (flags and environment override it where used).
    pub chart_repository: Option<String>,
}

/// Applies the precedence: explicit (flag or environment) over the context over the default.
/// A context's token is used only with that context's URL, so it is never sent elsewhere.
pub fn resolve(url: Option<&str>, token: Option<&str>, context: Option<&ContextEntry>) -> Endpoint {
    let url = url
        .map(str::to_string)
        .or_else(|| context.map(|c| c.url.clone()))
        .unwrap_or_else(|| DEFAULT_URL.to_string());
    let token = token.map(str::to_string).or_else(|| {
        context
            .filter(|c| c.url.trim_end_matches('/') == url.trim_end_matches('/'))
            .and_then(|c| c.token.clone())
    });
    let chart_repository = context.and_then(|c| c.chart_repository.clone());
    Endpoint {
        url,
        token,
        chart_repository,
    }
}

/// A context name for a URL: its host and port (`127.0.0.1:8080`).
pub fn name_for(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(url: &str, token: &str) -> ContextEntry {
        ContextEntry {
            url: url.into(),
            token: Some(token.into()),
            chart_repository: None,
        }
    }

    #[test]
    fn explicit_values_win_over_the_context_and_the_default_comes_last() {
        let c = ctx("http://ctx:1", "ctx-token");
        assert_eq!(
            resolve(None, None, Some(&c)),
            Endpoint {
                url: "http://ctx:1".into(),
                token: Some("ctx-token".into()),
                chart_repository: None,
            }
        );
        assert_eq!(
            resolve(Some("http://flag:2"), Some("t"), Some(&c)),
            Endpoint {
                url: "http://flag:2".into(),
                token: Some("t".into()),
                chart_repository: None,
            }
        );
        assert_eq!(
            resolve(None, Some("t"), Some(&c)).url,
            "http://ctx:1",
            "a token alone keeps the context's URL"
        );
        assert_eq!(resolve(None, None, None).url, DEFAULT_URL);
    }

    #[test]
    fn a_context_token_is_never_sent_to_another_url() {
        let c = ctx("http://ctx:1", "ctx-token");
        assert_eq!(resolve(Some("http://other:2"), None, Some(&c)).token, None);
        assert_eq!(
            resolve(Some("http://ctx:1/"), None, Some(&c))
                .token
                .as_deref(),
            Some("ctx-token")
        );
    }

    #[test]
    fn a_named_context_must_exist_and_a_stale_current_one_is_ignored() {
        let mut config = Config::default();
        config.contexts.insert("dev".into(), ctx("http://a", "t"));
        config.current_context = Some("gone".into());
        assert!(config.context(None).unwrap().is_none());
        assert_eq!(config.context(Some("dev")).unwrap().unwrap().0, "dev");
        let e = config.context(Some("prod")).unwrap_err().to_string();
        assert!(e.contains("\"prod\"") && e.contains("caelus login"), "{e}");
    }

    #[test]
    fn saved_files_are_private_and_round_trip() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("caelus-config-{}", std::process::id()));
        let path = dir.join("caelus").join("config.yaml");
        let mut config = Config::default();
        config
            .contexts
            .insert("dev".into(), ctx("http://127.0.0.1:8080", "cae_x"));
        config.current_context = Some("dev".into());
        config.save(&path).unwrap();
        config.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(Config::load(&path).unwrap(), config);
        assert_eq!(
            Config::load(&dir.join("absent.yaml")).unwrap(),
            Config::default()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn context_names_come_from_host_and_port() {
        assert_eq!(name_for("http://127.0.0.1:8080/"), "127.0.0.1:8080");
        assert_eq!(name_for("https://caelus.example.com"), "caelus.example.com");
    }
}
