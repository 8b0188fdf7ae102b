//! Test support for this crate and others (feature `test-support`): a
//! throwaway OCI registry (Debian's `docker-registry`) on loopback, and the
//! repository's test charts (`testdata/charts/<name>/<version>/`) packaged
//! and pushed to it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{Credentials, Digest, EngineConfig, HelmEngine, HelmError, RegistrySettings};

/// The registry binary `scripts/install-registry` installs.
pub const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";

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
            match spawn(dir.path(), port, auth) {
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

fn spawn(dir: &Path, port: u16, auth: bool) -> std::io::Result<Child> {
    let config = dir.join("config.yml");
    let storage = dir.join("storage");
    std::fs::create_dir_all(&storage)?;
    let mut text = format!(
        "version: 0.1\n\
         log:\n  level: error\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n",
        storage.display()
    );
    if auth {
        let htpasswd = dir.join("htpasswd");
        std::fs::write(
            &htpasswd,
            format!("{TEST_USERNAME}:{TEST_PASSWORD_BCRYPT}\n"),
        )?;
        text.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: caelus-test\n    path: {}\n",
            htpasswd.display()
        ));
    }
    std::fs::write(&config, text)?;
    let log = std::fs::File::create(dir.join("registry.log"))?;
    let mut child = Command::new(REGISTRY_BINARY)
        .arg("serve")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if ping(port) {
            return Ok(child);
        }
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default();
            return Err(std::io::Error::other(format!(
                "docker-registry exited ({status}): {log}"
            )));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other(
                "docker-registry did not answer within 10s",
            ));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// True when `GET /v2/` on the port answers (200, or 401 with auth on).
fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if n >= 12 && buf[..n].starts_with(b"HTTP/1.") && (&buf[9..12] == b"200" || &buf[9..12] == b"401"))
}

/// Package test chart `name`/`version` from `testdata/charts`, push it to
/// `registry` and resolve its tag. Returns `(oci://…/charts/NAME:VERSION,
/// manifest digest)`.
pub async fn push_test_chart(
    registry: &TestRegistry,
    name: &str,
    version: &str,
) -> Result<(String, Digest), HelmError> {
    let engine = registry.engine()?;
    let resolved = engine
        .push_chart_dir(&chart_dir(name, version), &registry.repository())
        .await?;
    let reference = format!("{}/{name}:{version}", registry.repository());
    Ok((reference, resolved.digest))
}
