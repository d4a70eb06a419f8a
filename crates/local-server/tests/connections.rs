//! Both servers of `tagcfg serve` bound what one client can hold: idle connections close,
//! a slow request header is cut off, a request that takes too long is answered 503, the
//! number of connections is capped (the rest wait and are served once one closes), and
//! HTTP/2 streams and headers are limited per connection.

use std::time::Duration;

use local_server::{ConnLimits, LocalConfig, LocalServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server(limits: ConnLimits) -> (tempfile::TempDir, LocalServer) {
    let dir = testkit::data_dir();
    let server = LocalServer::start(LocalConfig {
        conn_limits: limits,
        ..LocalConfig::on_free_ports(dir.path())
    })
    .await
    .unwrap();
    (dir, server)
}

/// Reads until the server closes the connection; panics if it is still open after `within`.
async fn closed_within(socket: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the connection was still open after {within:?}");
    received
}

#[tokio::test]
async fn idle_and_slow_connections_are_closed_on_both_servers() {
    let (_dir, server) = server(ConnLimits {
        idle_timeout: Duration::from_millis(500),
        header_read_timeout: Duration::from_millis(500),
        ..ConnLimits::default()
    })
    .await;

    // HTTP: nothing sent at all, and a header that never ends (one byte at a time).
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    closed_within(&mut silent, Duration::from_secs(5)).await;
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let dripping = async {
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow.write_all(b"X").await.is_err() {
                return;
            }
        }
    };
    dripping.await;
    closed_within(&mut slow, Duration::from_secs(1)).await;

    // A kept-alive connection between requests is closed too.
    let mut kept = TcpStream::connect(server.addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = closed_within(&mut kept, Duration::from_secs(5)).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // gRPC: a socket that never sends the HTTP/2 preface.
    let mut silent = TcpStream::connect(server.grpc_addr).await.unwrap();
    closed_within(&mut silent, Duration::from_secs(5)).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let (_dir, server) = server(ConnLimits {
        max_connections: 2,
        ..ConnLimits::default()
    })
    .await;
    let http = tenant_auth::http_client(Duration::from_millis(700)).unwrap();
    let healthz = format!("{}/healthz", server.url());
    let holders = [
        TcpStream::connect(server.addr).await.unwrap(),
        TcpStream::connect(server.addr).await.unwrap(),
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        http.get(&healthz).send().await.is_err(),
        "a third connection was served past the cap of two"
    );
    drop(holders);
    let answered = http.get(&healthz).send().await.expect("served once a slot is free");
    assert_eq!(answered.status(), 200);

    // The gRPC server has its own cap.
    let grpc_holders = [
        TcpStream::connect(server.grpc_addr).await.unwrap(),
        TcpStream::connect(server.grpc_addr).await.unwrap(),
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut health = health_client(&server).await;
    let refused = tokio::time::timeout(Duration::from_millis(700), health.check(health_request())).await;
    assert!(
        refused.is_err(),
        "a third gRPC connection was served past the cap of two"
    );
    drop(grpc_holders);
    let mut health = health_client(&server).await;
    let answered = tokio::time::timeout(Duration::from_secs(5), health.check(health_request())).await;
    assert!(matches!(answered, Ok(Ok(_))), "{answered:?}");
    server.shutdown().await.unwrap();
}

async fn health_client(
    server: &LocalServer,
) -> tonic_health::pb::health_client::HealthClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(server.grpc_url())
        .unwrap()
        .connect_lazy();
    tonic_health::pb::health_client::HealthClient::new(channel)
}

fn health_request() -> tonic_health::pb::HealthCheckRequest {
    tonic_health::pb::HealthCheckRequest { service: String::new() }
}

#[tokio::test]
async fn http2_header_lists_and_streams_are_limited_per_connection() {
    let (_dir, server) = server(ConnLimits {
        h2_max_header_list_bytes: 4096,
        h2_max_concurrent_streams: 2,
        ..ConnLimits::default()
    })
    .await;
    let channel = tonic::transport::Endpoint::from_shared(server.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let mut big = tonic::Request::new(health_request());
    big.metadata_mut()
        .insert("x-padding", "p".repeat(8192).parse().unwrap());
    assert!(
        health.check(big).await.is_err(),
        "an 8 KiB header list passed a 4 KiB limit"
    );
    assert!(health.check(health_request()).await.is_ok());

    // Two health watches hold both streams of the connection; a third call waits.
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(health.watch(health_request()).await.unwrap().into_inner());
    }
    let third = tokio::time::timeout(Duration::from_millis(700), health.check(health_request())).await;
    assert!(third.is_err(), "a third stream ran beside two on a limit of two");
    drop(held);
    let third = tokio::time::timeout(Duration::from_secs(5), health.check(health_request())).await;
    assert!(matches!(third, Ok(Ok(_))), "{third:?}");
    server.shutdown().await.unwrap();
}
