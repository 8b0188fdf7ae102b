//! The official Python `kubernetes` client (v37) against kubesim: typed CRUD,
//! server-side apply, watch with bookmarks and 410, and the dynamic client.
//! Each test runs one scenario of `tests/python_client/scenarios.py` against
//! a fresh simulator; the Python environment comes from
//! `scripts/install-python-clients` (run by `scripts/bootstrap --test`).

mod common;

mod python;

async fn scenario(name: &str, config: kubesim::Config) {
    let s = common::start(config).await;
    python::run(&s, "python_client/scenarios.py", name).await;
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_typed_crud() {
    scenario("typed_crud", kubesim::Config::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_server_side_apply() {
    scenario("ssa", kubesim::Config::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_watch_bookmarks_and_410() {
    // A short history so a few writes compact the starting resourceVersion.
    let config = kubesim::Config {
        watch_history: 20,
        bookmark_interval: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    scenario("watch", config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_dynamic_client() {
    scenario("dynamic", kubesim::Config::default()).await;
}
