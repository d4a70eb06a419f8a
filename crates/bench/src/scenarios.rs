//! The comparisons. Each drives tagcfg and etcd with the same client code from this
//! process, in rounds that alternate which system goes first, so the machine's drift (a
//! compile beside it, thermal limits) hits both alike. Each returns a [`Table`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use etcd_client::KvClient;
use futures_util::stream::{self, Stream, StreamExt};
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Zipf};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::etcd::{self, Etcd, GatewayRange, GrpcRange};
use crate::load::{self, histogram, ms_at, Mode, Op, Outcome, Run};
use crate::probe::{self, GrpcHealth, HttpGet};
use crate::report::{count, ms, percentiles, ratio, Table};
use crate::tagcfg::{self, GrpcRead, HttpRead, Tagcfg};
use crate::BenchError;

/// How long and how hard each scenario runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Rounds of each point-read measurement, alternating the order.
    pub rounds: usize,
    /// One round of one point-read measurement.
    pub round: Duration,
    /// Concurrency levels of the point reads.
    pub levels: Vec<usize>,
    /// Writes timed per watcher count.
    pub watch_samples: usize,
    pub watchers: Vec<usize>,
    /// Watcher counts of the fan-out, spread over `fan_out_connections` connections.
    pub fan_out: Vec<usize>,
    pub fan_out_connections: usize,
    pub fan_out_repeats: usize,
    pub tenants: usize,
    pub keys_per_tenant: usize,
    /// The mixed workload's time on each system (split into `rounds` rounds).
    pub mixed: Duration,
    pub mixed_clients: usize,
    /// The offered load both systems get in the mixed workload's open-loop phase.
    pub mixed_rate: f64,
    pub write_share: f64,
    /// The Zipf exponent of key popularity (0.99: YCSB's default).
    pub zipf_exponent: f64,
    /// The noisy neighbour: the victim's steady rate and the flooder's concurrency.
    pub noisy: Duration,
    pub victim_rate: f64,
    pub flood_clients: usize,
}

impl Settings {
    /// The full comparison (about 15 minutes on 2 cores).
    pub fn full() -> Self {
        Settings {
            rounds: 3,
            round: Duration::from_secs(4),
            levels: vec![1, 16, 64],
            watch_samples: 1_000,
            watchers: vec![1, 100],
            fan_out: vec![1_000, 10_000],
            fan_out_connections: 100,
            fan_out_repeats: 5,
            tenants: 1_000,
            keys_per_tenant: 50,
            mixed: Duration::from_secs(60),
            mixed_clients: 64,
            mixed_rate: 3_000.0,
            write_share: 0.05,
            zipf_exponent: 0.99,
            noisy: Duration::from_secs(5),
            victim_rate: 400.0,
            flood_clients: 32,
        }
    }

    /// Every scenario, briefly: a check that the comparison runs, not a measurement.
    pub fn quick() -> Self {
        Settings {
            rounds: 2,
            round: Duration::from_millis(300),
            levels: vec![1, 4],
            watch_samples: 20,
            watchers: vec![1, 5],
            fan_out: vec![50],
            fan_out_connections: 5,
            fan_out_repeats: 2,
            tenants: 10,
            keys_per_tenant: 5,
            mixed: Duration::from_secs(1),
            mixed_clients: 8,
            mixed_rate: 200.0,
            noisy: Duration::from_millis(500),
            victim_rate: 100.0,
            flood_clients: 4,
            ..Settings::full()
        }
    }
}

/// The percentiles of the "p50 / p99" and "p50 / p99 / p99.9" cells.
const P50_P99: &[f64] = &[0.5, 0.99];
const P50_P99_P999: &[f64] = &[0.5, 0.99, 0.999];

/// The tenant whose keys the single-key scenarios use, and its key in each system.
const TENANT: &str = "acme";
const POINT_KEY: &str = "tenant_config_bench/point";
const POINT_VALUE: &str = r#"{"enabled":true,"rollout":25,"variant":"blue","regions":["eu-west-1","us-east-1"]}"#;
const WATCH_PREFIX: &str = "tenant_config_watch/";
const WATCH_KEY: &str = "tenant_config_watch/flag";

fn etcd_key(tenant: &str, key: &str) -> String {
    format!("/{tenant}/{key}")
}

/// One measured operation of one system.
struct Contender {
    label: &'static str,
    op: Arc<dyn Op>,
    total: Option<Run>,
    rounds: Vec<f64>,
}

impl Contender {
    fn new(label: &'static str, op: Arc<dyn Op>) -> Self {
        Contender {
            label,
            op,
            total: None,
            rounds: Vec::new(),
        }
    }

    fn run(&self) -> &Run {
        self.total.as_ref().expect("measured")
    }

    /// `18,331 (±6 %)`: the mean rate and half the spread of the rounds.
    fn rate(&self) -> String {
        let run = self.run();
        let (lo, hi) = self
            .rounds
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        let spread = if run.per_sec() > 0.0 {
            (hi - lo) / 2.0 / run.per_sec() * 100.0
        } else {
            0.0
        };
        format!("{} (±{spread:.0} %)", count(run.per_sec()))
    }

    fn latency(&self) -> String {
        percentiles(&self.run().latency, P50_P99)
    }

    fn problems(&self) -> Option<String> {
        self.run().problems(self.label)
    }
}

/// Runs every contender `settings.rounds` times, reversing the order every other round,
/// after a short warm-up each.
async fn alternate(contenders: &mut [Contender], mode: Mode, settings: &Settings) {
    for c in contenders.iter() {
        load::run(c.op.clone(), mode, settings.round / 4).await;
    }
    for round in 0..settings.rounds {
        let mut order: Vec<usize> = (0..contenders.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let c = &mut contenders[i];
            let run = load::run(c.op.clone(), mode, settings.round).await;
            c.rounds.push(run.per_sec());
            match &mut c.total {
                Some(total) => total.merge(&run),
                None => c.total = Some(run),
            }
        }
    }
}

/// Point reads at each concurrency: tagcfg HTTP `GET` against the etcd gateway's range;
/// tagcfg gRPC `Get` against etcd `Range` (serializable and linearizable); and each
/// server's floor (an HTTP answer without data, a gRPC health check). One connection per
/// client on both sides.
pub async fn point_reads(
    tagcfg: &Tagcfg,
    etcd: &Etcd,
    http: &reqwest::Client,
    settings: &Settings,
) -> Result<Vec<Table>, BenchError> {
    let token = tagcfg.token(TENANT)?;
    let url = tagcfg.url(POINT_KEY);
    tagcfg::put(http, &url, &token, POINT_VALUE.into()).await?;
    let key = etcd_key(TENANT, POINT_KEY);
    etcd.seed(&[(key.clone(), POINT_VALUE.into())], 1).await?;

    let mut main = Table {
        title: "Point reads".into(),
        intro: vec![
            "One key of about 80 bytes, read back to back by N clients (closed loop), one connection per \
             client on both sides. tagcfg: an authenticated `GET /v1/config/{key}` (token check, tenant \
             resolution through its layers) and gRPC `Get`; etcd: `Range` through its HTTP gateway and \
             gRPC. Rate: mean over the rounds (± half their spread); latency p50 / p99 in ms."
                .into(),
        ],
        ..Table::with_header(&[
            "what",
            "clients",
            "tagcfg req/s",
            "tagcfg p50 / p99",
            "etcd req/s",
            "etcd p50 / p99",
            "tagcfg ÷ etcd",
        ])
    };
    let mut floor = Table {
        title: "Reads against each server's own floor".into(),
        intro: vec![
            "The same run: each read's rate as a share of an answer that touches no data on the same \
             server (tagcfg `/healthz`, etcd `/version`; `grpc.health.v1` Check on both)."
                .into(),
        ],
        ..Table::with_header(&[
            "clients",
            "tagcfg GET ÷ /healthz",
            "tagcfg Get ÷ health",
            "etcd gateway range ÷ /version",
            "etcd Range (serializable) ÷ health",
        ])
    };
    for &clients in &settings.levels {
        let tagcfg_channels = probe::channels(&tagcfg.grpc_url, clients).await?;
        let etcd_channels = probe::channels(&etcd.endpoint, clients).await?;
        let kv = etcd.kv_clients(clients).await?;
        let mut c = [
            Contender::new(
                "tagcfg GET",
                Arc::new(HttpRead {
                    http: http.clone(),
                    url: url.clone(),
                    token: token.clone(),
                }),
            ),
            Contender::new(
                "etcd gateway range",
                Arc::new(GatewayRange::new(http.clone(), etcd, &key, true)),
            ),
            Contender::new(
                "tagcfg /healthz",
                Arc::new(HttpGet {
                    http: http.clone(),
                    url: format!("{}/healthz", tagcfg.http_url),
                }),
            ),
            Contender::new(
                "etcd /version",
                Arc::new(HttpGet {
                    http: http.clone(),
                    url: etcd.url("/version"),
                }),
            ),
            Contender::new(
                "tagcfg Get",
                Arc::new(GrpcRead::new(&tagcfg_channels, POINT_KEY, &token)),
            ),
            Contender::new(
                "etcd Range serializable",
                Arc::new(GrpcRange {
                    clients: kv.clone(),
                    key: key.clone(),
                    serializable: true,
                }),
            ),
            Contender::new(
                "etcd Range linearizable",
                Arc::new(GrpcRange {
                    clients: kv,
                    key: key.clone(),
                    serializable: false,
                }),
            ),
            Contender::new("tagcfg gRPC health", Arc::new(GrpcHealth::new(&tagcfg_channels))),
            Contender::new("etcd gRPC health", Arc::new(GrpcHealth::new(&etcd_channels))),
        ];
        alternate(&mut c, Mode::Closed { concurrency: clients }, settings).await;
        let pairs = [
            ("HTTP read: GET vs gateway range (serializable)", 0, 1),
            ("gRPC read: Get vs Range serializable", 4, 5),
            ("gRPC read: Get vs Range linearizable", 4, 6),
            ("floor, HTTP: /healthz vs /version", 2, 3),
            ("floor, gRPC: health Check", 7, 8),
        ];
        for (what, t, e) in pairs {
            main.rows.push(vec![
                what.into(),
                clients.to_string(),
                c[t].rate(),
                c[t].latency(),
                c[e].rate(),
                c[e].latency(),
                ratio(c[t].run().per_sec(), c[e].run().per_sec()),
            ]);
        }
        let share =
            |a: usize, b: usize| format!("{:.0} %", c[a].run().per_sec() / c[b].run().per_sec().max(1e-9) * 100.0);
        floor.rows.push(vec![
            clients.to_string(),
            share(0, 2),
            share(4, 7),
            share(1, 3),
            share(5, 8),
        ]);
        main.notes.extend(c.iter().filter_map(Contender::problems));
    }
    Ok(vec![main, floor])
}

/// Where a scenario's watchers report: the instant each saw the next change. Watchers
/// record under a lock and only the one that completes a write's set wakes the waiting
/// scenario, so the bench's own cost per arrival stays small beside the client's decoding
/// (a channel send and a wake-up per arrival were about a tenth of the fan-out's client CPU).
struct Arrivals {
    /// Watchers per write.
    watchers: usize,
    seen: std::sync::Mutex<ArrivalLog>,
    complete: Notify,
}

#[derive(Default)]
struct ArrivalLog {
    at: Vec<Instant>,
    ended: usize,
}

impl Arrivals {
    fn new(watchers: usize) -> Arc<Self> {
        Arc::new(Arrivals {
            watchers,
            seen: std::sync::Mutex::new(ArrivalLog::default()),
            complete: Notify::new(),
        })
    }

    fn log(&self) -> std::sync::MutexGuard<'_, ArrivalLog> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A watcher has the change now.
    fn record(&self) {
        let now = Instant::now();
        let mut log = self.log();
        log.at.push(now);
        if log.at.len() >= self.watchers {
            self.complete.notify_one();
        }
    }

    /// A watcher's stream ended: the scenario fails.
    fn ended(&self) {
        self.log().ended += 1;
        self.complete.notify_one();
    }

    /// Waits until every watcher has one more change and returns the instants.
    async fn wait(&self) -> Result<Vec<Instant>, BenchError> {
        loop {
            {
                let mut log = self.log();
                if log.ended > 0 {
                    return Err(BenchError::Unexpected(format!("{} watchers' streams ended", log.ended)));
                }
                if log.at.len() >= self.watchers {
                    let rest = log.at.split_off(self.watchers);
                    return Ok(std::mem::replace(&mut log.at, rest));
                }
            }
            if tokio::time::timeout(Duration::from_secs(30), self.complete.notified())
                .await
                .is_err()
            {
                return Err(BenchError::Timeout(format!(
                    "{} of {} watchers notified after 30 s",
                    self.log().at.len(),
                    self.watchers
                )));
            }
        }
    }
}

/// How many of `n` watchers connection `c` of `connections` (at most `n`) opens: as even a
/// split as there is.
fn watchers_on(n: usize, connections: usize, c: usize) -> usize {
    n / connections + usize::from(c < n % connections)
}

/// Opens `n` tagcfg watchers on [`WATCH_PREFIX`] over `connections` connections; each
/// reports every batch of updates it receives.
async fn tagcfg_watchers(
    tagcfg: &Tagcfg,
    token: &str,
    n: usize,
    connections: usize,
    tasks: &mut JoinSet<()>,
) -> Result<Arc<Arrivals>, BenchError> {
    let channels = probe::channels(&tagcfg.grpc_url, connections.min(n)).await?;
    let arrivals = Arrivals::new(n);
    // Opened from one task per connection, as that many clients would.
    let mut opening = JoinSet::new();
    for (c, channel) in channels.into_iter().enumerate() {
        let count = watchers_on(n, connections.min(n), c);
        let token = token.to_owned();
        opening.spawn(async move {
            let mut streams = Vec::with_capacity(count);
            for _ in 0..count {
                streams.push(tagcfg::watcher(channel.clone(), &token, WATCH_PREFIX).await?);
            }
            Ok::<_, BenchError>(streams)
        });
    }
    while let Some(opened) = opening.join_next().await {
        let streams = opened.map_err(|e| BenchError::Client(e.to_string()))??;
        let updates = streams.into_iter().map(|stream| {
            stream::unfold(stream, |mut stream| async move {
                Some((tagcfg::next_update(&mut stream).await, stream))
            })
        });
        report_arrivals(updates, (), arrivals.clone(), tasks);
    }
    Ok(arrivals)
}

/// Opens `n` etcd watches of `key`, each on its own stream, over `connections` clients.
async fn etcd_watchers(
    etcd: &Etcd,
    key: &str,
    n: usize,
    connections: usize,
    tasks: &mut JoinSet<()>,
) -> Result<Arc<Arrivals>, BenchError> {
    let arrivals = Arrivals::new(n);
    let mut opening = JoinSet::new();
    for c in 0..connections.min(n) {
        let count = watchers_on(n, connections.min(n), c);
        let mut client = etcd.client().await?;
        let key = key.to_owned();
        opening.spawn(async move {
            let mut streams = Vec::with_capacity(count);
            for _ in 0..count {
                streams.push(etcd::watcher(&mut client, &key).await?);
            }
            // The client (its connection) lives as long as the streams.
            Ok::<_, BenchError>((streams, client))
        });
    }
    while let Some(opened) = opening.join_next().await {
        let (streams, client) = opened.map_err(|e| BenchError::Client(e.to_string()))??;
        let events = streams.into_iter().map(|stream| {
            stream::unfold(stream, |mut stream| async move {
                Some((etcd::next_event(&mut stream).await, stream))
            })
        });
        // The client (its connection) lives as long as the streams.
        report_arrivals(events, client, arrivals.clone(), tasks);
    }
    Ok(arrivals)
}

/// Records every arrival on the watchers of one connection, from one task (as a client
/// holding many watches would; a change wakes it once per burst rather than each watcher's
/// own task), alike for both systems. The first watcher whose stream fails ends the scenario.
fn report_arrivals<W>(
    watchers: impl Iterator<Item = W>,
    keep_alive: impl Send + 'static,
    arrivals: Arc<Arrivals>,
    tasks: &mut JoinSet<()>,
) where
    W: Stream<Item = Result<(), BenchError>> + Send + 'static,
{
    let mut all = stream::select_all(watchers.map(Box::pin));
    tasks.spawn(async move {
        let _keep_alive = keep_alive;
        while let Some(arrival) = all.next().await {
            if arrival.is_err() {
                break;
            }
            arrivals.record();
        }
        arrivals.ended();
    });
}

/// Writes one value through each system.
struct Writers {
    http: reqwest::Client,
    url: String,
    token: String,
    kv: KvClient,
    etcd_key: String,
    n: u64,
}

impl Writers {
    async fn new(tagcfg: &Tagcfg, etcd: &Etcd, http: &reqwest::Client) -> Result<Writers, BenchError> {
        Ok(Writers {
            http: http.clone(),
            url: tagcfg.url(WATCH_KEY),
            token: tagcfg.token(TENANT)?,
            kv: etcd.client().await?.kv_client(),
            etcd_key: etcd_key(TENANT, WATCH_KEY),
            n: 0,
        })
    }

    fn value(&mut self) -> String {
        self.n += 1;
        format!("{{\"n\":{},\"enabled\":true}}", self.n)
    }

    async fn tagcfg(&mut self) -> Result<(), BenchError> {
        let value = self.value();
        tagcfg::put(&self.http, &self.url, &self.token, value).await.map(drop)
    }

    async fn etcd(&mut self) -> Result<(), BenchError> {
        let value = self.value();
        self.kv.put(self.etcd_key.as_str(), value, None).await?;
        Ok(())
    }

    /// One write through `side`: when it was sent, and the instants its `n` watchers (in
    /// `watchers[side]`) had it.
    async fn write_and_wait(
        &mut self,
        side: Side,
        watchers: &[Arc<Arrivals>; 2],
    ) -> Result<(Instant, Vec<Instant>), BenchError> {
        let sent = Instant::now();
        match side {
            Side::Tagcfg => self.tagcfg().await?,
            Side::Etcd => self.etcd().await?,
        }
        Ok((sent, watchers[side as usize].wait().await?))
    }
}

/// One of the two systems; its index in the scenarios' pairs.
#[derive(Debug, Clone, Copy)]
enum Side {
    Tagcfg = 0,
    Etcd = 1,
}

/// The order of a round: tagcfg first in even rounds, etcd first in odd ones.
fn sides(round: usize) -> [Side; 2] {
    if round.is_multiple_of(2) {
        [Side::Tagcfg, Side::Etcd]
    } else {
        [Side::Etcd, Side::Tagcfg]
    }
}

/// Write → every watcher notified, per watcher, with 1 and 100 watchers: tagcfg HTTP `PUT`
/// (token check, a redb commit with fsync) → gRPC `Watch`; etcd `Put` (raft, a WAL fsync) →
/// `Watch`. Writes one at a time, in blocks alternating between the systems.
pub async fn watch_latency(
    tagcfg: &Tagcfg,
    etcd: &Etcd,
    http: &reqwest::Client,
    settings: &Settings,
) -> Result<Table, BenchError> {
    let mut table = Table {
        title: "Write → watcher notified".into(),
        intro: vec![format!(
            "{} writes of one key, one at a time; each watcher's latency from just before the write is \
             sent until it has the change (so with 100 watchers a write gives 100 samples). Both figures \
             include a durable commit: tagcfg's redb commit fsyncs before the write is answered and \
             pushed; etcd fsyncs its WAL before the entry is applied and watchers hear of it. Watchers \
             share {} connection(s) per side. Latency in ms.",
            settings.watch_samples,
            settings.fan_out_connections.min(10)
        )],
        ..Table::with_header(&[
            "watchers",
            "tagcfg p50 / p99 / p99.9",
            "etcd p50 / p99 / p99.9",
            "p99 tagcfg ÷ etcd",
        ])
    };
    let token = tagcfg.token(TENANT)?;
    for &n in &settings.watchers {
        let mut tasks = JoinSet::new();
        let connections = n.min(10);
        let watchers = [
            tagcfg_watchers(tagcfg, &token, n, connections, &mut tasks).await?,
            etcd_watchers(etcd, &etcd_key(TENANT, WATCH_KEY), n, connections, &mut tasks).await?,
        ];
        let mut writers = Writers::new(tagcfg, etcd, http).await?;
        let mut latencies = [histogram(), histogram()];
        let blocks = settings.rounds.max(1) * 2;
        let per_block = settings.watch_samples.div_ceil(blocks);
        // Warm-up writes on both, not recorded.
        for _ in 0..10 {
            for side in sides(0) {
                writers.write_and_wait(side, &watchers).await?;
            }
        }
        for block in 0..blocks {
            for side in sides(block) {
                for _ in 0..per_block {
                    let (sent, seen) = writers.write_and_wait(side, &watchers).await?;
                    for at in seen {
                        latencies[side as usize].saturating_record(at.duration_since(sent).as_nanos() as u64);
                    }
                }
            }
        }
        let [t, e] = latencies;
        tasks.abort_all();
        table.rows.push(vec![
            n.to_string(),
            percentiles(&t, P50_P99_P999),
            percentiles(&e, P50_P99_P999),
            ratio(ms_at(&t, 0.99), ms_at(&e, 0.99)),
        ]);
    }
    Ok(table)
}

/// One write fanned out to N watchers of one key: the time until the last has it (the write
/// included), over `fan_out_repeats` writes; and the server's resident memory per open
/// stream (RSS after opening the streams minus before, divided by N).
pub async fn fan_out(
    tagcfg: &Tagcfg,
    etcd: &Etcd,
    http: &reqwest::Client,
    settings: &Settings,
) -> Result<Table, BenchError> {
    let mut table = Table {
        title: "Fan-out: one write to N watchers".into(),
        intro: vec![format!(
            "N watch streams of one key over {} connections per side; one write, then the time until \
             the last watcher has it (write included): median and worst of {} writes, alternating the \
             systems. Memory: the server's RSS after opening the streams minus before, per stream.",
            settings.fan_out_connections, settings.fan_out_repeats
        )],
        ..Table::with_header(&[
            "watchers",
            "tagcfg median / worst ms",
            "etcd median / worst ms",
            "tagcfg ÷ etcd (median)",
            "tagcfg KiB per stream",
            "etcd KiB per stream",
        ])
    };
    let token = tagcfg.token(TENANT)?;
    for &n in &settings.fan_out {
        let mut tasks = JoinSet::new();
        let settle = Duration::from_millis(500);
        tokio::time::sleep(settle).await;
        let before = tagcfg.server.rss_kib();
        let tagcfg_rx = tagcfg_watchers(tagcfg, &token, n, settings.fan_out_connections, &mut tasks).await?;
        tokio::time::sleep(settle).await;
        let tagcfg_kib = tagcfg.server.rss_kib().saturating_sub(before) as f64 / n as f64;
        let before = etcd.server.rss_kib();
        let watched = etcd_key(TENANT, WATCH_KEY);
        let etcd_rx = etcd_watchers(etcd, &watched, n, settings.fan_out_connections, &mut tasks).await?;
        tokio::time::sleep(settle).await;
        let etcd_kib = etcd.server.rss_kib().saturating_sub(before) as f64 / n as f64;
        let watchers = [tagcfg_rx, etcd_rx];
        let mut writers = Writers::new(tagcfg, etcd, http).await?;
        let mut times = [Vec::new(), Vec::new()];
        for repeat in 0..settings.fan_out_repeats {
            for side in sides(repeat) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let (sent, seen) = writers.write_and_wait(side, &watchers).await?;
                let last = seen.iter().max().copied().unwrap_or(sent);
                times[side as usize].push(last.duration_since(sent).as_secs_f64() * 1e3);
            }
        }
        let [mut t, mut e] = times;
        tasks.abort_all();
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            (v[v.len() / 2], v[v.len() - 1])
        };
        let ((tm, tw), (em, ew)) = (median(&mut t), median(&mut e));
        table.rows.push(vec![
            count(n as f64),
            format!("{} / {}", ms(tm), ms(tw)),
            format!("{} / {}", ms(em), ms(ew)),
            ratio(tm, em),
            format!("{tagcfg_kib:.2}"),
            format!("{etcd_kib:.2}"),
        ]);
        // Let both servers drop the closed streams before the next size.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(table)
}

/// The mixed workload's key space: `tenants × keys_per_tenant` keys, a Zipf-distributed
/// popularity scattered over tenants (rank r is key `r × 7919 mod total`, so the hottest keys
/// are not all one tenant's).
struct KeySpace {
    tenants: usize,
    keys_per_tenant: usize,
    zipf: Zipf<f64>,
    write_share: f64,
    rngs: Vec<Mutex<SmallRng>>,
}

impl KeySpace {
    fn new(settings: &Settings) -> Result<KeySpace, BenchError> {
        let total = settings.tenants * settings.keys_per_tenant;
        let zipf = Zipf::new(total as f64, settings.zipf_exponent)
            .map_err(|e| BenchError::Unexpected(format!("zipf: {e}")))?;
        Ok(KeySpace {
            tenants: settings.tenants,
            keys_per_tenant: settings.keys_per_tenant,
            zipf,
            write_share: settings.write_share,
            rngs: (0..settings.mixed_clients)
                .map(|w| Mutex::new(SmallRng::seed_from_u64(w as u64 + 1)))
                .collect(),
        })
    }

    /// The next operation of client `worker`: (tenant, key, write?).
    fn next(&self, worker: usize) -> (usize, usize, bool) {
        let total = self.tenants * self.keys_per_tenant;
        let mut rng = self.rngs[worker % self.rngs.len()]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let rank = (self.zipf.sample(&mut *rng) as usize).clamp(1, total) - 1;
        let write = rng.random_bool(self.write_share);
        let index = rank * 7919 % total;
        (index / self.keys_per_tenant, index % self.keys_per_tenant, write)
    }

    fn tenant(t: usize) -> String {
        format!("t{t:04}")
    }

    fn key(k: usize) -> String {
        format!("tenant_config_mixed/k{k:02}")
    }

    fn value(t: usize, k: usize, n: u64) -> String {
        format!(
            "{{\"tenant\":\"{}\",\"key\":{k},\"n\":{n},\"note\":\"{}\"}}",
            Self::tenant(t),
            "m".repeat(48)
        )
    }
}

/// Reads and writes counted by the mixed operations, and the latency of each kind.
struct Mix {
    reads: AtomicU64,
    writes: AtomicU64,
    latency: Mutex<[Histogram<u64>; 2]>,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            reads: AtomicU64::default(),
            writes: AtomicU64::default(),
            latency: Mutex::new([load::histogram(), load::histogram()]),
        }
    }
}

impl Mix {
    fn count(&self, write: bool) -> u64 {
        if write { &self.writes } else { &self.reads }.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs one read or write, recording its latency under its kind when it was answered.
    async fn timed(
        &self,
        write: bool,
        call: impl std::future::Future<Output = Result<Outcome, BenchError>>,
    ) -> Result<Outcome, BenchError> {
        let started = Instant::now();
        let outcome = call.await;
        if let Ok(Outcome::Done) = outcome {
            let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let mut latency = self.latency.lock().unwrap_or_else(|p| p.into_inner());
            latency[usize::from(write)].saturating_record(nanos);
        }
        outcome
    }

    /// The reads' and the writes' latencies since the last call (`[reads, writes]`).
    fn take_latency(&self) -> [Histogram<u64>; 2] {
        let mut latency = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *latency, [load::histogram(), load::histogram()])
    }
}

/// tagcfg's side: HTTP `GET` and `PUT` with each tenant's own token.
struct TagcfgMix {
    keys: KeySpace,
    http: reqwest::Client,
    base: String,
    tokens: Vec<String>,
    mix: Mix,
}

#[async_trait]
impl Op for TagcfgMix {
    async fn call(&self, worker: usize) -> Result<Outcome, BenchError> {
        let (t, k, write) = self.keys.next(worker);
        let n = self.mix.count(write);
        let url = format!("{}/v1/config/{}", self.base, KeySpace::key(k));
        let request = if write {
            self.http.put(url).body(KeySpace::value(t, k, n))
        } else {
            self.http.get(url)
        };
        let request = request.bearer_auth(&self.tokens[t]);
        self.mix
            .timed(write, async { probe::expect_ok(request.send().await?).await })
            .await
    }
}

/// etcd's side: gRPC `Range` (serializable) and `Put`.
struct EtcdMix {
    keys: KeySpace,
    clients: Vec<KvClient>,
    mix: Mix,
}

#[async_trait]
impl Op for EtcdMix {
    async fn call(&self, worker: usize) -> Result<Outcome, BenchError> {
        let (t, k, write) = self.keys.next(worker);
        let n = self.mix.count(write);
        let key = etcd_key(&KeySpace::tenant(t), &KeySpace::key(k));
        let mut kv = self.clients[worker % self.clients.len()].clone();
        self.mix
            .timed(write, async {
                if write {
                    kv.put(key, KeySpace::value(t, k, n), None).await?;
                } else {
                    let answer = kv
                        .get(key, Some(etcd_client::GetOptions::new().with_serializable()))
                        .await?;
                    if answer.kvs().len() != 1 {
                        return Err(BenchError::Unexpected("a seeded key is missing".into()));
                    }
                }
                Ok(Outcome::Done)
            })
            .await
    }
}

/// Many tenants, a skewed key popularity, 95 % reads and 5 % writes from 64 clients: the
/// shape of a configuration service's day. RSS at the end, with every tenant loaded.
pub async fn mixed(
    tagcfg: &Tagcfg,
    etcd: &Etcd,
    http: &reqwest::Client,
    settings: &Settings,
) -> Result<Table, BenchError> {
    let tokens = (0..settings.tenants)
        .map(|t| tagcfg.token(&KeySpace::tenant(t)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut etcd_values = Vec::new();
    for (t, token) in tokens.iter().enumerate() {
        let values: Vec<(String, String)> = (0..settings.keys_per_tenant)
            .map(|k| (KeySpace::key(k), KeySpace::value(t, k, 0)))
            .collect();
        tagcfg.seed(http, token, &values).await?;
        etcd_values.extend(values.into_iter().map(|(k, v)| (etcd_key(&KeySpace::tenant(t), &k), v)));
    }
    etcd.seed(&etcd_values, settings.keys_per_tenant.min(128)).await?;

    let clients = settings.mixed_clients;
    let tagcfg_mix = Arc::new(TagcfgMix {
        keys: KeySpace::new(settings)?,
        http: http.clone(),
        base: tagcfg.http_url.clone(),
        tokens,
        mix: Mix::default(),
    });
    let etcd_mix = Arc::new(EtcdMix {
        keys: KeySpace::new(settings)?,
        clients: etcd.kv_clients(clients).await?,
        mix: Mix::default(),
    });
    let mut c = [
        Contender::new("tagcfg mixed", tagcfg_mix.clone()),
        Contender::new("etcd mixed", etcd_mix.clone()),
    ];
    let per_round = Settings {
        round: settings.mixed / settings.rounds.max(1) as u32,
        ..settings.clone()
    };
    alternate(&mut c, Mode::Closed { concurrency: clients }, &per_round).await;
    let rss = [tagcfg.server.rss_kib(), etcd.server.rss_kib()];
    let by_kind = [tagcfg_mix.mix.take_latency(), etcd_mix.mix.take_latency()];
    // The same offered load for both, below what either serves: latency without queueing
    // behind a saturated server (a closed loop at saturation has mean latency = clients ÷
    // throughput, whatever the server does).
    let steady = Mode::Open {
        rate: settings.mixed_rate,
        concurrency: clients,
    };
    let mut at_rate = Vec::new();
    for contender in &c {
        at_rate.push(load::run(contender.op.clone(), steady, per_round.round).await);
    }
    let mut table = Table {
        title: "Mixed workload".into(),
        intro: vec![format!(
            "{} tenants × {} keys, {:.0} % reads / {:.0} % writes, Zipf-distributed keys (exponent {}), \
             {clients} clients, {:.0} s per system in {} alternating rounds (closed loop: as fast as each \
             answers); then {:.0} s each at the same offered load of {} ops/s (open loop, latency from when \
             each request was due). tagcfg: HTTP `GET`/`PUT` with each tenant's own token; etcd: gRPC \
             `Range` (serializable) / `Put`, keys `/<tenant>/<key>`. Reads and writes are also timed \
             apart in the closed loop. RSS after the closed loop, every tenant's keys loaded and read.",
            settings.tenants,
            settings.keys_per_tenant,
            (1.0 - settings.write_share) * 100.0,
            settings.write_share * 100.0,
            settings.zipf_exponent,
            settings.mixed.as_secs_f64(),
            settings.rounds,
            per_round.round.as_secs_f64(),
            count(settings.mixed_rate),
        )],
        ..Table::with_header(&[
            "system",
            "ops/s",
            "p50 / p99 / p99.9 ms",
            "reads p50 / p99 ms",
            "writes p50 / p99 ms",
            "server RSS at the end",
        ])
    };
    for (i, system) in ["tagcfg", "etcd"].into_iter().enumerate() {
        let run = c[i].run();
        table.rows.push(vec![
            system.into(),
            c[i].rate(),
            percentiles(&run.latency, P50_P99_P999),
            percentiles(&by_kind[i][0], P50_P99),
            percentiles(&by_kind[i][1], P50_P99),
            format!("{:.1} MiB", rss[i] as f64 / 1024.0),
        ]);
    }
    for (system, run) in ["tagcfg", "etcd"].into_iter().zip(&at_rate) {
        table.rows.push(vec![
            format!("{system} at {} ops/s offered", count(settings.mixed_rate)),
            count(run.per_sec()),
            percentiles(&run.latency, P50_P99_P999),
            "–".into(),
            "–".into(),
            "–".into(),
        ]);
        table
            .notes
            .extend(run.problems(&format!("{system} at the offered load")));
    }
    table.notes.extend(c.iter().filter_map(Contender::problems));
    Ok(table)
}

/// A victim tenant reading at a steady rate (open loop), alone and then beside a neighbour
/// flooding with many clients: tagcfg with its default per-tenant limits (the neighbour is
/// refused past its rate), etcd as it comes (it has no per-tenant limit). gRPC reads on
/// both sides.
pub async fn noisy_neighbour(tagcfg: &Tagcfg, etcd: &Etcd, settings: &Settings) -> Result<Table, BenchError> {
    let (victim, noisy) = ("globex", "acme");
    let http = crate::http_client()?;
    let mut ops: Vec<(Arc<dyn Op>, Arc<dyn Op>)> = Vec::new();
    {
        let (victim_token, noisy_token) = (tagcfg.token(victim)?, tagcfg.token(noisy)?);
        tagcfg::put(&http, &tagcfg.url(POINT_KEY), &victim_token, POINT_VALUE.into()).await?;
        tagcfg::put(&http, &tagcfg.url(POINT_KEY), &noisy_token, POINT_VALUE.into()).await?;
        let victim_channels = probe::channels(&tagcfg.grpc_url, 4).await?;
        let noisy_channels = probe::channels(&tagcfg.grpc_url, settings.flood_clients).await?;
        ops.push((
            Arc::new(GrpcRead::new(&victim_channels, POINT_KEY, &victim_token)),
            Arc::new(GrpcRead::new(&noisy_channels, POINT_KEY, &noisy_token)),
        ));
    }
    {
        let (victim_key, noisy_key) = (etcd_key(victim, POINT_KEY), etcd_key(noisy, POINT_KEY));
        etcd.seed(
            &[
                (victim_key.clone(), POINT_VALUE.into()),
                (noisy_key.clone(), POINT_VALUE.into()),
            ],
            2,
        )
        .await?;
        ops.push((
            Arc::new(GrpcRange {
                clients: etcd.kv_clients(4).await?,
                key: victim_key,
                serializable: true,
            }),
            Arc::new(GrpcRange {
                clients: etcd.kv_clients(settings.flood_clients).await?,
                key: noisy_key,
                serializable: true,
            }),
        ));
    }
    let mut table = Table {
        title: "Noisy neighbour".into(),
        intro: vec![format!(
            "Tenant globex reads one key at a steady {:.0} req/s (open loop, 4 clients: latency counted \
             from when each request was due) for {:.1} s alone, then while tenant acme floods with {} \
             clients back to back. gRPC reads on both sides. tagcfg runs with its default per-tenant \
             limits (1,000 reads/s, burst 2,000); etcd has no per-tenant limit.",
            settings.victim_rate,
            settings.noisy.as_secs_f64(),
            settings.flood_clients
        )],
        ..Table::with_header(&[
            "system",
            "globex alone p50 / p99 ms",
            "globex beside the flood p50 / p99 ms",
            "p99 ×",
            "globex refused",
            "acme answered/s",
            "acme refused/s",
        ])
    };
    let steady = Mode::Open {
        rate: settings.victim_rate,
        concurrency: 4,
    };
    for (system, (victim_op, noisy_op)) in ["tagcfg", "etcd"].into_iter().zip(ops) {
        let alone = load::run(victim_op.clone(), steady, settings.noisy).await;
        let flood = tokio::spawn(load::run(
            noisy_op,
            Mode::Closed {
                concurrency: settings.flood_clients,
            },
            settings.noisy,
        ));
        let beside = load::run(victim_op, steady, settings.noisy).await;
        let flood = flood.await.map_err(|e| BenchError::Client(e.to_string()))?;
        let secs = flood.elapsed.as_secs_f64().max(1e-9);
        table.rows.push(vec![
            system.into(),
            percentiles(&alone.latency, P50_P99),
            percentiles(&beside.latency, P50_P99),
            ratio(beside.ms(0.99), alone.ms(0.99)),
            (alone.refused + beside.refused).to_string(),
            count(flood.done as f64 / secs),
            count(flood.refused as f64 / secs),
        ]);
        for (what, run) in [("globex alone", &alone), ("globex beside", &beside), ("acme", &flood)] {
            table.notes.extend(run.problems(&format!("{system} {what}")));
        }
    }
    Ok(table)
}
