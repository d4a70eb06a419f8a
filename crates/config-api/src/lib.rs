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

use adapters::aws::{AwsSettings, SsmSettings};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use http_api::{AppState, CacheMetrics, CachedStore};
use lambda_http::RequestExt;
use tagged_routing::{RoutingTable, DEFAULT_ROUTES};
use tenant_auth::{KeySource, Verifier, VerifierConfig, DEFAULT_TENANT_CLAIM};
use tracing::Instrument;

/// A configuration problem, always naming the variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is required but not set")]
    Missing(&'static str),
    #[error("{var}: {problem}")]
    Invalid { var: &'static str, problem: String },
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
}

impl ApiConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    /// Reads the configuration through `get` (tests pass a map).
    ///
    /// | variable | meaning | default |
    /// | --- | --- | --- |
    /// | `TAGCFG_TABLE` | the DynamoDB config table | required |
    /// | `TAGCFG_ROUTES` | tag → backend table | `tenant_config_=dynamodb,param_config_=ssm,secret_config_=ssm-secure` |
    /// | `TAGCFG_SSM_ROOT` | first SSM path segment | `tagcfg` |
    /// | `TAGCFG_SSM_KMS_KEY_ID` | KMS key for SecureString | the account's `alias/aws/ssm` |
    /// | `TAGCFG_SSM_ADVANCED_TIER` | `true` for 8 KB parameters | `false` |
    /// | `TAGCFG_CHANGE_RETENTION_DAYS` | change-log TTL | `7` |
    /// | `TAGCFG_COGNITO_USER_POOL_ID` | derives issuer and JWKS URL (region from the id) | — |
    /// | `TAGCFG_JWKS_URL` / `TAGCFG_JWKS_FILE` | explicit key source | — |
    /// | `TAGCFG_ISSUER` | required `iss` | derived from the pool |
    /// | `TAGCFG_AUDIENCES` | accepted `aud` / `client_id`, comma-separated | any |
    /// | `TAGCFG_TENANT_CLAIM` | claim holding the tenant | `custom:tenantId` |
    /// | `TAGCFG_FRESHNESS_MS` | read-cache freshness window | `250` |
    /// | `TAGCFG_DEV_SECRET` | HS256 dev secret (refused inside Lambda) | — |
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let table = get("TAGCFG_TABLE").ok_or(ConfigError::Missing("TAGCFG_TABLE"))?;
        let routes =
            RoutingTable::parse(&get("TAGCFG_ROUTES").unwrap_or_else(|| DEFAULT_ROUTES.into())).map_err(|e| {
                ConfigError::Invalid {
                    var: "TAGCFG_ROUTES",
                    problem: e.to_string(),
                }
            })?;
        let number = |var: &'static str, default: u64| -> Result<u64, ConfigError> {
            get(var).map_or(Ok(default), |v| {
                v.trim().parse().map_err(|_| ConfigError::Invalid {
                    var,
                    problem: format!("'{v}' is not a whole number"),
                })
            })
        };
        let advanced_tier = match get("TAGCFG_SSM_ADVANCED_TIER").as_deref().map(str::trim) {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "TAGCFG_SSM_ADVANCED_TIER",
                    problem: format!("'{other}' is not true or false"),
                })
            }
        };
        let mut aws = AwsSettings::new(table);
        aws.ssm = SsmSettings {
            root: get("TAGCFG_SSM_ROOT").unwrap_or_else(|| "tagcfg".into()),
            kms_key_id: get("TAGCFG_SSM_KMS_KEY_ID"),
            advanced_tier,
        };
        if aws.ssm.root.contains('/') || aws.ssm.root.is_empty() {
            return Err(ConfigError::Invalid {
                var: "TAGCFG_SSM_ROOT",
                problem: "must be one path segment without '/'".into(),
            });
        }
        aws.change_retention = Duration::from_secs(number("TAGCFG_CHANGE_RETENTION_DAYS", 7)? * 24 * 3600);

        let pool = get("TAGCFG_COGNITO_USER_POOL_ID");
        let cognito_issuer = pool
            .as_deref()
            .map(|pool| {
                let (region, _) = pool.split_once('_').ok_or_else(|| ConfigError::Invalid {
                    var: "TAGCFG_COGNITO_USER_POOL_ID",
                    problem: format!("'{pool}' is not of the form <region>_<id>"),
                })?;
                Ok::<_, ConfigError>(format!("https://cognito-idp.{region}.amazonaws.com/{pool}"))
            })
            .transpose()?;
        let jwks = match (get("TAGCFG_JWKS_URL"), get("TAGCFG_JWKS_FILE"), &cognito_issuer) {
            (Some(url), _, _) => Some(KeySource::Url(url)),
            (None, Some(file), _) => Some(KeySource::File(file.into())),
            (None, None, Some(issuer)) => Some(KeySource::Url(format!("{issuer}/.well-known/jwks.json"))),
            (None, None, None) => None,
        };
        let dev_secret = get("TAGCFG_DEV_SECRET").map(String::into_bytes);
        if jwks.is_none() && dev_secret.is_none() {
            return Err(ConfigError::Missing(
                "TAGCFG_COGNITO_USER_POOL_ID (or TAGCFG_JWKS_URL / TAGCFG_JWKS_FILE)",
            ));
        }
        let issuer = get("TAGCFG_ISSUER").or(cognito_issuer);
        if issuer.is_none() && dev_secret.is_none() {
            return Err(ConfigError::Missing("TAGCFG_ISSUER"));
        }
        let auth = VerifierConfig {
            issuer,
            audiences: get("TAGCFG_AUDIENCES")
                .map(|a| {
                    a.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            tenant_claim: get("TAGCFG_TENANT_CLAIM").unwrap_or_else(|| DEFAULT_TENANT_CLAIM.into()),
            jwks,
            dev_secret,
            ..VerifierConfig::default()
        };
        Ok(ApiConfig {
            routes,
            aws,
            auth,
            freshness: Duration::from_millis(number("TAGCFG_FRESHNESS_MS", 250)?),
        })
    }
}

/// What one execution environment keeps between invocations.
pub struct App {
    pub router: Router,
    pub metrics: Arc<CacheMetrics>,
}

/// Builds the clients, the store stack (TaggedStore → CachedStore) and the router, once.
pub fn build(config: ApiConfig, clients: &adapters::aws::Clients) -> Result<App, ConfigError> {
    let verifier = Verifier::new(config.auth)?;
    let store = adapters::aws::tagged_store(clients, config.routes.clone(), &config.aws)?;
    let cached = CachedStore::new(Arc::new(store), config.freshness);
    let metrics = cached.metrics();
    let state = AppState::new(Arc::new(cached), config.routes, Arc::new(verifier));
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
