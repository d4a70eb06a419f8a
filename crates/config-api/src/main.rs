//! The config-api Lambda: read the configuration, build everything once, serve events.

use std::process::ExitCode;

use config_api::{build, ApiConfig};

#[tokio::main]
async fn main() -> ExitCode {
    lambda_http::tracing::init_default_subscriber();
    let config = match ApiConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "configuration error");
            eprintln!("configuration error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let app = match build(config, &adapters::aws::Clients::from_sdk(&sdk), &sdk) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("start-up error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match lambda_http::run(app.router).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("runtime error: {e}");
            ExitCode::FAILURE
        }
    }
}
