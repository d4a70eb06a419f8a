//! # tenant-auth: bearer JWT → [`Principal`] (a tenant's [`TenantContext`] or an operator)
//!
//! The tenant of every request comes from here and nowhere else. A [`Verifier`] checks a
//! token's signature and claims and extracts the tenant, the subject and the scopes:
//!
//! - RS256 / ES256 tokens against a JWKS ([`KeySource`]: a file, or a URL fetched over
//!   HTTPS, cached, and refetched — rate-limited — when a token names an unknown `kid`);
//! - HS256 tokens only when a dev secret is configured, and never inside Lambda
//!   ([`dev`] mints such tokens for `tagcfg serve`).
//!
//! - [`service`]: the credential of internal callers (the cache-refresher), which no tenant
//!   token can pass for.
//! - [`verified`]: tenant tokens verified before, answered from memory until they expire.
//!
//! Every rejection is a distinct [`AuthError`] so logs and tests can tell them apart; the
//! HTTP layer answers all of them with 401, except an unreachable JWKS (503).

mod context;
pub mod dev;
mod error;
mod jwks;
pub mod service;
pub mod verified;
mod verifier;

pub use context::{OperatorContext, Principal, Scope, Scopes, TenantContext, OPERATOR_SCOPE};
pub use error::AuthError;
pub use jwks::KeySource;
pub use verifier::{Verifier, VerifierConfig, DEFAULT_MAX_TOKEN_BYTES, DEFAULT_TENANT_CLAIM};

/// An HTTPS client on rustls with the aws-lc-rs provider — the one the AWS SDK already
/// links, so the binaries carry a single crypto library. Installs that provider as the
/// process default first (reqwest needs one; a second call is a no-op).
pub fn http_client(timeout: std::time::Duration) -> Result<reqwest::Client, reqwest::Error> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder().timeout(timeout).build()
}
