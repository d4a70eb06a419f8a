//! Dev tokens: HS256 tokens for the local server (`tagcfg serve`, `tagcfg token`). A
//! [`crate::Verifier`] accepts them only when built with the same dev secret, which it
//! refuses to be inside Lambda.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;
use tagged_routing::TenantId;

use crate::{AuthError, Scope, DEFAULT_TENANT_CLAIM, OPERATOR_SCOPE};

/// The issuer of dev tokens.
pub const DEV_ISSUER: &str = "tagcfg-dev";
/// The audience of dev tokens.
pub const DEV_AUDIENCE: &str = "tagcfg";

/// Mints an HS256 token for `tenant` with the given scopes, valid for `ttl_secs`.
pub fn mint(
    secret: &[u8],
    tenant: &TenantId,
    subject: &str,
    scopes: &[Scope],
    ttl_secs: u64,
) -> Result<String, AuthError> {
    let scope: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    sign(
        secret,
        subject,
        &scope.join(" "),
        Some(tenant),
        now().saturating_add(ttl_secs),
    )
}

/// Like [`mint`], with `exp` given as seconds since the Unix epoch (tests of expiry: a
/// verifier accepts a token until `exp` plus its leeway).
pub fn mint_until(
    secret: &[u8],
    tenant: &TenantId,
    subject: &str,
    scopes: &[Scope],
    exp: u64,
) -> Result<String, AuthError> {
    let scope: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    sign(secret, subject, &scope.join(" "), Some(tenant), exp)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Mints an HS256 operator token (scope `config:operator`, no tenant claim).
pub fn mint_operator(secret: &[u8], subject: &str, ttl_secs: u64) -> Result<String, AuthError> {
    sign(secret, subject, OPERATOR_SCOPE, None, now().saturating_add(ttl_secs))
}

fn sign(secret: &[u8], subject: &str, scope: &str, tenant: Option<&TenantId>, exp: u64) -> Result<String, AuthError> {
    let now = now().min(exp);
    let mut claims = json!({
        "iss": DEV_ISSUER,
        "aud": DEV_AUDIENCE,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": exp,
        "token_use": "access",
        "scope": scope,
    });
    if let Some(tenant) = tenant {
        claims[DEFAULT_TENANT_CLAIM] = json!(tenant.as_str());
    }
    encode(&Header::default(), &claims, &EncodingKey::from_secret(secret))
        .map_err(|e| AuthError::Config(format!("cannot sign a dev token: {e}")))
}

/// The verifier of dev tokens signed with `secret`, with the dev issuer and audience: what
/// the local server runs with.
pub fn verifier(secret: &[u8]) -> Result<crate::Verifier, AuthError> {
    crate::Verifier::new(crate::VerifierConfig {
        issuer: Some(DEV_ISSUER.into()),
        audiences: vec![DEV_AUDIENCE.into()],
        dev_secret: Some(secret.to_vec()),
        ..crate::VerifierConfig::default()
    })
}
