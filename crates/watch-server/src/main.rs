//! The watch-server binary: read the configuration, build the AWS clients once, serve until
//! SIGTERM (ECS) or Ctrl-C, then end every stream with a resync.

use watch_server::{start, Config};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // JSON lines on stdout, written by a background thread (a stream never waits on the log).
    let (writer, _flushed) = tracing_appender::non_blocking(std::io::stdout());
    tracing_subscriber::fmt()
        .json()
        .with_writer(writer)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TAGCFG_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = Config::from_lookup(&tagged_routing::env::process_env).map_err(|e| {
        eprintln!("configuration error: {e}");
        e
    })?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let server = start(config, &adapters::aws::Clients::from_sdk(&sdk), &sdk).await?;
    let stop = push::shutdown::stop_requested();
    tracing::info!(addr = %server.addr, "watch server ready");
    stop.await;
    tracing::info!("stopping: ending every stream with a resync, then closing connections");
    server.shutdown().await?;
    Ok(())
}
