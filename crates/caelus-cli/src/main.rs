use caelus_cli::cli::{AdminCommand, Cli, Command, LogFormat};
use caelus_cli::client::ClientError;
use caelus_cli::client_commands::{Drifted, WaitTimedOut};
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
    let log = match &cli.command {
        Command::Server(a) => Some(a.log),
        Command::Worker(a) => Some(a.log),
        Command::Dev(a) => Some(a.log),
        _ => None,
    };
    if let Some(log) = log {
        init_logging(log.log_format);
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
        Command::Chart(c) => client_commands::chart(c).await,
        Command::Login(a) => client_commands::login(a).await,
        Command::Context(c) => client_commands::context(c),
        Command::Completion { shell } => {
            client_commands::completion(shell);
            Ok(())
        }
        Command::Orphans(c) => caelus_cli::orphan_commands::orphans(c).await,
        Command::Events(c) => client_commands::events(c).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The diff was printed; drift is its answer, not an error.
        Err(e) if e.downcast_ref::<Drifted>().is_some() => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(exit_status(&e))
        }
    }
}

/// The exit status of a failed command, as `caelus --help` documents it.
fn exit_status(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<WaitTimedOut>().is_some() {
        4
    } else if matches!(
        e.downcast_ref::<ClientError>(),
        Some(ClientError::Transport(_))
    ) {
        3
    } else {
        1
    }
}
