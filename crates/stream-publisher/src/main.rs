//! The stream-publisher Lambda: configuration and clients once, then one `publish` per batch.

use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use stream_publisher::{publish, EventBridgeSink, PublisherConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = PublisherConfig::from_lookup(&tagged_routing::env::process_env).map_err(|e| {
        eprintln!("configuration error: {e}");
        e
    })?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sink = EventBridgeSink {
        client: aws_sdk_eventbridge::Client::new(&sdk),
    };
    let (sink, config) = (&sink, &config);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        Ok::<_, Error>(publish(&event.payload.records, sink, config).await)
    }))
    .await
}
