//! `scripts/image` builds Caelus's OCI image without a container daemon and
//! pushes it to a real registry (Debian's docker-registry on loopback); the
//! test reads it back through the distribution API: the manifest and every
//! blob match their digests, the config runs `caelus` as a non-root user,
//! the layers hold what the image needs — and, as root, the unpacked layers
//! alone run `caelus server` (chroot, as uid 65532): the Helm engine loads,
//! the database migrates, `/readyz` answers.
//!
//! The image is built from this test's own (debug) binary: a release build
//! costs too much on the CI machine. `scripts/image` without `--binary`
//! builds and uses the release binary.

mod support;

use caelus_helm::testing::TestRegistry;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{CAELUS, free_port, stop_gracefully, temp_dir};

const REPO: &str = "caelus/server";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sha256_file(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    format!("sha256:{}", text.split_whitespace().next().unwrap())
}

/// `tar -tvzf`: one line per member, with owner and mode.
fn list_layer(path: &Path) -> String {
    let out = Command::new("tar")
        .args(["--numeric-owner", "-tvzf"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

async fn fetch_blob(http: &reqwest::Client, base: &str, digest: &str, dest: &Path) {
    let bytes = http
        .get(format!("{base}/blobs/{digest}"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap();
    std::fs::write(dest, &bytes).unwrap();
    assert_eq!(sha256_file(dest), digest, "blob content matches its digest");
}

#[tokio::test]
async fn the_image_is_built_without_a_daemon_pushed_and_runs_as_non_root() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let registry = TestRegistry::start().expect("docker-registry (scripts/install-registry)");
    let dir = temp_dir("image");
    let layout = dir.join("layout");
    let target = format!("{}/{REPO}:test", registry.host());
    let out = Command::new(repo_root().join("scripts/image"))
        .arg("--binary")
        .arg(CAELUS)
        .arg("--out")
        .arg(&layout)
        .args(["--tag", "test", "--push", &target])
        .stderr(Stdio::inherit())
        .output()
        .expect("scripts/image runs");
    assert!(out.status.success(), "scripts/image failed");
    let digest = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");

    // The OCI layout names the same manifest.
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest);
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "test"
    );

    // The registry serves it by tag, with the digest scripts/image printed.
    let http = reqwest::Client::new();
    let base = format!("http://{}/v2/{REPO}", registry.host());
    let resp = http
        .get(format!("{base}/manifests/test"))
        .header("Accept", MANIFEST_TYPE)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    assert_eq!(resp.headers()["content-type"], MANIFEST_TYPE);
    assert_eq!(resp.headers()["docker-content-digest"], digest.as_str());
    let manifest: Value = resp.json().await.unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );

    let config_path = dir.join("config.json");
    fetch_blob(
        &http,
        &base,
        manifest["config"]["digest"].as_str().unwrap(),
        &config_path,
    )
    .await;
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    assert_eq!(config["os"], "linux");
    let c = &config["config"];
    // Non-root by number, so Kubernetes' runAsNonRoot can verify it.
    assert_eq!(c["User"], "65532:65532");
    assert_eq!(
        c["Entrypoint"],
        serde_json::json!(["/usr/local/bin/caelus"])
    );
    assert_eq!(c["Cmd"], serde_json::json!(["server"]));
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        env.contains(&"CAELUS_HELM_LIB=/usr/lib/caelus/libhelm_c.so"),
        "{env:?}"
    );

    // Two gzip layers, each matching its digest and its config diff_id.
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    let mut listings = Vec::new();
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    for (i, layer) in layers.iter().enumerate() {
        assert_eq!(
            layer["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        let path = dir.join(format!("layer{i}.tar.gz"));
        fetch_blob(&http, &base, layer["digest"].as_str().unwrap(), &path).await;
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            layer["size"].as_u64().unwrap()
        );
        let plain = dir.join(format!("layer{i}.tar"));
        let gunzip = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "gzip -dc '{}' > '{}'",
                path.display(),
                plain.display()
            ))
            .status()
            .unwrap();
        assert!(gunzip.success());
        assert_eq!(sha256_file(&plain), config["rootfs"]["diff_ids"][i]);
        listings.push(list_layer(&path));
        let untar = Command::new("tar")
            .arg("-xzf")
            .arg(&path)
            .arg("-C")
            .arg(&rootfs)
            .status()
            .unwrap();
        assert!(untar.success());
    }
    let (base_layer, app_layer) = (&listings[0], &listings[1]);
    for want in [
        "./etc/passwd",
        "./etc/ssl/certs/ca-certificates.crt",
        "./lib64/ld-linux-x86-64.so.2",
        "libc.so.6",
    ] {
        assert!(
            base_layer.contains(want),
            "{want} missing from:\n{base_layer}"
        );
    }
    assert!(
        base_layer
            .lines()
            .any(|l| l.contains("65532/65532") && l.ends_with("./var/lib/caelus/")),
        "the data directory belongs to the user:\n{base_layer}"
    );
    for want in ["./usr/local/bin/caelus", "./usr/lib/caelus/libhelm_c.so"] {
        assert!(
            app_layer.contains(want),
            "{want} missing from:\n{app_layer}"
        );
    }
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.contains("caelus:x:65532:65532:"), "{passwd}");

    // The unpacked image alone runs Caelus, as its user.
    let root = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&root.stdout).trim() != "0" {
        eprintln!("skipped running the image: chroot needs root");
        return;
    }
    let port = free_port();
    let mut server = Command::new("/usr/sbin/chroot")
        .arg("--userspec=65532:65532")
        .arg(&rootfs)
        .args([
            "/usr/local/bin/caelus",
            "server",
            "--database-url",
            "sqlite:///tmp/caelus.db?mode=rwc",
            "--listen",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .env_clear()
        .envs(env.iter().filter_map(|kv| kv.split_once('=')))
        .stdout(Stdio::null())
        .spawn()
        .expect("chroot runs");
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = loop {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            break r;
        }
        if let Ok(Some(status)) = server.try_wait() {
            panic!("caelus server in the image exited: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "caelus server in the image never answered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ready.status(), 200);
    stop_gracefully(&mut server);
    let _ = std::fs::remove_dir_all(&dir);
}
