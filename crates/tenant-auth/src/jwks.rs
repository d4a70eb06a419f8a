use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use tokio::sync::{Mutex, RwLock};

use crate::AuthError;

/// Where the public keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A JWKS document on disk, read once at start-up.
    File(PathBuf),
    /// A JWKS URL (e.g. Cognito's `.../.well-known/jwks.json`), fetched on first use and
    /// again when a token names a `kid` it does not hold.
    Url(String),
    /// Keys given directly (tests, embedding).
    Static(JwkSet),
}

/// The keys of a [`KeySource`], with rate-limited refetching for URL sources so that a
/// flood of tokens with bogus `kid`s cannot hammer the issuer.
pub(crate) struct JwksCache {
    url: Option<String>,
    keys: RwLock<Arc<JwkSet>>,
    last_fetch: Mutex<Option<Instant>>,
    min_refetch_interval: Duration,
    http: reqwest::Client,
}

impl JwksCache {
    pub(crate) fn new(source: KeySource, min_refetch_interval: Duration) -> Result<Self, AuthError> {
        let (url, keys) = match source {
            KeySource::File(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| AuthError::Config(format!("cannot read JWKS file {}: {e}", path.display())))?;
                let set = serde_json::from_str(&text)
                    .map_err(|e| AuthError::Config(format!("JWKS file {} is not a JWK set: {e}", path.display())))?;
                (None, set)
            }
            KeySource::Static(set) => (None, set),
            KeySource::Url(url) => {
                if !(url.starts_with("https://")
                    || url.starts_with("http://127.0.0.1")
                    || url.starts_with("http://localhost"))
                {
                    return Err(AuthError::Config(format!("JWKS URL must use https: {url}")));
                }
                (Some(url), JwkSet { keys: Vec::new() })
            }
        };
        let http =
            crate::http_client(Duration::from_secs(5)).map_err(|e| AuthError::Config(format!("HTTP client: {e}")))?;
        Ok(JwksCache {
            url,
            keys: RwLock::new(Arc::new(keys)),
            last_fetch: Mutex::new(None),
            min_refetch_interval,
            http,
        })
    }

    /// The key for `kid`, fetching the JWKS when it is not known yet and a fetch is allowed.
    pub(crate) async fn key_for(&self, kid: &str) -> Result<Jwk, AuthError> {
        if let Some(jwk) = self.keys.read().await.find(kid) {
            return Ok(jwk.clone());
        }
        if let Some(url) = &self.url {
            let mut last = self.last_fetch.lock().await;
            // Another request may have refreshed the set while we waited for the lock.
            if let Some(jwk) = self.keys.read().await.find(kid) {
                return Ok(jwk.clone());
            }
            let allowed = last.is_none_or(|t| t.elapsed() >= self.min_refetch_interval);
            if allowed {
                *last = Some(Instant::now());
                let set = self.fetch(url).await?;
                tracing::info!(keys = set.keys.len(), "JWKS fetched");
                *self.keys.write().await = Arc::new(set);
                if let Some(jwk) = self.keys.read().await.find(kid) {
                    return Ok(jwk.clone());
                }
            }
        }
        Err(AuthError::UnknownKid(kid.chars().take(64).collect()))
    }

    async fn fetch(&self, url: &str) -> Result<JwkSet, AuthError> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| AuthError::JwksUnavailable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(AuthError::JwksUnavailable(format!(
                "{url} answered {}",
                response.status()
            )));
        }
        response
            .json::<JwkSet>()
            .await
            .map_err(|e| AuthError::JwksUnavailable(format!("{url} did not return a JWK set: {e}")))
    }
}
