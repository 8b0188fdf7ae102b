//! The Helm SDK (helm-python-sdk, i.e. libhelm_c: Helm v4's Go SDK on
//! client-go, whose release Secrets travel as protobuf) against kubesim:
//! install, upgrade, rollback, uninstall, list, history, `wait=watcher` and
//! hooks, with the repository's test charts and charts from ../shared/charts.
//! Each test runs one scenario of `tests/helm_sdk/scenarios.py` against a
//! fresh simulator; the Python environment comes from
//! `scripts/install-python-clients` (run by `scripts/bootstrap --test`).

mod common;

mod python;

async fn scenario(name: &str) {
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/charts");
    if name.starts_with("shared_") && !shared.is_dir() {
        eprintln!(
            "skipped: {} is absent (a plain clone has no shared charts)",
            shared.display()
        );
        return;
    }
    let s = common::start(kubesim::Config::default()).await;
    python::run(&s, "helm_sdk/scenarios.py", name).await;
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_upgrade_history_list_rollback_uninstall() {
    scenario("lifecycle").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_wait_watcher_waits_for_readiness() {
    scenario("wait_watcher").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_hooks_run_and_are_deleted() {
    scenario("hooks").await;
}

/// Caelus's own chart (`deploy/chart`), installed as its README says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_upgrades_and_uninstalls_the_caelus_chart() {
    scenario("caelus_chart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_shared_nginx_install_upgrade_uninstall() {
    scenario("shared_nginx").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_shared_postgresql_major_upgrade() {
    scenario("shared_postgresql_upgrade").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_shared_redis_install_uninstall() {
    scenario("shared_redis").await;
}
