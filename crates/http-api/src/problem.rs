//! The one place that turns errors into HTTP answers: a status, an
//! `application/problem+json` body `{type, title, status, detail, code}` and, where it
//! helps, `Retry-After` or `WWW-Authenticate`. Bad input never becomes a 5xx.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tagged_routing::Error;
use tenant_auth::AuthError;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Domain(#[from] Error),
    #[error(transparent)]
    Auth(AuthError),
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("no such route")]
    NoRoute,
    /// A revert to a version whose value is not kept (409 `not_kept`, not retryable).
    #[error("{0}")]
    NotKept(String),
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("the request took longer than {after:?}")]
    Timeout { after: std::time::Duration },
    #[error("{total} stored value(s) break this registration; ?dry_run=true lists them, ?force=true registers anyway")]
    SchemaConflict {
        violations: Vec<crate::governance::StoredViolation>,
        total: usize,
    },
}

impl ApiError {
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    pub fn bad_header(name: &str, problem: &str) -> Self {
        ApiError::bad_request("bad_header", format!("header {name} {problem}"))
    }

    /// Status and stable code of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Domain(e) => match e {
                Error::InvalidKey(_) => (StatusCode::BAD_REQUEST, "invalid_key"),
                Error::UnknownTag(_) => (StatusCode::BAD_REQUEST, "unknown_tag"),
                Error::InvalidTenant(_) => (StatusCode::BAD_REQUEST, "invalid_tenant"),
                Error::InvalidTier(_) => (StatusCode::BAD_REQUEST, "invalid_tier"),
                Error::InvalidRoutingTable(_) => (StatusCode::BAD_REQUEST, "invalid_routing_table"),
                Error::InvalidValue(_) => (StatusCode::BAD_REQUEST, "invalid_value"),
                Error::ValueTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "value_too_large"),
                Error::ValueTooDeep { .. } => (StatusCode::BAD_REQUEST, "value_too_deep"),
                Error::NotFound => (StatusCode::NOT_FOUND, "not_found"),
                Error::VersionMismatch { .. } => (StatusCode::PRECONDITION_FAILED, "version_mismatch"),
                Error::AlreadyExists(_) => (StatusCode::PRECONDITION_FAILED, "already_exists"),
                Error::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
                Error::RevisionNotReached { .. } => (StatusCode::CONFLICT, "revision_not_reached"),
                Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
                Error::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, "throttled"),
                Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
                Error::Backend(_) => (StatusCode::INTERNAL_SERVER_ERROR, "backend_error"),
                Error::InvalidSchema(_) => (StatusCode::BAD_REQUEST, "invalid_schema"),
                Error::SchemaViolation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "schema_violation"),
                Error::OverrideDenied(_) => (StatusCode::FORBIDDEN, "override_denied"),
                Error::NotAtomic(_) => (StatusCode::BAD_REQUEST, "not_atomic"),
            },
            ApiError::Auth(e) if e.is_unavailable() => (StatusCode::SERVICE_UNAVAILABLE, e.code()),
            ApiError::Auth(e) if e.is_wrong_principal() => (StatusCode::FORBIDDEN, e.code()),
            ApiError::Auth(e) => (StatusCode::UNAUTHORIZED, e.code()),
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::NoRoute => (StatusCode::NOT_FOUND, "no_route"),
            ApiError::NotKept(_) => (StatusCode::CONFLICT, "not_kept"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Timeout { .. } => (StatusCode::SERVICE_UNAVAILABLE, "request_timeout"),
            ApiError::SchemaConflict { .. } => (StatusCode::CONFLICT, "schema_conflict"),
        }
    }

    fn detail(&self) -> String {
        match self {
            // Internal details stay in the logs.
            ApiError::Domain(Error::Backend(_)) => "the backend failed; the request id is in the logs".into(),
            // The backend's own message (an AWS error text) is for the logs, not the caller.
            ApiError::Domain(Error::Unavailable(_)) => {
                "a backend is unavailable for now; retry after the Retry-After delay".into()
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        // `?` of the text, not `%`: a message can quote a raw key or claim, and Debug
        // escapes its newlines and terminal escapes instead of writing them into the log.
        if status.is_server_error() {
            tracing::error!(code, error = ?self.to_string(), "request failed");
        } else {
            tracing::debug!(code, error = ?self.to_string(), "request refused");
        }
        let mut body = json!({
            "type": format!("https://tagcfg.dev/problems/{code}"),
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": self.detail(),
            "code": code,
        });
        match &self {
            ApiError::Domain(Error::SchemaViolation(errors)) => body["errors"] = json!(errors),
            ApiError::SchemaConflict { violations, total } => {
                body["violations"] = json!(violations);
                body["total"] = json!(total);
            }
            _ => {}
        }
        let mut response = (status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match &self {
            ApiError::Domain(Error::Throttled { retry_after_secs, .. }) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            // Contention: other writers of the tenant kept winning; nothing was written and
            // the same request may be sent again.
            ApiError::Domain(Error::Unavailable(_))
            | ApiError::Domain(Error::Conflict(_))
            | ApiError::Timeout { .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::Auth(e) if !e.is_unavailable() && !e.is_wrong_principal() => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}
