//! When clients take every file descriptor `tagcfg serve` may open, its accept loops back
//! off instead of spinning, and once those clients are idle-closed it serves again by itself.

#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use testkit::serve::{ServeOptions, Served};

/// CPU seconds (user + system) the process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let per_sec = std::process::Command::new("getconf").arg("CLK_TCK").output().unwrap();
    ticks / String::from_utf8_lossy(&per_sec.stdout).trim().parse::<f64>().unwrap()
}

#[test]
fn descriptor_exhaustion_neither_spins_nor_needs_a_restart() {
    let dir = testkit::data_dir();
    let options = ServeOptions {
        env: vec![
            ("TAGCFG_MAX_CONNECTIONS".into(), "10000".into()),
            ("TAGCFG_IDLE_TIMEOUT_SECS".into(), "2".into()),
        ],
        open_files: Some(96),
        ..ServeOptions::default()
    };
    let server = Served::start_with(env!("CARGO_BIN_EXE_tagcfg"), dir.path(), &[], options);
    let http = server.http_url.trim_start_matches("http://").to_owned();
    let grpc = server.grpc_url.trim_start_matches("http://").to_owned();

    // More idle connections than the server has descriptors, to both servers.
    let hogs: Vec<TcpStream> = (0..150)
        .flat_map(|_| [TcpStream::connect(&http).unwrap(), TcpStream::connect(&grpc).unwrap()])
        .collect();
    std::thread::sleep(Duration::from_millis(300));

    let pid = server.child.id();
    let before = cpu_seconds(pid);
    std::thread::sleep(Duration::from_millis(1500));
    let used = cpu_seconds(pid) - before;
    assert!(
        used < 0.5,
        "the server used {used:.2} CPU s in 1.5 s while out of descriptors"
    );

    // The hogs stay open: the server closes them as idle (2 s) batch after batch, accepts
    // the waiting ones in turn, and then answers again without a restart.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !healthz_answers(&http) {
        assert!(Instant::now() < deadline, "the server did not recover within 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(hogs);
}

fn healthz_answers(addr: &str) -> bool {
    let Ok(mut socket) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_secs(1)));
    let mut answer = Vec::new();
    let sent = socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    sent.is_ok() && socket.read_to_end(&mut answer).is_ok() && answer.starts_with(b"HTTP/1.1 200")
}
