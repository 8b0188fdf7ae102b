use caelus_cli::cli::{AdminCommand, Cli, Command, LogFormat};
use caelus_cli::{client_commands, processes};
use clap::Parser;
use tracing_subscriber::EnvFilter;

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("CAELUS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // One TLS crypto provider for every client in the process (reqwest, kube).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let is_process = matches!(
        cli.command,
        Command::Server(_) | Command::Worker(_) | Command::Dev(_)
    );
    if is_process {
        init_logging(cli.log_format);
    }
    let result = match cli.command {
        Command::Server(a) => processes::server(a).await,
        Command::Worker(a) => processes::worker(a).await,
        Command::Dev(a) => processes::dev(a).await,
        Command::Migrate(a) => processes::migrate(a).await,
        Command::Admin(AdminCommand::CreateToken(a)) => processes::admin_create_token(a).await,
        Command::Status(a) => client_commands::status(&a).await,
        Command::Product(c) => client_commands::product(c).await,
        Command::Template(c) => client_commands::template(c).await,
        Command::Deployment(c) => client_commands::deployment(c).await,
        Command::Token(c) => client_commands::token(c).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
