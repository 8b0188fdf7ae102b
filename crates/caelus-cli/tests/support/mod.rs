//! Helpers shared by the tests that run real `caelus` processes.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CAELUS: &str = env!("CARGO_BIN_EXE_caelus");

/// A fresh, empty directory for one test (per process, so parallel runs never share).
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("caelus-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// SIGTERM, as an operator would stop it, so `caelus dev` also stops the registry
/// it started; SIGKILL only if it has not exited after a few seconds.
pub fn stop_gracefully(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A running `caelus dev`, stopped on drop; `url` and `token` are what it printed.
pub struct Running {
    pub child: Child,
    pub url: String,
    pub token: String,
    /// `oci://HOST/charts` of the registry `caelus dev` runs.
    pub chart_repository: Option<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        stop_gracefully(&mut self.child);
    }
}

/// `caelus dev` on `data_dir` (an empty one starts afresh), on free ports.
pub fn start_dev(data_dir: &Path) -> Running {
    start_dev_with(data_dir, &[])
}

/// [`start_dev`] with more flags for `caelus dev`.
pub fn start_dev_with(data_dir: &Path, extra: &[&str]) -> Running {
    let mut child = Command::new(CAELUS)
        .args([
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--registry-port",
            &free_port().to_string(),
            "--data-dir",
        ])
        .arg(data_dir)
        .args(extra)
        .env("CAELUS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start caelus dev");
    let stdout = child.stdout.take().unwrap();
    let mut url = None;
    let mut token = None;
    let mut chart_repository = None;
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(repository) = line.trim().strip_prefix("registry: ") {
            chart_repository = Some(repository.to_string());
        }
        if let Some(rest) = line.trim().strip_prefix("export CAELUS_URL=") {
            let (u, t) = rest.split_once(" CAELUS_TOKEN=").unwrap();
            url = Some(u.to_string());
            token = Some(t.to_string());
            break;
        }
    }
    // Keep reading what dev prints next, so it never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Running {
        child,
        url: url.expect("caelus dev printed its URL"),
        token: token.expect("caelus dev printed a token"),
        chart_repository,
    }
}

/// One CLI command against `r`: (success, stdout, stderr).
pub fn cli(r: &Running, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(CAELUS)
        .args(args)
        .env("CAELUS_URL", &r.url)
        .env("CAELUS_TOKEN", &r.token)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
pub fn ok(r: &Running, args: &[&str]) -> String {
    let (success, out, err) = cli(r, args);
    assert!(success, "caelus {args:?} failed: {err}");
    out
}

pub fn wait_ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new(CAELUS)
            .args(["status", "--url", url, "-o", "json"])
            .output()
            .unwrap();
        if out.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not ready: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The real `kubectl` against `caelus dev`'s kubesim (its kubeconfig in `dir`):
/// (success, stdout and stderr).
pub fn kubectl(dir: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(dir.join("kubeconfig"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    if let Some(s) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Polls `check` until it answers, for up to a minute.
pub fn eventually(what: &str, mut check: impl FnMut() -> Option<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// An admin token named `name` written straight into the database at
/// `database_url` (`caelus admin create-token`, the offline bootstrap); its secret.
pub fn admin_token(database_url: &str, name: &str) -> String {
    let out = Command::new(CAELUS)
        .args(["admin", "create-token", "--name", name, "--database-url"])
        .arg(database_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
