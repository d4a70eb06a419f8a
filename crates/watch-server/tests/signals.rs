//! The watch server stops gracefully on SIGTERM (how ECS, systemd and container runtimes stop a
//! process), as on Ctrl-C: it announces it and exits with success.

#![cfg(unix)]

use std::io::{BufReader, Read};
use std::process::{Command, Stdio};

use testkit::serve::{read_until, terminate};

#[test]
fn the_watch_server_stops_on_sigterm() {
    // Nothing is read from AWS before the first request; the endpoint is never called.
    let mut child = Command::new(env!("CARGO_BIN_EXE_watch-server"))
        .envs([
            ("TAGCFG_TABLE", "signals-test"),
            ("TAGCFG_WATCH_ADDR", "127.0.0.1:0"),
            ("TAGCFG_SERVICE_SECRET", "signals-service-secret-0123456789abcdef"),
            ("TAGCFG_DEV_SECRET", "signals-dev-secret-0123456789abcdefghij"),
            ("TAGCFG_DEV", "1"),
            ("TAGCFG_ISSUER", "tagcfg-dev"),
            ("TAGCFG_AUDIENCES", "tagcfg"),
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
