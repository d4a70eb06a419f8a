//! Reads a feature flag from the local cache and prints every change pushed to it.
//!
//! ```sh
//! make run                                   # in one terminal; copy ACME_TOKEN
//! TAGCFG_TOKEN=$ACME_TOKEN cargo run -p client --example watch_flags
//! # then, in another: tagcfg put tenant_config_flags/checkout '{"enabled":false}'
//! ```

use client::Client;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let token = std::env::var("TAGCFG_TOKEN").map_err(|_| "set TAGCFG_TOKEN (make run prints one)")?;
    let grpc = std::env::var("TAGCFG_GRPC_URL").unwrap_or_else(|_| "http://127.0.0.1:50051".into());
    let http = std::env::var("TAGCFG_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let config = Client::builder(grpc, token)
        .prefixes(["tenant_config_flags/"])
        .http_fallback(http)
        .connect()
        .await?;
    let key = "tenant_config_flags/checkout";
    println!("{key} = {}", config.get_json(key).await?);
    let mut changes = config.subscribe();
    while let Ok(event) = changes.recv().await {
        let changed = match event {
            Ok(changed) => changed,
            Err(e) => {
                eprintln!("not fresh: {e} (serving the last known values)");
                continue;
            }
        };
        for key in changed.keys {
            let layer = config.layer(&key).await.unwrap_or_default();
            match config.get_json(&key).await {
                Ok(value) => println!("{key} = {value} (from the {layer} layer)"),
                Err(e) => println!("{key}: {e}"),
            }
        }
    }
    Ok(())
}
