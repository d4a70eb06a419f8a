//! The servers under test as child processes on 127.0.0.1.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::BenchError;

/// A running server; dropping it kills the process.
pub struct Server {
    child: Child,
    name: String,
}

impl Server {
    /// Starts `command` (its output discarded: both servers are told to log only errors).
    pub fn spawn(name: &str, mut command: Command) -> Result<Server, BenchError> {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| BenchError::Start {
                what: name.to_owned(),
                detail: e.to_string(),
            })?;
        Ok(Server {
            child,
            name: name.to_owned(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's resident memory now.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// Fails when the process has already ended (a bad flag, a port taken).
    pub fn check_running(&mut self) -> Result<(), BenchError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(BenchError::Start {
                what: self.name.clone(),
                detail: format!("it exited with {status}"),
            }),
            Err(e) => Err(BenchError::Start {
                what: self.name.clone(),
                detail: e.to_string(),
            }),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `VmRSS` of `pid` in KiB (0 when unreadable).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A port free on 127.0.0.1 right now (the server binds it a moment later).
pub fn free_port() -> Result<u16, BenchError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| BenchError::Start {
            what: "a listener on 127.0.0.1".into(),
            detail: e.to_string(),
        })
}

/// Waits until `url` answers 200, or the server exits, or 30 s pass.
pub async fn wait_ready(server: &mut Server, http: &reqwest::Client, url: &str) -> Result<(), BenchError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        server.check_running()?;
        if let Ok(response) = http.get(url).send().await {
            if response.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(BenchError::Timeout(format!(
                "{} did not answer {url} within 30 s",
                server.name
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The first line `binary --version` prints.
pub fn version(binary: &Path) -> String {
    Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown version".into())
}
