//! The cache-refresher Lambda: configuration, clients and instance connections once.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use cache_refresher::{Outcome, RefreshError, Refresher, RefresherConfig};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = RefresherConfig::from_lookup(&tagged_routing::env::process_env).map_err(|e| {
        eprintln!("configuration error: {e}");
        e
    })?;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(config.aws_timeouts())
        .load()
        .await;
    let refresher = Refresher::new(
        config,
        &adapters::aws::Clients::from_sdk(&sdk),
        aws_sdk_servicediscovery::Client::new(&sdk),
    )
    .await?;
    let refresher = &refresher;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent<Value>>| async move {
            let outcome: Result<Outcome, RefreshError> = refresher.handle(&event.payload).await;
            match &outcome {
                Ok(outcome) => tracing::info!(?outcome, "handled"),
                Err(error) => tracing::error!(%error, "failed; EventBridge will retry"),
            }
            outcome
        },
    ))
    .await
}
