//! The `tagcfg.v2.ConfigWatch` service (tenants) and the internal `tagcfg.v2.ConfigRefresh`
//! service (the cache-refresher).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use serving::tenant_limits::{Access, TenantLimiter, TenantLimits};
use tagged_routing::{RoutingTable, TenantId};
use tenant_auth::service::ServiceVerifier;
use tenant_auth::{TenantContext, Verifier};
use tokio::time::Instant;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::convert::{auth_status, change_from_pb, cursor_from_pb, cursor_to_pb, item_to_pb, status_of, update_to_pb};
use crate::frame::WatchFrame;
use crate::hub::{matches, Cursor, Published, Subscription, Update};
use crate::pb::{self, watch_event::Event};
use crate::Hub;

/// The most keys one `Get` may ask for, and the most prefixes one `Watch` may name.
pub const MAX_KEYS: usize = 100;
pub const MAX_PREFIXES: usize = 32;
/// Updates per replay batch.
const REPLAY_BATCH: usize = 100;
/// Open `Watch` streams one tenant may hold on one server before a new one is refused
/// (`RESOURCE_EXHAUSTED`): a tenant opening streams in a loop cannot take the server's
/// memory and connections from the others (each stream costs about 4 KiB, docs/BENCHMARKS.md).
pub const DEFAULT_MAX_STREAMS_PER_TENANT: usize = 1_000;

/// Open streams per tenant.
#[derive(Default)]
struct StreamCounts(Mutex<HashMap<TenantId, usize>>);

/// One open stream of a tenant, counted until it is dropped (when its pump ends).
struct StreamSlot {
    counts: Arc<StreamCounts>,
    tenant: TenantId,
}

impl StreamCounts {
    fn take(self: &Arc<Self>, tenant: &TenantId, max: usize) -> Result<StreamSlot, Status> {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let open = counts.entry(tenant.clone()).or_default();
        if *open >= max {
            return Err(Status::resource_exhausted(format!(
                "too_many_streams: this tenant has {open} open Watch streams on this server (limit {max})"
            )));
        }
        *open += 1;
        Ok(StreamSlot {
            counts: self.clone(),
            tenant: tenant.clone(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(open) = counts.get_mut(&self.tenant) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                counts.remove(&self.tenant);
            }
        }
    }
}

/// Both services over one hub. Cheap to clone.
#[derive(Clone)]
pub struct PushService {
    hub: Arc<Hub>,
    routes: Arc<RoutingTable>,
    verifier: Arc<Verifier>,
    service_auth: Option<Arc<ServiceVerifier>>,
    heartbeat: Duration,
    streams: Arc<StreamCounts>,
    max_streams_per_tenant: usize,
    limiter: Arc<TenantLimiter>,
}

impl PushService {
    /// `service_auth`: the verifier of `Refresh` callers; `None` refuses every `Refresh`
    /// (a server fed in-process needs none).
    pub fn new(
        hub: Arc<Hub>,
        routes: Arc<RoutingTable>,
        verifier: Arc<Verifier>,
        service_auth: Option<Arc<ServiceVerifier>>,
        heartbeat: Duration,
    ) -> Self {
        PushService {
            hub,
            routes,
            verifier,
            service_auth,
            heartbeat,
            streams: Arc::default(),
            max_streams_per_tenant: DEFAULT_MAX_STREAMS_PER_TENANT,
            limiter: Arc::new(TenantLimiter::new(TenantLimits::default())),
        }
    }

    /// Per-tenant read buckets other than the default: each `Get` and each `Watch` opened
    /// takes one read; an empty bucket is `RESOURCE_EXHAUSTED`. Pass the HTTP API's limiter
    /// to make one limit hold across both servers.
    pub fn with_tenant_limiter(mut self, limiter: Arc<TenantLimiter>) -> Self {
        self.limiter = limiter;
        self
    }

    /// At most `max` open `Watch` streams per tenant (default
    /// [`DEFAULT_MAX_STREAMS_PER_TENANT`]).
    pub fn with_max_streams_per_tenant(mut self, max: usize) -> Self {
        self.max_streams_per_tenant = max;
        self
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    async fn tenant<T>(&self, request: &Request<T>) -> Result<TenantContext, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or("\u{0}"));
        self.verifier
            .verify_tenant_authorization(header)
            .await
            .map_err(|e| auth_status(&e))
    }
}

fn event(e: Event) -> pb::WatchEvent {
    pb::WatchEvent { event: Some(e) }
}

fn heartbeat(cursor: &Cursor) -> pb::WatchEvent {
    event(Event::Heartbeat(pb::Heartbeat {
        cursor: Some(cursor_to_pb(cursor)),
    }))
}

/// Feeds one watcher: replay, then live updates and heartbeats; ends with a resync when the
/// hub cut it off. It is the response body itself, polled by the task hyper runs for the
/// HTTP/2 stream: no task and no output channel of its own, so a change reaches 10,000
/// streams with 10,000 fewer wake-ups and each open stream costs less memory
/// (docs/BENCHMARKS.md). It ends when the client goes away (hyper drops the body).
///
/// A hand-written [`Stream`] rather than an `async` block, so that a delivery costs one
/// poll of the channel: the stream's one timer (the next heartbeat or the token's expiry,
/// whichever is first) is polled only when it has to learn a new deadline or a new waker,
/// not on every delivery (timer polls were ~5% of a 10,000-stream fan-out's CPU).
struct Pump {
    sub: Subscription,
    tenant: TenantId,
    prefixes: Vec<String>,
    hub: Arc<Hub>,
    routes: Arc<RoutingTable>,
    heartbeat: Duration,
    /// When the token the stream was opened with stops being accepted.
    token_expires: std::time::SystemTime,
    phase: Phase,
    cursor: Cursor,
    /// Counts the stream against its tenant's limit until the stream is dropped.
    _slot: StreamSlot,
}

enum Phase {
    /// Replaying what moved after the requested cursor, from this update on.
    Replay(usize),
    Live(Timers),
    Ended,
}

/// A live stream's two deadlines behind one tokio timer.
struct Timers {
    next_heartbeat: Instant,
    expiry: Instant,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// The waker the timer holds, once polled: `None` after it fired or moved.
    armed_for: Option<Waker>,
}

impl Timers {
    fn new(heartbeat: Duration, until_expiry: Duration) -> Self {
        let now = Instant::now();
        let (next_heartbeat, expiry) = (now + heartbeat, now + until_expiry);
        Timers {
            next_heartbeat,
            expiry,
            timer: Box::pin(tokio::time::sleep_until(next_heartbeat.min(expiry))),
            armed_for: None,
        }
    }

    /// The next heartbeat is `heartbeat` after `now`.
    fn beat(&mut self, now: Instant, heartbeat: Duration) {
        self.next_heartbeat = now + heartbeat;
        self.rearm();
    }

    /// The timer waits for the first deadline again (and is polled anew).
    fn rearm(&mut self) {
        self.timer.as_mut().reset(self.next_heartbeat.min(self.expiry));
        self.armed_for = None;
    }

    /// Makes sure the timer wakes `cx`'s task at the first deadline. `Ready` when a deadline
    /// has passed meanwhile.
    fn arm(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let holds_waker = self.armed_for.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        if holds_waker && !self.timer.is_elapsed() {
            return Poll::Pending;
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.armed_for = None;
                Poll::Ready(())
            }
            Poll::Pending => {
                self.armed_for = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Ends the stream: the token expired.
fn token_expired() -> Status {
    Status::unauthenticated(
        "token_expired: the token of this stream expired; reconnect with a fresh one and resume from the last cursor",
    )
}

impl Pump {
    fn batch(&self, updates: &[&Update]) -> pb::WatchEvent {
        event(Event::Updates(pb::UpdateBatch {
            updates: updates.iter().map(|u| update_to_pb(u, &self.routes)).collect(),
            cursor: Some(cursor_to_pb(&self.cursor)),
        }))
    }

    fn resync(&mut self, reason: String) -> pb::WatchEvent {
        self.phase = Phase::Ended;
        event(Event::Resync(pb::Resync {
            reason,
            cursor: Some(cursor_to_pb(&self.cursor)),
        }))
    }

    /// The next replayed batch, or the heartbeat that says the stream is live from here.
    fn replay(&mut self, from: usize) -> pb::WatchEvent {
        if let Some(reason) = self.sub.resync.take() {
            return self.resync(reason);
        }
        if from < self.sub.replay.len() {
            let to = (from + REPLAY_BATCH).min(self.sub.replay.len());
            self.phase = Phase::Replay(to);
            let chunk: Vec<&Update> = self.sub.replay[from..to].iter().collect();
            return self.batch(&chunk);
        }
        // Everything up to the cursor is now accounted for. Say so at once: a client knows
        // from here which position it is live from.
        self.sub.replay = Vec::new();
        let until_expiry = self
            .token_expires
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        self.phase = Phase::Live(Timers::new(self.heartbeat, until_expiry));
        heartbeat(&self.cursor)
    }

    /// A live stream's next event: a delivery first (a change reaching 10,000 streams then
    /// touches no timer of theirs), then a due heartbeat; the token's expiry ends the stream
    /// even while deliveries never pause.
    fn poll_live(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<WatchFrame, Status>>> {
        loop {
            let Phase::Live(timers) = &mut self.phase else {
                return Poll::Ready(None);
            };
            // The clock is read only once the timer has fired.
            let now = timers.timer.is_elapsed().then(Instant::now);
            if now.is_some_and(|now| now >= timers.expiry) {
                self.phase = Phase::Ended;
                return Poll::Ready(Some(Err(token_expired())));
            }
            match self.sub.live.poll_recv(cx) {
                Poll::Ready(Some(delivery)) => {
                    self.cursor = delivery.cursor.clone();
                    let mine = |u: &&Update| matches(&self.prefixes, &u.key);
                    if !delivery.updates.is_empty() && delivery.updates.iter().all(|u| mine(&u)) {
                        // The same event as its tenant's other streams that take every
                        // update: encoded by the first of them.
                        let encoded = delivery.encoded.get_or_init(|| {
                            let all: Vec<&Update> = delivery.updates.iter().collect();
                            WatchFrame::encode(&self.batch(&all))
                        });
                        return Poll::Ready(Some(Ok(WatchFrame::Encoded(encoded.clone()))));
                    }
                    let some: Vec<&Update> = delivery.updates.iter().filter(mine).collect();
                    if !some.is_empty() {
                        return Poll::Ready(Some(Ok(self.batch(&some).into())));
                    }
                    continue;
                }
                Poll::Ready(None) => {
                    let reason =
                        self.sub.cut.get().cloned().unwrap_or_else(|| {
                            "the server stopped this stream; resume from the last cursor".to_owned()
                        });
                    return Poll::Ready(Some(Ok(self.resync(reason).into())));
                }
                Poll::Pending => {}
            }
            if let Some(now) = now {
                // Nothing was due only if the timer fired early: it waits again.
                if now < timers.next_heartbeat {
                    timers.rearm();
                    continue;
                }
                timers.beat(now, self.heartbeat);
                // Changes this stream did not need (other prefixes, overridden keys) still
                // move its position, once nothing is queued for it.
                if let Some(now) = self.hub.cursor_if_drained(&self.tenant, &self.sub.live) {
                    self.cursor = now;
                }
                return Poll::Ready(Some(Ok(heartbeat(&self.cursor).into())));
            }
            match timers.arm(cx) {
                // A deadline passed while we looked: look again.
                Poll::Ready(()) => continue,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Stream for Pump {
    type Item = Result<WatchFrame, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let pump = self.get_mut();
        match pump.phase {
            Phase::Ended => Poll::Ready(None),
            Phase::Replay(from) => Poll::Ready(Some(Ok(pump.replay(from).into()))),
            Phase::Live(_) => pump.poll_live(cx),
        }
    }
}

#[tonic::async_trait]
impl pb::config_watch_server::ConfigWatch for PushService {
    async fn get(&self, request: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        let ctx = self.tenant(&request).await?;
        self.limiter
            .check(&ctx.tenant, Access::Read)
            .map_err(|e| status_of(&e))?;
        let keys = request.into_inner().keys;
        if keys.is_empty() || keys.len() > MAX_KEYS {
            return Err(Status::invalid_argument(format!("ask for 1 to {MAX_KEYS} keys")));
        }
        let keys = keys
            .iter()
            .map(|k| self.routes.parse_key(k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| status_of(&e))?;
        // Run as the tenant: a fenced store below refuses any read beyond its layers.
        let (items, missing, cursor) =
            tagged_routing::scope::as_tenant(ctx.tenant.clone(), self.hub.get(&ctx.tenant, &keys))
                .await
                .map_err(|e| status_of(&e))?;
        Ok(Response::new(pb::GetResponse {
            items: items.iter().map(item_to_pb).collect(),
            missing,
            cursor: Some(cursor_to_pb(&cursor)),
        }))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchFrame, Status>> + Send>>;

    async fn watch(&self, request: Request<pb::WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let ctx = self.tenant(&request).await?;
        self.limiter
            .check(&ctx.tenant, Access::Read)
            .map_err(|e| status_of(&e))?;
        let connection = request.remote_addr();
        let req = request.into_inner();
        if req.prefixes.len() > MAX_PREFIXES || req.prefixes.iter().any(|p| p.len() > 300) {
            return Err(Status::invalid_argument(format!(
                "at most {MAX_PREFIXES} prefixes of at most 300 characters"
            )));
        }
        let since = req.since.as_ref().map(cursor_from_pb).transpose()?;
        let slot = self.streams.take(&ctx.tenant, self.max_streams_per_tenant)?;
        let sub = tagged_routing::scope::as_tenant(
            ctx.tenant.clone(),
            self.hub.subscribe(&ctx.tenant, req.prefixes.clone(), since, connection),
        )
        .await
        .map_err(|e| status_of(&e))?;
        let token_expires = std::time::UNIX_EPOCH + Duration::from_secs(ctx.expires_at);
        let pump = Pump {
            cursor: sub.cursor.clone(),
            token_expires,
            sub,
            tenant: ctx.tenant,
            prefixes: req.prefixes,
            hub: self.hub.clone(),
            routes: self.routes.clone(),
            heartbeat: self.heartbeat,
            phase: Phase::Replay(0),
            _slot: slot,
        };
        Ok(Response::new(Box::pin(pump)))
    }
}

#[tonic::async_trait]
impl pb::config_refresh_server::ConfigRefresh for PushService {
    async fn refresh(&self, request: Request<pb::RefreshRequest>) -> Result<Response<pb::RefreshResponse>, Status> {
        let verifier = self
            .service_auth
            .as_ref()
            .ok_or_else(|| Status::permission_denied("this server takes no Refresh calls"))?;
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or("\u{0}"));
        let caller = verifier.verify_authorization(header).map_err(|e| auth_status(&e))?;
        let changes = request
            .into_inner()
            .changes
            .into_iter()
            .map(|c| change_from_pb(c, &self.routes))
            .collect::<Result<Vec<_>, _>>()?;
        let (mut accepted, mut duplicates) = (0, 0);
        for change in changes {
            match self.hub.publish(change).await.map_err(|e| status_of(&e))? {
                Published::Delivered => accepted += 1,
                Published::Duplicate => duplicates += 1,
            }
        }
        tracing::debug!(caller, accepted, duplicates, "refresh");
        Ok(Response::new(pb::RefreshResponse { accepted, duplicates }))
    }
}
