//! The fan-out hub: every change of a tenant goes to that tenant's subscribers whose
//! prefixes match, in revision order, at most once.
//!
//! - **Idempotent**: a change at or below the tenant's head is a duplicate and ignored, so
//!   retried `Refresh` calls and overlapping feeds are harmless.
//! - **Gap-free**: a change that skips revisions makes the hub read the missing ones from
//!   the store's change log first; if the log no longer has them, every subscriber of the
//!   tenant gets a `resync` instead of a silent gap.
//! - **Bounded**: each subscriber has a fixed buffer; one that falls behind is cut off (its
//!   stream ends with `resync: slow consumer`) instead of holding memory or delaying the
//!   others.
//! - **Replay**: a subscriber that resumes after a revision gets the missed changes from an
//!   in-memory ring, or from the store's change log, or an explicit resync.
//! - **Cache**: the latest value of each key read or pushed, so `Get` needs no backend read
//!   after warm-up.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tagged_routing::{Change, ChangeOp, ConfigItem, ConfigStore, Key, Layer, Owner, Result, Revision, SHARED_OWNER};
use tokio::sync::mpsc;

/// Why a subscriber whose buffer filled up was cut off.
pub const SLOW_CONSUMER: &str =
    "slow consumer: the stream fell too far behind and was cut off; resume with since_revision";

/// Sizes of the hub's buffers.
#[derive(Debug, Clone, Copy)]
pub struct HubConfig {
    /// Changes kept per tenant for replay.
    pub ring_capacity: usize,
    /// Changes buffered per subscriber before it is cut off.
    pub subscriber_buffer: usize,
    /// Page size when reading the store's change log.
    pub log_page: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            ring_capacity: 1024,
            subscriber_buffer: 256,
            log_page: 500,
        }
    }
}

/// What `publish` did with a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    Delivered,
    Duplicate,
}

struct Subscriber {
    prefixes: Vec<String>,
    tx: mpsc::Sender<Arc<Change>>,
    cut: Arc<OnceLock<String>>,
}

#[derive(Default)]
struct TenantState {
    head: Option<Revision>,
    ring: VecDeque<Arc<Change>>,
    subscribers: Vec<Subscriber>,
    cache: HashMap<String, ConfigItem>,
}

/// A registered watcher: what it missed, then live changes.
pub struct Subscription {
    /// Changes after the requested revision, in order (already filtered by prefix).
    pub replay: Vec<Change>,
    /// Set when the missed changes cannot be replayed: the stream must say so.
    pub resync: Option<String>,
    /// The tenant's head when the subscription started.
    pub head: Revision,
    /// Live changes after `head`.
    pub live: mpsc::Receiver<Arc<Change>>,
    /// Set by the hub, with the reason, when it cut this subscriber off.
    pub cut: Arc<OnceLock<String>>,
}

/// See the module documentation.
pub struct Hub {
    store: Arc<dyn ConfigStore>,
    config: HubConfig,
    tenants: Mutex<HashMap<String, TenantState>>,
    /// Serialises publishing and subscribing, so a subscriber's replay and its live
    /// changes meet exactly at its head.
    order: tokio::sync::Mutex<()>,
    duplicates: AtomicU64,
}

fn matches(prefixes: &[String], key: &str) -> bool {
    prefixes.is_empty() || prefixes.iter().any(|p| key.starts_with(p.as_str()))
}

impl Hub {
    pub fn new(store: Arc<dyn ConfigStore>, config: HubConfig) -> Self {
        Hub {
            store,
            config,
            tenants: Mutex::new(HashMap::new()),
            order: tokio::sync::Mutex::new(()),
            duplicates: AtomicU64::new(0),
        }
    }

    pub fn store(&self) -> &Arc<dyn ConfigStore> {
        &self.store
    }

    fn tenants(&self) -> MutexGuard<'_, HashMap<String, TenantState>> {
        self.tenants.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many changes were ignored as duplicates so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    /// The number of live subscribers of `owner`.
    pub fn subscribers(&self, owner: &Owner) -> usize {
        self.tenants().get(owner.as_str()).map_or(0, |t| t.subscribers.len())
    }

    /// The head the hub knows for `owner`, loading it from the store the first time.
    pub async fn head(&self, owner: &Owner) -> Result<Revision> {
        if let Some(h) = self.tenants().get(owner.as_str()).and_then(|t| t.head) {
            return Ok(h);
        }
        let loaded = self.store.head_revision(owner).await?;
        let mut tenants = self.tenants();
        let state = tenants.entry(owner.as_str().to_owned()).or_default();
        Ok(*state.head.get_or_insert(loaded))
    }

    /// Takes in one change (from the in-process feed or `Refresh`).
    pub async fn publish(&self, change: Change) -> Result<Published> {
        let _order = self.order.lock().await;
        let head = self.tenants().get(&change.tenant).and_then(|t| t.head);
        match head {
            Some(h) if change.revision <= h => {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
                return Ok(Published::Duplicate);
            }
            Some(h) if change.revision.0 > h.0 + 1 => {
                let owner = Owner::parse(&change.tenant)?;
                let wanted = change.revision.0 - h.0 - 1;
                match self.read_log(&owner, h, wanted).await {
                    Ok(missing) if is_contiguous(&missing, h, wanted) => {
                        for c in missing {
                            self.deliver(c);
                        }
                    }
                    _ => self.break_continuity(
                        &change.tenant,
                        "the feed skipped revisions the change log does not hold",
                    ),
                }
            }
            _ => {}
        }
        self.deliver(change);
        Ok(Published::Delivered)
    }

    /// Reads from the store the changes the hub may have missed (after a lagging feed).
    pub async fn catch_up(&self, owner: &Owner) -> Result<()> {
        let store_head = self.store.head_revision(owner).await?;
        let known = self.tenants().get(owner.as_str()).and_then(|t| t.head);
        if let Some(h) = known {
            if store_head > h {
                for change in self.read_log(owner, h, store_head.0 - h.0).await? {
                    self.publish(change).await?;
                }
            }
        }
        Ok(())
    }

    /// The owners the hub has state for.
    pub fn known_owners(&self) -> Vec<Owner> {
        self.tenants().keys().filter_map(|t| Owner::parse(t).ok()).collect()
    }

    fn deliver(&self, change: Change) {
        let change = Arc::new(change);
        let mut tenants = self.tenants();
        if change.tenant == SHARED_OWNER {
            // A shared-layer change can change what any tenant reads for this key.
            for state in tenants.values_mut() {
                state.cache.remove(&change.key);
            }
        }
        let state = tenants.entry(change.tenant.clone()).or_default();
        state.head = Some(change.revision);
        state.ring.push_back(change.clone());
        while state.ring.len() > self.config.ring_capacity {
            state.ring.pop_front();
        }
        match (&change.op, &change.value) {
            (ChangeOp::Put, Some(value)) => {
                let newer = state
                    .cache
                    .get(&change.key)
                    .is_none_or(|i| i.revision < change.revision);
                if newer {
                    let item = ConfigItem {
                        key: change.key.clone(),
                        value: value.clone(),
                        version: change.version,
                        revision: change.revision,
                        updated_at: change.at.clone(),
                        updated_by: change.actor.clone(),
                        layer: if change.tenant == SHARED_OWNER {
                            Layer::Shared
                        } else {
                            Layer::Tenant
                        },
                    };
                    state.cache.insert(change.key.clone(), item);
                }
            }
            // A value not carried inline, or a delete (which may uncover a shared value):
            // the next Get reads the store.
            _ => {
                state.cache.remove(&change.key);
            }
        }
        state.subscribers.retain(|s| {
            if !matches(&s.prefixes, &change.key) {
                return !s.tx.is_closed();
            }
            match s.tx.try_send(change.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let _ = s.cut.set(SLOW_CONSUMER.to_owned());
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    /// Ends every subscription (server shutdown): each stream closes with a resync that
    /// tells its client to resume elsewhere or later.
    pub fn close_all(&self) {
        let mut tenants = self.tenants();
        for state in tenants.values_mut() {
            state.subscribers.clear();
        }
    }

    fn break_continuity(&self, tenant: &str, reason: &str) {
        tracing::warn!(tenant, reason, "cutting every subscriber of the tenant off");
        let mut tenants = self.tenants();
        if let Some(state) = tenants.get_mut(tenant) {
            for s in state.subscribers.drain(..) {
                let _ = s.cut.set(reason.to_owned());
            }
            state.ring.clear();
            state.cache.clear();
        }
    }

    async fn read_log(&self, owner: &Owner, after: Revision, count: u64) -> Result<Vec<Change>> {
        let mut out: Vec<Change> = Vec::new();
        let mut since = after;
        while (out.len() as u64) < count {
            let want = (count - out.len() as u64).min(self.config.log_page as u64) as usize;
            let page = self.store.changes_since(owner, since, want).await?;
            let Some(last) = page.last() else { break };
            since = last.revision;
            out.extend(page);
        }
        Ok(out)
    }

    /// Registers a watcher of `owner` for keys under `prefixes`, resuming after `since`.
    pub async fn subscribe(
        &self,
        owner: &Owner,
        prefixes: Vec<String>,
        since: Option<Revision>,
    ) -> Result<Subscription> {
        let _order = self.order.lock().await;
        let head = self.head(owner).await?;
        let (tx, live) = mpsc::channel(self.config.subscriber_buffer.max(1));
        let cut = Arc::new(OnceLock::new());
        let (replay, resync) = match since {
            None => (Vec::new(), None),
            Some(s) if s > head => (
                Vec::new(),
                Some(format!("since_revision {s} is ahead of the tenant's head {head}")),
            ),
            Some(s) if s == head => (Vec::new(), None),
            Some(s) => match self.ring_since(owner, s, head) {
                Some(changes) => (changes, None),
                None => match self.read_log(owner, s, head.0 - s.0).await {
                    Ok(changes) if is_contiguous(&changes, s, head.0 - s.0) => (changes, None),
                    Ok(_) => (
                        Vec::new(),
                        Some(format!("the change log no longer holds revision {}", s.0 + 1)),
                    ),
                    Err(e) => return Err(e),
                },
            },
        };
        let replay = replay.into_iter().filter(|c| matches(&prefixes, &c.key)).collect();
        if resync.is_none() {
            let mut tenants = self.tenants();
            tenants
                .entry(owner.as_str().to_owned())
                .or_default()
                .subscribers
                .push(Subscriber {
                    prefixes,
                    tx,
                    cut: cut.clone(),
                });
        }
        Ok(Subscription {
            replay,
            resync,
            head,
            live,
            cut,
        })
    }

    /// The ring's changes after `since`, if the ring still holds all of them.
    fn ring_since(&self, owner: &Owner, since: Revision, head: Revision) -> Option<Vec<Change>> {
        let tenants = self.tenants();
        let ring = &tenants.get(owner.as_str())?.ring;
        let first = ring.front()?.revision;
        let last = ring.back()?.revision;
        if first.0 > since.0 + 1 || last != head {
            return None;
        }
        Some(
            ring.iter()
                .filter(|c| c.revision > since)
                .map(|c| (**c).clone())
                .collect(),
        )
    }

    /// Current values of `keys` for `owner`: cached ones without a backend read, the rest
    /// from the store (and cached). Returns found items, missing keys and the head.
    pub async fn get(&self, owner: &Owner, keys: &[Key]) -> Result<(Vec<ConfigItem>, Vec<String>, Revision)> {
        let head = self.head(owner).await?;
        let mut found = Vec::new();
        let mut misses = Vec::new();
        {
            let tenants = self.tenants();
            let cache = tenants.get(owner.as_str()).map(|t| &t.cache);
            for key in keys {
                match cache.and_then(|c| c.get(key.as_str())) {
                    Some(item) => found.push(item.clone()),
                    None => misses.push(key.clone()),
                }
            }
        }
        let mut missing = Vec::new();
        if !misses.is_empty() {
            let read = self.store.batch_get(owner, &misses).await?;
            let mut tenants = self.tenants();
            let state = tenants.entry(owner.as_str().to_owned()).or_default();
            // Cache only if no change arrived meanwhile (it could be newer than the read).
            let unchanged = state.head == Some(head);
            for key in &misses {
                match read.iter().find(|i| i.key == key.as_str()) {
                    Some(item) => {
                        if unchanged {
                            state.cache.insert(item.key.clone(), item.clone());
                        }
                        found.push(item.clone());
                    }
                    None => missing.push(key.as_str().to_owned()),
                }
            }
        }
        Ok((found, missing, head))
    }
}

fn is_contiguous(changes: &[Change], after: Revision, count: u64) -> bool {
    changes.len() as u64 == count
        && changes
            .iter()
            .enumerate()
            .all(|(i, c)| c.revision.0 == after.0 + 1 + i as u64)
}
