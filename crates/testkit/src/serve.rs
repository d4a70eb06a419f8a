//! Servers as child processes: `tagcfg serve` started on free ports with its banner read,
//! and the SIGTERM a container runtime sends to stop one.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// Where a served process's logs go.
#[derive(Debug, Default)]
pub enum Logs {
    /// The test's own standard error.
    #[default]
    Inherited,
    /// A pipe the test reads ([`Served::stderr`]).
    Piped,
    /// A file (as a deployment writes them: JSON lines, no terminal).
    File(std::fs::File),
}

/// How [`Served::start_with`] starts the server.
#[derive(Debug)]
pub struct ServeOptions {
    /// `TAGCFG_LOG` (default `warn`).
    pub log_level: String,
    pub logs: Logs,
    /// More environment variables (`TAGCFG_*` limits, say).
    pub env: Vec<(String, String)>,
    /// At most this many open file descriptors (`ulimit -n`, unix only).
    pub open_files: Option<u32>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            log_level: "warn".into(),
            logs: Logs::Inherited,
            env: Vec::new(),
            open_files: None,
        }
    }
}

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
        Self::start_with(binary, data_dir, extra_args, ServeOptions::default())
    }

    /// [`Served::start`] logging at `level` into a pipe the test reads (`stderr`).
    pub fn start_logging(binary: impl AsRef<std::ffi::OsStr>, data_dir: &Path, level: &str) -> Served {
        let options = ServeOptions {
            log_level: level.to_owned(),
            logs: Logs::Piped,
            ..ServeOptions::default()
        };
        Self::start_with(binary, data_dir, &[], options)
    }

    /// [`Served::start`] with [`ServeOptions`].
    pub fn start_with(
        binary: impl AsRef<std::ffi::OsStr>,
        data_dir: &Path,
        extra_args: &[&str],
        options: ServeOptions,
    ) -> Served {
        let mut command = match options.open_files {
            Some(limit) => {
                let mut command = Command::new("sh");
                command
                    .args(["-c", &format!("ulimit -n {limit} && exec \"$0\" \"$@\"")])
                    .arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command.envs(options.env);
        let stderr = match options.logs {
            Logs::Inherited => Stdio::inherit(),
            Logs::Piped => Stdio::piped(),
            Logs::File(file) => Stdio::from(file),
        };
        Self::spawn(command, data_dir, extra_args, &options.log_level, stderr)
    }

    fn spawn(mut command: Command, data_dir: &Path, extra_args: &[&str], level: &str, stderr: Stdio) -> Served {
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
            .stderr(stderr)
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
