//! The async face of the Helm layer: [`HelmEngine`].
//!
//! Every libhelm_c call blocks (network, disk, template execution), so each
//! one runs on tokio's blocking threads behind a semaphore that bounds how
//! many run at once. Loaded charts are cached by manifest digest and render
//! results by their full input, both in memory; pulled archives are cached
//! on disk (see [`crate::store`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::chart::{Chart, ChartInfo, LintReport};
use crate::error::HelmError;
use crate::ffi::HelmLibrary;
use crate::lru::Lru;
use crate::reference::{ChartReference, Digest};
use crate::registry::{RegistryClient, RegistrySettings};
use crate::render::{RenderRequest, Rendered, RevisionKind, assemble, value_hash};
use crate::store::ChartStore;

/// Environment variable naming the library file.
pub const LIBRARY_ENV: &str = "CAELUS_HELM_LIB";
/// Where `scripts/install-helm-lib` puts the library, relative to the repo.
pub const DEFAULT_LIBRARY_RELATIVE: &str = ".tools/helm/libhelm_c.so";

/// How to build a [`HelmEngine`].
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Library file; when `None`, `CAELUS_HELM_LIB`, then the default
    /// location (see [`locate_library`]).
    pub library_path: Option<PathBuf>,
    /// Caelus data dir; the chart cache lives in `<data_dir>/charts/`.
    pub data_dir: PathBuf,
    /// Most libhelm_c calls running at once.
    pub max_concurrent_calls: usize,
    /// Loaded charts kept in memory.
    pub chart_cache_entries: usize,
    /// Render results kept in memory.
    pub render_cache_entries: usize,
    /// Bounds of one render (time, output, objects) and of the render cache.
    pub render_limits: RenderLimits,
    /// When the library (and with it Helm's Go runtime, ~50 MiB resident)
    /// is loaded.
    pub library_loading: LibraryLoading,
}

/// When [`HelmEngine::load`] loads libhelm_c.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LibraryLoading {
    /// At once, checking its versions: a process that renders from its
    /// first minute (the worker) fails at start, not at its first pass.
    #[default]
    AtStart,
    /// At the first call that needs it. The API server needs Helm only to
    /// publish versions, check values against a chart's schema and preview
    /// plans; many serve hours of reads without any. The file must exist at
    /// start; its versions are checked when it loads.
    OnFirstUse,
}

/// Bounds on rendering: a chart and its values are a tenant's input, and a
/// `range` over a huge value would otherwise produce output (and take
/// memory and time) without limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderLimits {
    /// Longest a render may take. libhelm_c's render takes no context, so
    /// the call cannot be interrupted: the caller stops waiting and gets a
    /// refusal, the call keeps its slot of the blocking pool until it ends
    /// (so at most `max_concurrent_calls` run away at once), and its input
    /// is remembered so retries are refused without rendering again.
    pub timeout: std::time::Duration,
    /// Largest render output (all templates' text) accepted.
    pub max_output_bytes: usize,
    /// Most objects (CRDs, objects and hooks) one render may produce.
    pub max_objects: usize,
    /// Memory the render cache may hold (sum of the renders' output sizes).
    pub cache_bytes: usize,
}

impl Default for RenderLimits {
    fn default() -> Self {
        RenderLimits {
            timeout: std::time::Duration::from_secs(10),
            max_output_bytes: 8 * 1024 * 1024,
            max_objects: 2_000,
            cache_bytes: 128 * 1024 * 1024,
        }
    }
}

impl EngineConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        EngineConfig {
            library_path: None,
            data_dir: data_dir.into(),
            max_concurrent_calls: cores.max(2),
            chart_cache_entries: 64,
            render_cache_entries: 512,
            render_limits: RenderLimits::default(),
            library_loading: LibraryLoading::default(),
        }
    }
}

/// Find the library: explicit path, else `CAELUS_HELM_LIB`, else
/// `.tools/helm/libhelm_c.so` in the current directory or an ancestor, else
/// in this source tree's root. Returns the path to try (it may not exist;
/// loading then reports it together with the install command).
pub fn locate_library(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os(LIBRARY_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let from_cwd = std::env::current_dir().ok().and_then(|cwd| {
        cwd.ancestors()
            .map(|d| d.join(DEFAULT_LIBRARY_RELATIVE))
            .find(|p| p.is_file())
    });
    from_cwd.unwrap_or_else(|| source_root().join(DEFAULT_LIBRARY_RELATIVE))
}

/// Root of the source tree this crate was built from (crates/caelus-helm/../..).
pub(crate) fn source_root() -> PathBuf {
    let mut root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    root.pop();
    root.pop();
    root
}

/// A tag resolved to the digest of its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedChart {
    /// The reference pinned by digest (`oci://…/chart@sha256:…`).
    pub reference: ChartReference,
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// What publishing a template version needs: the pinned chart, loaded and
/// linted, with its metadata.
#[derive(Debug, Clone)]
pub struct InspectedChart {
    pub reference: ChartReference,
    pub digest: Digest,
    pub chart: Chart,
    pub info: ChartInfo,
    pub lint: LintReport,
}

/// Counters for benchmarks and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub render_hits: u64,
    pub render_misses: u64,
    pub charts_in_memory: usize,
    pub renders_in_memory: usize,
    /// Output bytes of the renders kept in memory.
    pub render_cache_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RenderKey {
    chart: String,
    values_hash: String,
    release: String,
    namespace: String,
    kind: RevisionKind,
    // The revision number reaches templates as .Release.Revision, and the
    // uid and Kubernetes version change the output, so they are part of
    // the key too; a deployment re-rendering the same revision still hits.
    revision: u32,
    kube_version: Option<String>,
    deployment_uid: String,
}

/// The Helm engine: library, blocking pool, registries and caches. Cheap to
/// clone (an `Arc`); share one per process.
#[derive(Clone, Debug)]
pub struct HelmEngine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Set once loaded (see [`LibraryLoading`]); [`Inner::lib`] loads it.
    lib: OnceLock<&'static HelmLibrary>,
    lib_path: PathBuf,
    pool: Arc<Semaphore>,
    store: ChartStore,
    data_dir: PathBuf,
    registry_settings: Mutex<HashMap<String, RegistrySettings>>,
    clients: Mutex<HashMap<String, Arc<RegistryClient>>>,
    /// Loaded charts by (repository, manifest digest): see `store.rs` for
    /// why the repository is part of the key.
    charts: Mutex<Lru<(String, Digest), Chart>>,
    renders: Mutex<Lru<RenderKey, Arc<Rendered>>>,
    /// Inputs whose render went past a limit, with the refusal: asked
    /// again (a retry), they are refused without running again.
    refused: Mutex<Lru<RenderKey, String>>,
    limits: RenderLimits,
    render_hits: AtomicU64,
    render_misses: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind;
    // keep going rather than poisoning every later call.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl HelmEngine {
    /// Load the library (checking its versions) and open the chart cache.
    pub fn load(config: EngineConfig) -> Result<Self, HelmError> {
        let path = locate_library(config.library_path.as_deref());
        let lib = OnceLock::new();
        match config.library_loading {
            LibraryLoading::AtStart => {
                let _ = lib.set(load_library(&path)?);
            }
            LibraryLoading::OnFirstUse if !path.is_file() => {
                return Err(HelmError::LibraryMissing { path });
            }
            LibraryLoading::OnFirstUse => {}
        }
        let store = ChartStore::open(&config.data_dir)?;
        Ok(HelmEngine {
            inner: Arc::new(Inner {
                lib,
                lib_path: path,
                pool: Arc::new(Semaphore::new(config.max_concurrent_calls.max(1))),
                store,
                data_dir: config.data_dir,
                registry_settings: Mutex::new(HashMap::new()),
                clients: Mutex::new(HashMap::new()),
                charts: Mutex::new(Lru::new(config.chart_cache_entries)),
                renders: Mutex::new(Lru::weighted(
                    config.render_cache_entries,
                    config.render_limits.cache_bytes,
                )),
                refused: Mutex::new(Lru::new(256)),
                limits: config.render_limits,
                render_hits: AtomicU64::new(0),
                render_misses: AtomicU64::new(0),
            }),
        })
    }

    /// The library (path, versions, open-handle count), loading it if it
    /// is not loaded yet.
    pub fn library(&self) -> Result<&'static HelmLibrary, HelmError> {
        self.inner.lib()
    }

    /// Whether the library has been loaded (see [`LibraryLoading`]).
    pub fn library_loaded(&self) -> bool {
        self.inner.lib.get().is_some()
    }

    /// Live handles inside libhelm_c; returns to zero once every chart and
    /// engine is dropped (the leak check). Zero before the library loads.
    pub fn open_handles(&self) -> i64 {
        self.inner.lib.get().map_or(0, |lib| lib.open_handles())
    }

    pub fn chart_store(&self) -> &ChartStore {
        &self.inner.store
    }

    pub fn cache_stats(&self) -> CacheStats {
        let charts_in_memory = lock(&self.inner.charts).len();
        // One guard for both readings: a second `lock` in the same
        // expression would wait for the first guard forever.
        let (renders_in_memory, render_cache_bytes) = {
            let renders = lock(&self.inner.renders);
            (renders.len(), renders.weight())
        };
        CacheStats {
            render_hits: self.inner.render_hits.load(Ordering::Relaxed),
            render_misses: self.inner.render_misses.load(Ordering::Relaxed),
            charts_in_memory,
            renders_in_memory,
            render_cache_bytes,
        }
    }

    /// Drop cached charts, renders and registry clients (their handles are
    /// freed once no caller holds them).
    pub fn clear_caches(&self) {
        lock(&self.inner.charts).clear();
        lock(&self.inner.renders).clear();
        lock(&self.inner.refused).clear();
        lock(&self.inner.clients).clear();
    }

    /// Set how to reach `registry` (`host[:port]`); replaces earlier settings.
    pub fn set_registry(&self, registry: &str, settings: RegistrySettings) {
        lock(&self.inner.registry_settings).insert(registry.to_string(), settings);
        lock(&self.inner.clients).remove(registry);
    }

    /// Run `f` on the bounded blocking pool.
    async fn blocking<T, F>(&self, f: F) -> Result<T, HelmError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, HelmError> + Send + 'static,
    {
        let permit = self
            .inner
            .pool
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| HelmError::Worker(e.to_string()))?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f(&inner)
        })
        .await
        .map_err(|e| HelmError::Worker(e.to_string()))?
    }

    // --- registry ---------------------------------------------------------

    /// Resolve `reference`'s tag to its manifest digest. A reference that
    /// already names a digest is returned pinned to it, unchecked (pulling
    /// verifies it).
    pub async fn resolve(&self, reference: &ChartReference) -> Result<ResolvedChart, HelmError> {
        if let Some(d) = &reference.digest {
            return Ok(ResolvedChart {
                reference: reference.with_digest(d.clone()),
                digest: d.clone(),
                media_type: String::new(),
                size: 0,
            });
        }
        let reference = reference.clone();
        self.blocking(move |inner| {
            let client = inner.client(&reference.registry)?;
            let text = {
                let h = lock(&client.handle);
                inner
                    .lib()?
                    .registry_resolve(&h, &reference.to_string())
                    .map_err(|e| e.into_registry(&reference.registry, &reference.to_string()))?
            };
            #[derive(Deserialize)]
            struct Descriptor {
                digest: String,
                #[serde(default)]
                media_type: String,
                #[serde(default)]
                size: u64,
            }
            let d: Descriptor = serde_json::from_str(&text).map_err(|e| HelmError::Output {
                op: "registry_resolve",
                message: e.to_string(),
            })?;
            let digest: Digest = d.digest.parse()?;
            Ok(ResolvedChart {
                reference: reference.with_digest(digest.clone()),
                digest,
                media_type: d.media_type,
                size: d.size,
            })
        })
        .await
    }

    /// The chart `reference`'s repository serves under its digest: from
    /// memory, else the disk cache, else pulled from that repository (Helm
    /// verifies the digest). Both caches are keyed by repository and digest,
    /// so a digest is only ever served for a repository that had it.
    pub async fn pull(&self, reference: &ChartReference) -> Result<Chart, HelmError> {
        let digest = reference
            .digest
            .clone()
            .ok_or_else(|| HelmError::InvalidReference {
                reference: reference.to_string(),
                reason: "pulling needs a digest; resolve the tag first".into(),
            })?;
        let repository = reference.repository_key();
        let key = (repository.clone(), digest.clone());
        if let Some(c) = lock(&self.inner.charts).get(&key) {
            return Ok(c);
        }
        let reference = reference.with_digest(digest.clone());
        let chart = self
            .blocking(move |inner| {
                let (bytes, archive) = match inner.store.read(&repository, &digest)? {
                    Some(bytes) => (bytes, inner.store.path(&repository, &digest)),
                    None => {
                        let bytes = inner.pull_archive(&reference)?;
                        let path = inner.store.write(&repository, &digest, &bytes)?;
                        (bytes, path)
                    }
                };
                let handle = inner
                    .lib()?
                    .chart_load_archive(&bytes)
                    .map_err(|e| e.into_helm())?;
                Chart::new(
                    inner.lib()?,
                    handle,
                    Some(digest.clone()),
                    Some(digest.to_string()),
                    Some(archive),
                )
            })
            .await?;
        let mut charts = lock(&self.inner.charts);
        // Another task may have loaded it meanwhile; keep one copy.
        if let Some(existing) = charts.get(&key) {
            return Ok(existing);
        }
        charts.insert(key, chart.clone());
        Ok(chart)
    }

    /// Push a packaged chart (`.tgz`) to `repository` (`oci://host/path`);
    /// the chart's name and version become the repository and tag. Helm
    /// reports no digest: resolve the tag afterwards.
    pub async fn push(&self, archive: &Path, repository: &str) -> Result<(), HelmError> {
        let archive = archive.to_path_buf();
        let repository = repository.to_string();
        let registry = repository
            .strip_prefix("oci://")
            .and_then(|r| r.split('/').next())
            .filter(|r| !r.is_empty())
            .ok_or_else(|| HelmError::InvalidReference {
                reference: repository.clone(),
                reason: "must be oci://REGISTRY[/PATH]".into(),
            })?
            .to_string();
        self.blocking(move |inner| {
            let client = inner.client(&registry)?;
            let h = lock(&client.handle);
            inner
                .lib()?
                .push(
                    &h,
                    &archive,
                    &repository,
                    &client.transfer_options(json!({})),
                )
                .map_err(|e| e.into_registry(&registry, &repository))?;
            Ok(())
        })
        .await
    }

    /// Package the chart directory `dir`, push it to `repository`
    /// (`oci://host/path`) and resolve the pushed tag (`name:version` from
    /// its Chart.yaml). What `caelus dev` uses to seed a demo chart.
    pub async fn push_chart_dir(
        &self,
        dir: &Path,
        repository: &str,
    ) -> Result<ResolvedChart, HelmError> {
        let chart = self.load_path(dir).await?;
        let info = self.chart_info(&chart).await?;
        let scratch = self.inner.store.scratch_dir()?;
        let archive = self.package(&chart, scratch.path()).await?;
        drop(chart);
        self.push(&archive, repository).await?;
        let tag = info.version.replace('+', "_");
        let reference: ChartReference =
            format!("{}/{}:{}", repository.trim_end_matches('/'), info.name, tag).parse()?;
        self.resolve(&reference).await
    }

    /// Everything publishing needs, from a tag or digest reference:
    /// resolve, pull (verified), load, lint and read the chart's metadata.
    /// A chart with lint errors is refused.
    pub async fn inspect(&self, reference: &ChartReference) -> Result<InspectedChart, HelmError> {
        let resolved = self.resolve(reference).await?;
        let chart = self.pull(&resolved.reference).await?;
        let lint = self.lint(&chart).await?;
        if lint.has_errors() {
            let text: Vec<String> = lint
                .errors()
                .map(|m| {
                    if m.path.is_empty() {
                        m.message.clone()
                    } else {
                        format!("{}: {}", m.path, m.message)
                    }
                })
                .collect();
            return Err(HelmError::ChartInvalid {
                message: text.join("; "),
            });
        }
        let info = self.chart_info(&chart).await?;
        Ok(InspectedChart {
            reference: resolved.reference,
            digest: resolved.digest,
            chart,
            info,
            lint,
        })
    }

    // --- charts -----------------------------------------------------------

    /// Load a chart from a directory or a `.tgz` (local files, e.g. tests and
    /// `caelus dev`). Directory charts are never render-cached.
    pub async fn load_path(&self, path: &Path) -> Result<Chart, HelmError> {
        let path = path.to_path_buf();
        self.blocking(move |inner| {
            if path.is_file() {
                let bytes = std::fs::read(&path)
                    .map_err(|e| HelmError::io(format!("reading {}", path.display()), e))?;
                let key = format!("archive:{}", Digest::of_bytes(&bytes));
                let handle = inner
                    .lib()?
                    .chart_load_archive(&bytes)
                    .map_err(|e| e.into_helm())?;
                return Chart::new(inner.lib()?, handle, None, Some(key), Some(path));
            }
            let handle = inner
                .lib()?
                .chart_load_path(&path)
                .map_err(|e| e.into_helm())?;
            Chart::new(inner.lib()?, handle, None, None, Some(path))
        })
        .await
    }

    /// Package a loaded chart into `dest_dir`; returns the `.tgz` path.
    pub async fn package(&self, chart: &Chart, dest_dir: &Path) -> Result<PathBuf, HelmError> {
        let chart = chart.clone();
        let dest = dest_dir.to_path_buf();
        self.blocking(move |inner| {
            let out = inner
                .lib()?
                .chart_save(&chart.inner.handle, &dest)
                .map_err(|e| e.into_helm())?;
            Ok(PathBuf::from(out))
        })
        .await
    }

    /// Name, version, default values, values schema and CRDs.
    pub async fn chart_info(&self, chart: &Chart) -> Result<ChartInfo, HelmError> {
        let chart = chart.clone();
        self.blocking(move |inner| chart.info(inner.lib()?)).await
    }

    /// `helm lint` on the chart's archive or directory.
    pub async fn lint(&self, chart: &Chart) -> Result<LintReport, HelmError> {
        let Some(path) = chart.inner.archive.clone() else {
            return Ok(LintReport { messages: vec![] });
        };
        self.blocking(move |inner| {
            let report = inner.lib()?.lint(&path, "{}").map_err(|e| e.into_helm())?;
            LintReport::parse(&report)
        })
        .await
    }

    /// Check `values` against the chart's `values.schema.json` (charts
    /// without one accept anything). The error carries Helm's message,
    /// which names the path at fault.
    pub async fn validate_values(&self, chart: &Chart, values: &Value) -> Result<(), HelmError> {
        let chart = chart.clone();
        let values = values.to_string();
        self.blocking(move |inner| {
            inner
                .lib()?
                .schema_validate(&chart.inner.handle, &values)
                .map_err(|e| e.into_helm())
        })
        .await
    }

    /// The configured render bounds.
    pub fn render_limits(&self) -> RenderLimits {
        self.inner.limits
    }

    /// Render `chart` for `request`, within the [`RenderLimits`]. Results
    /// are cached by the full input. Callers that deploy or preview a
    /// revision use [`HelmEngine::render_revision`], which also checks
    /// policy.
    pub async fn render(
        &self,
        chart: &Chart,
        request: &RenderRequest,
    ) -> Result<Arc<Rendered>, HelmError> {
        // A render with `lookup` depends on the live cluster: never cached.
        let cacheable = request.lookup.is_none();
        let key = chart
            .inner
            .cache_key
            .as_ref()
            .filter(|_| cacheable)
            .map(|c| RenderKey {
                chart: c.clone(),
                values_hash: value_hash(&request.values),
                release: request.release_name.clone(),
                namespace: request.namespace.clone(),
                kind: request.kind,
                revision: request.revision,
                kube_version: request.kube_version.clone(),
                deployment_uid: request.deployment_uid.clone(),
            });
        if let Some(key) = &key {
            if let Some(hit) = lock(&self.inner.renders).get(key) {
                self.inner.render_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(hit);
            }
            if let Some(message) = lock(&self.inner.refused).get(key) {
                return Err(HelmError::RenderLimit {
                    limit: "earlier refusal".into(),
                    message,
                });
            }
        }
        self.inner.render_misses.fetch_add(1, Ordering::Relaxed);
        let chart = chart.clone();
        let request = request.clone();
        let limits = self.inner.limits;
        // The clock starts once the render runs, not while it waits for a
        // slot of the pool behind other renders.
        let permit = self
            .inner
            .pool
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| HelmError::Worker(e.to_string()))?;
        let inner = self.inner.clone();
        let run = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            render_blocking(inner.lib()?, &chart, &request, &limits)
        });
        let result = match tokio::time::timeout(limits.timeout, run).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(HelmError::Worker(e.to_string())),
            Err(_) => Err(HelmError::RenderLimit {
                limit: format!("render timeout {}s", limits.timeout.as_secs_f64()),
                message: format!(
                    "the chart did not finish rendering within {:.1}s with these values (a `range` over a large value?)",
                    limits.timeout.as_secs_f64()
                ),
            }),
        };
        let (rendered, weight) = match result {
            Ok(r) => r,
            Err(e) => {
                if let (Some(key), HelmError::RenderLimit { message, .. }) = (&key, &e) {
                    lock(&self.inner.refused).insert(key.clone(), message.clone());
                }
                return Err(e);
            }
        };
        let rendered = Arc::new(rendered);
        if let Some(key) = key {
            lock(&self.inner.renders).insert_weighted(key, rendered.clone(), weight);
        }
        Ok(rendered)
    }
}

/// Render once, within the output and object bounds; returns the render
/// and its weight for the cache (output bytes).
fn render_blocking(
    lib: &'static HelmLibrary,
    chart: &Chart,
    req: &RenderRequest,
    limits: &RenderLimits,
) -> Result<(Rendered, usize), HelmError> {
    let mut options = json!({
        "name": req.release_name,
        "namespace": req.namespace,
        "revision": req.revision,
        "is_install": req.kind == RevisionKind::Install,
        "is_upgrade": req.kind == RevisionKind::Upgrade,
    });
    if let Some(v) = &req.kube_version {
        options["kube_version"] = json!(v);
    }
    let values = if req.values.is_null() {
        "{}".to_string()
    } else {
        req.values.to_string()
    };
    let options = options.to_string();
    let max = limits.max_output_bytes;
    let out = match &req.lookup {
        None => lib.render(&chart.inner.handle, &values, &options, max),
        Some(cluster) => {
            // The memory storage driver: a render reads no release history.
            let config = lib
                .config_new(
                    &json!({
                        "kubeconfig_content": cluster.kubeconfig,
                        "namespace": req.namespace,
                        "storage_driver": "memory",
                    })
                    .to_string(),
                )
                .map_err(|e| e.into_helm())?;
            lib.render_with_config(&config, &chart.inner.handle, &values, &options, max)
        }
    }
    .map_err(|e| e.into_helm())?
    .map_err(|size| HelmError::RenderLimit {
        limit: format!("{max} bytes of output"),
        message: format!("the chart rendered {size} bytes with these values"),
    })?;
    let templates: BTreeMap<String, String> =
        serde_json::from_str(&out).map_err(|e| HelmError::Output {
            op: "render",
            message: e.to_string(),
        })?;
    let crds = chart.crd_files(lib)?;
    let weight = out.len() + crds.iter().map(|(_, t)| t.len()).sum::<usize>();
    drop(out);
    let rendered = assemble(chart.name(), &templates, &crds, &req.deployment_uid)?;
    let count = rendered.crds.len() + rendered.objects.len() + rendered.hooks.len();
    if count > limits.max_objects {
        return Err(HelmError::RenderLimit {
            limit: format!("{} objects", limits.max_objects),
            message: format!("the chart rendered {count} objects with these values"),
        });
    }
    Ok((rendered, weight))
}

/// Loads libhelm_c (once per process; see [`HelmLibrary::load`]).
fn load_library(path: &Path) -> Result<&'static HelmLibrary, HelmError> {
    let lib = HelmLibrary::load(path)?;
    tracing::debug!(path = %lib.path().display(), version = lib.c_version(), helm = lib.sdk_version(), "loaded libhelm_c");
    Ok(lib)
}

impl Inner {
    /// The library, loaded on first use when the engine was configured so.
    fn lib(&self) -> Result<&'static HelmLibrary, HelmError> {
        if let Some(lib) = self.lib.get() {
            return Ok(lib);
        }
        let lib = load_library(&self.lib_path)?;
        let _ = self.lib.set(lib);
        Ok(lib)
    }

    /// The client for `registry`, created (and logged in) on first use.
    fn client(&self, registry: &str) -> Result<Arc<RegistryClient>, HelmError> {
        if let Some(c) = lock(&self.clients).get(registry) {
            return Ok(c.clone());
        }
        let settings = lock(&self.registry_settings)
            .get(registry)
            .cloned()
            .unwrap_or_default();
        let creds_file = self.data_dir.join("registry").join(format!(
            "{}.json",
            Digest::of_bytes(registry.as_bytes()).hex()
        ));
        if let Some(parent) = creds_file.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| HelmError::io(format!("creating {}", parent.display()), e))?;
        }
        let client = Arc::new(RegistryClient::connect(
            self.lib()?,
            registry,
            &settings,
            &creds_file,
        )?);
        lock(&self.clients)
            .entry(registry.to_string())
            .or_insert(client.clone());
        Ok(client)
    }

    /// Pull the archive for a digest-pinned reference into a scratch dir and
    /// return its bytes.
    fn pull_archive(&self, reference: &ChartReference) -> Result<Vec<u8>, HelmError> {
        let client = self.client(&reference.registry)?;
        let scratch = self.store.scratch_dir()?;
        let text = reference.to_string();
        {
            let h = lock(&client.handle);
            self.lib()?
                .pull(
                    &h,
                    &text,
                    &client
                        .transfer_options(json!({ "dest_dir": scratch.path().to_string_lossy() })),
                )
                .map_err(|e| e.into_registry(&reference.registry, &text))?;
        }
        let archive = std::fs::read_dir(scratch.path())
            .map_err(|e| HelmError::io("reading pull directory", e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "tgz"))
            .ok_or_else(|| HelmError::Output {
                op: "pull",
                message: format!("no chart archive was written for {text}"),
            })?;
        std::fs::read(&archive)
            .map_err(|e| HelmError::io(format!("reading {}", archive.display()), e))
    }
}
