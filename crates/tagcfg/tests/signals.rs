//! `tagcfg serve` stops gracefully on SIGTERM (how ECS, systemd and container runtimes stop a
//! process), as on Ctrl-C: it announces it and exits with success.

#![cfg(unix)]

use std::io::{BufReader, Read};
use std::process::{Command, Stdio};

use testkit::serve::{read_until, terminate};

#[test]
fn tagcfg_serve_stops_on_sigterm() {
    let dir = testkit::data_dir();
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
