//! The client SDK against the real local server (HTTP + gRPC on random ports).

use std::time::Duration;

use client::{Client, ClientError};
use serde::Deserialize;
use tagcfg::local::{LocalConfig, LocalServer};
use tagged_routing::RoutingTable;
use tenant_auth::Scope;

async fn start(dir: &std::path::Path) -> LocalServer {
    LocalServer::start(LocalConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        routes: RoutingTable::default(),
        seed_demo_data: true,
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
    let dir = tempfile::tempdir().unwrap();
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
    assert!(config.revision() >= changed.revision && changed.revision > 0);

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
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let err = Client::connect(server.grpc_url(), "not-a-token").await.err().unwrap();
    assert!(matches!(err, ClientError::Unauthenticated(_)), "{err:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_stream_down_reads_fall_back_to_http_and_polling_keeps_them_fresh() {
    let dir = tempfile::tempdir().unwrap();
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
        .unwrap();
    assert_eq!(changed.keys, ["tenant_config_flags/checkout"]);
    let flags: Checkout = config.get("tenant_config_flags/checkout").await.unwrap();
    assert_eq!(flags.rollout_percent, 5);
    drop(config);
    server.shutdown().await.unwrap();
}
