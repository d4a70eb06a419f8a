//! The HTTP API (`/v1/...`), one request at a time: what the CLI's data commands call, and
//! what the client reads through while its push stream is down.
//!
//! Bodies come back as the exact text the server sent, so a value prints with the same
//! text it was written with; problems (`application/problem+json`) become a typed
//! [`ApiError::Problem`] with the server's code and detail.

use std::time::Duration;

pub use reqwest::Method;
use reqwest::StatusCode;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{status} {code}: {detail}")]
    Problem { status: u16, code: String, detail: String },
    #[error("unexpected answer ({status}): {body}")]
    Unexpected { status: u16, body: String },
    #[error("HTTP client: {0}")]
    Setup(String),
}

/// A tagcfg HTTP API at `base` (the local server or API Gateway), called as one principal.
#[derive(Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
}

/// What a request may add to the method and path.
#[derive(Default)]
pub struct Call<'a> {
    /// JSON text, sent as `application/json`.
    pub body: Option<String>,
    pub headers: Vec<(&'a str, String)>,
}

/// An answer with a 2xx or 304 status.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub etag: Option<String>,
    /// The body exactly as received (empty for 204 and 304).
    pub body: String,
}

impl Api {
    /// `timeout` bounds each whole request.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, ApiError> {
        let http = tenant_auth::http_client(timeout).map_err(|e| ApiError::Setup(e.to_string()))?;
        Ok(Api {
            base: base.trim_end_matches('/').to_owned(),
            http,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends one request with `token` as bearer. A 404 is a [`ApiError::Problem`] like any
    /// other refusal; 2xx and 304 are answers.
    pub async fn send(&self, method: Method, path: &str, token: &str, call: Call<'_>) -> Result<Answer, ApiError> {
        let mut request = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(token);
        for (name, value) in call.headers {
            request = request.header(name, value);
        }
        if let Some(body) = call.body {
            request = request.header("content-type", "application/json").body(body);
        }
        let response = request.send().await.map_err(|e| ApiError::Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        })?;
        let status = response.status();
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.map_err(|e| ApiError::Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        })?;
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            let body = match status {
                StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED => String::new(),
                _ => text,
            };
            return Ok(Answer {
                status: status.as_u16(),
                etag,
                body,
            });
        }
        #[derive(serde::Deserialize)]
        struct Problem {
            code: String,
            #[serde(default)]
            detail: String,
        }
        match serde_json::from_str::<Problem>(&text) {
            Ok(p) => Err(ApiError::Problem {
                status: status.as_u16(),
                code: p.code,
                detail: p.detail,
            }),
            Err(_) => Err(ApiError::Unexpected {
                status: status.as_u16(),
                body: text,
            }),
        }
    }

    /// [`Api::send`], keeping only the body.
    pub async fn call(&self, method: Method, path: &str, token: &str, call: Call<'_>) -> Result<String, ApiError> {
        Ok(self.send(method, path, token, call).await?.body)
    }
}
