//! Reads over the HTTP API while the push stream is down, conditional on the ETag last seen.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::api::{Api, ApiError, Call, Method};
use crate::cache::Cached;
use crate::ClientError;

pub(crate) struct HttpFallback {
    api: Api,
    etags: Mutex<HashMap<String, String>>,
}

/// What one conditional read found.
pub(crate) enum Polled {
    Unchanged,
    Absent,
    Value(Cached),
}

impl HttpFallback {
    pub fn new(api: Api) -> Self {
        HttpFallback {
            api,
            etags: Mutex::new(HashMap::new()),
        }
    }

    pub async fn read(&self, key: &str, token: &str) -> Result<Polled, ClientError> {
        let etag = self.etags.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned();
        let call = Call {
            body: None,
            headers: etag.map(|e| ("if-none-match", e)).into_iter().collect(),
        };
        let answer = match self
            .api
            .send(Method::GET, &format!("/v1/config/{key}"), token, call)
            .await
        {
            Ok(answer) => answer,
            Err(ApiError::Problem { status: 404, .. }) => return Ok(Polled::Absent),
            Err(ApiError::Problem { status, code, .. }) if status == 401 || status == 403 => {
                return Err(ClientError::Unauthenticated(format!("HTTP {status} {code}")))
            }
            Err(other) => return Err(ClientError::Unavailable(other.to_string())),
        };
        if answer.status == 304 {
            return Ok(Polled::Unchanged);
        }
        if let Some(etag) = answer.etag {
            self.etags
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.to_owned(), etag);
        }
        #[derive(serde::Deserialize)]
        struct Item {
            value: Box<serde_json::value::RawValue>,
            version: u64,
            layer: String,
        }
        let item: Item = serde_json::from_str(&answer.body)
            .map_err(|e| ClientError::Unavailable(format!("bad HTTP answer: {e}")))?;
        Ok(Polled::Value(Cached {
            value_json: item.value.get().to_owned(),
            version: item.version,
            layer: item.layer,
        }))
    }
}
