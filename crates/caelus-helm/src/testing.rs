//! Test support for this crate and others (feature `test-support`): a
//! throwaway OCI registry (Debian's `docker-registry`) on loopback, and the
//! repository's test charts (`testdata/charts/<name>/<version>/`) packaged
//! and pushed to it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::OnceLock;

use crate::{Credentials, Digest, EngineConfig, HelmEngine, HelmError, RegistrySettings};

pub use crate::local_registry::REGISTRY_BINARY;
use crate::local_registry::spawn;

/// Credentials of a registry started with [`TestRegistry::start_with_auth`].
pub const TEST_USERNAME: &str = "caelus";
pub const TEST_PASSWORD: &str = "s3cret";
/// bcrypt (cost 4) of [`TEST_PASSWORD`], for the registry's htpasswd file.
const TEST_PASSWORD_BCRYPT: &str = "$2b$04$pBj3V.zBYWCTPKyqsPVdCObth3oyU7.L6VFRG45pzHz70jR3S.We6";

/// Repository root (this crate lives in `crates/caelus-helm`).
pub fn repo_root() -> PathBuf {
    crate::engine::source_root()
}

/// `testdata/charts` in the repository.
pub fn charts_dir() -> PathBuf {
    repo_root().join("testdata").join("charts")
}

/// Source directory of test chart `name` at `version`.
pub fn chart_dir(name: &str, version: &str) -> PathBuf {
    charts_dir().join(name).join(version)
}

/// Unmodified third-party chart `name` from the project's `../shared/charts`
/// (beside the repository), or `None` when that folder is absent: tests that
/// need one say so and skip, so the suite still runs on a plain clone.
pub fn shared_chart(name: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/charts")
        .join(name);
    dir.join("Chart.yaml").is_file().then_some(dir)
}

/// An engine for tests, with its data dir under `data_dir`.
pub fn engine(data_dir: &Path) -> Result<HelmEngine, HelmError> {
    HelmEngine::load(EngineConfig::new(data_dir))
}

/// A `docker-registry` serving on `127.0.0.1:<free port>` with its storage
/// in a temporary directory. Killed (and the directory removed) on drop.
#[derive(Debug)]
pub struct TestRegistry {
    dir: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
    auth: bool,
    engine: OnceLock<HelmEngine>,
}

impl TestRegistry {
    /// Start a registry and wait until it answers `GET /v2/`.
    pub fn start() -> std::io::Result<Self> {
        Self::start_inner(false)
    }

    /// Like [`start`](Self::start), but requiring HTTP basic auth with
    /// [`TEST_USERNAME`] / [`TEST_PASSWORD`].
    pub fn start_with_auth() -> std::io::Result<Self> {
        Self::start_inner(true)
    }

    fn start_inner(auth: bool) -> std::io::Result<Self> {
        if !Path::new(REGISTRY_BINARY).is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{REGISTRY_BINARY} is missing; install it with scripts/install-registry"),
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("caelus-registry-")
            .tempdir()?;
        let mut last_err = None;
        // A free port can be taken between probing and binding; retry.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            match spawn(
                dir.path(),
                port,
                auth.then_some((TEST_USERNAME, TEST_PASSWORD_BCRYPT)),
            ) {
                Ok(child) => {
                    return Ok(TestRegistry {
                        dir,
                        child: Some(child),
                        port,
                        auth,
                        engine: OnceLock::new(),
                    });
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| std::io::Error::other("registry did not start")))
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `oci://127.0.0.1:<port>/charts`, where test charts are pushed.
    pub fn repository(&self) -> String {
        format!("oci://{}/charts", self.host())
    }

    /// Root of the registry's filesystem storage.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The file holding blob `digest` in the registry's storage.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.storage_dir()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// A scratch directory that lives as long as the registry.
    pub fn temp_dir(&self) -> &Path {
        self.dir.path()
    }

    /// An engine (data dir inside the registry's temp dir) used to push.
    pub fn engine(&self) -> Result<HelmEngine, HelmError> {
        if let Some(e) = self.engine.get() {
            return Ok(e.clone());
        }
        let e = engine(&self.dir.path().join("pusher"))?;
        if self.auth {
            e.set_registry(&self.host(), self.settings());
        }
        Ok(self.engine.get_or_init(|| e).clone())
    }

    /// Settings to reach this registry (credentials when auth is on).
    pub fn settings(&self) -> RegistrySettings {
        RegistrySettings {
            credentials: self.auth.then(|| Credentials {
                username: TEST_USERNAME.into(),
                password: TEST_PASSWORD.into(),
            }),
            ..Default::default()
        }
    }

    /// Kill the registry (it stays stopped; the storage is kept).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Package test chart `name`/`version` from `testdata/charts`, push it to
/// `registry` and resolve its tag. Returns `(oci://…/charts/NAME:VERSION,
/// manifest digest)`.
pub async fn push_test_chart(
    registry: &TestRegistry,
    name: &str,
    version: &str,
) -> Result<(String, Digest), HelmError> {
    let (_, digest) = push_chart_path(registry, &chart_dir(name, version)).await?;
    Ok((
        format!("{}/{name}:{version}", registry.repository()),
        digest,
    ))
}

/// Package the chart in directory `dir`, push it to `registry` and resolve its
/// tag. Returns `(oci://…/charts/NAME@sha256:…, manifest digest)`.
pub async fn push_chart_path(
    registry: &TestRegistry,
    dir: &Path,
) -> Result<(String, Digest), HelmError> {
    let engine = registry.engine()?;
    let resolved = engine.push_chart_dir(dir, &registry.repository()).await?;
    Ok((resolved.reference.to_string(), resolved.digest))
}
