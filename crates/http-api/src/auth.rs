use std::sync::{Arc, OnceLock};

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::Method;
use tagged_routing::{Layer, Owner, TenantId};
use tenant_auth::{Principal, Scope};

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
pub struct Caller(pub Principal);

/// What a call may touch: which layer, for whom.
pub(crate) enum Access {
    /// A tenant's own layer; its reads resolve through tier and shared.
    Tenant(TenantId),
    /// A platform layer (shared or a tier), addressed by an operator.
    Platform(Owner),
}

impl Access {
    pub(crate) fn owner(&self) -> Owner {
        match self {
            Access::Tenant(t) => Owner::Tenant(t.clone()),
            Access::Platform(o) => o.clone(),
        }
    }
}

fn forbidden(detail: impl Into<String>) -> ApiError {
    ApiError::Domain(tagged_routing::Error::Forbidden(detail.into()))
}

impl Caller {
    pub fn subject(&self) -> &str {
        self.0.subject()
    }

    /// The layer a call addresses, after the rules of who owns what:
    /// - a tenant principal addresses its own tenant (no `?layer`, or `?layer=tenant`) with
    ///   at least `scope`; the shared and tier layers are refused (they belong to operators,
    ///   and reading another tier's layer directly would show what other tenants get);
    /// - an operator addresses `?layer=shared` or `?layer=tier:<name>`, never a tenant's
    ///   own layer: tenant configuration stays with the tenant.
    pub(crate) fn access(&self, layer: Option<&str>, scope: Scope) -> Result<Access, ApiError> {
        let layer = layer.map(Layer::parse).transpose()?;
        match (&self.0, layer) {
            (Principal::Tenant(t), None | Some(Layer::Tenant)) => {
                if t.scopes.allows(scope) {
                    Ok(Access::Tenant(t.tenant.clone()))
                } else {
                    Err(forbidden(format!("this operation needs the {scope} scope")))
                }
            }
            (Principal::Tenant(_), Some(_)) => Err(forbidden(
                "the shared and tier layers belong to platform operators (config:operator)",
            )),
            (Principal::Operator(_), Some(layer @ (Layer::Shared | Layer::Tier(_)))) => {
                Ok(Access::Platform(match layer {
                    Layer::Tier(t) => Owner::Tier(t),
                    _ => Owner::Shared,
                }))
            }
            (Principal::Operator(_), _) => Err(forbidden(
                "an operator token addresses ?layer=shared or ?layer=tier:<name>; a tenant's own layer needs the tenant's token",
            )),
        }
    }

    /// Refuses with 403 unless the caller is an operator.
    pub(crate) fn require_operator(&self) -> Result<(), ApiError> {
        match self.0 {
            Principal::Operator(_) => Ok(()),
            Principal::Tenant(_) => Err(forbidden("this operation needs the config:operator scope")),
        }
    }
}

/// The bearer token of a request, verified once by [`authenticate`] and taken by the
/// [`Caller`] extractor.
struct Verified(Result<Principal, ApiError>);

async fn verify(headers: &axum::http::HeaderMap, state: &AppState) -> Result<Principal, ApiError> {
    let header = match headers.get(AUTHORIZATION) {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| {
            ApiError::Auth(tenant_auth::AuthError::Malformed(
                "non-ASCII Authorization header".into(),
            ))
        })?),
    };
    state
        .verifier
        .verify_authorization(header)
        .await
        .map_err(ApiError::Auth)
}

/// Verifies the request's token before its handler runs, and runs a tenant principal's
/// request as that tenant ([`tagged_routing::scope::as_tenant`]): the fenced stores below
/// then refuse any call that strays from the tenant's own layer. A refused or missing token
/// is kept for the [`Caller`] extractor (routes without one, `/healthz`, never look).
pub(crate) async fn authenticate(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let verified = verify(request.headers(), &state).await;
    let tenant = match &verified {
        Ok(Principal::Tenant(t)) => Some(t.tenant.clone()),
        _ => None,
    };
    request
        .extensions_mut()
        .insert(std::sync::Arc::new(std::sync::Mutex::new(Some(Verified(verified)))));
    match tenant {
        Some(tenant) => tagged_routing::scope::as_tenant(tenant, next.run(request)).await,
        None => next.run(request).await,
    }
}

type VerifiedSlot = std::sync::Arc<std::sync::Mutex<Option<Verified>>>;

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let verified = parts
            .extensions
            .get::<VerifiedSlot>()
            .and_then(|slot| slot.lock().unwrap_or_else(|p| p.into_inner()).take());
        let ctx = match verified {
            Some(Verified(result)) => result?,
            None => verify(&parts.headers, state).await?,
        };
        if let Some(slot) = parts.extensions.get::<RequestTenant>() {
            let _ = slot.0.set(match &ctx {
                Principal::Tenant(t) => t.tenant.to_string(),
                Principal::Operator(_) => "(operator)".to_owned(),
            });
        }
        if let Principal::Tenant(t) = &ctx {
            let access = match parts.method {
                Method::PUT | Method::DELETE | Method::PATCH => serving::tenant_limits::Access::Write,
                _ => serving::tenant_limits::Access::Read,
            };
            state.limiter.check(&t.tenant, access).map_err(ApiError::Domain)?;
        }
        Ok(Caller(ctx))
    }
}
