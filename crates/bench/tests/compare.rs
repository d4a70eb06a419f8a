//! `tagcfg-bench compare --quick` against a real etcd and the workspace's own `tagcfg`:
//! every scenario runs against both servers, no call fails, and the report lands between
//! its markers without touching the rest of the file.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

/// The `tagcfg` binary cargo built beside this test (`cargo test --workspace` builds it).
fn tagcfg_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    let binary = dir.join("tagcfg");
    assert!(
        binary.exists(),
        "{} is missing: build it first (`cargo build -p tagcfg`; `make test` builds the workspace)",
        binary.display()
    );
    binary
}

#[test]
fn the_quick_comparison_runs_every_scenario_against_both_servers() {
    // `make test` exports the etcd it unpacked (infra/with-emulators.sh).
    let Some(etcd) = std::env::var_os("TAGCFG_BENCH_ETCD") else {
        assert!(
            std::env::var_os("TAGCFG_EMULATORS").is_none(),
            "TAGCFG_EMULATORS is set but TAGCFG_BENCH_ETCD is not"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED compare: TAGCFG_BENCH_ETCD unset; run `make test`"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = dir.path().join("BENCHMARKS.md");
    std::fs::write(&out, "# Benchmarks\n\nwritten by hand\n").expect("the report file");
    let run = Command::new(env!("CARGO_BIN_EXE_tagcfg-bench"))
        .args(["compare", "--quick", "--command", "test"])
        .arg("--tagcfg")
        .arg(tagcfg_binary())
        .arg("--etcd")
        .arg(&etcd)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("tagcfg-bench runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "tagcfg-bench failed: {stderr}");

    let report = std::fs::read_to_string(&out).expect("the report");
    assert!(report.starts_with("# Benchmarks\n\nwritten by hand\n"), "{report}");
    assert!(report.contains(bench::report::START) && report.contains(bench::report::END));
    for title in [
        "### Point reads",
        "### Reads against each server's own floor",
        "### Write → watcher notified",
        "### Fan-out: one write to N watchers",
        "### Mixed workload",
        "### Noisy neighbour",
    ] {
        assert!(report.contains(title), "{title} missing from:\n{report}");
    }
    assert!(!report.contains("errors (first"), "calls failed:\n{report}");
    // Two concurrency levels × five comparisons, each with a rate on both sides.
    let point_rows: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("| HTTP read") || l.starts_with("| gRPC read") || l.starts_with("| floor"))
        .collect();
    assert_eq!(point_rows.len(), 10, "{report}");
    for row in point_rows {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        for rate in [cells[3], cells[5]] {
            assert!(!rate.starts_with("0 "), "no call answered: {row}");
        }
    }
    // The fan-out's watchers were all notified, with memory measured on both servers.
    let fan_out = report
        .lines()
        .find(|l| l.starts_with("| 50 |"))
        .expect("the fan-out row");
    assert!(!fan_out.contains("| – |"), "{fan_out}");
}
