//! # watch-server: the push server of the AWS deployment
//!
//! Runs on ECS/Fargate behind Cloud Map. Tenants' services hold `Watch` streams; the
//! cache-refresher Lambda calls `Refresh` with every change; misses and replays read
//! DynamoDB + SSM. `main.rs` only reads [`Config`] from the environment, builds the AWS
//! clients once and calls [`start`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use adapters::aws::scoped::{TenantRole, TenantScopedStores};
use adapters::aws::{AwsSettings, Clients};
use push::{Hub, HubConfig, PushServer, PushService};
use serving::{ConnLimits, TenantLimiter, TenantLimits};
use tagged_routing::env::{self, EnvError, Lookup};
use tagged_routing::scope::{Fence, Fenced};
use tagged_routing::RoutingTable;
use tenant_auth::service::{checked_secret, ServiceVerifier};
use tenant_auth::{Verifier, VerifierConfig};

/// Everything the watch server reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `TAGCFG_WATCH_ADDR` (default `127.0.0.1:50051`; `0.0.0.0:50051` in a container).
    pub addr: SocketAddr,
    pub routes: RoutingTable,
    pub aws: AwsSettings,
    pub auth: VerifierConfig,
    /// `TAGCFG_SERVICE_SECRET`: the key of the cache-refresher's service credential.
    pub service_secret: Vec<u8>,
    /// `TAGCFG_HEARTBEAT_SECS` (default 15).
    pub heartbeat: Duration,
    /// `TAGCFG_MAX_STREAMS_PER_TENANT` (default [`push::service::DEFAULT_MAX_STREAMS_PER_TENANT`]).
    pub max_streams_per_tenant: usize,
    /// Per-tenant `Get`/`Watch` rate (`TAGCFG_TENANT_READS_PER_SEC`, `TAGCFG_TENANT_READ_BURST`).
    pub tenant_limits: TenantLimits,
    /// Connection cap, timeouts and HTTP/2 limits (`TAGCFG_MAX_CONNECTIONS`, …: [`ConnLimits`]).
    pub conn_limits: ConnLimits,
    /// `TAGCFG_TENANT_ROLE_ARN` and friends: a tenant's `Get` and `Watch` reads on
    /// credentials scoped to it (`adapters::aws::scoped`); `None`: the server's own role.
    pub tenant_role: Option<TenantRole>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error("{0}")]
    Auth(#[from] tenant_auth::AuthError),
    #[error("{0}")]
    Store(#[from] tagged_routing::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

impl Config {
    pub fn from_lookup(get: &impl Lookup) -> Result<Self, EnvError> {
        let addr = get("TAGCFG_WATCH_ADDR").unwrap_or_else(|| "127.0.0.1:50051".into());
        let addr = addr
            .parse()
            .map_err(|_| EnvError::invalid("TAGCFG_WATCH_ADDR", format!("'{addr}' is not host:port")))?;
        let service_secret = checked_secret("TAGCFG_SERVICE_SECRET", env::required(get, "TAGCFG_SERVICE_SECRET")?)?;
        let (routes, aws) = (env::routes(get)?, AwsSettings::from_lookup(get)?);
        let auth = VerifierConfig::from_lookup(get)?;
        if auth.dev_secret.is_some() {
            // Whoever holds a dev secret mints any tenant's token: never in a deployment.
            if get("TAGCFG_DEV").as_deref() != Some("1") {
                return Err(EnvError::invalid(
                    "TAGCFG_DEV_SECRET",
                    "dev tokens are refused by a deployed watch server (set TAGCFG_DEV=1 for a local run)",
                ));
            }
            if auth.issuer.is_none() || auth.audiences.is_empty() {
                return Err(EnvError::Missing(
                    "TAGCFG_ISSUER and TAGCFG_AUDIENCES (required with TAGCFG_DEV_SECRET)".into(),
                ));
            }
        }
        Ok(Config {
            addr,
            routes,
            aws,
            auth,
            service_secret,
            heartbeat: Duration::from_secs(env::number(get, "TAGCFG_HEARTBEAT_SECS", 15)?.max(1)),
            max_streams_per_tenant: env::count(
                get,
                "TAGCFG_MAX_STREAMS_PER_TENANT",
                push::service::DEFAULT_MAX_STREAMS_PER_TENANT,
            )?,
            conn_limits: ConnLimits::from_lookup(get)?,
            tenant_limits: TenantLimits::from_lookup(get)?,
            tenant_role: TenantRole::from_lookup(get)?,
        })
    }
}

/// Builds the store stack and starts serving: TaggedStore (the server's own role; the feed's
/// `Refresh` reads) → TenantScopedStores when a tenant role is configured (a tenant's `Get`
/// and `Watch` reads on its own credentials) → Fenced (held to that tenant's layer) → Hub.
pub async fn start(config: Config, clients: &Clients, sdk: &aws_config::SdkConfig) -> Result<PushServer, StartError> {
    let store = TenantScopedStores::server_store(clients, sdk, config.routes.clone(), &config.aws, config.tenant_role)?;
    let store = Arc::new(Fenced::new(store, Fence::RequestTenant));
    let routes = Arc::new(config.routes);
    let hub = Arc::new(Hub::new(store, routes.clone(), HubConfig::default()));
    let service = PushService::new(
        hub,
        routes,
        Arc::new(Verifier::new(config.auth)?),
        Some(Arc::new(ServiceVerifier::new(&config.service_secret)?)),
        config.heartbeat,
    )
    .with_max_streams_per_tenant(config.max_streams_per_tenant)
    .with_tenant_limiter(Arc::new(TenantLimiter::new(config.tenant_limits)));
    PushServer::start(config.addr, service, config.conn_limits)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.addr,
            source,
        })
}
