//! `tagcfg serve` logs into a pipe as JSON lines: every field escaped, no colour codes, so
//! a key or a claim with newlines or terminal escapes cannot forge or garble a log line.

use std::io::{BufRead, Read, Write};

/// One HTTP/1.1 GET on a fresh connection; the status code.
fn get(base: &str, path: &str, token: Option<&str>) -> u16 {
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\n{auth}connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn logs_into_a_pipe_are_json_lines_with_every_control_character_escaped() {
    let dir = testkit::data_dir();
    let mut served = testkit::serve::Served::start_logging(env!("CARGO_BIN_EXE_tagcfg"), dir.path(), "debug");
    let token = served.token("ACME_TOKEN");
    // A key with a newline, an escape sequence and a forged log line in it (refused: 400).
    let forged = "/v1/config/tenant_config_a%0A%1B%5B31m%7B%22level%22:%22ERROR%22%7D";
    assert_eq!(get(&served.http_url, forged, Some(&token)), 400);
    // A request after it, so its lines are written by the time this one is logged.
    assert_eq!(get(&served.http_url, "/healthz", None), 200);

    let stderr = served.stderr.as_mut().expect("piped logs");
    let mut lines = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        let done = line.contains("/healthz");
        lines.push(line);
        if done {
            break;
        }
    }
    assert!(
        lines.iter().any(|l| l.contains("request refused")),
        "the refusal is logged: {lines:?}"
    );
    for line in &lines {
        assert!(!line.contains('\u{1b}'), "an escape reached the log: {line:?}");
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not one JSON line ({e}): {line:?}"));
        assert!(parsed["level"].is_string(), "{line}");
    }
}
