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
//! - per-tenant token buckets for reads and writes ([`serving::TenantLimiter`], shared
//!   with the gRPC server in `tagcfg serve`): 429 + `Retry-After`;
//! - `handlers`: thin handlers: parse, check scope, call the store, shape the answer;
//!   every write is checked against the schema that governs its key first;
//! - `change_sets`: several writes of one layer, all or nothing (`/v1/config:batchWrite`);
//! - `revert`: a key back to a version, a layer back to a revision, as new writes;
//! - [`governance`]: schema registrations (`/v1/schemas`) and effective values with
//!   provenance (`/v1/effective`).

mod auth;
pub mod cache;
mod change_sets;
mod conditional;
pub mod governance;
mod handlers;
pub mod problem;
mod revert;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tagged_routing::{ConfigStore, RoutingTable};
use tenant_auth::Verifier;

pub use auth::Caller;
pub use cache::{CacheCounts, CacheMetrics, CachedStore};
pub use problem::ApiError;
pub use serving::{TenantLimiter, TenantLimits};

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

/// Which requests the access log records: every write and every refusal (except 429), and
/// one in `sample_reads` of the successful reads and of the 429s — the lines a flood or a
/// hot read path would write by the thousand a second. Measured: one line per read cost
/// about 15 % of read throughput on a 2-core machine (docs/BENCHMARKS.md).
#[derive(Debug)]
pub struct AccessLog {
    /// `TAGCFG_ACCESS_LOG_SAMPLE` (default 10; 1 records every request).
    pub sample_reads: u64,
    seen: std::sync::atomic::AtomicU64,
}

impl AccessLog {
    pub const DEFAULT_SAMPLE: u64 = 10;

    pub fn sampling(sample_reads: u64) -> Self {
        AccessLog {
            sample_reads: sample_reads.max(1),
            seen: Default::default(),
        }
    }

    pub fn from_lookup(get: &impl tagged_routing::env::Lookup) -> Result<Self, tagged_routing::env::EnvError> {
        let n = tagged_routing::env::number(get, "TAGCFG_ACCESS_LOG_SAMPLE", Self::DEFAULT_SAMPLE)?;
        if n == 0 {
            return Err(tagged_routing::env::EnvError::invalid(
                "TAGCFG_ACCESS_LOG_SAMPLE",
                "must be at least 1 (switch the log off with TAGCFG_LOG=info,tagcfg::access=off)",
            ));
        }
        Ok(Self::sampling(n))
    }

    /// `Some(1 in how many)` when this request gets a line.
    fn should_log(&self, method: &axum::http::Method, status: axum::http::StatusCode) -> Option<u64> {
        use axum::http::{Method, StatusCode};
        let read = *method == Method::GET || *method == Method::HEAD;
        let sampled = (read && (status.is_success() || status == StatusCode::NOT_MODIFIED))
            || status == StatusCode::TOO_MANY_REQUESTS;
        if !sampled || self.sample_reads == 1 {
            return Some(1);
        }
        let n = self.seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        n.is_multiple_of(self.sample_reads).then_some(self.sample_reads)
    }
}

impl Default for AccessLog {
    fn default() -> Self {
        Self::sampling(Self::DEFAULT_SAMPLE)
    }
}

/// What the handlers share. axum clones the state into every middleware layer and handler
/// of every request, so it is one `Arc` (one reference count to move) rather than its
/// fields' five; the fields read through `Deref`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The fields of [`AppState`].
#[derive(Clone)]
pub struct Shared {
    pub store: Arc<dyn ConfigStore>,
    pub routes: Arc<RoutingTable>,
    pub verifier: Arc<Verifier>,
    pub max_body_bytes: usize,
    pub request_timeout: std::time::Duration,
    pub access_log: Arc<AccessLog>,
    limiter: Arc<TenantLimiter>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(store: Arc<dyn ConfigStore>, routes: RoutingTable, verifier: Arc<Verifier>) -> Self {
        AppState(Arc::new(Shared {
            store,
            routes: Arc::new(routes),
            verifier,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            access_log: Arc::default(),
            limiter: Arc::new(TenantLimiter::new(TenantLimits::default())),
        }))
    }

    /// Per-tenant request rates other than [`TenantLimits::default`].
    pub fn with_tenant_limits(self, limits: TenantLimits) -> Self {
        self.with_tenant_limiter(Arc::new(TenantLimiter::new(limits)))
    }

    /// Buckets shared with another server of the same process (the gRPC `Get` of
    /// `tagcfg serve`), so a tenant's limit holds across both.
    pub fn with_tenant_limiter(mut self, limiter: Arc<TenantLimiter>) -> Self {
        Arc::make_mut(&mut self.0).limiter = limiter;
        self
    }

    /// Access-log sampling other than [`AccessLog::default`].
    pub fn with_access_log(mut self, access_log: AccessLog) -> Self {
        Arc::make_mut(&mut self.0).access_log = Arc::new(access_log);
        self
    }

    /// A request deadline other than [`DEFAULT_REQUEST_TIMEOUT`].
    pub fn with_request_timeout(mut self, timeout: std::time::Duration) -> Self {
        Arc::make_mut(&mut self.0).request_timeout = timeout;
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
        .route("/v1/config:batchWrite", post(change_sets::batch_write))
        .route(
            "/v1/config/{*key}",
            get(handlers::get_or_history)
                .put(handlers::put)
                .delete(handlers::delete)
                .post(revert::revert_key),
        )
        .route("/v1/changes", get(handlers::changes))
        .route("/v1/revert", post(revert::revert_layer))
        .route("/v1/schemas", get(governance::list_schemas))
        .route(
            "/v1/schemas/{*path}",
            get(governance::get_schema)
                .put(governance::put_schema)
                .delete(governance::delete_schema),
        )
        .route("/v1/effective", get(governance::effective))
        .route(
            "/v1/tenants/{tenant}",
            get(handlers::get_tenant).put(handlers::put_tenant),
        )
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(axum::middleware::from_fn_with_state(state.clone(), handlers::deadline))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            handlers::access_log,
        ))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::AccessLog;
    use axum::http::{Method, StatusCode};

    #[test]
    fn the_access_log_samples_successful_reads_and_429s_and_keeps_everything_else() {
        let log = AccessLog::sampling(10);
        let reads: Vec<_> = (0..30).map(|_| log.should_log(&Method::GET, StatusCode::OK)).collect();
        assert_eq!(reads.iter().filter(|r| **r == Some(10)).count(), 3);
        assert_eq!(reads.iter().filter(|r| r.is_none()).count(), 27);
        let throttled = (0..20)
            .filter(|_| log.should_log(&Method::GET, StatusCode::TOO_MANY_REQUESTS).is_some())
            .count();
        assert_eq!(throttled, 2);
        for _ in 0..5 {
            assert_eq!(log.should_log(&Method::PUT, StatusCode::OK), Some(1));
            assert_eq!(log.should_log(&Method::GET, StatusCode::NOT_FOUND), Some(1));
            assert_eq!(log.should_log(&Method::GET, StatusCode::INTERNAL_SERVER_ERROR), Some(1));
        }
        let every = AccessLog::sampling(1);
        assert!((0..5).all(|_| every.should_log(&Method::GET, StatusCode::OK) == Some(1)));
    }
}
