//! Both servers stop gracefully on SIGTERM (how ECS, systemd and container runtimes stop a
//! process), as on Ctrl-C: they announce it and exit with success.

#![cfg(unix)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Sends SIGTERM, then waits (at most 15 s) for the exit; returns whether it succeeded.
fn terminate(child: &mut Child) -> bool {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -TERM failed");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        if started.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            panic!("the server did not stop within 15 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads lines until one contains `marker`; returns every line read.
fn read_until(out: &mut impl BufRead, marker: &str) -> String {
    let mut seen = String::new();
    for line in out.lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(marker) {
            return seen;
        }
    }
    panic!("the server ended before printing '{marker}':\n{seen}");
}

#[test]
fn tagcfg_serve_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tagcfg"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--grpc-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("TAGCFG_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    read_until(&mut out, "SIGTERM stops the server");
    assert!(terminate(&mut child), "serve exits with success on SIGTERM");
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("stopping"), "{rest}");
}

#[test]
fn the_watch_server_stops_on_sigterm() {
    // Nothing is read from AWS before the first request; the endpoint is never called.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tagcfg"))
        .arg("watch-server")
        .envs([
            ("TAGCFG_TABLE", "signals-test"),
            ("TAGCFG_WATCH_ADDR", "127.0.0.1:0"),
            ("TAGCFG_SERVICE_SECRET", "signals-service-secret-0123456789abcdef"),
            ("TAGCFG_DEV_SECRET", "signals-dev-secret-0123456789abcdefghij"),
            ("TAGCFG_ISSUER", "tagcfg-dev"),
            ("TAGCFG_LOG", "info"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    read_until(&mut out, "watch server ready");
    assert!(terminate(&mut child), "watch-server exits with success on SIGTERM");
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("stopping"), "{rest}");
}
