//! Watch benchmarks against a real `tagcfg serve` process (so its memory can be read
//! apart from the clients'):
//!
//! 1. write → watcher notified: an HTTP PUT, until the gRPC watcher receives the change
//!    (includes the write itself: HTTP, token check, redb commit), 1,000 samples;
//! 2. the same with a 1 KiB value: a push of that size must not wait for a delayed ACK
//!    (the server sets `TCP_NODELAY`; without it each push took ~40 ms);
//! 3. a 5-key `Get` at concurrency 1, 500 calls: requests per second (the same delayed-ACK
//!    stall showed as ~23 req/s);
//! 4. one change fanned out to 10,000 open Watch streams (100 connections × 100 streams):
//!    time until every stream has it, and the server's RSS growth per open stream.
//!
//! `make bench` runs it: `cargo bench -p tagcfg --bench watch`. Nothing leaves 127.0.0.1.
//! `TAGCFG_BENCH_SERVER=<path to a tagcfg binary>` measures another build of the server (the
//! watch-server image's static musl binary, say) with the same client.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use push::pb::{config_watch_client::ConfigWatchClient, watch_event::Event, WatchRequest};
use tonic::transport::Channel;

const STREAMS: usize = 10_000;
const CONNECTIONS: usize = 100;
const SAMPLES: usize = 1_000;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

async fn watcher(channel: Channel, token: &str) -> tonic::Streaming<push::pb::WatchEvent> {
    let request = testkit::auth::authed(
        WatchRequest {
            prefixes: vec!["tenant_config_bench/".into()],
            since: None,
        },
        token,
    );
    let mut stream = ConfigWatchClient::new(channel)
        .watch(request)
        .await
        .unwrap()
        .into_inner();
    // The first event: live.
    stream.message().await.unwrap().unwrap();
    stream
}

async fn next_change(stream: &mut tonic::Streaming<push::pb::WatchEvent>) -> u64 {
    loop {
        match stream.message().await.unwrap().unwrap().event {
            Some(Event::Updates(batch)) => return batch.cursor.map_or(0, |c| c.tenant),
            Some(Event::Heartbeat(_)) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn main() {
    let dir = testkit::data_dir();
    let server_binary = std::env::var_os("TAGCFG_BENCH_SERVER").unwrap_or_else(|| env!("CARGO_BIN_EXE_tagcfg").into());
    // The benchmark writes and reads far faster than a tenant's default limits allow; the
    // server inherits these.
    for var in [
        "TAGCFG_TENANT_READS_PER_SEC",
        "TAGCFG_TENANT_READ_BURST",
        "TAGCFG_TENANT_WRITES_PER_SEC",
        "TAGCFG_TENANT_WRITE_BURST",
        // One tenant holds all 10,000 streams (the default allows 1,000).
        "TAGCFG_MAX_STREAMS_PER_TENANT",
    ] {
        std::env::set_var(var, "1000000000");
    }
    let served = testkit::serve::Served::start(server_binary, dir.path(), &["--no-demo"]);
    let (http_url, grpc_url, token) = (
        served.http_url.clone(),
        served.grpc_url.clone(),
        served.token("ACME_TOKEN"),
    );
    let server_pid = served.child.id();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = tenant_auth::http_client(Duration::from_secs(30)).unwrap();
        let put_value = |key: &str, body: String| {
            http.put(format!("{http_url}/v1/config/{key}"))
                .bearer_auth(&token)
                .body(body)
                .send()
        };
        let put = |i: usize| put_value("tenant_config_bench/flag", format!("{{\"n\":{i}}}"));

        // 1. Latency.
        let channel = Channel::from_shared(grpc_url.clone()).unwrap().connect().await.unwrap();
        let mut stream = watcher(channel, &token).await;
        for i in 0..50 {
            put(i).await.unwrap();
            next_change(&mut stream).await;
        }
        let mut samples = Vec::with_capacity(SAMPLES);
        for i in 0..SAMPLES {
            let started = Instant::now();
            let response = put(i).await.unwrap();
            assert!(response.status().is_success());
            next_change(&mut stream).await;
            samples.push(started.elapsed());
        }
        samples.sort();
        println!(
            "write -> watcher notified ({SAMPLES} samples, PUT over HTTP + redb commit + gRPC push): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            percentile(&samples, 0.50).as_secs_f64() * 1e3,
            percentile(&samples, 0.99).as_secs_f64() * 1e3,
            samples.last().unwrap().as_secs_f64() * 1e3,
        );

        // 2. A 1 KiB value pushed.
        let padding = "x".repeat(1000);
        let mut samples = Vec::with_capacity(SAMPLES / 2);
        for i in 0..SAMPLES / 2 {
            let started = Instant::now();
            let body = format!("{{\"n\":{i},\"pad\":\"{padding}\"}}");
            assert!(put_value("tenant_config_bench/big", body).await.unwrap().status().is_success());
            next_change(&mut stream).await;
            samples.push(started.elapsed());
        }
        samples.sort();
        println!(
            "write of a 1 KiB value -> watcher notified ({} samples): p50 {:.3} ms, p99 {:.3} ms",
            samples.len(),
            percentile(&samples, 0.50).as_secs_f64() * 1e3,
            percentile(&samples, 0.99).as_secs_f64() * 1e3,
        );
        drop(stream);

        // 3. Multi-key Get at concurrency 1.
        let keys: Vec<String> = (0..5).map(|i| format!("tenant_config_bench/get/{i}")).collect();
        for key in &keys {
            put_value(key, format!("{{\"key\":\"{key}\",\"pad\":\"{}\"}}", "y".repeat(60))).await.unwrap();
        }
        let channel = Channel::from_shared(grpc_url.clone()).unwrap().connect().await.unwrap();
        let mut grpc = ConfigWatchClient::new(channel);
        let get = |grpc: &mut ConfigWatchClient<Channel>| {
            let request = testkit::auth::authed(push::pb::GetRequest { keys: keys.clone() }, &token);
            let mut grpc = grpc.clone();
            async move { grpc.get(request).await.unwrap().into_inner() }
        };
        assert_eq!(get(&mut grpc).await.items.len(), 5);
        let calls = 500;
        let started = Instant::now();
        for _ in 0..calls {
            get(&mut grpc).await;
        }
        let elapsed = started.elapsed();
        println!(
            "5-key Get at concurrency 1 ({calls} calls): {:.0} req/s, {:.3} ms per call",
            calls as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1e3 / calls as f64,
        );

        // 4. Fan-out.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = rss_kib(server_pid);
        let mut channels = Vec::new();
        for _ in 0..CONNECTIONS {
            channels.push(Channel::from_shared(grpc_url.clone()).unwrap().connect().await.unwrap());
        }
        let opened = Instant::now();
        let mut streams = Vec::with_capacity(STREAMS);
        for i in 0..STREAMS {
            streams.push(watcher(channels[i % CONNECTIONS].clone(), &token).await);
        }
        let open_time = opened.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss_kib(server_pid);
        let received = Arc::new(AtomicUsize::new(0));
        let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<Instant>(STREAMS);
        for mut s in streams {
            let received = received.clone();
            let done = done_tx.clone();
            tokio::spawn(async move {
                next_change(&mut s).await;
                received.fetch_add(1, Ordering::SeqCst);
                let _ = done.send(Instant::now()).await;
                // Keep the stream open until the measurement is over.
                tokio::time::sleep(Duration::from_secs(5)).await;
            });
        }
        drop(done_tx);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        put(1_000_000).await.unwrap();
        let mut last = started;
        for _ in 0..STREAMS {
            last = tokio::time::timeout(Duration::from_secs(30), done_rx.recv()).await.unwrap().unwrap();
        }
        println!(
            "one change -> {STREAMS} streams ({CONNECTIONS} connections): all delivered in {:.1} ms (write included); \
             opening them took {:.1} s; server RSS {} -> {} KiB = {:.2} KiB per stream",
            last.duration_since(started).as_secs_f64() * 1e3,
            open_time.as_secs_f64(),
            before,
            after,
            (after.saturating_sub(before)) as f64 / STREAMS as f64,
        );
        assert_eq!(received.load(Ordering::SeqCst), STREAMS);
    });
    drop(served);
}
