//! # http-api: the tagcfg HTTP API as one axum [`Router`]
//!
//! The same router serves `tagcfg serve` locally and the `config-api` Lambda (through
//! `lambda_http`), so both answer identically. Map of the crate:
//!
//! - [`router`] and [`AppState`]: the routes (documented in `openapi.json`) over any
//!   [`tagged_routing::ConfigStore`]; a tenant's reads resolve tenant → tier → shared
//!   through [`tagged_routing::layers`];
//! - `auth`: the [`Caller`] extractor — the tenant comes only from the verified bearer
//!   token, never from the path, query, body or a header of the client's choosing — and
//!   who may address which layer (tenants their own; operators shared and tiers);
//! - `conditional`: ETags and the `If-Match` / `If-None-Match` preconditions;
//! - [`problem`]: the one place that maps every error to an HTTP status and an
//!   `application/problem+json` body;
//! - [`cache`]: the revision-validated read cache the Lambda wraps its store in;
//! - [`limits`]: per-tenant token buckets for reads and writes (429 + `Retry-After`);
//! - `handlers`: thin handlers: parse, check scope, call the store, shape the answer.

mod auth;
pub mod cache;
mod conditional;
mod handlers;
pub mod limits;
pub mod problem;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tagged_routing::{ConfigStore, RoutingTable};
use tenant_auth::Verifier;

pub use auth::Caller;
pub use cache::{CacheCounts, CacheMetrics, CachedStore};
pub use limits::TenantLimits;
pub use problem::ApiError;

/// Requests larger than this are refused with 413 before any handler runs. Values are
/// further limited per backend (DynamoDB 350 KiB, SSM 4 or 8 KB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// The most items one list page or one batchGet may hold.
pub const MAX_PAGE: usize = 1000;
pub const MAX_BATCH_KEYS: usize = 100;

/// How long a request may take before it is answered 503 `request_timeout`.
pub const DEFAULT_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The `tracing` target of the access log (one `info` line per request): switch it off
/// without losing other logs with `TAGCFG_LOG=info,tagcfg::access=off`.
pub const ACCESS_LOG: &str = "tagcfg::access";

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn ConfigStore>,
    pub routes: Arc<RoutingTable>,
    pub verifier: Arc<Verifier>,
    pub max_body_bytes: usize,
    pub request_timeout: std::time::Duration,
    limiter: Arc<limits::Limiter>,
}

impl AppState {
    pub fn new(store: Arc<dyn ConfigStore>, routes: RoutingTable, verifier: Arc<Verifier>) -> Self {
        AppState {
            store,
            routes: Arc::new(routes),
            verifier,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            limiter: Arc::new(limits::Limiter::new(TenantLimits::default())),
        }
    }

    /// Per-tenant request rates other than [`TenantLimits::default`].
    pub fn with_tenant_limits(mut self, limits: TenantLimits) -> Self {
        self.limiter = Arc::new(limits::Limiter::new(limits));
        self
    }

    /// A request deadline other than [`DEFAULT_REQUEST_TIMEOUT`].
    pub fn with_request_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.request_timeout = timeout;
        self
    }
}

/// The whole HTTP API.
pub fn router(state: AppState) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route("/healthz", get(handlers::healthz))
        .route("/openapi.json", get(handlers::openapi))
        .route("/v1/config", get(handlers::list))
        .route("/v1/config:batchGet", post(handlers::batch_get))
        .route(
            "/v1/config/{*key}",
            get(handlers::get_or_history)
                .put(handlers::put)
                .delete(handlers::delete),
        )
        .route("/v1/changes", get(handlers::changes))
        .route(
            "/v1/tenants/{tenant}",
            get(handlers::get_tenant).put(handlers::put_tenant),
        )
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), handlers::deadline))
        .layer(axum::middleware::from_fn(handlers::access_log))
        .with_state(state)
}
