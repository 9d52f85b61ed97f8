//! `sequence_service`: the sequence engine's REST service.
//!
//! `sequence_service --memory --listen 127.0.0.1:8080 --api-key acme=KEY1` for a try-out;
//! `--database-url` (and a configuration file with the SMTP relay and tracking secret)
//! for PostgreSQL. `--help` lists every option.

use std::process::ExitCode;

use clap::Parser;
use sequence_service::config::{Cli, Config};
use sequence_service::Service;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let config = match Config::load(&cli) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("sequence_service: {e}");
            return ExitCode::from(2);
        }
    };
    tracing::info!(listen = %config.listen, store = ?config.store, tenants = config.api_keys.len(), "starting");
    let service = match Service::from_config(&config).await {
        Ok(service) => service,
        Err(e) => {
            eprintln!("sequence_service: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("sequence_service: cannot listen on {}: {e}", config.listen);
            return ExitCode::from(1);
        }
    };
    match service.serve(listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sequence_service: {e}");
            ExitCode::from(1)
        }
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
