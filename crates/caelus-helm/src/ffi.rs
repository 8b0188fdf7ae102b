//! The raw libhelm_c binding: the only module with `unsafe`.
//!
//! libhelm_c ships without a C header; the signatures below mirror the
//! ctypes table in the wheel's `helm_python/_native.py` (0.2.2), which is
//! kept beside the library by `scripts/install-helm-lib`.
//!
//! Conventions of the C ABI:
//! - every call returns an `int32` status (0 = ok) and reports detail through
//!   a `char** error_out`;
//! - strings it returns are owned by the caller and must go back through
//!   `helm_free_string` (never `free`);
//! - input strings are borrowed for the duration of the call;
//! - objects (charts, registry clients) are `uint64` handles into a
//!   thread-safe registry inside the library, freed with their `*_free`.
//!
//! The library embeds the Go runtime, which cannot be unloaded: it is loaded
//! once per process and never closed.

use std::ffi::{CStr, CString, c_char};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::{Mutex, OnceLock};

use crate::error::{CallError, ErrorCode, HelmError};

/// libhelm_c release this binding is written against.
pub const EXPECTED_HELM_C_VERSION: &str = "0.2.2";
/// Helm Go SDK compiled into that release.
pub const EXPECTED_HELM_SDK_VERSION: &str = "v4.2.3";

type Handle = u64;
type StrOut = *mut *mut c_char;
type StrIn = *const c_char;

type FnVersion = unsafe extern "C" fn() -> *mut c_char;
type FnFreeString = unsafe extern "C" fn(*mut c_char);
type FnCount = unsafe extern "C" fn() -> i64;
/// `(handle, error_out)` — the `*_free` functions.
type FnFree = unsafe extern "C" fn(Handle, StrOut) -> i32;
/// `(in, handle_out, error_out)` — `helm_chart_load`, `helm_registry_client_new`.
type FnNewHandle = unsafe extern "C" fn(StrIn, *mut Handle, StrOut) -> i32;
/// `(bytes, len, handle_out, error_out)`.
type FnLoadArchive = unsafe extern "C" fn(*const u8, u64, *mut Handle, StrOut) -> i32;
/// `(handle, out, error_out)` — chart queries.
type FnQuery = unsafe extern "C" fn(Handle, StrOut, StrOut) -> i32;
/// `(handle, in, out, error_out)` — `helm_registry_resolve`, `helm_chart_save`.
type FnHandleIn = unsafe extern "C" fn(Handle, StrIn, StrOut, StrOut) -> i32;
/// `(handle, in, error_out)` — `helm_schema_validate`.
type FnHandleInStatus = unsafe extern "C" fn(Handle, StrIn, StrOut) -> i32;
/// `(handle, in, in, out, error_out)` — `helm_render`, `helm_pull`.
type FnHandleIn2 = unsafe extern "C" fn(Handle, StrIn, StrIn, StrOut, StrOut) -> i32;
/// `(handle, in, in, in, out, error_out)` — `helm_push`.
type FnHandleIn3 = unsafe extern "C" fn(Handle, StrIn, StrIn, StrIn, StrOut, StrOut) -> i32;
/// `(handle, host, user, password, opts, error_out)` — `helm_registry_login`.
type FnLogin = unsafe extern "C" fn(Handle, StrIn, StrIn, StrIn, StrIn, StrOut) -> i32;
/// `(handle, handle, in, in, out, error_out)` — `helm_render_with_config`
/// (config first, chart second).
type FnHandle2In2 = unsafe extern "C" fn(Handle, Handle, StrIn, StrIn, StrOut, StrOut) -> i32;
/// `(in, in, in, out, error_out)` — `helm_lint_run_opts`.
type FnIn3 = unsafe extern "C" fn(StrIn, StrIn, StrIn, StrOut, StrOut) -> i32;

/// Function pointers resolved from the library. They stay valid for the
/// life of the process because the library is never unloaded.
struct Symbols {
    c_version: FnVersion,
    sdk_version: FnVersion,
    free_string: FnFreeString,
    open_handles_count: FnCount,
    chart_load: FnNewHandle,
    chart_load_archive: FnLoadArchive,
    chart_free: FnFree,
    chart_metadata: FnQuery,
    chart_values: FnQuery,
    chart_schema: FnQuery,
    chart_crds: FnQuery,
    chart_dependencies: FnQuery,
    chart_save: FnHandleIn,
    schema_validate: FnHandleInStatus,
    render: FnHandleIn2,
    render_with_config: FnHandle2In2,
    config_new: FnNewHandle,
    config_free: FnFree,
    lint_run_opts: FnIn3,
    registry_client_new: FnNewHandle,
    registry_client_free: FnFree,
    registry_login: FnLogin,
    registry_resolve: FnHandleIn,
    pull: FnHandleIn2,
    push: FnHandleIn3,
}

/// A loaded, version-checked libhelm_c. Obtain it with [`HelmLibrary::load`].
pub struct HelmLibrary {
    path: PathBuf,
    c_version: String,
    sdk_version: String,
    sym: Symbols,
}

impl std::fmt::Debug for HelmLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HelmLibrary")
            .field("path", &self.path)
            .field("c_version", &self.c_version)
            .field("sdk_version", &self.sdk_version)
            .finish()
    }
}

/// The process-wide library. A Go runtime can be loaded only once per
/// process, so a second load with another path is refused.
static LOADED: OnceLock<&'static HelmLibrary> = OnceLock::new();
static LOAD_LOCK: Mutex<()> = Mutex::new(());

impl HelmLibrary {
    /// Load libhelm_c from `path` (once per process) and check its versions.
    pub fn load(path: &Path) -> Result<&'static HelmLibrary, HelmError> {
        let _guard = LOAD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(lib) = LOADED.get() {
            if same_file(&lib.path, path) {
                lib.check_versions()?;
                return Ok(lib);
            }
            return Err(HelmError::LibraryLoad {
                path: path.to_path_buf(),
                message: format!(
                    "another Helm library ({}) is already loaded in this process",
                    lib.path.display()
                ),
            });
        }
        if !path.is_file() {
            return Err(HelmError::LibraryMissing {
                path: path.to_path_buf(),
            });
        }
        let load_err = |message: String| HelmError::LibraryLoad {
            path: path.to_path_buf(),
            message,
        };
        // SAFETY: loading runs the library's initialisers (the Go runtime's);
        // this is the documented way to use libhelm_c.
        let library =
            unsafe { libloading::Library::new(path) }.map_err(|e| load_err(e.to_string()))?;
        let sym = resolve_symbols(&library).map_err(|e| {
            load_err(format!(
                "{e}; it is not libhelm_c {EXPECTED_HELM_C_VERSION}"
            ))
        })?;
        // Never unload: the Go runtime cannot be torn down.
        std::mem::forget(library);

        // SAFETY: both return an owned NUL-terminated string (or NULL).
        let c_version = unsafe { take_string(sym.free_string, (sym.c_version)()) };
        let sdk_version = unsafe { take_string(sym.free_string, (sym.sdk_version)()) };
        let c_version = c_version.unwrap_or_else(|| "unknown".into());
        let sdk_version = sdk_version.unwrap_or_else(|| "unknown".into());
        let lib: &'static HelmLibrary = Box::leak(Box::new(HelmLibrary {
            path: path.to_path_buf(),
            c_version,
            sdk_version,
            sym,
        }));
        // The symbols are in the process now, whatever the version check
        // says; remember them so a second attempt reports the same thing.
        let _ = LOADED.set(lib);
        lib.check_versions()?;
        Ok(lib)
    }

    fn check_versions(&self) -> Result<(), HelmError> {
        if self.c_version != EXPECTED_HELM_C_VERSION
            || self.sdk_version != EXPECTED_HELM_SDK_VERSION
        {
            return Err(HelmError::VersionMismatch {
                path: self.path.clone(),
                found_c: self.c_version.clone(),
                found_sdk: self.sdk_version.clone(),
                expected_c: EXPECTED_HELM_C_VERSION,
                expected_sdk: EXPECTED_HELM_SDK_VERSION,
            });
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn c_version(&self) -> &str {
        &self.c_version
    }

    pub fn sdk_version(&self) -> &str {
        &self.sdk_version
    }

    /// Live handles inside the library (charts, registry clients, ...).
    pub fn open_handles(&self) -> i64 {
        // SAFETY: no arguments, returns a plain integer.
        unsafe { (self.sym.open_handles_count)() }
    }

    // --- charts ----------------------------------------------------------

    pub(crate) fn chart_load_archive(
        &'static self,
        bytes: &[u8],
    ) -> Result<ChartHandle, CallError> {
        let mut handle: Handle = 0;
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: `bytes` is borrowed for the call (the library copies it);
        // the out-pointers point at live locals.
        let code = unsafe {
            (self.sym.chart_load_archive)(bytes.as_ptr(), bytes.len() as u64, &mut handle, &mut err)
        };
        self.status("chart_load_archive", code, err)?;
        Ok(ChartHandle {
            lib: self,
            raw: handle,
        })
    }

    pub(crate) fn chart_load_path(&'static self, path: &Path) -> Result<ChartHandle, CallError> {
        let path = cstring("chart_load", &path.to_string_lossy())?;
        let mut handle: Handle = 0;
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: `path` outlives the call; out-pointers are live locals.
        let code = unsafe { (self.sym.chart_load)(path.as_ptr(), &mut handle, &mut err) };
        self.status("chart_load", code, err)?;
        Ok(ChartHandle {
            lib: self,
            raw: handle,
        })
    }

    pub(crate) fn chart_query(
        &self,
        chart: &ChartHandle,
        query: ChartQuery,
    ) -> Result<String, CallError> {
        let (op, f) = match query {
            ChartQuery::Metadata => ("chart_metadata", self.sym.chart_metadata),
            ChartQuery::Values => ("chart_values", self.sym.chart_values),
            ChartQuery::Schema => ("chart_schema", self.sym.chart_schema),
            ChartQuery::Crds => ("chart_crds", self.sym.chart_crds),
            ChartQuery::Dependencies => ("chart_dependencies", self.sym.chart_dependencies),
        };
        let mut out: *mut c_char = ptr::null_mut();
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: the handle is live (owned by `chart`); out-pointers are locals.
        let code = unsafe { f(chart.raw, &mut out, &mut err) };
        self.string_result(op, code, out, err)
    }

    /// Archive the chart into `dir`; returns the written `.tgz` path.
    pub(crate) fn chart_save(&self, chart: &ChartHandle, dir: &Path) -> Result<String, CallError> {
        let dir = cstring("chart_save", &dir.to_string_lossy())?;
        let mut out: *mut c_char = ptr::null_mut();
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: live handle, borrowed input, local out-pointers.
        let code = unsafe { (self.sym.chart_save)(chart.raw, dir.as_ptr(), &mut out, &mut err) };
        self.string_result("chart_save", code, out, err)
    }

    pub(crate) fn schema_validate(
        &self,
        chart: &ChartHandle,
        values_json: &str,
    ) -> Result<(), CallError> {
        let values = cstring("schema_validate", values_json)?;
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: live handle, borrowed input, local out-pointer.
        let code = unsafe { (self.sym.schema_validate)(chart.raw, values.as_ptr(), &mut err) };
        self.status("schema_validate", code, err)
    }

    /// `helm_render`: JSON object of template path -> rendered text, or
    /// `Ok(Err(size))` when the output is larger than `max_bytes` (it is
    /// freed without being copied, so an oversized render costs no memory
    /// on the Rust side).
    pub(crate) fn render(
        &self,
        chart: &ChartHandle,
        values_json: &str,
        options_json: &str,
        max_bytes: usize,
    ) -> Result<Result<String, usize>, CallError> {
        let values = cstring("render", values_json)?;
        let options = cstring("render", options_json)?;
        let mut out: *mut c_char = ptr::null_mut();
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: live handle, borrowed inputs, local out-pointers.
        let code = unsafe {
            (self.sym.render)(
                chart.raw,
                values.as_ptr(),
                options.as_ptr(),
                &mut out,
                &mut err,
            )
        };
        self.bounded_result("render", code, out, err, max_bytes)
    }

    /// The result of a render call, or `Ok(Err(size))` when its output is
    /// larger than `max_bytes`: freed without being copied, so an oversized
    /// render costs no memory on the Rust side.
    fn bounded_result(
        &self,
        op: &'static str,
        code: i32,
        out: *mut c_char,
        err: *mut c_char,
        max_bytes: usize,
    ) -> Result<Result<String, usize>, CallError> {
        if !out.is_null() {
            // SAFETY: a NUL-terminated string the library allocated.
            let size = unsafe { CStr::from_ptr(out) }.to_bytes().len();
            if size > max_bytes {
                // SAFETY: freed once, here; `out` is not used afterwards.
                unsafe { (self.sym.free_string)(out) };
                self.status(op, code, err)?;
                return Ok(Err(size));
            }
        }
        self.string_result(op, code, out, err).map(Ok)
    }

    /// `helm_config_new`: a cluster configuration (kubeconfig, namespace,
    /// storage driver). Parsing only; the cluster is contacted lazily.
    pub(crate) fn config_new(&'static self, options_json: &str) -> Result<ConfigHandle, CallError> {
        let options = cstring("config_new", options_json)?;
        let mut handle: Handle = 0;
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: borrowed input, local out-pointers.
        let code = unsafe { (self.sym.config_new)(options.as_ptr(), &mut handle, &mut err) };
        self.status("config_new", code, err)?;
        Ok(ConfigHandle {
            lib: self,
            raw: handle,
        })
    }

    /// `helm_render_with_config`: like [`Self::render`], but Helm's `lookup`
    /// reads the cluster behind `config`. Nothing is created or stored.
    pub(crate) fn render_with_config(
        &self,
        config: &ConfigHandle,
        chart: &ChartHandle,
        values_json: &str,
        options_json: &str,
        max_bytes: usize,
    ) -> Result<Result<String, usize>, CallError> {
        let values = cstring("render_with_config", values_json)?;
        let options = cstring("render_with_config", options_json)?;
        let mut out: *mut c_char = ptr::null_mut();
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: live handles, borrowed inputs, local out-pointers.
        let code = unsafe {
            (self.sym.render_with_config)(
                config.raw,
                chart.raw,
                values.as_ptr(),
                options.as_ptr(),
                &mut out,
                &mut err,
            )
        };
        self.bounded_result("render_with_config", code, out, err, max_bytes)
    }

    /// `helm_lint_run_opts` on a chart directory or archive: a JSON report.
    pub(crate) fn lint(&self, path: &Path, options_json: &str) -> Result<String, CallError> {
        let path = cstring("lint", &path.to_string_lossy())?;
        let options = cstring("lint", options_json)?;
        let mut out: *mut c_char = ptr::null_mut();
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: borrowed inputs (NULL values = chart defaults), local out-pointers.
        let code = unsafe {
            (self.sym.lint_run_opts)(
                path.as_ptr(),
                ptr::null(),
                options.as_ptr(),
                &mut out,
                &mut err,
            )
        };
        self.string_result("lint", code, out, err)
    }

    // --- registry --------------------------------------------------------

    pub(crate) fn registry_client_new(
        &'static self,
        options_json: &str,
    ) -> Result<RegistryHandle, CallError> {
        let options = cstring("registry_client_new", options_json)?;
        let mut handle: Handle = 0;
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: borrowed input, local out-pointers.
        let code =
            unsafe { (self.sym.registry_client_new)(options.as_ptr(), &mut handle, &mut err) };
        self.status("registry_client_new", code, err)?;
        Ok(RegistryHandle {
            lib: self,
            raw: handle,
        })
    }

    pub(crate) fn registry_login(
        &self,
        client: &RegistryHandle,
        host: &str,
        username: &str,
        password: &str,
        options_json: &str,
    ) -> Result<(), CallError> {
        let op = "registry_login";
        let (host, user, pass, opts) = (
            cstring(op, host)?,
            cstring(op, username)?,
            cstring(op, password)?,
            cstring(op, options_json)?,
        );
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: live handle, borrowed inputs, local out-pointer.
        let code = unsafe {
            (self.sym.registry_login)(
                client.raw,
                host.as_ptr(),
                user.as_ptr(),
                pass.as_ptr(),
                opts.as_ptr(),
                &mut err,
            )
        };
        self.status(op, code, err)
    }

    /// `helm_registry_resolve`: `{"digest", "media_type", "size"}` of a tag.
    pub(crate) fn registry_resolve(
        &self,
        client: &RegistryHandle,
        reference: &str,
    ) -> Result<String, CallError> {
        let reference = cstring("registry_resolve", reference)?;
        let mut out: *mut c_char = ptr::null_mut();
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: live handle, borrowed input, local out-pointers.
        let code = unsafe {
            (self.sym.registry_resolve)(client.raw, reference.as_ptr(), &mut out, &mut err)
        };
        self.string_result("registry_resolve", code, out, err)
    }

    pub(crate) fn pull(
        &self,
        client: &RegistryHandle,
        reference: &str,
        options_json: &str,
    ) -> Result<String, CallError> {
        let reference = cstring("pull", reference)?;
        let options = cstring("pull", options_json)?;
        let mut out: *mut c_char = ptr::null_mut();
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: live handle, borrowed inputs, local out-pointers.
        let code = unsafe {
            (self.sym.pull)(
                client.raw,
                reference.as_ptr(),
                options.as_ptr(),
                &mut out,
                &mut err,
            )
        };
        self.string_result("pull", code, out, err)
    }

    pub(crate) fn push(
        &self,
        client: &RegistryHandle,
        archive: &Path,
        remote: &str,
        options_json: &str,
    ) -> Result<String, CallError> {
        let archive = cstring("push", &archive.to_string_lossy())?;
        let remote = cstring("push", remote)?;
        let options = cstring("push", options_json)?;
        let mut out: *mut c_char = ptr::null_mut();
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: live handle, borrowed inputs, local out-pointers.
        let code = unsafe {
            (self.sym.push)(
                client.raw,
                archive.as_ptr(),
                remote.as_ptr(),
                options.as_ptr(),
                &mut out,
                &mut err,
            )
        };
        self.string_result("push", code, out, err)
    }

    // --- ownership helpers ----------------------------------------------

    fn take(&self, p: *mut c_char) -> Option<String> {
        // SAFETY: `p` is NULL or a string the library just handed us.
        unsafe { take_string(self.sym.free_string, p) }
    }

    fn status(&self, op: &'static str, code: i32, err: *mut c_char) -> Result<(), CallError> {
        let detail = self.take(err);
        if code == 0 {
            return Ok(());
        }
        Err(CallError {
            op,
            code: ErrorCode::from_raw(code),
            message: detail.unwrap_or_else(|| format!("libhelm_c {op} failed with code {code}")),
        })
    }

    fn string_result(
        &self,
        op: &'static str,
        code: i32,
        out: *mut c_char,
        err: *mut c_char,
    ) -> Result<String, CallError> {
        // Take both before looking at the code so neither leaks.
        let result = self.take(out);
        self.status(op, code, err)?;
        Ok(result.unwrap_or_default())
    }

    fn free_handle(&self, f: FnFree, op: &'static str, raw: Handle) {
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: `raw` is a handle we own and free exactly once.
        let code = unsafe { f(raw, &mut err) };
        if let Err(e) = self.status(op, code, err) {
            tracing::warn!(handle = raw, error = %e.message, "libhelm_c {op} failed");
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum ChartQuery {
    Metadata,
    Values,
    Schema,
    Crds,
    Dependencies,
}

/// An owned chart handle, freed on drop. Charts are immutable in the
/// library and safe to use from several threads at once.
#[derive(Debug)]
pub(crate) struct ChartHandle {
    lib: &'static HelmLibrary,
    raw: Handle,
}

impl Drop for ChartHandle {
    fn drop(&mut self) {
        self.lib
            .free_handle(self.lib.sym.chart_free, "chart_free", self.raw);
    }
}

/// An owned cluster configuration handle, freed on drop (the library then
/// removes the private kubeconfig file it wrote).
#[derive(Debug)]
pub(crate) struct ConfigHandle {
    lib: &'static HelmLibrary,
    raw: Handle,
}

impl Drop for ConfigHandle {
    fn drop(&mut self) {
        self.lib
            .free_handle(self.lib.sym.config_free, "config_free", self.raw);
    }
}

/// An owned registry client handle, freed on drop.
#[derive(Debug)]
pub(crate) struct RegistryHandle {
    lib: &'static HelmLibrary,
    raw: Handle,
}

impl Drop for RegistryHandle {
    fn drop(&mut self) {
        self.lib.free_handle(
            self.lib.sym.registry_client_free,
            "registry_client_free",
            self.raw,
        );
    }
}

/// Copy a library-owned string, then free it (exactly once).
///
/// # Safety
/// `p` must be NULL or a NUL-terminated string allocated by the library
/// that nobody else frees.
unsafe fn take_string(free: FnFreeString, p: *mut c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: guaranteed by the caller.
    let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    // SAFETY: `p` came from the library and is freed once, here.
    unsafe { free(p) };
    Some(s)
}

fn cstring(op: &'static str, s: &str) -> Result<CString, CallError> {
    CString::new(s).map_err(|_| CallError {
        op,
        code: ErrorCode::InvalidArg,
        message: "argument contains a NUL byte".into(),
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn resolve_symbols(lib: &libloading::Library) -> Result<Symbols, libloading::Error> {
    // SAFETY: each type matches the signature in `_native.py` for that name;
    // the pointers are copied out and stay valid because `lib` is never
    // unloaded (see `HelmLibrary::load`).
    unsafe {
        Ok(Symbols {
            c_version: *lib.get::<FnVersion>("helm_c_version")?,
            sdk_version: *lib.get::<FnVersion>("helm_sdk_version")?,
            free_string: *lib.get::<FnFreeString>("helm_free_string")?,
            open_handles_count: *lib.get::<FnCount>("helm_open_handles_count")?,
            chart_load: *lib.get::<FnNewHandle>("helm_chart_load")?,
            chart_load_archive: *lib.get::<FnLoadArchive>("helm_chart_load_archive")?,
            chart_free: *lib.get::<FnFree>("helm_chart_free")?,
            chart_metadata: *lib.get::<FnQuery>("helm_chart_metadata")?,
            chart_values: *lib.get::<FnQuery>("helm_chart_values")?,
            chart_schema: *lib.get::<FnQuery>("helm_chart_schema")?,
            chart_crds: *lib.get::<FnQuery>("helm_chart_crds")?,
            chart_dependencies: *lib.get::<FnQuery>("helm_chart_dependencies")?,
            chart_save: *lib.get::<FnHandleIn>("helm_chart_save")?,
            schema_validate: *lib.get::<FnHandleInStatus>("helm_schema_validate")?,
            render: *lib.get::<FnHandleIn2>("helm_render")?,
            render_with_config: *lib.get::<FnHandle2In2>("helm_render_with_config")?,
            config_new: *lib.get::<FnNewHandle>("helm_config_new")?,
            config_free: *lib.get::<FnFree>("helm_config_free")?,
            lint_run_opts: *lib.get::<FnIn3>("helm_lint_run_opts")?,
            registry_client_new: *lib.get::<FnNewHandle>("helm_registry_client_new")?,
            registry_client_free: *lib.get::<FnFree>("helm_registry_client_free")?,
            registry_login: *lib.get::<FnLogin>("helm_registry_login")?,
            registry_resolve: *lib.get::<FnHandleIn>("helm_registry_resolve")?,
            pull: *lib.get::<FnHandleIn2>("helm_pull")?,
            push: *lib.get::<FnHandleIn3>("helm_push")?,
        })
    }
}
