//! Reads over the HTTP API while the push stream is down, conditional on the ETag last seen.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::cache::Cached;
use crate::ClientError;

pub(crate) struct HttpFallback {
    http: reqwest::Client,
    base: String,
    etags: Mutex<HashMap<String, String>>,
}

/// What one conditional read found.
pub(crate) enum Polled {
    Unchanged,
    Absent,
    Value(Cached),
}

impl HttpFallback {
    pub fn new(http: reqwest::Client, base: String) -> Self {
        HttpFallback {
            http,
            base,
            etags: Mutex::new(HashMap::new()),
        }
    }

    pub async fn read(&self, key: &str, token: &str) -> Result<Polled, ClientError> {
        let mut request = self
            .http
            .get(format!("{}/v1/config/{key}", self.base))
            .bearer_auth(token);
        let etag = self.etags.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned();
        if let Some(etag) = etag {
            request = request.header("if-none-match", etag);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::Unavailable(e.to_string()))?;
        match response.status().as_u16() {
            304 => Ok(Polled::Unchanged),
            404 => Ok(Polled::Absent),
            401 | 403 => Err(ClientError::Unauthenticated(format!("HTTP {}", response.status()))),
            200 => {
                if let Some(etag) = response.headers().get("etag").and_then(|v| v.to_str().ok()) {
                    self.etags
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(key.to_owned(), etag.to_owned());
                }
                let text = response
                    .text()
                    .await
                    .map_err(|e| ClientError::Unavailable(e.to_string()))?;
                #[derive(serde::Deserialize)]
                struct Item {
                    value: Box<serde_json::value::RawValue>,
                    version: u64,
                    layer: String,
                }
                let item: Item = serde_json::from_str(&text)
                    .map_err(|e| ClientError::Unavailable(format!("bad HTTP answer: {e}")))?;
                Ok(Polled::Value(Cached {
                    value_json: item.value.get().to_owned(),
                    version: item.version,
                    layer: item.layer,
                }))
            }
            other => Err(ClientError::Unavailable(format!("HTTP {other}"))),
        }
    }
}
