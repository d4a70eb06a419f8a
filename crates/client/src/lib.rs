//! # client: read tagcfg configuration from a local cache that the server keeps fresh
//!
//! ```no_run
//! # async fn demo() -> Result<(), client::ClientError> {
//! let config = client::Client::builder("http://127.0.0.1:50051", "<token>")
//!     .prefixes(["tenant_config_flags/"])
//!     .http_fallback("http://127.0.0.1:8080")
//!     .connect()
//!     .await?;
//! #[derive(serde::Deserialize)]
//! struct Checkout { enabled: bool }
//! let flags: Checkout = config.get("tenant_config_flags/checkout").await?;
//! let mut changes = config.subscribe();
//! while let Ok(changed) = changes.recv().await {
//!     println!("changed: {:?}", changed.keys);
//! }
//! # Ok(()) }
//! ```
//!
//! - `get` answers from the local cache; a miss asks the watch server (`Get`), or the HTTP
//!   API when the stream is down and a fallback URL is set.
//! - A background task holds a `Watch` stream: changes update the cache as they happen and
//!   are announced on [`Client::subscribe`] (an OpenFeature-style "configuration changed"
//!   with the changed keys). It reconnects with `since_revision` and exponential backoff,
//!   so nothing is missed; on `resync` it reloads what it caches.
//! - While the stream is down it polls the HTTP API with `If-None-Match` (when configured)
//!   and keeps serving the last known good values.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::sync::broadcast;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use watch::pb::{self, config_watch_client::ConfigWatchClient, watch_event::Event};

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("no value for key {0}")]
    NotFound(String),
    #[error("the server refused the token: {0}")]
    Unauthenticated(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("the server cannot be reached: {0}")]
    Unavailable(String),
    #[error("the value of {key} does not decode as the requested type: {reason}")]
    Decode { key: String, reason: String },
}

/// "Configuration changed": the keys whose values changed, and the revision reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigChanged {
    pub keys: Vec<String>,
    pub revision: u64,
    /// The server asked for a resync: every cached key was reloaded.
    pub resync: bool,
}

#[derive(Debug, Clone)]
struct Cached {
    value_json: String,
    version: u64,
    revision: u64,
}

struct Inner {
    grpc: ConfigWatchClient<Channel>,
    token: MetadataValue<tonic::metadata::Ascii>,
    prefixes: Vec<String>,
    cache: RwLock<HashMap<String, Cached>>,
    /// The stream is complete up to this revision (0 = not yet live).
    revision: AtomicU64,
    streaming: AtomicBool,
    changes: broadcast::Sender<ConfigChanged>,
    http: Option<(reqwest::Client, String, String)>,
    poll_interval: Duration,
}

/// Configures a [`Client`].
pub struct ClientBuilder {
    endpoint: String,
    token: String,
    prefixes: Vec<String>,
    http_fallback: Option<String>,
    poll_interval: Duration,
    first_event_timeout: Duration,
}

impl ClientBuilder {
    /// Only keys under these prefixes are pushed (default: every key of the tenant).
    pub fn prefixes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, prefixes: I) -> Self {
        self.prefixes = prefixes.into_iter().map(Into::into).collect();
        self
    }

    /// The HTTP API to read from (and poll with `If-None-Match`) while the stream is down.
    pub fn http_fallback(mut self, base_url: impl Into<String>) -> Self {
        self.http_fallback = Some(base_url.into().trim_end_matches('/').to_owned());
        self
    }

    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every;
        self
    }

    /// Starts the background watch and waits (up to a few seconds) until the stream is
    /// live; a server that is down does not fail `connect`: reads then use the fallback.
    pub async fn connect(self) -> Result<Client, ClientError> {
        let channel = Endpoint::from_shared(self.endpoint.clone())
            .map_err(|e| ClientError::Invalid(format!("endpoint {}: {e}", self.endpoint)))?
            .connect_timeout(Duration::from_secs(3))
            .connect_lazy();
        let token = format!("Bearer {}", self.token)
            .parse()
            .map_err(|_| ClientError::Invalid("the token is not valid ASCII".into()))?;
        let http = match self.http_fallback {
            Some(url) => Some((
                tenant_auth::http_client(Duration::from_secs(10)).map_err(|e| ClientError::Invalid(e.to_string()))?,
                url,
                self.token.clone(),
            )),
            None => None,
        };
        let (changes, _) = broadcast::channel(256);
        let inner = Arc::new(Inner {
            grpc: ConfigWatchClient::new(channel),
            token,
            prefixes: self.prefixes,
            cache: RwLock::new(HashMap::new()),
            revision: AtomicU64::new(0),
            streaming: AtomicBool::new(false),
            changes,
            http,
            poll_interval: self.poll_interval,
        });
        let (live_tx, live_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(watch_loop(inner.clone(), Some(live_tx)));
        // An auth failure is worth reporting now; anything else is retried in the background.
        if let Ok(Ok(Err(ClientError::Unauthenticated(e)))) =
            tokio::time::timeout(self.first_event_timeout, live_rx).await
        {
            task.abort();
            return Err(ClientError::Unauthenticated(e));
        }
        Ok(Client { inner, task })
    }
}

/// A tagcfg client with a push-fresh local cache. Dropping it stops the background watch.
pub struct Client {
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Client {
    pub fn builder(endpoint: impl Into<String>, token: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            endpoint: endpoint.into(),
            token: token.into(),
            prefixes: Vec::new(),
            http_fallback: None,
            poll_interval: Duration::from_secs(5),
            first_event_timeout: Duration::from_secs(5),
        }
    }

    /// `Client::builder(endpoint, token).connect()`.
    pub async fn connect(endpoint: impl Into<String>, token: impl Into<String>) -> Result<Client, ClientError> {
        Self::builder(endpoint, token).connect().await
    }

    /// The value of `key`, decoded as `T`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T, ClientError> {
        let json = self.get_json(key).await?;
        serde_json::from_str(&json).map_err(|e| ClientError::Decode {
            key: key.to_owned(),
            reason: e.to_string(),
        })
    }

    /// The value of `key` as JSON text, exactly as written.
    pub async fn get_json(&self, key: &str) -> Result<String, ClientError> {
        if let Some(hit) = self.inner.cached(key) {
            return Ok(hit.value_json);
        }
        self.inner.fetch(&[key.to_owned()]).await?;
        self.inner
            .cached(key)
            .map(|c| c.value_json)
            .ok_or_else(|| ClientError::NotFound(key.to_owned()))
    }

    /// Announcements of changed keys.
    pub fn subscribe(&self) -> broadcast::Receiver<ConfigChanged> {
        self.inner.changes.subscribe()
    }

    /// The revision the cache is complete up to (0 before the stream was ever live).
    pub fn revision(&self) -> u64 {
        self.inner.revision.load(Ordering::SeqCst)
    }

    /// Whether the push stream is up right now.
    pub fn is_streaming(&self) -> bool {
        self.inner.streaming.load(Ordering::SeqCst)
    }
}

fn from_status(s: &tonic::Status) -> ClientError {
    match s.code() {
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
            ClientError::Unauthenticated(s.message().to_owned())
        }
        tonic::Code::InvalidArgument | tonic::Code::OutOfRange => ClientError::Invalid(s.message().to_owned()),
        _ => ClientError::Unavailable(format!("{:?}: {}", s.code(), s.message())),
    }
}

impl Inner {
    fn cached(&self, key: &str) -> Option<Cached> {
        self.cache.read().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert("authorization", self.token.clone());
        request
    }

    /// Stores a value unless the cache already holds a newer one.
    fn store(&self, key: &str, value: Cached) -> bool {
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        match cache.get(key) {
            Some(current) if current.revision >= value.revision && current.version == value.version => false,
            Some(current) if current.revision > value.revision => false,
            _ => {
                cache.insert(key.to_owned(), value);
                true
            }
        }
    }

    /// Reads keys from the watch server, or over HTTP when the stream is down; returns
    /// the keys whose cached value changed.
    async fn fetch(&self, keys: &[String]) -> Result<Vec<String>, ClientError> {
        let mut changed = Vec::new();
        for chunk in keys.chunks(watch::service::MAX_KEYS) {
            match self
                .grpc
                .clone()
                .get(self.request(pb::GetRequest { keys: chunk.to_vec() }))
                .await
            {
                Ok(response) => {
                    for item in response.into_inner().items {
                        let cached = Cached {
                            value_json: item.value_json,
                            version: item.version,
                            revision: item.revision,
                        };
                        if self.store(&item.key, cached) {
                            changed.push(item.key);
                        }
                    }
                }
                Err(status) if status.code() == tonic::Code::Unavailable && self.http.is_some() => {
                    for key in chunk {
                        if self.poll_http(key).await? {
                            changed.push(key.clone());
                        }
                    }
                }
                Err(status) => return Err(from_status(&status)),
            }
        }
        Ok(changed)
    }

    /// One conditional HTTP read; true when the cached value changed.
    async fn poll_http(&self, key: &str) -> Result<bool, ClientError> {
        let Some((http, base, token)) = &self.http else {
            return Ok(false);
        };
        let mut request = http.get(format!("{base}/v1/config/{key}")).bearer_auth(token);
        if let Some(current) = self.cached(key) {
            request = request.header("if-none-match", format!("\"{}\"", current.version));
        }
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::Unavailable(e.to_string()))?;
        match response.status().as_u16() {
            304 | 404 => Ok(false),
            401 | 403 => Err(ClientError::Unauthenticated(format!("HTTP {}", response.status()))),
            200 => {
                let text = response
                    .text()
                    .await
                    .map_err(|e| ClientError::Unavailable(e.to_string()))?;
                #[derive(serde::Deserialize)]
                struct Item {
                    value: Box<serde_json::value::RawValue>,
                    version: u64,
                    revision: u64,
                }
                let item: Item = serde_json::from_str(&text)
                    .map_err(|e| ClientError::Unavailable(format!("bad HTTP answer: {e}")))?;
                Ok(self.store(
                    key,
                    Cached {
                        value_json: item.value.get().to_owned(),
                        version: item.version,
                        revision: item.revision,
                    },
                ))
            }
            other => Err(ClientError::Unavailable(format!("HTTP {other}"))),
        }
    }

    fn announce(&self, keys: Vec<String>, resync: bool) {
        if !keys.is_empty() || resync {
            let _ = self.changes.send(ConfigChanged {
                keys,
                revision: self.revision.load(Ordering::SeqCst),
                resync,
            });
        }
    }

    /// Applies one batch of pushed changes to the cache.
    async fn apply(&self, batch: pb::ChangeBatch) {
        let mut changed = Vec::new();
        let mut refetch = Vec::new();
        for c in batch.changes {
            match (c.op.as_str(), c.value_json) {
                ("put", Some(value_json)) => {
                    if self.store(
                        &c.key,
                        Cached {
                            value_json,
                            version: c.version,
                            revision: c.revision,
                        },
                    ) {
                        changed.push(c.key);
                    }
                }
                // A secret or very large value: read it, if this client uses it.
                ("put", None) => {
                    if self.cached(&c.key).is_some() {
                        refetch.push(c.key);
                    }
                }
                _ => {
                    // A delete may uncover a shared-layer value: read again if used.
                    if self
                        .cache
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&c.key)
                        .is_some()
                    {
                        refetch.push(c.key.clone());
                        changed.push(c.key);
                    }
                }
            }
        }
        if !refetch.is_empty() {
            if let Ok(more) = self.fetch(&refetch).await {
                changed.extend(more);
            }
        }
        self.revision.fetch_max(batch.revision, Ordering::SeqCst);
        changed.sort();
        changed.dedup();
        self.announce(changed, false);
    }

    /// Reloads every cached key (after a resync); keeps the old values if that fails.
    async fn reload(&self) {
        let keys: Vec<String> = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        let changed = self.fetch(&keys).await.unwrap_or_default();
        self.announce(changed, true);
    }
}

/// Holds the Watch stream for the life of the client.
async fn watch_loop(inner: Arc<Inner>, mut first: Option<tokio::sync::oneshot::Sender<Result<(), ClientError>>>) {
    let mut attempt: u32 = 0;
    let mut last_poll = tokio::time::Instant::now();
    loop {
        let since = match inner.revision.load(Ordering::SeqCst) {
            0 => None,
            r => Some(r),
        };
        let request = inner.request(pb::WatchRequest {
            prefixes: inner.prefixes.clone(),
            since_revision: since,
        });
        match inner.grpc.clone().watch(request).await {
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(pb::WatchEvent { event: Some(event) })) => {
                            inner.streaming.store(true, Ordering::SeqCst);
                            attempt = 0;
                            match event {
                                Event::Changes(batch) => inner.apply(batch).await,
                                Event::Heartbeat(hb) => {
                                    inner.revision.fetch_max(hb.revision, Ordering::SeqCst);
                                    if let Some(tx) = first.take() {
                                        let _ = tx.send(Ok(()));
                                    }
                                }
                                Event::Resync(resync) => {
                                    tracing::info!(reason = resync.reason, "resync");
                                    // Start over live; reload what we use.
                                    inner.revision.store(0, Ordering::SeqCst);
                                    inner.reload().await;
                                    break;
                                }
                            }
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(status) => {
                            tracing::debug!(%status, "watch stream ended");
                            break;
                        }
                    }
                }
            }
            Err(status) => {
                let error = from_status(&status);
                if let (ClientError::Unauthenticated(_), Some(tx)) = (&error, first.take()) {
                    let _ = tx.send(Err(error));
                    return;
                }
                tracing::debug!(%status, "watch failed");
            }
        }
        inner.streaming.store(false, Ordering::SeqCst);
        // While the stream is down: keep the cache fresh by polling, if we can.
        if inner.http.is_some() && last_poll.elapsed() >= inner.poll_interval {
            last_poll = tokio::time::Instant::now();
            let keys: Vec<String> = inner
                .cache
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .keys()
                .cloned()
                .collect();
            let mut changed = Vec::new();
            for key in keys {
                if let Ok(true) = inner.poll_http(&key).await {
                    changed.push(key);
                }
            }
            inner.announce(changed, false);
        }
        attempt = attempt.saturating_add(1);
        let backoff = Duration::from_millis((50u64 << attempt.min(7)).min(5_000));
        tokio::time::sleep(backoff).await;
    }
}
