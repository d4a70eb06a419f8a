//! `tagcfg-bench compare`: both servers started fresh for each group of scenarios (so one
//! group's streams and keys do not weigh on the next one's memory figures), every scenario
//! run, the report written.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::etcd::Etcd;
use crate::process::version;
use crate::report::{self, Report, Table};
use crate::scenarios::{self, Settings};
use crate::tagcfg::Tagcfg;
use crate::BenchError;

/// What to compare and where the report goes.
pub struct Comparison {
    pub tagcfg_binary: PathBuf,
    pub etcd_binary: PathBuf,
    pub settings: Settings,
    /// How the run was started, for the report.
    pub command: String,
    /// Only these groups of scenarios (all when empty): to profile one, say.
    pub only: Vec<Group>,
}

/// The groups of scenarios, each on a fresh pair of servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Group {
    /// Point reads, their floors, and write → watcher latency.
    Reads,
    FanOut,
    Mixed,
    Noisy,
}

/// tagcfg's environment for the scenarios that measure speed, not limits: no per-tenant
/// rate limit, and room for one tenant's 10,000 watchers.
fn unlimited() -> Vec<(&'static str, String)> {
    let huge = "1000000000".to_owned();
    vec![
        ("TAGCFG_TENANT_READS_PER_SEC", huge.clone()),
        ("TAGCFG_TENANT_READ_BURST", huge.clone()),
        ("TAGCFG_TENANT_WRITES_PER_SEC", huge.clone()),
        ("TAGCFG_TENANT_WRITE_BURST", huge),
        ("TAGCFG_MAX_STREAMS_PER_TENANT", "100000".into()),
    ]
}

/// One fresh pair of servers in `dir`.
async fn pair(
    c: &Comparison,
    dir: &Path,
    name: &str,
    env: &[(&str, String)],
    http: &reqwest::Client,
) -> Result<(Tagcfg, Etcd), BenchError> {
    let tagcfg_dir = dir.join(format!("{name}-tagcfg"));
    let etcd_dir = dir.join(format!("{name}-etcd"));
    for d in [&tagcfg_dir, &etcd_dir] {
        // Both refuse a data directory other users can read (it holds tagcfg's dev secret).
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(d)
            .map_err(|e| BenchError::Start {
                what: d.display().to_string(),
                detail: e.to_string(),
            })?;
    }
    let tagcfg = Tagcfg::start(&c.tagcfg_binary, &tagcfg_dir, env, http).await?;
    let etcd = Etcd::start(&c.etcd_binary, &etcd_dir, http).await?;
    Ok((tagcfg, etcd))
}

fn progress(what: &str) {
    eprintln!("bench-compare: {what}");
}

/// Runs every scenario and returns the report.
pub async fn run(c: &Comparison) -> Result<Report, BenchError> {
    let started = Instant::now();
    let dir = tempfile::tempdir().map_err(|e| BenchError::Start {
        what: "a temporary directory".into(),
        detail: e.to_string(),
    })?;
    let http = crate::http_client()?;
    let s = &c.settings;
    let mut tables: Vec<Table> = Vec::new();
    let wanted = |group: Group| c.only.is_empty() || c.only.contains(&group);
    if wanted(Group::Reads) {
        let (tagcfg, etcd) = pair(c, dir.path(), "reads", &unlimited(), &http).await?;
        progress("point reads");
        tables.extend(scenarios::point_reads(&tagcfg, &etcd, &http, s).await?);
        progress("write -> watcher");
        tables.push(scenarios::watch_latency(&tagcfg, &etcd, &http, s).await?);
    }
    if wanted(Group::FanOut) {
        let (tagcfg, etcd) = pair(c, dir.path(), "fanout", &unlimited(), &http).await?;
        progress("fan-out");
        tables.push(scenarios::fan_out(&tagcfg, &etcd, &http, s).await?);
    }
    if wanted(Group::Mixed) {
        let (tagcfg, etcd) = pair(c, dir.path(), "mixed", &unlimited(), &http).await?;
        progress("mixed workload");
        tables.push(scenarios::mixed(&tagcfg, &etcd, &http, s).await?);
    }
    if wanted(Group::Noisy) {
        let (tagcfg, etcd) = pair(c, dir.path(), "noisy", &[], &http).await?;
        progress("noisy neighbour");
        tables.push(scenarios::noisy_neighbour(&tagcfg, &etcd, s).await?);
    }
    Ok(Report {
        machine: report::machine(),
        versions: vec![
            format!("etcd: {}", version(&c.etcd_binary)),
            format!(
                "tagcfg: the `{}` binary given, {:.2} MiB",
                c.tagcfg_binary
                    .file_name()
                    .map_or_else(|| "tagcfg".into(), |n| n.to_string_lossy()),
                std::fs::metadata(&c.tagcfg_binary).map_or(0, |m| m.len()) as f64 / 1_048_576.0
            ),
        ],
        command: c.command.clone(),
        duration: started.elapsed(),
        tables,
    })
}
