//! # bench: one load generator for tagcfg and etcd
//!
//! Every figure of `make bench-compare` comes from this crate, driving both systems the same
//! way from the same process: no number comes from a tool only one side gets.
//!
//! - [`load`]: closed loop (fixed concurrency) and open loop (fixed rate) over any [`load::Op`],
//!   latencies in an HdrHistogram;
//! - [`probe`]: the operations both systems answer alike — an HTTP GET of a fixed URL and a
//!   `grpc.health.v1` check — the floor each server's real reads are measured against;
//! - [`tagcfg`] and [`etcd`]: each system started on 127.0.0.1 with its data in a temporary
//!   directory, and its reads, writes and watchers (tagcfg: HTTP and gRPC `Get`/`Watch`;
//!   etcd: gRPC `Range`/`Put`/`Watch` through the `etcd-client` crate, and its HTTP gateway);
//! - [`scenarios`]: the comparisons (point reads, watch latency, fan-out, a mixed workload, a
//!   noisy neighbour), run in alternating rounds so the machine's drift hits both alike;
//! - [`compare`]: fresh servers for each group of scenarios, every scenario, the report;
//! - [`report`]: the Markdown tables written into `docs/BENCHMARKS.md`;
//! - [`process`]: child servers, free ports, resident memory from `/proc`.

pub mod compare;
pub mod etcd;
pub mod load;
pub mod probe;
pub mod process;
pub mod report;
pub mod scenarios;
pub mod tagcfg;

/// The HTTP client of every scenario (keep-alive, `TCP_NODELAY`, a 30 s timeout): one per
/// process, shared by the clients of a run as a browser's tabs share one.
pub fn http_client() -> Result<reqwest::Client, BenchError> {
    Ok(tenant_auth::http_client(std::time::Duration::from_secs(30))?)
}

/// Everything that can go wrong while measuring.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot start {what}: {detail}")]
    Start { what: String, detail: String },
    #[error("transport error: {0}")]
    Transport(String),
    #[error("unexpected answer: {0}")]
    Unexpected(String),
    #[error("a client task failed: {0}")]
    Client(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("cannot write the report {path}: {source}")]
    Report { path: String, source: std::io::Error },
}

impl From<reqwest::Error> for BenchError {
    fn from(e: reqwest::Error) -> Self {
        BenchError::Transport(e.to_string())
    }
}

impl From<tonic::Status> for BenchError {
    fn from(s: tonic::Status) -> Self {
        BenchError::Unexpected(format!("gRPC {:?}: {}", s.code(), s.message()))
    }
}

impl From<etcd_client::Error> for BenchError {
    fn from(e: etcd_client::Error) -> Self {
        BenchError::Unexpected(format!("etcd: {e}"))
    }
}

impl From<client::ClientError> for BenchError {
    fn from(e: client::ClientError) -> Self {
        BenchError::Unexpected(e.to_string())
    }
}
