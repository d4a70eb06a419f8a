//! `tagcfg-bench`: the load generator behind `make bench-compare` (see the crate docs).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bench::compare::{self, Comparison};
use bench::load::{self, Mode, Op};
use bench::scenarios::Settings;
use bench::{etcd, probe, report, tagcfg, BenchError};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "tagcfg-bench", about = "Drive tagcfg and etcd alike and compare them")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start both servers and run every scenario; write the tables into a Markdown file.
    Compare {
        /// The `tagcfg` binary to serve (a release build).
        #[arg(long)]
        tagcfg: PathBuf,
        /// The `etcd` binary.
        #[arg(long)]
        etcd: PathBuf,
        /// The file whose `bench-compare` section is replaced (created if missing).
        #[arg(long, default_value = "docs/BENCHMARKS.md")]
        out: PathBuf,
        /// Every scenario briefly: checks the comparison runs; the figures mean nothing.
        #[arg(long)]
        quick: bool,
        /// Seconds of the mixed workload on each system.
        #[arg(long, env = "BENCH_MIXED_SECS")]
        mixed_secs: Option<u64>,
        /// How the run was started, for the report.
        #[arg(long, default_value = "make bench-compare")]
        command: String,
        /// Only these groups of scenarios (comma-separated); all by default.
        #[arg(long, value_enum, value_delimiter = ',')]
        only: Vec<compare::Group>,
    },
    /// Load one operation against a running server and print its rate and latency
    /// (the tool to profile a server with).
    Load {
        #[arg(long, value_enum)]
        target: Target,
        /// tagcfg's HTTP URL or etcd's client URL.
        #[arg(long)]
        url: String,
        /// tagcfg's gRPC URL (`tagcfg-get`).
        #[arg(long)]
        grpc_url: Option<String>,
        /// tagcfg's data directory, for its dev secret (tagcfg targets).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Requests per second (open loop); without it, a closed loop.
        #[arg(long)]
        rate: Option<f64>,
        #[arg(long, default_value_t = 10)]
        secs: u64,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Target {
    /// tagcfg `GET /v1/config/{key}`.
    TagcfgHttp,
    /// tagcfg gRPC `Get`.
    TagcfgGrpc,
    /// tagcfg `/healthz`.
    TagcfgHealthz,
    /// etcd gRPC `Range`, serializable.
    EtcdRange,
    /// etcd gRPC `Range`, linearizable.
    EtcdRangeLinearizable,
    /// etcd's HTTP gateway range, serializable.
    EtcdGateway,
}

const KEY: &str = "tenant_config_bench/point";
const VALUE: &str = r#"{"enabled":true}"#;

async fn load_op(
    target: Target,
    url: &str,
    grpc_url: Option<&str>,
    data_dir: Option<&std::path::Path>,
    concurrency: usize,
) -> Result<Arc<dyn Op>, BenchError> {
    let http = bench::http_client()?;
    let usage = |what: &str| BenchError::Start {
        what: "the load".into(),
        detail: format!("this target needs {what}"),
    };
    let token = || -> Result<String, BenchError> {
        let dir = data_dir.ok_or_else(|| usage("--data-dir"))?;
        let secret = local_server::dev_secret(dir).map_err(|e| usage(&e.to_string()))?;
        tagcfg::token(&secret, "acme")
    };
    let put_key = |token: String| {
        let (http, url) = (http.clone(), format!("{url}/v1/config/{KEY}"));
        async move { tagcfg::put(&http, &url, &token, VALUE.into()).await }
    };
    let etcd_kv = || async {
        let mut clients = etcd::kv_clients(url, concurrency).await?;
        clients[0].put(format!("/acme/{KEY}"), VALUE, None).await?;
        Ok::<_, BenchError>(clients)
    };
    Ok(match target {
        Target::TagcfgHttp => {
            let token = token()?;
            put_key(token.clone()).await?;
            Arc::new(tagcfg::HttpRead {
                http,
                url: format!("{url}/v1/config/{KEY}"),
                token,
            })
        }
        Target::TagcfgGrpc => {
            let token = token()?;
            put_key(token.clone()).await?;
            let channels = probe::channels(grpc_url.ok_or_else(|| usage("--grpc-url"))?, concurrency).await?;
            Arc::new(tagcfg::GrpcRead::new(&channels, KEY, &token))
        }
        Target::TagcfgHealthz => Arc::new(probe::HttpGet {
            http,
            url: format!("{url}/healthz"),
        }),
        Target::EtcdRange | Target::EtcdRangeLinearizable => Arc::new(etcd::GrpcRange {
            clients: etcd_kv().await?,
            key: format!("/acme/{KEY}"),
            serializable: matches!(target, Target::EtcdRange),
        }),
        Target::EtcdGateway => {
            etcd_kv().await?;
            Arc::new(etcd::GatewayRange::with_url(http, url, &format!("/acme/{KEY}"), true))
        }
    })
}

async fn run(cli: Cli) -> Result<(), BenchError> {
    match cli.command {
        Command::Compare {
            tagcfg,
            etcd,
            out,
            quick,
            mixed_secs,
            command,
            only,
        } => {
            let mut settings = if quick { Settings::quick() } else { Settings::full() };
            if let Some(secs) = mixed_secs {
                settings.mixed = Duration::from_secs(secs);
            }
            let report = compare::run(&Comparison {
                tagcfg_binary: tagcfg,
                etcd_binary: etcd,
                settings,
                command,
                only,
            })
            .await?;
            let markdown = report.markdown();
            println!("{markdown}");
            report::write_into(&out, &markdown)?;
            eprintln!("bench-compare: tables written into {}", out.display());
            Ok(())
        }
        Command::Load {
            target,
            url,
            grpc_url,
            data_dir,
            concurrency,
            rate,
            secs,
        } => {
            let op = load_op(target, &url, grpc_url.as_deref(), data_dir.as_deref(), concurrency).await?;
            let mode = match rate {
                Some(rate) => Mode::Open { rate, concurrency },
                None => Mode::Closed { concurrency },
            };
            let run = load::run(op, mode, Duration::from_secs(secs)).await;
            println!(
                "{} req/s, p50 {} ms, p99 {} ms, p99.9 {} ms, {} refused, {} errors{}",
                report::count(run.per_sec()),
                report::ms(run.ms(0.5)),
                report::ms(run.ms(0.99)),
                report::ms(run.ms(0.999)),
                run.refused,
                run.errors,
                run.first_error.map(|e| format!(" (first: {e})")).unwrap_or_default()
            );
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tagcfg-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tagcfg-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
