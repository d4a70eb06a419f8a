//! The `tagcfg.v1.ConfigWatch` service.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tagged_routing::{Change, Owner, Revision, RoutingTable};
use tenant_auth::service::ServiceVerifier;
use tenant_auth::{TenantContext, Verifier};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::convert::{auth_status, change_from_pb, change_to_pb, item_to_pb, status_of};
use crate::hub::{Published, Subscription};
use crate::pb::{self, watch_event::Event};
use crate::Hub;

/// The most keys one `Get` may ask for, and the most prefixes one `Watch` may name.
pub const MAX_KEYS: usize = 100;
pub const MAX_PREFIXES: usize = 32;
/// Changes per replay batch.
const REPLAY_BATCH: usize = 100;

pub struct WatchService {
    hub: Arc<Hub>,
    routes: Arc<RoutingTable>,
    verifier: Arc<Verifier>,
    service_auth: Option<Arc<ServiceVerifier>>,
    heartbeat: Duration,
}

impl WatchService {
    /// `service_auth`: the verifier of `Refresh` callers; `None` refuses every `Refresh`
    /// (a server fed in-process needs none).
    pub fn new(
        hub: Arc<Hub>,
        routes: Arc<RoutingTable>,
        verifier: Arc<Verifier>,
        service_auth: Option<Arc<ServiceVerifier>>,
        heartbeat: Duration,
    ) -> Self {
        WatchService {
            hub,
            routes,
            verifier,
            service_auth,
            heartbeat,
        }
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
            .verify_authorization(header)
            .await
            .map_err(|e| auth_status(&e))
    }
}

fn event(e: Event) -> pb::WatchEvent {
    pb::WatchEvent { event: Some(e) }
}

fn batch(changes: &[Change]) -> pb::WatchEvent {
    event(Event::Changes(pb::ChangeBatch {
        revision: changes.last().map_or(0, |c| c.revision.0),
        changes: changes.iter().map(change_to_pb).collect(),
    }))
}

/// Feeds one watcher: replay, then live changes and heartbeats; ends with a resync when
/// the hub cut it off. Exits when the client goes away.
async fn pump(
    mut sub: Subscription,
    // Plain events, not `Result<_, Status>`: a `Status` is ~170 bytes and a channel
    // allocates 32 slots at a time, so this saves ~4 KiB per open stream.
    tx: mpsc::Sender<pb::WatchEvent>,
    heartbeat: Duration,
    since: Option<Revision>,
) {
    if let Some(reason) = sub.resync.take() {
        let _ = tx
            .send(event(Event::Resync(pb::Resync {
                reason,
                head_revision: sub.head.0,
            })))
            .await;
        return;
    }
    for chunk in sub.replay.chunks(REPLAY_BATCH) {
        if tx.send(batch(chunk)).await.is_err() {
            return;
        }
    }
    // Everything up to the head is now accounted for (replayed, or not asked for). Say so
    // at once: a client knows from here which revision it is live from.
    let mut complete_to = since.map_or(sub.head, |s| s.max(sub.head));
    if tx
        .send(event(Event::Heartbeat(pb::Heartbeat {
            revision: complete_to.0,
        })))
        .await
        .is_err()
    {
        return;
    }
    let mut ticker = tokio::time::interval(heartbeat);
    ticker.tick().await;
    loop {
        tokio::select! {
            change = sub.live.recv() => match change {
                Some(change) if change.revision <= complete_to => {}
                Some(change) => {
                    complete_to = change.revision;
                    if tx.send(batch(std::slice::from_ref(&*change))).await.is_err() {
                        return;
                    }
                }
                None => {
                    let reason = sub.cut.get().cloned().unwrap_or_else(|| "the server stopped this stream; resume with since_revision".to_owned());
                    let _ = tx.send(event(Event::Resync(pb::Resync { reason, head_revision: complete_to.0 }))).await;
                    return;
                }
            },
            _ = ticker.tick() => {
                if tx.send(event(Event::Heartbeat(pb::Heartbeat { revision: complete_to.0 }))).await.is_err() {
                    return;
                }
            }
            _ = tx.closed() => return,
        }
    }
}

#[tonic::async_trait]
impl pb::config_watch_server::ConfigWatch for WatchService {
    async fn get(&self, request: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        let ctx = self.tenant(&request).await?;
        let keys = request.into_inner().keys;
        if keys.is_empty() || keys.len() > MAX_KEYS {
            return Err(Status::invalid_argument(format!("ask for 1 to {MAX_KEYS} keys")));
        }
        let keys = keys
            .iter()
            .map(|k| self.routes.parse_key(k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| status_of(&e))?;
        let owner = Owner::Tenant(ctx.tenant);
        let (items, missing, head) = self.hub.get(&owner, &keys).await.map_err(|e| status_of(&e))?;
        Ok(Response::new(pb::GetResponse {
            items: items.iter().map(item_to_pb).collect(),
            missing,
            revision: head.0,
        }))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

    async fn watch(&self, request: Request<pb::WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let ctx = self.tenant(&request).await?;
        let req = request.into_inner();
        if req.prefixes.len() > MAX_PREFIXES || req.prefixes.iter().any(|p| p.len() > 300) {
            return Err(Status::invalid_argument(format!(
                "at most {MAX_PREFIXES} prefixes of at most 300 characters"
            )));
        }
        let owner = Owner::Tenant(ctx.tenant);
        let since = req.since_revision.map(Revision);
        let sub = self
            .hub
            .subscribe(&owner, req.prefixes, since)
            .await
            .map_err(|e| status_of(&e))?;
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(pump(sub, tx, self.heartbeat, since));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx).map(Ok))))
    }

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
            .map(change_from_pb)
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
