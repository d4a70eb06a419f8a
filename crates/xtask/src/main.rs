//! `cargo xtask <command>`: see the crate's documentation for what each one does.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use xtask::{bootstraps, fixtures, root, runtime_stub::RuntimeApi};

#[derive(Parser)]
#[command(about = "tagcfg's repository chores")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the sample events of events/ (API Gateway, EventBridge, DynamoDB stream).
    Events,
    /// Check what `sam build` produced: ELF architecture, glibc, and that each bootstrap starts.
    CheckBootstraps {
        /// arm64 or x86_64.
        arch: String,
    },
    /// Time a Lambda binary's init (process start → first poll for an event), config-api's
    /// configuration with the test JWKS.
    ColdStart {
        binary: PathBuf,
        #[arg(default_value_t = 20)]
        runs: usize,
    },
    /// Create the config table on the DynamoDB endpoint in AWS_ENDPOINT_URL_DYNAMODB (feature
    /// `aws`); an existing table is left as it is.
    #[cfg(feature = "aws")]
    CreateTable { name: String },
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), String> {
    let root = root();
    match command {
        Command::Events => {
            let files = fixtures::all(&root)?;
            for (path, text) in &files {
                let full = root.join(path);
                if let Some(dir) = full.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                }
                std::fs::write(&full, text).map_err(|e| format!("{}: {e}", full.display()))?;
            }
            println!("wrote {} events under events/", files.len());
            Ok(())
        }
        Command::CheckBootstraps { arch } => {
            bootstraps::check(&root, &arch).map_err(|errors| format!("check-bootstraps:\n  {}", errors.join("\n  ")))
        }
        Command::ColdStart { binary, runs } => {
            let jwks = root.join("crates/tenant-auth/tests/fixtures/jwks.json");
            let jwks = jwks.to_string_lossy();
            let env = [
                ("TAGCFG_TABLE", "tagcfg-config"),
                (
                    "TAGCFG_ISSUER",
                    "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_x",
                ),
                ("TAGCFG_JWKS_FILE", jwks.as_ref()),
            ];
            let stub = RuntimeApi::start().map_err(|e| format!("the stub Runtime API: {e}"))?;
            let mut samples = (0..runs.max(1))
                .map(|_| stub.time_to_ready(&binary, &env, Duration::from_secs(10), &[]))
                .collect::<Result<Vec<_>, _>>()?;
            samples.sort();
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            let p90 = samples[(samples.len() * 9 / 10).saturating_sub(1)];
            println!(
                "init (process start -> first /next), {} runs: min {:.1} ms, median {:.1} ms, p90 {:.1} ms",
                samples.len(),
                ms(samples[0]),
                ms(samples[samples.len() / 2]),
                ms(p90)
            );
            Ok(())
        }
        #[cfg(feature = "aws")]
        Command::CreateTable { name } => create_table(&name),
    }
}

#[cfg(feature = "aws")]
fn create_table(name: &str) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let client = aws_sdk_dynamodb::Client::new(&sdk);
        let existing = client
            .list_tables()
            .send()
            .await
            .map_err(|e| format!("ListTables: {e}"))?;
        if !existing.table_names().iter().any(|t| t == name) {
            adapters::aws::table::create_config_table(&client, name)
                .await
                .map_err(|e| e.to_string())?;
        }
        println!("table {name} ready");
        Ok(())
    })
}
