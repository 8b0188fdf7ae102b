//! End-to-end benchmark of Caelus (issue 5):
//!
//! ```sh
//! cargo build --release -p caelus-cli --bin caelus
//! cargo run --release -p caelus-bench -- reconcile --deployments 1000 [--database postgres] [--json out.json]
//! cargo run --release -p caelus-bench -- report --reconcile a.json --reconcile b.json \
//!     --helm helm.md --kubesim kubesim.md --out docs/benchmarks.md
//! ```
//!
//! `reconcile` starts kubesim in this process, a local `docker-registry` with the
//! repository's web chart, a database, and the REAL `caelus server` and `caelus worker`
//! binaries; creates N deployments through the HTTP API as fast as it can, and measures
//! the time until all are Ready, kubesim's API requests, and the peak RSS and CPU time of
//! the caelus processes. Then it makes every deployment due at once (one quiet resync
//! round) and measures that round's requests (writes must be 0) and CPU.
//! `report` turns the JSON results into `docs/benchmarks.md`.

mod api_load;
mod compare;
mod drift;
mod helm_sdk;
mod procfs;
mod reconcile;
mod report;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "caelus-bench", about = "End-to-end benchmarks of Caelus")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// N deployments of the web chart from API create to Ready, then one quiet resync of all.
    Reconcile(reconcile::Args),
    /// The HTTP API at fixed request rates with N deployments in PostgreSQL.
    ApiLoad(api_load::Args),
    /// The Helm SDK contender: N `helm install`s of the same chart on the same kubesim.
    HelmSdk(helm_sdk::Args),
    /// Write docs/benchmarks.md from results of `reconcile` and the helm and kubesim benchmarks.
    Report(report::Args),
    /// Print only the "Drift: detection to correction" section of `reconcile --drift-samples` runs.
    DriftReport(report::DriftArgs),
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Reconcile(args) => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(reconcile::run(args))
        }
        Command::ApiLoad(args) => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(api_load::run(args))
        }
        Command::HelmSdk(args) => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(helm_sdk::run(args))
        }
        Command::Report(args) => report::run(args),
        Command::DriftReport(args) => report::drift_only(args),
    }
}
