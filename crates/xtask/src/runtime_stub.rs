//! A minimal local Lambda Runtime API, enough to see a function binary finish its init: the
//! binary is ready when it long-polls `GET /2018-06-01/runtime/invocation/next`. Nothing
//! leaves the machine. `cold-start` and `check-bootstraps` time binaries against it.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What Lambda sets for every function, plus credentials and a region that are never used.
const LAMBDA_ENV: [(&str, &str); 7] = [
    ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
    ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
    ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// The stub: a listener on 127.0.0.1 whose `/next` polls are reported on a channel.
pub struct RuntimeApi {
    addr: SocketAddr,
    polled: mpsc::Receiver<()>,
}

impl RuntimeApi {
    pub fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (tx, polled) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let tx = tx.clone();
                std::thread::spawn(move || serve(stream, &tx));
            }
        });
        Ok(RuntimeApi { addr, polled })
    }

    /// Starts `binary` (behind `runner`, an emulator for another architecture) with `env`
    /// plus the Lambda variables, and returns the time until it polls for its first event.
    /// The error carries the end of the binary's stderr when it exits or stays silent.
    pub fn time_to_ready(
        &self,
        binary: &Path,
        env: &[(&str, &str)],
        timeout: Duration,
        runner: &[String],
    ) -> Result<Duration, String> {
        while self.polled.try_recv().is_ok() {}
        let (program, args): (&std::ffi::OsStr, Vec<&std::ffi::OsStr>) = match runner.split_first() {
            Some((first, rest)) => (
                first.as_ref(),
                rest.iter().map(|a| a.as_ref()).chain([binary.as_os_str()]).collect(),
            ),
            None => (binary.as_os_str(), Vec::new()),
        };
        let name = binary
            .parent()
            .and_then(Path::file_name)
            .unwrap_or(binary.as_os_str())
            .to_string_lossy()
            .into_owned();
        let started = Instant::now();
        let mut child = Command::new(program)
            .args(args)
            .env_clear()
            .envs(LAMBDA_ENV)
            .env("AWS_LAMBDA_RUNTIME_API", self.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &name)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        loop {
            if self.polled.recv_timeout(Duration::from_millis(5)).is_ok() {
                let elapsed = started.elapsed();
                let _ = child.kill();
                let _ = child.wait();
                return Ok(elapsed);
            }
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || started.elapsed() > timeout {
                let _ = child.kill();
                let output = child.wait_with_output().map_err(|e| e.to_string())?;
                let stderr = String::from_utf8_lossy(&output.stderr);
                let tail: String = stderr
                    .trim()
                    .chars()
                    .rev()
                    .take(500)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                return Err(format!(
                    "{} never polled for an event ({}): {tail}",
                    binary.display(),
                    output.status
                ));
            }
        }
    }
}

/// Reads one request; a `/next` poll is reported and then held open (the binary is killed
/// meanwhile); anything else gets a 500.
fn serve(stream: TcpStream, polled: &mpsc::Sender<()>) {
    let mut line = String::new();
    if BufReader::new(&stream).read_line(&mut line).is_err() {
        return;
    }
    if line
        .split_whitespace()
        .nth(1)
        .is_some_and(|p| p.ends_with("/runtime/invocation/next"))
    {
        let _ = polled.send(());
        std::thread::sleep(Duration::from_secs(30));
    } else {
        use std::io::Write;
        let _ = (&stream).write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n");
    }
}
