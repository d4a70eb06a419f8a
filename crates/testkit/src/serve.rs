//! Servers as child processes: `tagcfg serve` started on free ports with its banner read,
//! and the SIGTERM a container runtime sends to stop one.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `tagcfg serve`. Dropping it kills the process (also when a test panics).
pub struct Served {
    pub child: Child,
    pub http_url: String,
    pub grpc_url: String,
    /// The banner's `export NAME=value` lines (the dev tokens).
    pub exports: HashMap<String, String>,
    /// The rest of standard output, after the banner.
    pub stdout: BufReader<ChildStdout>,
    /// The logs, when started with [`Served::start_logging`].
    pub stderr: Option<BufReader<ChildStderr>>,
}

impl Served {
    /// Starts `binary serve` on free ports with its data in `data_dir` (plus `extra_args`),
    /// and reads the banner up to its last line.
    pub fn start(binary: impl AsRef<std::ffi::OsStr>, data_dir: &Path, extra_args: &[&str]) -> Served {
        Self::spawn(Command::new(binary), data_dir, extra_args, "warn", false)
    }

    /// [`Served::start`] logging at `level` into a pipe the test reads (`stderr`).
    pub fn start_logging(binary: impl AsRef<std::ffi::OsStr>, data_dir: &Path, level: &str) -> Served {
        Self::spawn(Command::new(binary), data_dir, &[], level, true)
    }

    /// [`Served::start`] with extra environment variables and at most `open_files` file
    /// descriptors (`ulimit -n`, unix only).
    pub fn start_limited(
        binary: impl AsRef<std::ffi::OsStr>,
        data_dir: &Path,
        env: &[(&str, &str)],
        open_files: u32,
    ) -> Served {
        let mut command = Command::new("sh");
        command
            .args(["-c", &format!("ulimit -n {open_files} && exec \"$0\" \"$@\"")])
            .arg(binary)
            .envs(env.iter().copied());
        Self::spawn(command, data_dir, &[], "warn", false)
    }

    fn spawn(mut command: Command, data_dir: &Path, extra_args: &[&str], level: &str, logs: bool) -> Served {
        let mut child = command
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--grpc-addr",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(data_dir)
            .args(extra_args)
            .env("TAGCFG_LOG", level)
            .stdout(Stdio::piped())
            .stderr(if logs { Stdio::piped() } else { Stdio::inherit() })
            .spawn()
            .expect("tagcfg serve starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let stderr = child.stderr.take().map(BufReader::new);
        let (mut http_url, mut grpc_url, mut exports) = (String::new(), String::new(), HashMap::new());
        let mut line = String::new();
        loop {
            line.clear();
            if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                let _ = child.kill();
                panic!("tagcfg serve ended before its banner was complete");
            }
            let trimmed = line.trim();
            if let Some(rest) = trimmed.strip_prefix("HTTP API") {
                http_url = rest.split_whitespace().next().unwrap_or_default().to_owned();
            } else if let Some(rest) = trimmed.strip_prefix("gRPC watch") {
                grpc_url = rest.split_whitespace().next().unwrap_or_default().to_owned();
            } else if let Some((name, value)) = trimmed.strip_prefix("export ").and_then(|e| e.split_once('=')) {
                exports.insert(name.to_owned(), value.to_owned());
            } else if trimmed.starts_with("Ctrl-C") {
                break;
            }
        }
        Served {
            child,
            http_url,
            grpc_url,
            exports,
            stdout,
            stderr,
        }
    }

    /// A token the banner exported, e.g. `ACME_TOKEN`.
    pub fn token(&self, name: &str) -> String {
        self.exports
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("the banner exports no {name}"))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends SIGTERM (unix only: `kill -TERM`), then waits (at most 15 s) for the exit; returns whether it succeeded.
pub fn terminate(child: &mut Child) -> bool {
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
pub fn read_until(out: &mut impl BufRead, marker: &str) -> String {
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
