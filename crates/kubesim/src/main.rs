//! `kubesim --listen 127.0.0.1:6443 --kubeconfig-out PATH [--tls-cert PEM --tls-key PEM [--tls-ca PEM]]`

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

#[derive(Parser)]
#[command(name = "kubesim", about = "Kubernetes API server simulator")]
struct Args {
    /// Address to listen on (plain HTTP unless --tls-cert/--tls-key).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Write a kubeconfig pointing at the simulator here.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// Milliseconds before workloads report ready.
    #[arg(long, default_value_t = 0)]
    rollout_delay_ms: u64,
    /// Watch events kept for resumption (older resourceVersions get 410).
    #[arg(long, default_value_t = 10_000)]
    watch_history: usize,
    /// Serve HTTPS with this PEM certificate chain (server certificate first).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PEM CA bundle the written kubeconfig trusts (default: the --tls-cert chain).
    #[arg(long, requires = "tls_cert")]
    tls_ca: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "kubesim=info".into()),
        )
        .init();
    let args = Args::parse();
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(kubesim::TlsConfig::from_files(
            cert,
            key,
            args.tls_ca.as_deref(),
        )?),
        _ => None,
    };
    let config = kubesim::Config {
        listen: args.listen,
        rollout_delay: Duration::from_millis(args.rollout_delay_ms),
        watch_history: args.watch_history,
        tls,
        ..Default::default()
    };
    let sim = kubesim::Server::start(config).await?;
    if let Some(p) = &args.kubeconfig_out {
        sim.write_kubeconfig(p)?;
        tracing::info!(path = %p.display(), "wrote kubeconfig");
    }
    tracing::info!(url = %sim.url(), "kubesim serving");
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}
