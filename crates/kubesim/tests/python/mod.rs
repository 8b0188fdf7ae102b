//! Runs a Python client script (tests/<script>) against a simulator, with the
//! virtualenv `scripts/install-python-clients` makes at `.tools/py`.

use std::path::PathBuf;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub async fn run(s: &crate::common::Sim, script: &str, scenario: &str) {
    let root = repo_root();
    let python = root.join(".tools/py/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-python-clients (scripts/bootstrap --test does)",
        python.display()
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(&s.kubeconfig)
        .arg(&root)
        .arg(scenario)
        // Helm keeps its cache and config under HOME; keep them per test.
        .env("HOME", s.dir.path())
        .kill_on_drop(true)
        .output()
        .await
        .expect("python runs");
    assert!(
        out.status.success(),
        "{scenario} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
