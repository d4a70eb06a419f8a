//! The HTTP client behind the CLI's data commands: one request each, the answer printed
//! as JSON, problems turned into a one-line error.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("cannot reach {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("{status} {code}: {detail}")]
    Problem { status: u16, code: String, detail: String },
    #[error("unexpected answer ({status}): {body}")]
    Unexpected { status: u16, body: String },
    #[error("{0}")]
    Usage(String),
}

/// Where and as whom the CLI talks.
pub struct Remote {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// What a request may add.
#[derive(Default)]
pub struct RequestOptions<'a> {
    pub body: Option<String>,
    pub headers: Vec<(&'a str, String)>,
}

impl Remote {
    pub fn new(base: &str, token: Option<String>) -> Result<Self, RemoteError> {
        let http = tenant_auth::http_client(Duration::from_secs(30))
            .map_err(|e| RemoteError::Usage(format!("HTTP client: {e}")))?;
        Ok(Remote {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    /// Sends one request; returns the body exactly as received (empty for 204 / 304), so
    /// values are printed with the same text they were written with.
    pub async fn call(&self, method: Method, path: &str, options: RequestOptions<'_>) -> Result<String, RemoteError> {
        let url = format!("{}{}", self.base, path);
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        for (name, value) in options.headers {
            request = request.header(name, value);
        }
        if let Some(body) = options.body {
            request = request.header("content-type", "application/json").body(body);
        }
        let response = request.send().await.map_err(|source| RemoteError::Unreachable {
            url: self.base.clone(),
            source,
        })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            return Ok(String::new());
        }
        if status.is_success() {
            return Ok(text);
        }
        match serde_json::from_str::<Value>(&text).ok() {
            Some(p) if p.get("code").is_some() => Err(RemoteError::Problem {
                status: status.as_u16(),
                code: p["code"].as_str().unwrap_or_default().to_owned(),
                detail: p["detail"].as_str().unwrap_or_default().to_owned(),
            }),
            _ => Err(RemoteError::Unexpected {
                status: status.as_u16(),
                body: text,
            }),
        }
    }
}
