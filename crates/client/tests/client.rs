//! The client SDK against the real local server (HTTP + gRPC on random ports).

use std::time::Duration;

use client::{Client, ClientError};
use local_server::{LocalConfig, LocalServer};
use serde::Deserialize;
use tenant_auth::Scope;

async fn start(dir: &std::path::Path) -> LocalServer {
    LocalServer::start(LocalConfig {
        seed_demo_data: true,
        ..LocalConfig::on_free_ports(dir)
    })
    .await
    .unwrap()
}

#[derive(Debug, Deserialize, PartialEq)]
struct Checkout {
    enabled: bool,
    rollout_percent: u32,
}

async fn put(server: &LocalServer, key: &str, value: &str) {
    let token = server.token("acme", &[Scope::Write]).unwrap();
    let status = tenant_auth::http_client(Duration::from_secs(10))
        .unwrap()
        .put(format!("{}/v1/config/{key}", server.url()))
        .bearer_auth(token)
        .body(value.to_owned())
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_are_pushed_into_the_local_cache_and_announced() {
    let dir = testkit::data_dir();
    let server = start(dir.path()).await;
    let token = server.token("acme", &[Scope::Read]).unwrap();
    let config = Client::builder(server.grpc_url(), token)
        .prefixes(["tenant_config_flags/"])
        .connect()
        .await
        .unwrap();
    assert!(config.is_streaming());
    let flags: Checkout = config.get("tenant_config_flags/checkout").await.unwrap();
    assert_eq!(
        flags,
        Checkout {
            enabled: true,
            rollout_percent: 25
        }
    );

    let mut changes = config.subscribe();
    put(
        &server,
        "tenant_config_flags/checkout",
        r#"{"enabled":false,"rollout_percent":75}"#,
    )
    .await;
    let changed = tokio::time::timeout(Duration::from_secs(5), changes.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(changed.keys, ["tenant_config_flags/checkout"]);
    // Served from the cache the stream updated.
    let flags: Checkout = config.get("tenant_config_flags/checkout").await.unwrap();
    assert_eq!(
        flags,
        Checkout {
            enabled: false,
            rollout_percent: 75
        }
    );
    let cursor = changed.cursor.expect("a change carries the stream's cursor");
    assert!(cursor.tenant > 0 && config.cursor().unwrap().tenant >= cursor.tenant);

    // Exact JSON text, typed errors.
    assert_eq!(
        config.get_json("tenant_config_limits/api").await.unwrap(),
        r#"{"requests_per_minute":600}"#
    );
    assert_eq!(
        config.get::<u32>("tenant_config_nothing").await.unwrap_err(),
        ClientError::NotFound("tenant_config_nothing".into())
    );
    assert!(matches!(
        config.get::<u32>("tenant_config_flags/checkout").await,
        Err(ClientError::Decode { .. })
    ));
    assert!(matches!(
        config.get::<u32>("nope_x").await,
        Err(ClientError::Invalid(_))
    ));
    drop(config);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_fails_connect() {
    let dir = testkit::data_dir();
    let server = start(dir.path()).await;
    let err = Client::connect(server.grpc_url(), "not-a-token").await.err().unwrap();
    assert!(matches!(err, ClientError::Unauthenticated(_)), "{err:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_stream_down_reads_fall_back_to_http_and_polling_keeps_them_fresh() {
    let dir = testkit::data_dir();
    let server = start(dir.path()).await;
    let token = server.token("acme", &[Scope::Read]).unwrap();
    // Nothing listens on the gRPC endpoint.
    let unused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = Client::builder(format!("http://{unused}"), token)
        .http_fallback(server.url())
        .poll_interval(Duration::from_millis(50))
        .connect()
        .await
        .unwrap();
    assert!(!config.is_streaming());
    let flags: Checkout = config.get("tenant_config_flags/checkout").await.unwrap();
    assert!(flags.enabled);
    let mut changes = config.subscribe();
    put(
        &server,
        "tenant_config_flags/checkout",
        r#"{"enabled":false,"rollout_percent":5}"#,
    )
    .await;
    let changed = tokio::time::timeout(Duration::from_secs(10), changes.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(changed.keys, ["tenant_config_flags/checkout"]);
    let flags: Checkout = config.get("tenant_config_flags/checkout").await.unwrap();
    assert_eq!(flags.rollout_percent, 5);
    drop(config);
    server.shutdown().await.unwrap();
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token the local server (60 s leeway) accepts for about `secs` more seconds.
fn short_token(server: &LocalServer, secs: u64) -> String {
    let acme = tagged_routing::TenantId::parse("acme").unwrap();
    tenant_auth::dev::mint_until(
        server.secret.as_deref().unwrap(),
        &acme,
        "rotating",
        &[Scope::Read],
        now() + secs - 60,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotating_token_provider_keeps_the_stream_alive_across_expiry() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let dir = testkit::data_dir();
    let server = Arc::new(start(dir.path()).await);
    let calls = Arc::new(AtomicUsize::new(0));
    let provider = {
        let (server, calls) = (server.clone(), calls.clone());
        client::TokenFn::new(move || {
            let (server, calls) = (server.clone(), calls.clone());
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(short_token(&server, 3))
            }
        })
    };
    let config = client::Client::builder_with_tokens(server.grpc_url(), provider)
        .prefixes(["tenant_config_flags/"])
        .connect()
        .await
        .unwrap();
    let flags: Checkout = config.get("tenant_config_flags/checkout").await.unwrap();
    assert!(flags.enabled);
    let mut changes = config.subscribe();
    let first_calls = calls.load(Ordering::SeqCst);
    // Past the first token's end: the server cut that stream, the client reconnected.
    tokio::time::sleep(Duration::from_secs(4)).await;
    put(
        &server,
        "tenant_config_flags/checkout",
        r#"{"enabled":false,"rollout_percent":1}"#,
    )
    .await;
    let event = tokio::time::timeout(Duration::from_secs(10), changes.recv())
        .await
        .unwrap()
        .unwrap();
    let changed = event.expect("no error: the provider had a fresh token");
    assert_eq!(changed.keys, ["tenant_config_flags/checkout"]);
    assert!(
        calls.load(Ordering::SeqCst) > first_calls,
        "the provider was asked again"
    );
    assert_eq!(config.last_error(), None);
    assert!(config.is_streaming());
    drop(config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_without_refresh_surfaces_an_error() {
    let dir = testkit::data_dir();
    let server = start(dir.path()).await;
    let config = Client::builder(server.grpc_url(), short_token(&server, 2))
        .connect()
        .await
        .unwrap();
    assert!(config.is_streaming());
    let mut changes = config.subscribe();
    let event = tokio::time::timeout(Duration::from_secs(10), changes.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(event, Err(ClientError::Unauthenticated(_))), "{event:?}");
    assert!(matches!(config.last_error(), Some(ClientError::Unauthenticated(_))));
    assert!(!config.is_streaming());
    drop(config);
    server.shutdown().await.unwrap();
}
