//! # config-api: the HTTP API as an AWS Lambda function
//!
//! The same axum router as `tagcfg serve`, run by `lambda_http` behind API Gateway (HTTP
//! API, payload 2.0), over DynamoDB + SSM and wrapped in the revision-validated read cache.
//!
//! - [`ApiConfig`]: the typed configuration, read once from the environment; a bad or
//!   missing variable stops the cold start with one message naming it.
//! - [`build`]: clients and router, built once per execution environment.
//! - [`metrics`]: CloudWatch Embedded Metric Format lines for the cache counters.

pub mod metrics;

use std::sync::Arc;
use std::time::Duration;

use adapters::aws::scoped::{TenantRole, TenantScopedStores};
use adapters::aws::AwsSettings;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use http_api::{AccessLog, AppState, CacheMetrics, CachedStore, TenantLimits};
use lambda_http::RequestExt;
use tagged_routing::scope::{Fence, Fenced};
use tagged_routing::{env, RoutingTable};
use tenant_auth::{Verifier, VerifierConfig};
use tracing::Instrument;

/// A configuration problem, always naming the variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Env(#[from] env::EnvError),
    #[error("{0}")]
    Auth(#[from] tenant_auth::AuthError),
    #[error("{0}")]
    Store(#[from] tagged_routing::Error),
}

/// Everything the function reads from its environment.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub routes: RoutingTable,
    pub aws: AwsSettings,
    pub auth: VerifierConfig,
    /// `TAGCFG_FRESHNESS_MS`: how long a confirmed head revision vouches for cached values.
    pub freshness: Duration,
    /// `TAGCFG_TENANT_*`: per-tenant request rates in one execution environment.
    pub tenant_limits: TenantLimits,
    /// `TAGCFG_ACCESS_LOG_SAMPLE`: see [`AccessLog`].
    pub access_log_sample: u64,
    /// `TAGCFG_TENANT_ROLE_ARN` and friends: tenant requests on tenant-scoped credentials
    /// (`adapters::aws::scoped`); `None`: every call on the function's own role.
    pub tenant_role: Option<TenantRole>,
}

impl ApiConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env::process_env)
    }

    /// Reads the configuration through `get` (tests pass a map).
    ///
    /// See `AwsSettings::from_lookup` and `VerifierConfig::from_lookup` for the store and
    /// auth variables; besides those:
    ///
    /// | variable | meaning | default |
    /// | --- | --- | --- |
    /// | `TAGCFG_ROUTES` | tag → backend table | `tenant_config_=dynamodb,param_config_=ssm,secret_config_=ssm-secure` |
    /// | `TAGCFG_FRESHNESS_MS` | read-cache freshness window | `250` |
    /// | `TAGCFG_TENANT_READS_PER_SEC`, `_READ_BURST`, `_WRITES_PER_SEC`, `_WRITE_BURST` | per-tenant token buckets ([`TenantLimits`]) | 1000, 2000, 100, 200 |
    /// | `TAGCFG_ACCESS_LOG_SAMPLE` | one access-log line per this many successful reads ([`AccessLog`]) | 10 |
    /// | `TAGCFG_TENANT_ROLE_ARN` | the tenant-access role each tenant request assumes with the session tag `tenant=<id>` ([`TenantRole`]); empty: off | off |
    /// | `TAGCFG_TENANT_CREDENTIALS`, `_CREDENTIALS_SECS`, `_CREDENTIALS_REFRESH_SECS` | tenants whose credentials are kept, session length, refresh margin | 1000, 900, 120 |
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(ApiConfig {
            routes: env::routes(&get)?,
            aws: AwsSettings::from_lookup(&get)?,
            auth: VerifierConfig::from_lookup(&get)?,
            freshness: Duration::from_millis(env::number(&get, "TAGCFG_FRESHNESS_MS", 250)?),
            tenant_limits: TenantLimits::from_lookup(&get)?,
            access_log_sample: AccessLog::from_lookup(&get)?.sample_reads,
            tenant_role: TenantRole::from_lookup(&get)?,
        })
    }
}

/// What one execution environment keeps between invocations.
pub struct App {
    pub router: Router,
    pub metrics: Arc<CacheMetrics>,
}

/// Builds the store stack and the router, once: TaggedStore (the function's own role) →
/// TenantScopedStores when a tenant role is configured (each tenant request on its own
/// credentials) → CachedStore → Fenced (every call of a tenant request held to its own
/// layer). `sdk` is what tenant credentials are layered on.
pub fn build(
    config: ApiConfig,
    clients: &adapters::aws::Clients,
    sdk: &aws_config::SdkConfig,
) -> Result<App, ConfigError> {
    let verifier = Verifier::new(config.auth)?;
    let store = TenantScopedStores::server_store(clients, sdk, config.routes.clone(), &config.aws, config.tenant_role)?;
    let cached = CachedStore::new(store, config.freshness);
    let metrics = cached.metrics();
    let fenced = Fenced::new(Arc::new(cached), Fence::RequestTenant);
    let state = AppState::new(Arc::new(fenced), config.routes, Arc::new(verifier))
        .with_tenant_limits(config.tenant_limits)
        .with_access_log(AccessLog::sampling(config.access_log_sample));
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "config-api".into());
    let emit_metrics = metrics.clone();
    let router = http_api::router(state).layer(axum::middleware::from_fn(move |request: Request, next: Next| {
        let metrics = emit_metrics.clone();
        let function = function.clone();
        async move {
            let request_id = request
                .lambda_context_ref()
                .map(|c| c.request_id.clone())
                .unwrap_or_default();
            let response: Response = next
                .run(request)
                .instrument(tracing::info_span!("invocation", request_id))
                .await;
            if let Some(line) = metrics::emf_line(&function, metrics.take()) {
                println!("{line}");
            }
            response
        }
    }));
    Ok(App { router, metrics })
}
