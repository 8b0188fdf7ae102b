//! A local OCI registry: Debian's `docker-registry` (CNCF distribution) run as a
//! child process on loopback, with its storage in a directory of ours. Used by
//! `caelus dev` for its demo catalog and by tests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The registry binary `scripts/install-registry` installs.
pub const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";

/// Starts `docker-registry` on `127.0.0.1:port` with storage and config under `dir`
/// (and basic auth when `htpasswd_user` is `(user, bcrypt hash)`), and waits until it answers.
pub fn spawn(dir: &Path, port: u16, htpasswd_user: Option<(&str, &str)>) -> std::io::Result<Child> {
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
    if let Some((user, bcrypt)) = htpasswd_user {
        let htpasswd = dir.join("htpasswd");
        std::fs::write(&htpasswd, format!("{user}:{bcrypt}\n"))?;
        text.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: caelus-test\n    path: {}\n",
            htpasswd.display()
        ));
    }
    std::fs::write(&config, text)?;
    let log = std::fs::File::create(dir.join("registry.log"))?;
    let mut command = Command::new(REGISTRY_BINARY);
    command
        .arg("serve")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // The registry must not outlive whoever started it, even one killed with
    // SIGKILL: Linux signals it when the starting thread exits.
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn()?;
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
