//! What the hardening costs and what it buys, against real `tagcfg serve` processes (bench
//! build) on 127.0.0.1, logging JSON lines into files as a deployment does:
//!
//! 1. **access log**: 32 concurrent clients GET one key for 3 s, on three servers: one
//!    logging a line for every request (`TAGCFG_ACCESS_LOG_SAMPLE=1`), one with the default
//!    sampling (1 in 10 successful reads), one with the access log off
//!    (`TAGCFG_LOG=info,tagcfg::access=off`); three rounds each, alternating, so the
//!    machine's drift hits all alike;
//! 2. **noisy neighbour**: on a server with the default per-tenant limits (1,000 reads/s,
//!    burst 2,000), globex reads at a steady 400 req/s (4 clients, one request each 10 ms)
//!    for 3 s alone, then while acme floods with 32 concurrent clients far past its limit;
//!    globex's p50/p99 side by side, how many of its requests were refused (none should
//!    be), and how many of acme's were answered 429.
//!
//! `make bench` runs it: `cargo bench -p tagcfg --bench limits`. Clients and servers share
//! the machine's cores, so compare the figures of one run, not across machines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use testkit::serve::{Logs, ServeOptions, Served};

const KEY: &str = "tenant_config_flags/checkout";
const ROUND: Duration = Duration::from_secs(3);

/// What a closed loop of clients saw.
struct Load {
    latencies: Vec<Duration>,
    ok: u64,
    throttled: u64,
}

impl Load {
    fn per_sec(&self) -> f64 {
        self.ok as f64 / ROUND.as_secs_f64()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        let sorted = &self.latencies;
        let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[i].as_secs_f64() * 1e3
    }
}

/// `concurrency` clients GET `url` for one round, back to back (`pace: None`) or one
/// request per `pace` each.
async fn load(http: &reqwest::Client, url: &str, token: &str, concurrency: usize, pace: Option<Duration>) -> Load {
    let (ok, throttled) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let until = Instant::now() + ROUND;
    let clients: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, url, token) = (http.clone(), url.to_owned(), token.to_owned());
            let (ok, throttled) = (ok.clone(), throttled.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut tick = pace.map(tokio::time::interval);
                while Instant::now() < until {
                    if let Some(tick) = tick.as_mut() {
                        tick.tick().await;
                    }
                    let started = Instant::now();
                    let status = http.get(&url).bearer_auth(&token).send().await.unwrap().status();
                    match status.as_u16() {
                        200 => {
                            latencies.push(started.elapsed());
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        429 => {
                            throttled.fetch_add(1, Ordering::Relaxed);
                        }
                        other => panic!("unexpected status {other}"),
                    }
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for client in clients {
        latencies.extend(client.await.unwrap());
    }
    latencies.sort();
    Load {
        latencies,
        ok: ok.load(Ordering::Relaxed),
        throttled: throttled.load(Ordering::Relaxed),
    }
}

fn serve(dir: &std::path::Path, log: &str, env: &[(&str, &str)]) -> Served {
    let log_file = std::fs::File::create(dir.join("server.log")).unwrap();
    let options = ServeOptions {
        log_level: log.to_owned(),
        logs: Logs::File(log_file),
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        open_files: None,
    };
    Served::start_with(env!("CARGO_BIN_EXE_tagcfg"), &dir.join("data"), &[], options)
}

fn main() {
    let unlimited = [
        ("TAGCFG_TENANT_READS_PER_SEC", "1000000000"),
        ("TAGCFG_TENANT_READ_BURST", "1000000000"),
    ];
    let (on_dir, off_dir, shared_dir) = (testkit::data_dir(), testkit::data_dir(), testkit::data_dir());
    let every = [unlimited[0], unlimited[1], ("TAGCFG_ACCESS_LOG_SAMPLE", "1")];
    let logged = serve(on_dir.path(), "info", &every);
    let sampled_dir = testkit::data_dir();
    let sampled = serve(sampled_dir.path(), "info", &unlimited);
    let quiet = serve(off_dir.path(), "info,tagcfg::access=off", &unlimited);
    let limited = serve(shared_dir.path(), "info", &[]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = tenant_auth::http_client(Duration::from_secs(30)).unwrap();
        let url = |served: &Served| format!("{}/v1/config/{KEY}", served.http_url);

        // 1. Access log: every request, sampled, off.
        let servers = [("every request", &logged), ("sampled 1 in 10", &sampled), ("off", &quiet)];
        let mut rounds: Vec<Vec<Load>> = servers.iter().map(|_| Vec::new()).collect();
        for (_, served) in servers {
            load(&http, &url(served), &served.token("ACME_TOKEN"), 32, None).await; // warm-up
        }
        for _ in 0..3 {
            for (i, (_, served)) in servers.iter().enumerate() {
                rounds[i].push(load(&http, &url(served), &served.token("ACME_TOKEN"), 32, None).await);
            }
        }
        let mean = |runs: &[Load]| runs.iter().map(Load::per_sec).sum::<f64>() / runs.len() as f64;
        let off_rps = mean(&rounds[2]);
        for (i, (name, _)) in servers.iter().enumerate() {
            let rps = mean(&rounds[i]);
            println!(
                "GET at concurrency 32, access log {name}: {rps:.0} req/s (rounds {}), {:.1} % below off",
                rounds[i].iter().map(|l| format!("{:.0}", l.per_sec())).collect::<Vec<_>>().join("/"),
                (1.0 - rps / off_rps) * 100.0
            );
        }
        for (name, dir) in [("every request", &on_dir), ("sampled", &sampled_dir), ("off", &off_dir)] {
            let lines = std::fs::read_to_string(dir.path().join("server.log")).unwrap().lines().count();
            println!("log lines written, access log {name}: {lines}");
        }

        // 2. Noisy neighbour.
        let globex = limited.token("GLOBEX_TOKEN");
        let acme = limited.token("ACME_TOKEN");
        let steady = Some(Duration::from_millis(10));
        load(&http, &url(&limited), &globex, 4, steady).await; // warm-up
        let alone = load(&http, &url(&limited), &globex, 4, steady).await;
        let flood = {
            let (http, url, acme) = (http.clone(), url(&limited), acme.clone());
            tokio::spawn(async move { load(&http, &url, &acme, 32, None).await })
        };
        let beside = load(&http, &url(&limited), &globex, 4, steady).await;
        let flood = flood.await.unwrap();
        println!(
            "noisy neighbour: globex at 400 req/s alone: {:.0} answered/s ({} refused), p50 {:.2} ms, p99 {:.2} ms; \
             beside acme flooding at concurrency 32: {:.0} answered/s ({} refused), p50 {:.2} ms, p99 {:.2} ms (p99 × {:.1}); \
             acme: {} answered, {} refused with 429",
            alone.per_sec(),
            alone.throttled,
            alone.percentile_ms(0.50),
            alone.percentile_ms(0.99),
            beside.per_sec(),
            beside.throttled,
            beside.percentile_ms(0.50),
            beside.percentile_ms(0.99),
            beside.percentile_ms(0.99) / alone.percentile_ms(0.99),
            flood.ok,
            flood.throttled,
        );
    });
}
