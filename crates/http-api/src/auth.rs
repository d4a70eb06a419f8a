use std::sync::{Arc, OnceLock};

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use tenant_auth::{Scope, TenantContext};

use crate::{ApiError, AppState};

/// A slot the access log puts in each request and the [`Caller`] extractor fills, so the
/// log line names the verified tenant.
#[derive(Clone, Default)]
pub(crate) struct RequestTenant(Arc<OnceLock<String>>);

impl RequestTenant {
    pub(crate) fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

/// The verified caller of a request. Extracting it verifies the bearer token; a handler
/// that takes a `Caller` cannot run for an unauthenticated request.
#[derive(Debug, Clone)]
pub struct Caller(pub TenantContext);

impl Caller {
    /// Refuses with 403 unless the token grants `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.0.scopes.allows(scope) {
            Ok(())
        } else {
            Err(ApiError::Domain(tagged_routing::Error::Forbidden(format!(
                "this operation needs the {scope} scope"
            ))))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = match parts.headers.get(AUTHORIZATION) {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| {
                ApiError::Auth(tenant_auth::AuthError::Malformed(
                    "non-ASCII Authorization header".into(),
                ))
            })?),
        };
        let ctx = state
            .verifier
            .verify_authorization(header)
            .await
            .map_err(ApiError::Auth)?;
        if let Some(slot) = parts.extensions.get::<RequestTenant>() {
            let _ = slot.0.set(ctx.tenant.to_string());
        }
        Ok(Caller(ctx))
    }
}
