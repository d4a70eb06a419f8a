//! The background task holding the `Watch` stream: applies pushed updates to the cache,
//! keeps the cursor, resumes from it after any disconnect, reloads on `resync`, surfaces
//! authentication failures, and polls the HTTP API while the stream is down.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use push::pb::{self, watch_event::Event};

use crate::backoff::Backoff;
use crate::cache::Cached;
use crate::{grpc, ClientError, Inner};

/// Holds the Watch stream for the life of the client. `first` learns whether the stream
/// came up (or why not, for an authentication failure).
pub(crate) async fn run(inner: Arc<Inner>, mut first: Option<tokio::sync::oneshot::Sender<Result<(), ClientError>>>) {
    let mut backoff = Backoff::default();
    let mut last_poll = tokio::time::Instant::now();
    loop {
        let mut was_live = false;
        let ended = watch_once(&inner, &mut first, &mut backoff, &mut was_live).await;
        // Down before anyone hears why, so `is_streaming` never contradicts an error.
        inner.streaming.store(false, Ordering::SeqCst);
        match ended {
            Ok(()) => {}
            // The token of a live stream ran out: reconnect at once with the provider's
            // current token. If that one is refused too, the next round surfaces it.
            Err(ClientError::Unauthenticated(reason)) if was_live => {
                tracing::debug!(reason, "stream token expired; reconnecting");
                continue;
            }
            Err(error @ ClientError::Unauthenticated(_)) => {
                if let Some(tx) = first.take() {
                    let _ = tx.send(Err(error.clone()));
                }
                inner.fail(error);
            }
            Err(error) => tracing::debug!(%error, "watch stream down"),
        }
        if inner.http.is_some() && last_poll.elapsed() >= inner.poll_interval {
            last_poll = tokio::time::Instant::now();
            inner.poll_all().await;
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// One stream, from connect to its end.
async fn watch_once(
    inner: &Inner,
    first: &mut Option<tokio::sync::oneshot::Sender<Result<(), ClientError>>>,
    backoff: &mut Backoff,
    was_live: &mut bool,
) -> Result<(), ClientError> {
    let token = inner.tokens.token().await?;
    let mut stream = grpc::watch(inner.channel.clone(), &token, inner.prefixes.clone(), inner.cursor()).await?;
    loop {
        let event = match stream.message().await {
            Ok(Some(pb::WatchEvent { event: Some(event) })) => event,
            Ok(Some(_)) => continue,
            Ok(None) => return Ok(()),
            Err(status) => return Err(grpc::from_status(&status)),
        };
        *was_live = true;
        inner.streaming.store(true, Ordering::SeqCst);
        inner.clear_error();
        backoff.reset();
        match event {
            Event::Updates(batch) => inner.apply(batch).await,
            Event::Heartbeat(hb) => {
                inner.set_cursor(hb.cursor);
                if let Some(tx) = first.take() {
                    let _ = tx.send(Ok(()));
                }
            }
            Event::Resync(resync) => {
                tracing::info!(reason = resync.reason, "resync");
                // Start over live; reload what we use.
                inner.set_cursor(None);
                inner.reload().await;
                return Ok(());
            }
        }
    }
}

impl Inner {
    /// Applies one batch of pushed updates to the cache and announces what changed.
    async fn apply(&self, batch: pb::UpdateBatch) {
        let mut changed = Vec::new();
        let mut refetch = Vec::new();
        for u in batch.updates {
            let layer = u
                .layer
                .as_ref()
                .and_then(push::layer_from_pb)
                .map(|l| l.to_string())
                .unwrap_or_default();
            match (u.op(), u.value_json) {
                (pb::Op::Put, Some(value_json)) => {
                    let cached = Cached {
                        value_json,
                        version: u.version,
                        layer,
                    };
                    if self.cache.push(&u.key, Some(cached)) {
                        changed.push(u.key);
                    }
                }
                // A secret or very large value: read it, if this client uses it.
                (pb::Op::Put, None) => {
                    if self.cache.contains(&u.key) {
                        refetch.push(u.key);
                    }
                }
                _ => {
                    if self.cache.push(&u.key, None) {
                        changed.push(u.key);
                    }
                }
            }
        }
        if !refetch.is_empty() {
            if let Ok(more) = self.fetch(&refetch).await {
                changed.extend(more);
            }
        }
        self.set_cursor(batch.cursor);
        changed.sort();
        changed.dedup();
        self.announce(changed, false);
    }
}
