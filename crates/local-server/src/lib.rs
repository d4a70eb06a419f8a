//! # local-server: tagcfg on one machine, no AWS
//!
//! The same HTTP router as the config-api Lambda and the same push server as the ECS watch
//! server, over the embedded redb store and an in-process change feed, with a dev HS256
//! secret and demo data. `tagcfg serve` (the CLI), the integration tests and the benchmarks
//! all start it through [`LocalServer::start`], on fixed or random ports.
//!
//! - [`LocalServer`]: start, tokens for the demo tenants and the operator, shutdown;
//! - [`dev_secret`]: the dev signing key kept (owner-readable only) in the data directory;
//! - [`store_keyring`], [`rotate_store_key`]: the keys that seal secret values in the
//!   store, kept (owner-readable only) beside the dev secret;
//! - [`seed_demo_data`]: the demo keys, written on first start only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use adapters::local::{InProcessFeed, Keyring, RedbStore};
use push::{Hub, HubConfig, PushServer, PushService};
use tagged_routing::{ConfigStore, JsonText, Owner, Precondition, RoutingTable, StoreLimits, TaggedStore, TenantId};
use tenant_auth::{dev, Scope};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use http_api::{AccessLog, TenantLimits};
pub use serving::ConnLimits;
use serving::TenantLimiter;

/// The embedded store's page cache unless `TAGCFG_STORE_CACHE_MB` says otherwise.
pub const DEFAULT_STORE_CACHE_MIB: usize = RedbStore::DEFAULT_CACHE_MIB;
/// The slice the embedded store's committer asks the scheduler for unless
/// `TAGCFG_COMMIT_SLICE_US` says otherwise.
pub use adapters::local::commit_slice::DEFAULT_COMMIT_SLICE;

/// The tenants `tagcfg serve` seeds and prints tokens for.
pub const DEMO_TENANTS: [&str; 2] = ["acme", "globex"];

const SECRET_FILE: &str = "dev-secret";
const KEYRING_FILE: &str = "store-keys";
const STORE_FILE: &str = "store.redb";

/// Everything `tagcfg serve` needs.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub routes: RoutingTable,
    pub seed_demo_data: bool,
    /// Per-tenant request rates (`tagcfg serve` reads `TAGCFG_TENANT_*`).
    pub tenant_limits: http_api::TenantLimits,
    /// Verify real tokens (RS256/ES256 from a JWKS, issuer, audience, tenant claim) exactly
    /// as the Lambda does; then no dev secret exists and no dev token is accepted. `None`:
    /// dev tokens, signed with the data directory's dev secret.
    pub identity_provider: Option<tenant_auth::VerifierConfig>,
    /// Where the gRPC push server (ConfigWatch) listens.
    pub grpc_addr: SocketAddr,
    /// Connection limits and timeouts of each server, HTTP and gRPC (`TAGCFG_*`, see
    /// [`ConnLimits`]).
    pub conn_limits: ConnLimits,
    /// One access-log line per this many successful reads (`TAGCFG_ACCESS_LOG_SAMPLE`,
    /// [`http_api::AccessLog`]).
    pub access_log_sample: u64,
    /// Open `Watch` streams one tenant may hold (`TAGCFG_MAX_STREAMS_PER_TENANT`, default
    /// [`push::service::DEFAULT_MAX_STREAMS_PER_TENANT`]).
    pub max_streams_per_tenant: usize,
    /// The embedded store's page cache (`TAGCFG_STORE_CACHE_MB`, default
    /// [`RedbStore::DEFAULT_CACHE_MIB`]).
    pub store_cache_mib: usize,
    /// The scheduler slice the embedded store's committer asks for while it commits
    /// (`TAGCFG_COMMIT_SLICE_US`, default [`DEFAULT_COMMIT_SLICE`]; `None`: the
    /// scheduler's own; see `adapters::local::commit_slice`).
    pub commit_slice: Option<std::time::Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot bind {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Store(#[from] tagged_routing::Error),
    #[error("{0}")]
    Auth(#[from] tenant_auth::AuthError),
    #[error("server error: {0}")]
    Serve(std::io::Error),
    #[error("this server verifies tokens of an identity provider; it mints no dev tokens")]
    NoDevTokens,
    #[error("{0} is in use: stop `tagcfg serve` first")]
    InUse(PathBuf),
    #[error("{path} is open to other users (mode {mode:o}); it holds the dev secret and the store: run `chmod {fix} {path}`")]
    TooOpen {
        path: PathBuf,
        mode: u32,
        fix: &'static str,
    },
}

/// How long the tokens printed in `tagcfg serve`'s banner live: long enough for a working
/// day, short enough that a token left in a shell history expires (`tagcfg token --ttl`
/// mints longer ones; `tagcfg rotate-dev-secret` revokes all at once).
pub const BANNER_TOKEN_TTL_SECS: u64 = 8 * 3600;

/// Creates `dir` owner-only (0700) when absent; refuses one other users can open.
fn private_dir(dir: &Path) -> Result<(), LocalError> {
    let io = |source| LocalError::DataDir {
        path: dir.to_owned(),
        source,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        match std::fs::metadata(dir) {
            Ok(meta) => refuse_open(dir, meta.permissions().mode(), "700"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io),
            Err(e) => Err(io(e)),
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir).map_err(io)
}

/// Refuses an existing `file` other users can read; makes a new one owner-only.
fn private_file(file: &Path, existed: bool) -> Result<(), LocalError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let io = |source| LocalError::DataDir {
            path: file.to_owned(),
            source,
        };
        let meta = std::fs::metadata(file).map_err(io)?;
        if existed {
            return refuse_open(file, meta.permissions().mode(), "600");
        }
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    let _ = (file, existed);
    Ok(())
}

fn refuse_open(path: &Path, mode: u32, fix: &'static str) -> Result<(), LocalError> {
    if mode & 0o077 != 0 {
        return Err(LocalError::TooOpen {
            path: path.to_owned(),
            mode: mode & 0o777,
            fix,
        });
    }
    Ok(())
}

/// Reads the dev secret kept in `data_dir`, creating a random one on first use. It is the
/// key of every dev token, so it is written owner-readable only.
pub fn dev_secret(data_dir: &Path) -> Result<Vec<u8>, LocalError> {
    let path = data_dir.join(SECRET_FILE);
    let io = |source| LocalError::DataDir {
        path: path.clone(),
        source,
    };
    private_dir(data_dir)?;
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() >= 32 => {
            private_file(&path, true)?;
            return Ok(text.trim().as_bytes().to_vec());
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    new_dev_secret(&path)
}

/// Replaces the dev secret with a new random one: every dev token minted before is refused
/// by a server started after (`tagcfg rotate-dev-secret`).
pub fn rotate_dev_secret(data_dir: &Path) -> Result<(), LocalError> {
    private_dir(data_dir)?;
    new_dev_secret(&data_dir.join(SECRET_FILE)).map(|_| ())
}

fn new_dev_secret(path: &Path) -> Result<Vec<u8>, LocalError> {
    let io = |source| LocalError::DataDir {
        path: path.to_owned(),
        source,
    };
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| io(std::io::Error::other(e.to_string())))?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(path, &secret).map_err(io)?;
    Ok(secret.into_bytes())
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// Reads the store keyring kept in `data_dir`, creating one with a random key on first use.
/// With it the store seals every `secret_config_` (secure-backend) value at rest.
pub fn store_keyring(data_dir: &Path) -> Result<Keyring, LocalError> {
    let path = data_dir.join(KEYRING_FILE);
    private_dir(data_dir)?;
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            private_file(&path, true)?;
            Ok(Keyring::parse(&text)?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let keyring = Keyring::generate()?;
            save_keyring(&path, &keyring)?;
            Ok(keyring)
        }
        Err(source) => Err(LocalError::DataDir { path, source }),
    }
}

/// Writes the keyring whole or not at all (a new file renamed over the old): a crash never
/// leaves a keyring that cannot open the store.
fn save_keyring(path: &Path, keyring: &Keyring) -> Result<(), LocalError> {
    let io = |source| LocalError::DataDir {
        path: path.to_owned(),
        source,
    };
    let fresh = path.with_extension("new");
    write_private(&fresh, &keyring.to_text()).map_err(io)?;
    std::fs::rename(&fresh, path).map_err(io)
}

/// What [`rotate_store_key`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    pub key_id: String,
    pub resealed: usize,
}

/// Replaces the store key: adds a new key to the keyring, reseals every secret value under
/// it in one transaction, then drops the old keys. The server must be stopped (the store
/// is opened here). A crash in between leaves old and new keys in the keyring, so every
/// row still opens, and running it again finishes the job.
pub fn rotate_store_key(data_dir: &Path, routes: &RoutingTable) -> Result<Rotated, LocalError> {
    let path = data_dir.join(KEYRING_FILE);
    let current = store_keyring(data_dir)?;
    // Opened first: a running server holds the file's lock, and then nothing changes.
    let store_path = data_dir.join(STORE_FILE);
    let store = RedbStore::open(&store_path).map_err(|e| match e {
        tagged_routing::Error::Backend(m) if m.contains("already open") => LocalError::InUse(store_path.clone()),
        other => other.into(),
    })?;
    let both = current.with_new_key()?;
    save_keyring(&path, &both)?;
    let key_id = both.current_id().to_owned();
    let only_new = both.current_only()?;
    let store = store.with_keyring(both);
    let resealed = store.reseal(routes)?;
    drop(store);
    save_keyring(&path, &only_new)?;
    Ok(Rotated { key_id, resealed })
}

/// A running local server. Dropping it does not stop it; call [`LocalServer::shutdown`].
pub struct LocalServer {
    pub addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    pub hub: Arc<Hub>,
    pub store: Arc<TaggedStore>,
    pub feed: InProcessFeed,
    /// The dev secret (`None` with an identity provider).
    pub secret: Option<Vec<u8>>,
    pub seeded: bool,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<()>,
    push_server: PushServer,
    forwarder: JoinHandle<()>,
}

impl LocalConfig {
    /// Free ports on 127.0.0.1, the default routing table, no demo data, the default tenant
    /// limits and dev tokens: what the tests and benchmarks start (change fields with
    /// `LocalConfig { seed_demo_data: true, ..LocalConfig::on_free_ports(dir) }`).
    pub fn on_free_ports(data_dir: impl Into<PathBuf>) -> Self {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        LocalConfig {
            addr: any_port,
            grpc_addr: any_port,
            data_dir: data_dir.into(),
            routes: RoutingTable::default(),
            seed_demo_data: false,
            tenant_limits: http_api::TenantLimits::default(),
            identity_provider: None,
            conn_limits: ConnLimits::default(),
            access_log_sample: http_api::AccessLog::DEFAULT_SAMPLE,
            max_streams_per_tenant: push::service::DEFAULT_MAX_STREAMS_PER_TENANT,
            store_cache_mib: DEFAULT_STORE_CACHE_MIB,
            commit_slice: Some(DEFAULT_COMMIT_SLICE),
        }
    }
}

impl LocalServer {
    /// Opens the store, starts the push server, seeds the demo data on first start,
    /// binds and starts serving HTTP.
    pub async fn start(config: LocalConfig) -> Result<Self, LocalError> {
        private_dir(&config.data_dir)?;
        let (secret, verifier) = match config.identity_provider {
            Some(idp) => {
                let idp = tenant_auth::VerifierConfig {
                    dev_secret: None,
                    ..idp
                };
                (None, tenant_auth::Verifier::new(idp)?)
            }
            None => {
                let secret = dev_secret(&config.data_dir)?;
                let verifier = dev::verifier(&secret)?;
                (Some(secret), verifier)
            }
        };
        let verifier = Arc::new(verifier);
        let feed = InProcessFeed::new(4096);
        let store_path = config.data_dir.join(STORE_FILE);
        let existed = store_path.exists();
        let redb = RedbStore::open_with_cache(&store_path, config.store_cache_mib)?
            .with_commit_slice(config.commit_slice)
            .with_sink(Arc::new(feed.clone()))
            .with_keyring(store_keyring(&config.data_dir)?);
        private_file(&store_path, existed)?;
        // Secrets a store of an earlier version kept in clear are sealed now.
        let sealed = redb.reseal(&config.routes)?;
        if sealed > 0 {
            tracing::info!(sealed, "sealed secret values that were stored in clear");
        }
        let store = Arc::new(TaggedStore::single(
            config.routes.clone(),
            Arc::new(redb),
            StoreLimits::default(),
        ));

        // The push server, fed by the in-process feed (subscribed before anything writes).
        // Both servers see the store fenced: a tenant request's calls stay in its layers.
        let fenced: Arc<dyn tagged_routing::ConfigStore> = Arc::new(tagged_routing::scope::Fenced::new(
            store.clone(),
            tagged_routing::scope::Fence::RequestTenant,
        ));
        let hub = Arc::new(Hub::new(
            fenced.clone(),
            Arc::new(config.routes.clone()),
            HubConfig::default(),
        ));
        let forwarder = tokio::spawn(forward(feed.subscribe(), hub.clone()));
        // One set of buckets for both servers: a tenant's read limit holds across HTTP
        // reads and gRPC Get/Watch together.
        let limiter = Arc::new(TenantLimiter::new(config.tenant_limits));
        let service = PushService::new(
            hub.clone(),
            Arc::new(config.routes.clone()),
            verifier.clone(),
            None,
            HEARTBEAT,
        )
        .with_tenant_limiter(limiter.clone())
        .with_max_streams_per_tenant(config.max_streams_per_tenant);
        let push_server = PushServer::start(config.grpc_addr, service, config.conn_limits)
            .await
            .map_err(|source| LocalError::Bind {
                addr: config.grpc_addr,
                source,
            })?;

        let seeded = config.seed_demo_data && seed_demo_data(&store).await?;
        let app = http_api::router(
            http_api::AppState::new(fenced, config.routes, verifier)
                .with_tenant_limiter(limiter)
                .with_access_log(http_api::AccessLog::sampling(config.access_log_sample))
                .with_request_timeout(config.conn_limits.request_timeout),
        );
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| LocalError::Bind {
                addr: config.addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(LocalError::Serve)?;
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let limits = config.conn_limits;
        let task = tokio::spawn(async move {
            serving::serve_http(listener, &limits, app, async {
                let _ = stopped.await;
            })
            .await
        });
        Ok(LocalServer {
            addr,
            grpc_addr: push_server.addr,
            hub,
            store,
            feed,
            secret,
            seeded,
            shutdown,
            task,
            push_server,
            forwarder,
        })
    }

    /// A dev operator token (writes the shared and tier layers, assigns tiers).
    pub fn operator_token(&self) -> Result<String, LocalError> {
        let secret = self.secret.as_deref().ok_or(LocalError::NoDevTokens)?;
        Ok(dev::mint_operator(secret, "operator-dev", BANNER_TOKEN_TTL_SECS)?)
    }

    /// A dev token for `tenant`.
    pub fn token(&self, tenant: &str, scopes: &[Scope]) -> Result<String, LocalError> {
        let tenant = TenantId::parse(tenant)?;
        let secret = self.secret.as_deref().ok_or(LocalError::NoDevTokens)?;
        Ok(dev::mint(
            secret,
            &tenant,
            &format!("{tenant}-dev"),
            scopes,
            BANNER_TOKEN_TTL_SECS,
        )?)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// Stops accepting, finishes in-flight requests and closes the store.
    pub async fn shutdown(self) -> Result<(), LocalError> {
        self.forwarder.abort();
        self.push_server.shutdown().await.map_err(LocalError::Serve)?;
        let _ = self.shutdown.send(());
        self.task
            .await
            .map_err(|e| LocalError::Serve(std::io::Error::other(e.to_string())))
    }
}

/// How often an idle watch stream gets a heartbeat.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(15);

/// Moves changes from the in-process feed into the hub. A lagging receiver lost some:
/// the hub reads them back from the store's change log.
async fn forward(mut feed: tokio::sync::broadcast::Receiver<tagged_routing::Change>, hub: Arc<Hub>) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match feed.recv().await {
            Ok(change) => {
                if let Err(e) = hub.publish(change).await {
                    tracing::warn!(error = %e, "the hub refused a change");
                }
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "the hub lagged behind the feed; catching up from the store");
                if let Err(e) = hub.catch_up().await {
                    tracing::warn!(error = %e, "catch-up failed");
                }
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Writes the demo keys when the store has never been written; returns whether it did.
pub async fn seed_demo_data(store: &TaggedStore) -> Result<bool, LocalError> {
    for owner in DEMO_TENANTS
        .iter()
        .map(|t| TenantId::parse(t).map(Owner::Tenant))
        .chain([Ok(Owner::Shared)])
    {
        if store.head_revision(&owner?).await?.0 > 0 {
            return Ok(false);
        }
    }
    let shared_region = ("_shared", "param_config_region/default", r#""eu-west-1""#);
    let demo = [
        (
            "acme",
            "tenant_config_flags/checkout",
            r#"{"enabled":true,"rollout_percent":25}"#,
        ),
        ("acme", "tenant_config_limits/api", r#"{"requests_per_minute":600}"#),
        (
            "acme",
            "param_config_payments/endpoint",
            r#""https://payments.acme.example/v2""#,
        ),
        (
            "acme",
            "secret_config_payments/api-key",
            r#""sk_demo_acme_not_a_real_key""#,
        ),
        (
            "globex",
            "tenant_config_flags/checkout",
            r#"{"enabled":false,"rollout_percent":0}"#,
        ),
        (
            "globex",
            "param_config_payments/endpoint",
            r#""https://payments.globex.example/v1""#,
        ),
        shared_region,
    ];
    for (owner, key, value) in demo {
        let owner = Owner::parse(owner)?;
        let Ok(key) = store.routes().parse_key(key) else {
            // A custom routing table may not route the demo tags; skip those keys.
            continue;
        };
        store
            .put(
                &owner,
                &key,
                &JsonText::parse(value)?,
                Precondition::CreateOnly,
                "tagcfg-demo",
            )
            .await?;
    }
    Ok(true)
}
