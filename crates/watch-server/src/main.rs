//! The watch-server binary: read the configuration, build the AWS clients once, serve until
//! SIGTERM (ECS) or Ctrl-C, then end every stream with a resync.

use std::process::ExitCode;

use watch_server::{start, Config};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TAGCFG_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = match Config::from_lookup(&tagged_routing::env::process_env) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "configuration error");
            eprintln!("configuration error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let server = match start(config, &adapters::aws::Clients::from_sdk(&sdk)).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("start-up error: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(addr = %server.addr, "watch server ready");
    push::shutdown::stop_requested().await;
    tracing::info!("stopping: ending every stream with a resync, then closing connections");
    match server.shutdown().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shutdown error: {e}");
            ExitCode::FAILURE
        }
    }
}
