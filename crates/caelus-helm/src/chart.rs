//! Loaded charts and what publishing needs to know about them.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::HelmError;
use crate::ffi::{ChartHandle, ChartQuery, HelmLibrary};
use crate::reference::Digest;

/// A chart loaded into libhelm_c. Cheap to clone and shared across threads:
/// charts are immutable in the library. The handle is freed when the last
/// clone is dropped.
#[derive(Debug, Clone)]
pub struct Chart {
    pub(crate) inner: Arc<ChartInner>,
}

#[derive(Debug)]
pub(crate) struct ChartInner {
    pub handle: ChartHandle,
    /// The manifest digest it was pulled by, for charts from a registry.
    pub digest: Option<Digest>,
    /// Identity for the render cache: the manifest digest, or the sha256 of
    /// the archive bytes; `None` (never cached) for charts loaded from a
    /// directory, whose files may change.
    pub cache_key: Option<String>,
    /// The archive on disk (cache entry), used for lint.
    pub archive: Option<PathBuf>,
    /// Name from Chart.yaml, needed to recognise the top-level NOTES.txt.
    pub name: String,
    /// The chart's CRD files, read once.
    pub crd_files: OnceLock<Vec<(String, String)>>,
}

impl Chart {
    pub(crate) fn new(
        lib: &'static HelmLibrary,
        handle: ChartHandle,
        digest: Option<Digest>,
        cache_key: Option<String>,
        archive: Option<PathBuf>,
    ) -> Result<Self, HelmError> {
        let metadata: Value = query_json(lib, &handle, ChartQuery::Metadata)?;
        let name = metadata
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Ok(Chart {
            inner: Arc::new(ChartInner {
                handle,
                digest,
                cache_key,
                archive,
                name,
                crd_files: OnceLock::new(),
            }),
        })
    }

    /// The manifest digest this chart was pulled by (registry charts only).
    pub fn digest(&self) -> Option<&Digest> {
        self.inner.digest.as_ref()
    }

    /// The chart's name from Chart.yaml.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// True when both values are the same loaded chart.
    pub fn ptr_eq(&self, other: &Chart) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    pub(crate) fn crd_files(
        &self,
        lib: &'static HelmLibrary,
    ) -> Result<Vec<(String, String)>, HelmError> {
        if let Some(f) = self.inner.crd_files.get() {
            return Ok(f.clone());
        }
        #[derive(Deserialize)]
        struct CrdFile {
            #[serde(default)]
            name: String,
            #[serde(default)]
            filename: String,
            #[serde(default)]
            data: String,
        }
        let files: Option<Vec<CrdFile>> = query_json(lib, &self.inner.handle, ChartQuery::Crds)?;
        let files: Vec<(String, String)> = files
            .unwrap_or_default()
            .into_iter()
            .map(|f| {
                let file = if f.filename.is_empty() {
                    f.name
                } else {
                    f.filename
                };
                (file, f.data)
            })
            .collect();
        Ok(self.inner.crd_files.get_or_init(|| files).clone())
    }

    /// Read everything publishing stores (blocking; call on the pool).
    pub(crate) fn info(&self, lib: &'static HelmLibrary) -> Result<ChartInfo, HelmError> {
        let h = &self.inner.handle;
        let metadata: Value = query_json(lib, h, ChartQuery::Metadata)?;
        let default_values: Value = query_json::<Option<Value>>(lib, h, ChartQuery::Values)?
            .unwrap_or_else(|| Value::Object(Default::default()));
        let values_schema: Option<Value> = query_json(lib, h, ChartQuery::Schema)?;
        let dependencies: Option<Vec<Value>> = query_json(lib, h, ChartQuery::Dependencies)?;
        let mut crds = Vec::new();
        for (file, text) in self.crd_files(lib)? {
            for de in yaml_serde::Deserializer::from_str(&text) {
                let v = Value::deserialize(de).map_err(|e| HelmError::BadManifest {
                    template: file.clone(),
                    message: e.to_string(),
                })?;
                if !v.is_null() {
                    crds.push(v);
                }
            }
        }
        let text = |k: &str| metadata.get(k).and_then(Value::as_str).map(str::to_string);
        Ok(ChartInfo {
            name: text("name").unwrap_or_default(),
            version: text("version").unwrap_or_default(),
            app_version: text("appVersion"),
            description: text("description"),
            kube_version: text("kubeVersion"),
            dependencies: dependencies
                .unwrap_or_default()
                .iter()
                .filter_map(|d| {
                    Some(format!(
                        "{}@{}",
                        d.get("name")?.as_str()?,
                        d.get("version").and_then(Value::as_str).unwrap_or("")
                    ))
                })
                .collect(),
            default_values,
            values_schema,
            crds,
            metadata,
        })
    }
}

fn query_json<T: serde::de::DeserializeOwned>(
    lib: &'static HelmLibrary,
    handle: &ChartHandle,
    query: ChartQuery,
) -> Result<T, HelmError> {
    let text = lib.chart_query(handle, query).map_err(|e| e.into_helm())?;
    let text = if text.trim().is_empty() {
        "null"
    } else {
        &text
    };
    serde_json::from_str(text).map_err(|e| HelmError::Output {
        op: "chart query",
        message: format!("{query:?}: {e}"),
    })
}

/// What publishing a template version records about its chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChartInfo {
    pub name: String,
    pub version: String,
    pub app_version: Option<String>,
    pub description: Option<String>,
    /// `kubeVersion` constraint from Chart.yaml, if any.
    pub kube_version: Option<String>,
    /// Subcharts loaded from `charts/`, as `name@version`.
    pub dependencies: Vec<String>,
    /// The chart's `values.yaml` as JSON.
    pub default_values: Value,
    /// The chart's `values.schema.json`, if it ships one.
    pub values_schema: Option<Value>,
    /// CRD objects from `crds/` (chart and subcharts).
    pub crds: Vec<Value>,
    /// The whole Chart.yaml as JSON.
    pub metadata: Value,
}

/// `helm lint` findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LintReport {
    pub messages: Vec<LintMessage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LintMessage {
    /// 0 unknown, 1 info, 2 warning, 3 error (Helm's levels).
    pub severity: u8,
    pub path: String,
    pub message: String,
}

impl LintReport {
    pub const ERROR: u8 = 3;

    pub(crate) fn parse(json: &str) -> Result<Self, HelmError> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            messages: Option<Vec<RawMsg>>,
            #[serde(default)]
            errors: Option<Vec<String>>,
        }
        #[derive(Deserialize)]
        struct RawMsg {
            #[serde(default)]
            severity: u8,
            #[serde(default)]
            path: String,
            #[serde(default)]
            error: String,
        }
        let raw: Raw = serde_json::from_str(json).map_err(|e| HelmError::Output {
            op: "lint",
            message: e.to_string(),
        })?;
        let mut messages: Vec<LintMessage> = raw
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| LintMessage {
                severity: m.severity,
                path: m.path,
                message: m.error,
            })
            .collect();
        // Errors not attached to a message (e.g. the chart failed to load).
        for e in raw.errors.unwrap_or_default() {
            if !messages.iter().any(|m| m.message == e) {
                messages.push(LintMessage {
                    severity: Self::ERROR,
                    path: String::new(),
                    message: e,
                });
            }
        }
        Ok(LintReport { messages })
    }

    pub fn errors(&self) -> impl Iterator<Item = &LintMessage> {
        self.messages.iter().filter(|m| m.severity >= Self::ERROR)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
}
