//! Content-addressed on-disk chart cache, keyed by **repository and** OCI
//! manifest digest: `<data>/charts/repositories/<repository>/sha256/<hex>.tgz`,
//! `<repository>` being `host[:port]/path/chart` with every byte outside
//! `[a-z0-9._-]` percent-encoded (so distinct repositories never share a
//! directory).
//!
//! The repository is part of the key because a digest only says what the
//! bytes are, not who serves them: keyed by digest alone, a chart pulled
//! from repository A would be served for "repository B at A's digest", and
//! a version could be published naming a repository that never had it. With
//! the repository in the key, that pull goes to B, and B's answer stands.
//!
//! An archive is written here only after Helm pulled it by that digest from
//! that repository (and so verified it). Beside it, `<hex>.tgz.sha256`
//! records the archive's own sha256; a read checks it, so a file damaged on
//! disk is discarded and pulled again instead of being trusted. All writes
//! go to a temporary file in the same directory, then rename, so readers
//! never see partial files.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::HelmError;
use crate::reference::Digest;

#[derive(Debug, Clone)]
pub struct ChartStore {
    dir: PathBuf,
    scratch: PathBuf,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}.{}.{nanos}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// The directory name of `repository`: injective (`%` itself is encoded)
/// and readable for the usual `host:port/path` names.
fn encode_repository(repository: &str) -> String {
    let mut out = String::with_capacity(repository.len());
    for b in repository.bytes() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl ChartStore {
    /// Open (creating) the cache under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, HelmError> {
        let dir = data_dir.join("charts").join("repositories");
        let scratch = data_dir.join("charts").join("tmp");
        for d in [&dir, &scratch] {
            fs::create_dir_all(d)
                .map_err(|e| HelmError::io(format!("creating {}", d.display()), e))?;
        }
        Ok(ChartStore { dir, scratch })
    }

    /// Where the archive pulled from `repository` (`host[:port]/path`, no
    /// scheme) by `digest` lives.
    pub fn path(&self, repository: &str, digest: &Digest) -> PathBuf {
        self.digest_dir(repository)
            .join(format!("{}.tgz", digest.hex()))
    }

    fn digest_dir(&self, repository: &str) -> PathBuf {
        self.dir.join(encode_repository(repository)).join("sha256")
    }

    fn sum_path(&self, repository: &str, digest: &Digest) -> PathBuf {
        self.digest_dir(repository)
            .join(format!("{}.tgz.sha256", digest.hex()))
    }

    /// The cached archive pulled from `repository` by `digest`, if present
    /// and intact.
    pub fn read(&self, repository: &str, digest: &Digest) -> Result<Option<Vec<u8>>, HelmError> {
        let path = self.path(repository, digest);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(HelmError::io(format!("reading {}", path.display()), e)),
        };
        let sum_path = self.sum_path(repository, digest);
        let recorded = fs::read_to_string(&sum_path).unwrap_or_default();
        if recorded.trim() != Digest::of_bytes(&bytes).as_str() {
            tracing::warn!(path = %path.display(), "cached chart does not match its checksum; discarding");
            let _ = fs::remove_file(&path);
            let _ = fs::remove_file(&sum_path);
            return Ok(None);
        }
        Ok(Some(bytes))
    }

    /// Store `bytes` as the archive pulled from `repository` by `digest`.
    pub fn write(
        &self,
        repository: &str,
        digest: &Digest,
        bytes: &[u8],
    ) -> Result<PathBuf, HelmError> {
        let dir = self.digest_dir(repository);
        fs::create_dir_all(&dir)
            .map_err(|e| HelmError::io(format!("creating {}", dir.display()), e))?;
        // Checksum first: an archive without its checksum is never trusted.
        let sum = format!("{}\n", Digest::of_bytes(bytes));
        atomic_write(&self.sum_path(repository, digest), sum.as_bytes())?;
        let path = self.path(repository, digest);
        atomic_write(&path, bytes)?;
        Ok(path)
    }

    /// A fresh private directory for one pull, removed on drop.
    pub(crate) fn scratch_dir(&self) -> Result<ScratchDir, HelmError> {
        let path = self.scratch.join(format!("pull-{}", unique_suffix()));
        fs::create_dir(&path)
            .map_err(|e| HelmError::io(format!("creating {}", path.display()), e))?;
        Ok(ScratchDir(path))
    }
}

/// Write `bytes` to `path` atomically: temp file in the same directory,
/// fsync, rename over.
pub(crate) fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), HelmError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", unique_suffix()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(HelmError::io(format!("writing {}", path.display()), e));
    }
    Ok(())
}

#[derive(Debug)]
pub(crate) struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPO: &str = "127.0.0.1:5000/charts/web";

    #[test]
    fn write_read_and_refuse_damaged() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ChartStore::open(tmp.path()).unwrap();
        let d = Digest::of_bytes(b"manifest");
        assert!(store.read(REPO, &d).unwrap().is_none());
        let p = store.write(REPO, &d, b"archive bytes").unwrap();
        assert!(p.ends_with(format!(
            "charts/repositories/127.0.0.1%3A5000%2Fcharts%2Fweb/sha256/{}.tgz",
            d.hex()
        )));
        assert_eq!(store.read(REPO, &d).unwrap().unwrap(), b"archive bytes");
        fs::write(&p, b"tampered").unwrap();
        assert!(store.read(REPO, &d).unwrap().is_none());
        assert!(!p.exists(), "damaged archive is removed");
        // No temp files left behind.
        let leftovers: Vec<_> = fs::read_dir(p.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn an_archive_is_cached_for_the_repository_it_came_from_only() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ChartStore::open(tmp.path()).unwrap();
        let d = Digest::of_bytes(b"manifest");
        store.write(REPO, &d, b"archive bytes").unwrap();
        assert!(
            store
                .read("127.0.0.1:5000/charts/other", &d)
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .read("127.0.0.1:5001/charts/web", &d)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn repository_names_map_to_distinct_directories() {
        assert_eq!(encode_repository("reg.example/a/b"), "reg.example%2Fa%2Fb");
        // Injective: the escape character is escaped too, and case is kept apart.
        assert_ne!(encode_repository("a/b"), encode_repository("a%2Fb"));
        assert_ne!(encode_repository("Reg/a"), encode_repository("reg/a"));
        assert!(!encode_repository("../../etc").contains('/'));
    }

    #[test]
    fn scratch_dirs_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ChartStore::open(tmp.path()).unwrap();
        let p = {
            let s = store.scratch_dir().unwrap();
            fs::write(s.path().join("x"), b"1").unwrap();
            s.path().to_path_buf()
        };
        assert!(!p.exists());
    }
}
