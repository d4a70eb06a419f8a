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
//! while let Ok(event) = changes.recv().await {
//!     match event {
//!         Ok(changed) => println!("changed: {:?}", changed.keys),
//!         Err(error) => eprintln!("the client cannot stay fresh: {error}"),
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Map of the crate:
//! - [`Client`] and [`ClientBuilder`]: `get` answers from the local cache; a miss asks the
//!   watch server (`Get`), or the HTTP API when the stream is down and a fallback URL is set.
//!   Values are *effective*: the server resolves tenant → tier → shared.
//! - `stream`: the background task holding a `Watch` stream. Updates change the cache as
//!   they happen and are announced on [`Client::subscribe`] (an OpenFeature-style
//!   "configuration changed" with the changed keys). It reconnects with exponential
//!   backoff (`backoff`) and resumes from the stream's cursor, so nothing is missed; on
//!   `resync` it reloads what it caches.
//! - [`token`]: a [`TokenProvider`] supplies the token of every call and reconnect, so a
//!   token can rotate under a long-lived client. When the server refuses the token, the
//!   error is surfaced: on `subscribe`, in [`Client::last_error`], and by `connect` when it
//!   happens at once.
//! - `cache`: the local cache; `fallback`: conditional HTTP reads while the stream is down.
//! - [`api`]: the HTTP API one call at a time (the CLI's data commands, the fallback);
//!   [`grpc`]: the push server's channel, authorised requests and one `Watch` stream (the
//!   CLI's `tagcfg watch`, the background stream).

pub mod api;
mod backoff;
mod cache;
mod fallback;
pub mod grpc;
mod stream;
pub mod token;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use push::pb::{self, config_watch_client::ConfigWatchClient};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;
use tonic::transport::Channel;

use cache::{Cache, Cached};
use fallback::{HttpFallback, Polled};
pub use token::{StaticToken, TokenFn, TokenProvider};

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

/// "Configuration changed": the keys whose values changed, and where the stream stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigChanged {
    pub keys: Vec<String>,
    /// The stream's cursor after the change (`None` before it was ever live).
    pub cursor: Option<pb::Cursor>,
    /// The server asked for a resync: every cached key was reloaded.
    pub resync: bool,
}

/// What [`Client::subscribe`] delivers: a change, or an error that keeps the client from
/// staying fresh (it keeps retrying and serves the last known values meanwhile).
pub type ClientEvent = Result<ConfigChanged, ClientError>;

struct Inner {
    channel: Channel,
    tokens: Arc<dyn TokenProvider>,
    prefixes: Vec<String>,
    cache: Cache,
    /// The stream is complete up to this cursor (`None` = not yet live).
    cursor: Mutex<Option<pb::Cursor>>,
    streaming: AtomicBool,
    last_error: Mutex<Option<ClientError>>,
    events: broadcast::Sender<ClientEvent>,
    http: Option<HttpFallback>,
    poll_interval: Duration,
}

/// Configures a [`Client`].
pub struct ClientBuilder {
    endpoint: String,
    tokens: Arc<dyn TokenProvider>,
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
    /// A token the server refuses fails it.
    pub async fn connect(self) -> Result<Client, ClientError> {
        let channel = grpc::channel(&self.endpoint)?;
        let http = match self.http_fallback {
            Some(url) => Some(HttpFallback::new(
                api::Api::new(&url, Duration::from_secs(10)).map_err(|e| ClientError::Invalid(e.to_string()))?,
            )),
            None => None,
        };
        let (events, _) = broadcast::channel(256);
        let inner = Arc::new(Inner {
            channel,
            tokens: self.tokens,
            prefixes: self.prefixes,
            cache: Cache::default(),
            cursor: Mutex::new(None),
            streaming: AtomicBool::new(false),
            last_error: Mutex::new(None),
            events,
            http,
            poll_interval: self.poll_interval,
        });
        let (live_tx, live_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(stream::run(inner.clone(), Some(live_tx)));
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
    /// A client with one token for its whole life.
    pub fn builder(endpoint: impl Into<String>, token: impl Into<String>) -> ClientBuilder {
        Self::builder_with_tokens(endpoint, Arc::new(StaticToken(token.into())))
    }

    /// A client that asks `tokens` for the token of every call and reconnect.
    pub fn builder_with_tokens(endpoint: impl Into<String>, tokens: Arc<dyn TokenProvider>) -> ClientBuilder {
        ClientBuilder {
            endpoint: endpoint.into(),
            tokens,
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
        Ok(self.get_entry(key).await?.value_json)
    }

    /// The layer the cached value of `key` answers from: `tenant`, `tier:<name>` or
    /// `shared`.
    pub async fn layer(&self, key: &str) -> Result<String, ClientError> {
        Ok(self.get_entry(key).await?.layer)
    }

    async fn get_entry(&self, key: &str) -> Result<Cached, ClientError> {
        if let Some(hit) = self.inner.cache.get(key) {
            return Ok(hit);
        }
        self.inner.fetch(&[key.to_owned()]).await?;
        self.inner
            .cache
            .get(key)
            .ok_or_else(|| ClientError::NotFound(key.to_owned()))
    }

    /// Announcements of changed keys, and errors that keep the client from staying fresh.
    pub fn subscribe(&self) -> broadcast::Receiver<ClientEvent> {
        self.inner.events.subscribe()
    }

    /// The cursor the cache is complete up to (`None` before the stream was ever live).
    pub fn cursor(&self) -> Option<pb::Cursor> {
        self.inner.cursor()
    }

    /// Whether the push stream is up right now.
    pub fn is_streaming(&self) -> bool {
        self.inner.streaming.load(Ordering::SeqCst)
    }

    /// The error that keeps the stream down right now, if any (cleared once it is back).
    pub fn last_error(&self) -> Option<ClientError> {
        self.inner.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Inner {
    async fn request<T>(&self, message: T) -> Result<tonic::Request<T>, ClientError> {
        grpc::authorized(message, &self.tokens.token().await?)
    }

    fn cursor(&self) -> Option<pb::Cursor> {
        self.cursor.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_cursor(&self, cursor: Option<pb::Cursor>) {
        *self.cursor.lock().unwrap_or_else(|p| p.into_inner()) = cursor;
    }

    /// Records and announces an error that keeps the client from staying fresh.
    fn fail(&self, error: ClientError) {
        tracing::warn!(%error, "tagcfg client");
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.clone());
        let _ = self.events.send(Err(error));
    }

    fn clear_error(&self) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn announce(&self, keys: Vec<String>, resync: bool) {
        if !keys.is_empty() || resync {
            let _ = self.events.send(Ok(ConfigChanged {
                keys,
                cursor: self.cursor(),
                resync,
            }));
        }
    }

    /// Reads keys from the watch server, or over HTTP when the stream is down; returns
    /// the keys whose cached value changed.
    async fn fetch(&self, keys: &[String]) -> Result<Vec<String>, ClientError> {
        let mut changed = Vec::new();
        for chunk in keys.chunks(push::service::MAX_KEYS) {
            let epoch = self.cache.epoch();
            let request = self.request(pb::GetRequest { keys: chunk.to_vec() }).await?;
            match ConfigWatchClient::new(self.channel.clone()).get(request).await {
                Ok(response) => {
                    for item in response.into_inner().items {
                        let layer = item
                            .layer
                            .as_ref()
                            .and_then(push::layer_from_pb)
                            .map(|l| l.to_string())
                            .unwrap_or_default();
                        let cached = Cached {
                            value_json: item.value_json,
                            version: item.version,
                            layer,
                        };
                        if self.cache.store_read(&item.key, cached, epoch) {
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
                Err(status) => return Err(grpc::from_status(&status)),
            }
        }
        Ok(changed)
    }

    /// One conditional HTTP read; true when the cached value changed.
    async fn poll_http(&self, key: &str) -> Result<bool, ClientError> {
        let Some(http) = &self.http else {
            return Ok(false);
        };
        let epoch = self.cache.epoch();
        let token = self.tokens.token().await?;
        Ok(match http.read(key, &token).await? {
            Polled::Unchanged => false,
            Polled::Absent => self.cache.push(key, None),
            Polled::Value(cached) => self.cache.store_read(key, cached, epoch),
        })
    }

    /// While the stream is down: every cached key, conditionally over HTTP.
    async fn poll_all(&self) {
        let mut changed = Vec::new();
        for key in self.cache.keys() {
            match self.poll_http(&key).await {
                Ok(true) => changed.push(key),
                Ok(false) => {}
                Err(error @ ClientError::Unauthenticated(_)) => {
                    self.fail(error);
                    break;
                }
                Err(error) => tracing::debug!(%error, key, "poll failed"),
            }
        }
        self.announce(changed, false);
    }

    /// Reloads every cached key (after a resync); keeps the old values if that fails.
    async fn reload(&self) {
        let keys = self.cache.keys();
        let changed = self.fetch(&keys).await.unwrap_or_default();
        self.announce(changed, true);
    }
}
