use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use std::time::Duration;

use clap::{Parser, Subcommand};
use client::api::{Api, ApiError, Call, Method};
use local_server::{LocalConfig, LocalServer, DEMO_TENANTS};
use tagged_routing::{RoutingTable, TenantId, DEFAULT_ROUTES};
use tenant_auth::{dev, Scope};

mod governance;
mod watch;

/// tagcfg: multitenant configuration, routed by tag to DynamoDB or SSM Parameter Store.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Connection {
    /// Base URL of a tagcfg API (the local server or API Gateway).
    #[arg(long, env = "TAGCFG_URL", default_value = "http://127.0.0.1:8080", global = true)]
    url: String,
    /// Bearer token (`tagcfg token` mints a local one).
    #[arg(long, env = "TAGCFG_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Why: recorded with the change (`X-Change-Reason`, at most 256 characters).
    #[arg(long, global = true)]
    reason: Option<String>,
}

/// `tagcfg serve` behind a real identity provider: tokens verified as the Lambda verifies
/// them, and no dev secret or dev token at all.
#[derive(clap::Args)]
struct IdentityProvider {
    /// Verify RS256/ES256 tokens against this JWKS URL (an OIDC provider's `jwks_uri`).
    #[arg(long, env = "TAGCFG_JWKS_URL", conflicts_with = "jwks_file")]
    jwks_url: Option<String>,
    /// ... or this JWKS file.
    #[arg(long, env = "TAGCFG_JWKS_FILE")]
    jwks_file: Option<PathBuf>,
    /// The tokens' `iss` (required with a JWKS).
    #[arg(long, env = "TAGCFG_ISSUER")]
    issuer: Option<String>,
    /// Accepted `aud` / `client_id` values, comma-separated (required with a JWKS).
    #[arg(long, env = "TAGCFG_AUDIENCES")]
    audiences: Option<String>,
    /// The claim that holds the tenant (default `custom:tenantId`).
    #[arg(long, env = "TAGCFG_TENANT_CLAIM")]
    tenant_claim: Option<String>,
    /// Accepted `token_use` (`id`, `access`); when set, a token without it is refused.
    #[arg(long, env = "TAGCFG_TOKEN_USE")]
    token_use: Option<String>,
}

impl IdentityProvider {
    /// The verifier configuration, when a JWKS is given.
    fn config(&self) -> Result<Option<tenant_auth::VerifierConfig>, CliError> {
        if self.jwks_url.is_none() && self.jwks_file.is_none() {
            return Ok(None);
        }
        if self.audiences.as_deref().is_none_or(|a| a.trim().is_empty()) {
            return Err(CliError::Usage(
                "--audiences (TAGCFG_AUDIENCES) is required with a JWKS: without it any audience would pass".into(),
            ));
        }
        let file = self.jwks_file.as_ref().map(|f| f.display().to_string());
        let lookup = |var: &str| match var {
            "TAGCFG_JWKS_URL" => self.jwks_url.clone(),
            "TAGCFG_JWKS_FILE" => file.clone(),
            "TAGCFG_ISSUER" => self.issuer.clone(),
            "TAGCFG_AUDIENCES" => self.audiences.clone(),
            "TAGCFG_TENANT_CLAIM" => self.tenant_claim.clone(),
            "TAGCFG_TOKEN_USE" => self.token_use.clone(),
            _ => None,
        };
        tenant_auth::VerifierConfig::from_lookup(&lookup)
            .map(Some)
            .map_err(|e| CliError::Usage(e.to_string()))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the local all-in-one server (embedded store, dev tokens, demo data).
    Serve {
        #[arg(long, env = "TAGCFG_ADDR", default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Where the gRPC watch server listens.
        #[arg(long, env = "TAGCFG_GRPC_ADDR", default_value = "127.0.0.1:50051")]
        grpc_addr: SocketAddr,
        /// Where the store and the dev secret live.
        #[arg(long, env = "TAGCFG_DATA_DIR", default_value = ".tagcfg")]
        data_dir: PathBuf,
        /// Tag → backend table, e.g. `tenant_config_=dynamodb,param_config_=ssm`.
        #[arg(long, env = "TAGCFG_ROUTES", default_value = DEFAULT_ROUTES)]
        routes: String,
        /// Do not write the demo keys on first start.
        #[arg(long)]
        no_demo: bool,
        #[command(flatten)]
        idp: IdentityProvider,
    },
    /// Mint a dev token signed with the local server's secret: a tenant's (`--tenant`) or an
    /// operator's (`--operator`: the shared and tier layers, tier assignments).
    Token {
        #[arg(long, required_unless_present = "operator", conflicts_with = "operator")]
        tenant: Option<String>,
        /// An operator token: scope config:operator, no tenant.
        #[arg(long, conflicts_with = "scopes")]
        operator: bool,
        /// config:read, config:write or config:admin (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        #[arg(long, default_value = "dev-user")]
        subject: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl: u64,
        #[arg(long, env = "TAGCFG_DATA_DIR", default_value = ".tagcfg")]
        data_dir: PathBuf,
    },
    /// Replace the local server's dev secret: every dev token minted so far is refused once
    /// the server restarts.
    RotateDevSecret {
        #[arg(long, env = "TAGCFG_DATA_DIR", default_value = ".tagcfg")]
        data_dir: PathBuf,
    },
    /// Replace the key that seals secret values in the local store, and reseal them all
    /// under the new key (stop `tagcfg serve` first).
    RotateStoreKey {
        #[arg(long, env = "TAGCFG_DATA_DIR", default_value = ".tagcfg")]
        data_dir: PathBuf,
        /// The routing table the server runs with (which keys are secret).
        #[arg(long, env = "TAGCFG_ROUTES", default_value = DEFAULT_ROUTES)]
        routes: String,
    },
    /// Read one key: a tenant's effective value (tenant → tier → shared), or one layer's.
    Get {
        key: String,
        #[command(flatten)]
        layer: LayerArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// Write one key; VALUE is JSON (`-` reads it from stdin).
    Put {
        key: String,
        value: String,
        /// Only if the current version is this one.
        #[arg(long, conflicts_with = "create_only")]
        if_match: Option<u64>,
        /// Only if the key does not exist yet.
        #[arg(long)]
        create_only: bool,
        #[command(flatten)]
        layer: LayerArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// Delete one key.
    Rm {
        key: String,
        #[arg(long)]
        if_match: Option<u64>,
        #[command(flatten)]
        layer: LayerArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// List keys by prefix.
    Ls {
        #[arg(default_value = "")]
        prefix: String,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long)]
        cursor: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Versions of one key, newest first.
    History {
        key: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Schema registrations (operators write, anyone reads).
    Schema {
        #[command(subcommand)]
        action: governance::SchemaCommand,
        #[command(flatten)]
        conn: Connection,
    },
    /// Write a change set from a JSON or YAML file (`{"writes": [{"key", "value" | null,
    /// "if_match"?}], "reason"?}`), all or nothing; `--dry-run` prints what would change.
    Apply {
        file: PathBuf,
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        layer: LayerArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// Write an old value back: one key (`KEY --to-version N`) or the whole layer
    /// (`--to-revision N`).
    Revert {
        key: Option<String>,
        #[arg(long, conflicts_with = "to_revision")]
        to_version: Option<u64>,
        #[arg(long)]
        to_revision: Option<u64>,
        #[command(flatten)]
        layer: LayerArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// The tenant's effective values under PREFIX, each with its layer and what it shadows.
    Effective {
        #[arg(default_value = "")]
        prefix: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Print the tenant's effective values as they change, as JSON lines (gRPC Watch).
    Watch {
        /// Only keys under these prefixes (default: all).
        prefixes: Vec<String>,
        /// First replay every key that moved after this cursor, as printed in each line
        /// (`tenant=N[,tier=NAME@N],shared=N`).
        #[arg(long)]
        since: Option<push::Cursor>,
        /// The watch server.
        #[arg(long, env = "TAGCFG_GRPC_URL", default_value = "http://127.0.0.1:50051")]
        grpc_url: String,
        #[arg(long, env = "TAGCFG_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Stop after this many changes (default: run until interrupted).
        #[arg(long)]
        count: Option<usize>,
    },
    /// Show a tenant's tier, or assign one (operators).
    Tenant {
        tenant: String,
        /// Assign the tenant to this tier.
        #[arg(long, conflicts_with = "no_tier")]
        tier: Option<String>,
        /// Take the tenant out of its tier.
        #[arg(long)]
        no_tier: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// The tenant's change log after a revision.
    Changes {
        #[arg(long, default_value_t = 0)]
        since: u64,
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Local(#[from] local_server::LocalError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Watch(#[from] watch::WatchError),
    #[error("{0}")]
    Usage(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn scope_list(names: &[String]) -> Result<Vec<Scope>, CliError> {
    names
        .iter()
        .map(|n| {
            Scope::parse(n).ok_or_else(|| {
                CliError::Usage(format!(
                    "unknown scope '{n}' (use config:read, config:write or config:admin)"
                ))
            })
        })
        .collect()
}

/// `--layer` / `--shared`: the layer a command addresses.
#[derive(clap::Args)]
struct LayerArgs {
    /// The layer: tenant (default, the token's own), shared or tier:<name> (operators).
    #[arg(long, conflicts_with = "shared")]
    layer: Option<String>,
    /// Shorthand for --layer shared.
    #[arg(long)]
    shared: bool,
}

impl LayerArgs {
    /// The `?layer=` of a call.
    fn query(&self) -> String {
        match (&self.layer, self.shared) {
            (_, true) => "?layer=shared".to_owned(),
            (Some(l), false) => format!("?layer={l}"),
            (None, false) => String::new(),
        }
    }

    /// The `If-Match` ETag of version `v` in the layer written (ETags name their layer).
    fn if_match(&self, v: u64) -> String {
        match (self.layer.as_deref(), self.shared) {
            (_, true) | (Some("shared"), _) => format!("\"shared-{v}\""),
            (Some(l), false) => match l.strip_prefix("tier:") {
                Some(tier) => format!("\"tier-{tier}-{v}\""),
                None => format!("\"{v}\""),
            },
            (None, false) => format!("\"{v}\""),
        }
    }
}

/// How long one HTTP call of the CLI may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

const NO_TOKEN: &str =
    "no token: pass --token or set TAGCFG_TOKEN (for the local server: `tagcfg token --tenant acme --scope config:write`)";

/// The API behind `conn`, and the token to call it with.
struct Remote {
    api: Api,
    token: String,
    reason: Option<String>,
}

impl Remote {
    async fn call(&self, method: Method, path: &str, mut call: Call<'_>) -> Result<String, ApiError> {
        if let Some(reason) = &self.reason {
            call.headers.push(("x-change-reason", reason.clone()));
        }
        self.api.call(method, path, &self.token, call).await
    }
}

fn remote(conn: &Connection) -> Result<Remote, CliError> {
    let token = conn.token.clone().ok_or_else(|| CliError::Usage(NO_TOKEN.into()))?;
    Ok(Remote {
        api: Api::new(&conn.url, CALL_TIMEOUT)?,
        token,
        reason: conn.reason.clone(),
    })
}

/// A value given on the command line: the text itself, `-` for stdin, `@FILE` for a file.
fn read_value(arg: &str) -> Result<String, CliError> {
    if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::Usage(format!("cannot read the value from stdin: {e}")))?;
        return Ok(text);
    }
    match arg.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file).map_err(|e| CliError::Usage(format!("cannot read {file}: {e}"))),
        None => Ok(arg.to_owned()),
    }
}

fn print(body: String) {
    if !body.is_empty() {
        println!("{body}");
    }
}

async fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Serve {
            addr,
            grpc_addr,
            data_dir,
            routes,
            no_demo,
            idp,
        } => serve(addr, grpc_addr, data_dir, &routes, !no_demo, idp.config()?).await,
        Command::Watch {
            prefixes,
            since,
            grpc_url,
            token,
            count,
        } => {
            let token = token.ok_or_else(|| CliError::Usage(NO_TOKEN.into()))?;
            watch::print_changes(&grpc_url, &token, prefixes, since, count).await?;
            Ok(())
        }
        Command::Token {
            tenant,
            operator,
            scopes,
            subject,
            ttl,
            data_dir,
        } => {
            let secret = local_server::dev_secret(&data_dir)?;
            let token = match tenant {
                Some(tenant) if !operator => {
                    let tenant = TenantId::parse(&tenant).map_err(|e| CliError::Usage(e.to_string()))?;
                    dev::mint(&secret, &tenant, &subject, &scope_list(&scopes)?, ttl)
                }
                _ => dev::mint_operator(&secret, &subject, ttl),
            }
            .map_err(local_server::LocalError::from)?;
            println!("{token}");
            Ok(())
        }
        Command::RotateDevSecret { data_dir } => {
            local_server::rotate_dev_secret(&data_dir)?;
            println!(
                "dev secret in {} replaced: every dev token minted before is refused once `tagcfg serve` restarts",
                data_dir.display()
            );
            Ok(())
        }
        Command::RotateStoreKey { data_dir, routes } => {
            let routes = RoutingTable::parse(&routes).map_err(|e| CliError::Usage(format!("TAGCFG_ROUTES: {e}")))?;
            let rotated = local_server::rotate_store_key(&data_dir, &routes)?;
            println!(
                "store key {} now seals the secrets in {}; {} values resealed, the old keys dropped",
                rotated.key_id,
                data_dir.display(),
                rotated.resealed
            );
            Ok(())
        }
        Command::Tenant {
            tenant,
            tier,
            no_tier,
            conn,
        } => {
            let path = format!("/v1/tenants/{tenant}");
            let remote = remote(&conn)?;
            let answer = if tier.is_some() || no_tier {
                let body = serde_json::json!({ "tier": tier }).to_string();
                remote
                    .call(
                        Method::PUT,
                        &path,
                        Call {
                            body: Some(body),
                            headers: vec![],
                        },
                    )
                    .await?
            } else {
                remote.call(Method::GET, &path, Call::default()).await?
            };
            print(answer);
            Ok(())
        }
        Command::Schema { action, conn } => governance::schema(&remote(&conn)?, action).await,
        Command::Apply {
            file,
            dry_run,
            layer,
            conn,
        } => governance::apply(&remote(&conn)?, &file, dry_run, &layer.query()).await,
        Command::Revert {
            key,
            to_version,
            to_revision,
            layer,
            conn,
        } => {
            let query = layer.query();
            governance::revert(&remote(&conn)?, key, to_version, to_revision, &query).await
        }
        Command::Effective { prefix, conn } => {
            let path = format!("/v1/effective?prefix={prefix}&limit=1000");
            print(remote(&conn)?.call(Method::GET, &path, Call::default()).await?);
            Ok(())
        }
        Command::Get { key, layer, conn } => {
            let path = format!("/v1/config/{key}{}", layer.query());
            print(remote(&conn)?.call(Method::GET, &path, Call::default()).await?);
            Ok(())
        }
        Command::Put {
            key,
            value,
            if_match,
            create_only,
            layer,
            conn,
        } => {
            let value = read_value(&value)?;
            let mut headers = Vec::new();
            if let Some(v) = if_match {
                headers.push(("if-match", layer.if_match(v)));
            }
            if create_only {
                headers.push(("if-none-match", "*".to_owned()));
            }
            let path = format!("/v1/config/{key}{}", layer.query());
            print(
                remote(&conn)?
                    .call(
                        Method::PUT,
                        &path,
                        Call {
                            body: Some(value),
                            headers,
                        },
                    )
                    .await?,
            );
            Ok(())
        }
        Command::Rm {
            key,
            if_match,
            layer,
            conn,
        } => {
            let headers = if_match
                .map(|v| vec![("if-match", layer.if_match(v))])
                .unwrap_or_default();
            let path = format!("/v1/config/{key}{}", layer.query());
            remote(&conn)?
                .call(Method::DELETE, &path, Call { body: None, headers })
                .await?;
            println!("deleted {key}");
            Ok(())
        }
        Command::Ls {
            prefix,
            limit,
            cursor,
            conn,
        } => {
            let mut path = format!("/v1/config?prefix={prefix}&limit={limit}");
            if let Some(c) = cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            print(remote(&conn)?.call(Method::GET, &path, Call::default()).await?);
            Ok(())
        }
        Command::History { key, conn } => {
            print(
                remote(&conn)?
                    .call(Method::GET, &format!("/v1/config/{key}/history"), Call::default())
                    .await?,
            );
            Ok(())
        }
        Command::Changes { since, conn } => {
            print(
                remote(&conn)?
                    .call(Method::GET, &format!("/v1/changes?since={since}"), Call::default())
                    .await?,
            );
            Ok(())
        }
    }
}

async fn serve(
    addr: SocketAddr,
    grpc_addr: SocketAddr,
    data_dir: PathBuf,
    routes: &str,
    seed: bool,
    identity_provider: Option<tenant_auth::VerifierConfig>,
) -> Result<(), CliError> {
    // Logs on stderr (the banner is stdout): readable lines at a terminal, JSON lines (every
    // field escaped, no colour codes) into a file or a pipe. A background thread writes them
    // (requests never wait on stderr); `_flushed` writes what is queued when serve returns.
    let filter = tracing_subscriber::EnvFilter::try_from_env("TAGCFG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, _flushed) = tracing_appender::non_blocking(std::io::stderr());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(terminal);
    if terminal {
        logs.with_target(false).init();
    } else {
        logs.json().init();
    }
    let routes = RoutingTable::parse(routes).map_err(|e| CliError::Usage(format!("TAGCFG_ROUTES: {e}")))?;
    let env_count = |var: &str, default: usize| {
        tagged_routing::env::count(&tagged_routing::env::process_env, var, default)
            .map_err(|e| CliError::Usage(e.to_string()))
    };
    // 0 leaves the scheduler's slice; Linux holds a slice between 100 µs and 100 ms.
    let commit_slice = || {
        let default = local_server::DEFAULT_COMMIT_SLICE.as_micros() as u64;
        tagged_routing::env::number(&tagged_routing::env::process_env, "TAGCFG_COMMIT_SLICE_US", default)
            .map(|us| (us > 0).then(|| Duration::from_micros(us)))
            .map_err(|e| CliError::Usage(e.to_string()))
    };
    let server = LocalServer::start(LocalConfig {
        addr,
        grpc_addr,
        data_dir: data_dir.clone(),
        routes: routes.clone(),
        seed_demo_data: seed,
        tenant_limits: local_server::TenantLimits::from_lookup(&tagged_routing::env::process_env)
            .map_err(|e| CliError::Usage(e.to_string()))?,
        identity_provider: identity_provider.clone(),
        conn_limits: local_server::ConnLimits::from_lookup(&tagged_routing::env::process_env)
            .map_err(|e| CliError::Usage(e.to_string()))?,
        access_log_sample: local_server::AccessLog::from_lookup(&tagged_routing::env::process_env)
            .map_err(|e| CliError::Usage(e.to_string()))?
            .sample_reads,
        max_streams_per_tenant: env_count(
            "TAGCFG_MAX_STREAMS_PER_TENANT",
            push::service::DEFAULT_MAX_STREAMS_PER_TENANT,
        )?,
        store_cache_mib: env_count("TAGCFG_STORE_CACHE_MB", local_server::DEFAULT_STORE_CACHE_MIB)?,
        commit_slice: commit_slice()?,
    })
    .await?;
    let stop = push::shutdown::stop_requested();
    let url = server.url();
    println!("tagcfg local server");
    println!("  HTTP API   {url}   (OpenAPI: {url}/openapi.json)");
    println!(
        "  gRPC watch {}   (tagcfg.v2.ConfigWatch, health, reflection)",
        server.grpc_url()
    );
    println!("  store      {}", data_dir.join("store.redb").display());
    println!("  routes     {routes}");
    if server.seeded {
        println!(
            "  demo data  written for {} and the shared layer",
            DEMO_TENANTS.join(", ")
        );
    }
    println!();
    match &identity_provider {
        Some(idp) => println!(
            "  tokens     from your identity provider: issuer {}, audiences {}; no dev tokens",
            idp.issuer.as_deref().unwrap_or("-"),
            idp.audiences.join(",")
        ),
        None => print_dev_tokens(&server, &url)?,
    }
    println!();
    println!(
        "Ctrl-C or SIGTERM stops the server; the data stays in {}.",
        data_dir.display()
    );

    stop.await;
    println!("stopping");
    server.shutdown().await?;
    Ok(())
}

/// The banner's dev tokens, and curl lines that use them.
fn print_dev_tokens(server: &LocalServer, url: &str) -> Result<(), CliError> {
    println!(
        "# dev tokens, valid {} hours (`tagcfg token --ttl` for longer; `tagcfg rotate-dev-secret` revokes all)",
        local_server::BANNER_TOKEN_TTL_SECS / 3600
    );
    for tenant in DEMO_TENANTS {
        let var = format!("{}_TOKEN", tenant.to_uppercase());
        println!("# {tenant} (config:write)");
        println!("export {var}={}", server.token(tenant, &[Scope::Write])?);
    }
    println!("# acme, read only");
    println!("export ACME_READ_TOKEN={}", server.token("acme", &[Scope::Read])?);
    println!("# acme, admin (manages acme's own layer only)");
    println!("export ACME_ADMIN_TOKEN={}", server.token("acme", &[Scope::Admin])?);
    println!("# operator (config:operator, no tenant): the shared and tier layers, tier assignments");
    println!("export OPERATOR_TOKEN={}", server.operator_token()?);
    println!();
    for tenant in DEMO_TENANTS {
        let var = format!("{}_TOKEN", tenant.to_uppercase());
        println!("curl -s -H \"Authorization: Bearer ${var}\" {url}/v1/config/tenant_config_flags/checkout");
    }
    println!(
        "curl -s -X PUT -H \"Authorization: Bearer $OPERATOR_TOKEN\" -d '{{\"tier\":\"pro\"}}' {url}/v1/tenants/acme"
    );
    Ok(())
}
