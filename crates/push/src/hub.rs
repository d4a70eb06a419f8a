//! The fan-out hub: every change of an owner's log (a tenant, a tier, the shared layer)
//! becomes an update of the *effective* values of every tenant that reads through it, sent
//! to that tenant's subscribers whose prefixes match, in order, at most once.
//!
//! - **Per-log order, never across logs**: the hub keeps a head per owner; a change at or
//!   below its owner's head is a duplicate and ignored, so retried `Refresh` calls and
//!   overlapping feeds are harmless. Revisions of different owners are never compared.
//! - **Gap-free**: a change that skips revisions makes the hub read the missing ones from the
//!   store's change log first; if the log no longer has them, every subscriber that follows
//!   the owner gets a `resync` instead of a silent gap. A change beyond the store's own head
//!   cannot be real and is refused, so a bad `Refresh` cannot poison an owner's head.
//! - **Layers**: a change of a tier or of the shared layer reaches the subscribers of every
//!   tenant reading through it, unless the tenant (or its tier) overrides the key; deleting
//!   an override announces the value that shows again; a tenant's tier change announces
//!   every key of the old and the new tier. Which update is visible is decided by
//!   [`tagged_routing::layers`], the one resolution rule.
//! - **Cursor**: a subscriber's position is a [`Cursor`] over the logs it follows; resuming
//!   from one replays the current effective value of every key that moved after it, or
//!   resyncs when a log no longer covers it.
//! - **Bounded**: each subscriber has a fixed buffer; one that falls behind is cut off (its
//!   stream ends with `resync: slow consumer`) instead of holding memory or delaying others.
//! - **Cache**: each owner's own layer, as read or pushed, so `Get` needs no backend read
//!   after warm-up; entries change only with their own owner's log.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use async_trait::async_trait;
use prost::bytes::Bytes;
use tagged_routing::layers::{is_visible, resolve_in, LayerSource, LayerStack};
use tagged_routing::{
    Change, ChangeOp, ConfigItem, ConfigStore, Error, Key, Owner, Result, Revision, RoutingTable, TenantId, TierName,
};

use crate::mailbox;

/// Why a subscriber whose buffer filled up was cut off.
pub const SLOW_CONSUMER: &str =
    "slow consumer: the stream fell too far behind and was cut off; resume from the last cursor";

/// Sizes of the hub's buffers.
#[derive(Debug, Clone, Copy)]
pub struct HubConfig {
    /// Changes kept per owner for replay.
    pub ring_capacity: usize,
    /// Deliveries buffered per subscriber before it is cut off.
    pub subscriber_buffer: usize,
    /// Page size when reading the store's change log or listing a layer.
    pub log_page: usize,
    /// The most keys a tier layer may hold for a tier change to be announced key by key;
    /// beyond it, the tenant's subscribers get a resync.
    pub max_tier_keys: usize,
    /// The most owners whose state (head, ring, cache) the hub keeps without anyone
    /// following them; past it, the least recently used of those are forgotten (their
    /// state comes back from the store when needed). Owners a subscriber reads through are
    /// never evicted.
    pub max_idle_owners: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            ring_capacity: 1024,
            subscriber_buffer: 256,
            log_page: 500,
            max_tier_keys: 10_000,
            max_idle_owners: 10_000,
        }
    }
}

/// What `publish` did with a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    Delivered,
    Duplicate,
}

/// A position in every log a tenant's stream follows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cursor {
    pub tenant: Revision,
    /// The tenant's tier at this position, and that tier's revision.
    pub tier: Option<(TierName, Revision)>,
    pub shared: Revision,
}

impl std::fmt::Display for Cursor {
    /// `tenant=12,shared=40` or `tenant=12,tier=pro@3,shared=40`: the form the CLI prints
    /// and accepts.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tenant={}", self.tenant)?;
        if let Some((tier, r)) = &self.tier {
            write!(f, ",tier={tier}@{r}")?;
        }
        write!(f, ",shared={}", self.shared)
    }
}

impl std::str::FromStr for Cursor {
    type Err = Error;

    fn from_str(raw: &str) -> Result<Self> {
        let bad = || Error::InvalidValue(format!("cursor '{raw}' is not tenant=N[,tier=NAME@N],shared=N"));
        let number = |v: &str| v.parse::<u64>().map(Revision).map_err(|_| bad());
        let mut cursor = Cursor::default();
        let (mut tenant, mut shared) = (false, false);
        for part in raw.split(',') {
            match part.split_once('=').ok_or_else(bad)? {
                ("tenant", v) => (cursor.tenant, tenant) = (number(v)?, true),
                ("shared", v) => (cursor.shared, shared) = (number(v)?, true),
                ("tier", v) => {
                    let (name, r) = v.split_once('@').ok_or_else(bad)?;
                    cursor.tier = Some((TierName::parse(name)?, number(r)?));
                }
                _ => return Err(bad()),
            }
        }
        if tenant && shared {
            Ok(cursor)
        } else {
            Err(bad())
        }
    }
}

/// The effective value of one key moved: `Put` with the item it now reads as, or `Delete`
/// when no layer holds it any more (the item is then `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub key: String,
    pub item: Option<ConfigItem>,
    /// For a delete: the change that removed the last value.
    pub removed_by: Option<Change>,
}

impl Update {
    fn new(key: &str, effective: Option<ConfigItem>, cause: &Change) -> Self {
        Update {
            key: key.to_owned(),
            removed_by: effective.is_none().then(|| cause.clone()),
            item: effective,
        }
    }
}

/// What the hub sends a subscriber: updates of its tenant (not yet filtered by prefix) and
/// the cursor once they are applied.
#[derive(Debug)]
pub struct Delivery {
    pub updates: Vec<Update>,
    pub cursor: Cursor,
    /// The delivery as one encoded `WatchEvent` with every update, set by the first stream
    /// that sends it whole and copied by the others (`crate::frame`).
    pub encoded: OnceLock<Bytes>,
}

struct Subscriber {
    prefixes: Vec<String>,
    tx: mailbox::Sender<Arc<Delivery>>,
    cut: Arc<OnceLock<String>>,
}

/// One owner's log as the hub knows it, and the owner's own layer as cached.
#[derive(Default)]
struct LogState {
    head: Option<Revision>,
    /// Set from the hub's clock whenever a change alters the cache (or a tenant's tier): a
    /// store read begun before is not cached after. Never repeats, even across evictions.
    epoch: u64,
    /// When the owner was last used (the hub's clock), for eviction.
    last_used: u64,
    ring: VecDeque<Arc<Change>>,
    /// key → the owner's own item, or `None` when known absent.
    cache: HashMap<String, Option<ConfigItem>>,
    /// The updates of a change set applied so far, held until its last change so that
    /// watchers get the set in one batch.
    pending_set: Vec<(TenantId, Vec<Update>)>,
}

#[derive(Default)]
struct TenantState {
    /// The tenant's tier once read (`Some(None)`: none).
    tier: Option<Option<TierName>>,
    subscribers: Subscribers,
}

/// A tenant's subscribers, grouped by the client connection their stream arrived on, so a
/// delivery wakes one connection's streams one after the other: the connection then writes
/// their frames in a few bursts (`serving::Guarded::coalescing_writes`) instead of one
/// `writev` per stream, which in arrival order (streams of many connections interleaved)
/// it did. Empty groups are removed.
#[derive(Default)]
struct Subscribers(BTreeMap<Option<SocketAddr>, Vec<Subscriber>>);

impl Subscribers {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn len(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }

    fn iter(&self) -> impl Iterator<Item = &Subscriber> {
        self.0.values().flatten()
    }

    fn add(&mut self, connection: Option<SocketAddr>, subscriber: Subscriber) {
        self.0.entry(connection).or_default().push(subscriber);
    }

    fn clear(&mut self) {
        self.0.clear();
    }

    /// Removes every subscriber, telling each why.
    fn cut(&mut self, reason: &str) {
        for s in std::mem::take(&mut self.0).into_values().flatten() {
            let _ = s.cut.set(reason.to_owned());
        }
    }

    fn retain(&mut self, mut keep: impl FnMut(&Subscriber) -> bool) {
        self.0.retain(|_, group| {
            group.retain(&mut keep);
            !group.is_empty()
        });
    }
}

#[derive(Default)]
struct State {
    logs: HashMap<Owner, LogState>,
    tenants: HashMap<TenantId, TenantState>,
}

/// A registered watcher: what it missed, then live deliveries.
pub struct Subscription {
    /// The current value of every key that moved after the requested cursor (already
    /// filtered by prefix).
    pub replay: Vec<Update>,
    /// Set when the missed changes cannot be replayed: the stream must say so.
    pub resync: Option<String>,
    /// The position the subscription starts from.
    pub cursor: Cursor,
    /// Live deliveries after `cursor`.
    pub live: mailbox::Receiver<Arc<Delivery>>,
    /// Set by the hub, with the reason, when it cut this subscriber off.
    pub cut: Arc<OnceLock<String>>,
}

/// See the module documentation.
pub struct Hub {
    store: Arc<dyn ConfigStore>,
    routes: Arc<RoutingTable>,
    config: HubConfig,
    state: Mutex<State>,
    /// Serialises publishing and subscribing, so a subscriber's replay and its live
    /// deliveries meet exactly at its cursor.
    order: tokio::sync::Mutex<()>,
    duplicates: AtomicU64,
    /// A logical clock for epochs and recency.
    clock: AtomicU64,
}

/// Whether a watcher of `prefixes` follows `key`. Schema registrations (stored in the
/// shared log) are never configuration a tenant watches.
pub(crate) fn matches(prefixes: &[String], key: &str) -> bool {
    !tagged_routing::governance::is_record_key(key)
        && (prefixes.is_empty() || prefixes.iter().any(|p| key.starts_with(p.as_str())))
}

/// Reads through the hub's caches, filling them from the store.
struct CachedView<'a>(&'a Hub);

#[async_trait]
impl LayerSource for CachedView<'_> {
    async fn tier_of(&self, tenant: &TenantId) -> Result<Option<TierName>> {
        self.0.tier_of(tenant).await
    }

    async fn own_items(&self, owner: &Owner, keys: &[Key]) -> Result<Vec<ConfigItem>> {
        let hub = self.0;
        // Known head first: from now on every change of this owner is applied here.
        hub.head(owner).await?;
        let epoch = hub.epoch(owner);
        let mut found = Vec::new();
        let mut misses = Vec::new();
        {
            let state = hub.state();
            let cache = state.logs.get(owner).map(|l| &l.cache);
            for key in keys {
                match cache.and_then(|c| c.get(key.as_str())) {
                    Some(Some(item)) => found.push(item.clone()),
                    Some(None) => {}
                    None => misses.push(key.clone()),
                }
            }
        }
        if misses.is_empty() {
            return Ok(found);
        }
        let read = LayerSource::own_items(&*hub.store, owner, &misses).await?;
        let mut state = hub.state();
        // Cache only if no change of this owner arrived meanwhile (it could be newer), and
        // only while the hub still tracks its head (an evicted owner's changes are dropped).
        if let Some(log) = state
            .logs
            .get_mut(owner)
            .filter(|l| l.epoch == epoch && l.head.is_some())
        {
            log.last_used = hub.tick();
            for key in &misses {
                let item = read.iter().find(|i| i.key == key.as_str()).cloned();
                log.cache.insert(key.as_str().to_owned(), item);
            }
        }
        hub.evict_idle(&mut state);
        found.extend(read);
        Ok(found)
    }
}

impl Hub {
    /// `routes` must be the store's: keys arriving in changes are parsed with it.
    pub fn new(store: Arc<dyn ConfigStore>, routes: Arc<RoutingTable>, config: HubConfig) -> Self {
        Hub {
            store,
            routes,
            config,
            state: Mutex::new(State::default()),
            order: tokio::sync::Mutex::new(()),
            duplicates: AtomicU64::new(0),
            clock: AtomicU64::new(1),
        }
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// How many owners the hub keeps state for (followed or not).
    pub fn cached_owners(&self) -> usize {
        self.state().logs.len()
    }

    /// Forgets the least recently used owners nobody follows, past `max_idle_owners`.
    fn evict_idle(&self, state: &mut State) {
        if state.logs.len() <= self.config.max_idle_owners {
            return;
        }
        let mut followed = std::collections::HashSet::new();
        for (tenant, t) in &state.tenants {
            if !t.subscribers.is_empty() {
                followed.insert(Owner::Tenant(tenant.clone()));
                if let Some(Some(tier)) = &t.tier {
                    followed.insert(Owner::Tier(tier.clone()));
                }
                followed.insert(Owner::Shared);
            }
        }
        let mut idle: Vec<(u64, Owner)> = state
            .logs
            .iter()
            .filter(|(o, _)| !followed.contains(*o))
            .map(|(o, l)| (l.last_used, o.clone()))
            .collect();
        if idle.len() <= self.config.max_idle_owners {
            return;
        }
        idle.sort_by_key(|(used, _)| *used);
        let excess = idle.len() - self.config.max_idle_owners;
        for (_, owner) in idle.into_iter().take(excess) {
            state.logs.remove(&owner);
            if let Owner::Tenant(t) = &owner {
                if state.tenants.get(t).is_some_and(|s| s.subscribers.is_empty()) {
                    state.tenants.remove(t);
                }
            }
        }
    }

    pub fn store(&self) -> &Arc<dyn ConfigStore> {
        &self.store
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many changes were ignored as duplicates so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    /// The number of live subscribers of `tenant`.
    pub fn subscribers(&self, tenant: &TenantId) -> usize {
        self.state().tenants.get(tenant).map_or(0, |t| t.subscribers.len())
    }

    /// The head the hub knows for `owner`, loading it from the store the first time.
    pub async fn head(&self, owner: &Owner) -> Result<Revision> {
        if let Some(h) = self.state().logs.get(owner).and_then(|l| l.head) {
            return Ok(h);
        }
        let loaded = self.store.head_revision(owner).await?;
        let tick = self.tick();
        let mut state = self.state();
        let log = state.logs.entry(owner.clone()).or_insert_with(|| LogState {
            // A fresh epoch: a read that began against an evicted state never matches it.
            epoch: tick,
            last_used: tick,
            ..LogState::default()
        });
        Ok(*log.head.get_or_insert(loaded))
    }

    /// The cache epoch of `owner`'s log (see `LogState::epoch`); 0 when it has no state.
    fn epoch(&self, owner: &Owner) -> u64 {
        let tick = self.tick();
        let mut state = self.state();
        state.logs.get_mut(owner).map_or(0, |l| {
            l.last_used = tick;
            l.epoch
        })
    }

    async fn tier_of(&self, tenant: &TenantId) -> Result<Option<TierName>> {
        if let Some(tier) = self.state().tenants.get(tenant).and_then(|t| t.tier.clone()) {
            return Ok(tier);
        }
        let owner = Owner::Tenant(tenant.clone());
        self.head(&owner).await?;
        let epoch = self.epoch(&owner);
        let loaded = self.store.tier_of(tenant).await?;
        let mut state = self.state();
        let unchanged = state
            .logs
            .get(&owner)
            .is_some_and(|l| l.epoch == epoch && l.head.is_some());
        let entry = state.tenants.entry(tenant.clone()).or_default();
        if unchanged {
            entry.tier.get_or_insert(loaded.clone());
        }
        Ok(loaded)
    }

    async fn stack(&self, tenant: &TenantId) -> Result<LayerStack> {
        Ok(LayerStack::new(tenant.clone(), self.tier_of(tenant).await?))
    }

    /// The position of every log `stack` follows, as the hub knows them now.
    async fn cursor_of(&self, stack: &LayerStack) -> Result<Cursor> {
        let tenant = self.head(&Owner::Tenant(stack.tenant().clone())).await?;
        let tier = match stack.tier() {
            Some(t) => Some((t.clone(), self.head(&Owner::Tier(t.clone())).await?)),
            None => None,
        };
        let shared = self.head(&Owner::Shared).await?;
        Ok(Cursor { tenant, tier, shared })
    }

    /// The cursor of `tenant`'s logs, but only while `live` holds nothing: then every change
    /// up to it has been delivered or was invisible to the subscriber.
    pub fn cursor_if_drained(&self, tenant: &TenantId, live: &mailbox::Receiver<Arc<Delivery>>) -> Option<Cursor> {
        let state = self.state();
        if !live.is_empty() {
            return None;
        }
        match cursor_in(&state, tenant)? {
            (cursor, true) => Some(cursor),
            (_, false) => None,
        }
    }

    /// Takes in one change (from the in-process feed or `Refresh`).
    pub async fn publish(&self, change: Change) -> Result<Published> {
        let _order = self.order.lock().await;
        let owner = Owner::parse(&change.tenant)?;
        let known = self.state().logs.get(&owner).and_then(|l| l.head);
        let Some(head) = known else {
            // Nothing of this owner is cached or followed here: there is nothing to update,
            // and whoever follows it later loads its head from the store.
            return Ok(Published::Delivered);
        };
        if change.revision <= head {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return Ok(Published::Duplicate);
        }
        if change.revision.0 > head.0 + 1 {
            let wanted = change.revision.0 - head.0 - 1;
            match self.read_log(&owner, head, wanted).await {
                Ok(missing) if is_contiguous(&missing, head, wanted) => {
                    for c in missing {
                        self.apply(&owner, c).await?;
                    }
                }
                _ => {
                    let store_head = self.store.head_revision(&owner).await?;
                    self.check_real(&change, store_head)?;
                    self.break_continuity(&owner, "the feed skipped revisions the change log does not hold");
                }
            }
        }
        self.apply(&owner, change).await?;
        Ok(Published::Delivered)
    }

    /// A change beyond the store's own head cannot have been committed: refuse it rather
    /// than move the hub's head past every real change to come.
    fn check_real(&self, change: &Change, store_head: Revision) -> Result<()> {
        if change.revision > store_head {
            tracing::warn!(
                owner = change.tenant,
                revision = change.revision.0,
                store_head = store_head.0,
                "refusing a change beyond the store's head"
            );
            return Err(Error::InvalidValue(format!(
                "change {}:{} is beyond the store's head {store_head}",
                change.tenant, change.revision
            )));
        }
        Ok(())
    }

    /// Applies the next change of `owner`: its own cache, then the updates of every tenant
    /// that reads through it, then the head.
    async fn apply(&self, owner: &Owner, change: Change) -> Result<()> {
        let change = Arc::new(change);
        {
            let mut state = self.state();
            let tick = self.tick();
            let log = state.logs.entry(owner.clone()).or_default();
            log.epoch = tick;
            log.last_used = tick;
            match (&change.op, &change.value) {
                (ChangeOp::Put, Some(value)) => {
                    let item = ConfigItem::written(owner, &change, value);
                    log.cache.insert(change.key.clone(), Some(item));
                }
                (ChangeOp::Delete, _) => {
                    log.cache.insert(change.key.clone(), None);
                }
                // A value not carried inline: the next read asks the store.
                (ChangeOp::Put, None) => {
                    log.cache.remove(&change.key);
                }
                (ChangeOp::Tier, _) => {}
            }
        }
        let mut deliveries: Vec<(TenantId, Vec<Update>)> = Vec::new();
        let mut tier_moves: Option<(TenantId, Option<TierName>)> = None;
        match change.op {
            ChangeOp::Tier => {
                if let (Owner::Tenant(tenant), Some(new_tier)) = (owner, change.assigned_tier()) {
                    tier_moves = Some((tenant.clone(), new_tier));
                }
            }
            _ => {
                for tenant in self.tenants_reading(owner, &change.key) {
                    let stack = self.stack(&tenant).await?;
                    let key = self.routes.parse_key(&change.key)?;
                    let effective = resolve_in(&CachedView(self), &stack, std::slice::from_ref(&key))
                        .await?
                        .pop();
                    if is_visible(&stack, owner, change.op, effective.as_ref()) {
                        deliveries.push((tenant, vec![Update::new(&change.key, effective, &change)]));
                    }
                }
            }
        }
        if let Some((tenant, new_tier)) = tier_moves {
            let old_tier = self.tier_of(&tenant).await?;
            let moved = self.tier_move(&tenant, old_tier, new_tier.clone(), &change).await;
            self.state().tenants.entry(tenant.clone()).or_default().tier = Some(new_tier);
            match moved {
                Ok(updates) => deliveries.push((tenant, updates)),
                Err(e) => {
                    self.cut_tenant(
                        &tenant,
                        &format!("the tenant's tier changed and its keys could not be listed: {e}"),
                    );
                }
            }
        }
        let mut state = self.state();
        let log = state.logs.entry(owner.clone()).or_default();
        log.head = Some(change.revision);
        log.ring.push_back(change.clone());
        while log.ring.len() > self.config.ring_capacity {
            log.ring.pop_front();
        }
        if change.set_last.is_some_and(|last| last > change.revision) {
            log.pending_set.extend(deliveries);
            return Ok(());
        }
        let mut held = std::mem::take(&mut log.pending_set);
        held.extend(deliveries);
        for (tenant, updates) in merge_by_tenant(held) {
            deliver(&mut state, &tenant, updates);
        }
        self.evict_idle(&mut state);
        Ok(())
    }

    /// The tenants with subscribers interested in `key` that read through `owner`.
    fn tenants_reading(&self, owner: &Owner, key: &str) -> Vec<TenantId> {
        let state = self.state();
        let interested = |t: &TenantState| t.subscribers.iter().any(|s| matches(&s.prefixes, key));
        match owner {
            Owner::Tenant(t) => state
                .tenants
                .get(t)
                .filter(|s| interested(s))
                .map(|_| vec![t.clone()])
                .unwrap_or_default(),
            Owner::Tier(tier) => state
                .tenants
                .iter()
                .filter(|(_, s)| matches!(&s.tier, Some(Some(t)) if t == tier) && interested(s))
                .map(|(t, _)| t.clone())
                .collect(),
            Owner::Shared => state
                .tenants
                .iter()
                .filter(|(_, s)| interested(s))
                .map(|(t, _)| t.clone())
                .collect(),
        }
    }

    /// The updates of a tenant moving from one tier to another: every key either tier
    /// holds, resolved with the new tier.
    async fn tier_move(
        &self,
        tenant: &TenantId,
        old: Option<TierName>,
        new: Option<TierName>,
        cause: &Change,
    ) -> Result<Vec<Update>> {
        let prefixes: Vec<String> = {
            let state = self.state();
            match state.tenants.get(tenant) {
                Some(t) if !t.subscribers.is_empty() => t.subscribers.iter().flat_map(|s| s.prefixes.clone()).collect(),
                _ => return Ok(Vec::new()),
            }
        };
        let mut keys = BTreeSet::new();
        for tier in old.iter().chain(new.iter()) {
            keys.extend(self.layer_keys(&Owner::Tier(tier.clone()), &prefixes).await?);
        }
        let stack = LayerStack::new(tenant.clone(), new);
        self.updates_for(&stack, keys, cause).await
    }

    /// The current effective value of each key for `stack`.
    async fn updates_for(&self, stack: &LayerStack, keys: BTreeSet<Key>, cause: &Change) -> Result<Vec<Update>> {
        let keys: Vec<Key> = keys.into_iter().collect();
        let mut updates = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(100) {
            let items = resolve_in(&CachedView(self), stack, chunk).await?;
            for key in chunk {
                let item = items.iter().find(|i| i.key == key.as_str()).cloned();
                updates.push(Update::new(key.as_str(), item, cause));
            }
        }
        Ok(updates)
    }

    /// Every key of `owner`'s own layer under any of `prefixes` (all, when one is empty).
    async fn layer_keys(&self, owner: &Owner, prefixes: &[String]) -> Result<Vec<Key>> {
        let all = prefixes.is_empty() || prefixes.iter().any(String::is_empty);
        let scopes: Vec<&str> = if all {
            vec![""]
        } else {
            prefixes.iter().map(String::as_str).collect()
        };
        let mut keys = Vec::new();
        for prefix in scopes {
            let mut after: Option<String> = None;
            loop {
                let page = self
                    .store
                    .list(owner, prefix, after.as_deref(), self.config.log_page)
                    .await?;
                for item in &page.items {
                    keys.push(self.routes.parse_key(&item.key)?);
                }
                if keys.len() > self.config.max_tier_keys {
                    return Err(Error::InvalidValue(format!(
                        "{owner} holds more than {} keys",
                        self.config.max_tier_keys
                    )));
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        Ok(keys)
    }

    /// Reads from the store every change the hub may have missed (after a lagging feed), for
    /// every log it follows.
    pub async fn catch_up(&self) -> Result<()> {
        let known: Vec<(Owner, Revision)> = self
            .state()
            .logs
            .iter()
            .filter_map(|(o, l)| l.head.map(|h| (o.clone(), h)))
            .collect();
        for (owner, head) in known {
            let store_head = self.store.head_revision(&owner).await?;
            if store_head > head {
                for change in self.read_log(&owner, head, store_head.0 - head.0).await? {
                    self.publish(change).await?;
                }
            }
        }
        Ok(())
    }

    /// Ends every subscription (server shutdown): each stream closes with a resync that
    /// tells its client to resume elsewhere or later.
    pub fn close_all(&self) {
        let mut state = self.state();
        for tenant in state.tenants.values_mut() {
            tenant.subscribers.clear();
        }
    }

    fn cut_tenant(&self, tenant: &TenantId, reason: &str) {
        let mut state = self.state();
        if let Some(t) = state.tenants.get_mut(tenant) {
            t.subscribers.cut(reason);
        }
    }

    /// The log of `owner` has a hole: everything cached of it goes, and every subscriber
    /// reading through it is cut off with `reason`.
    fn break_continuity(&self, owner: &Owner, reason: &str) {
        tracing::warn!(owner = %owner, reason, "cutting the subscribers that follow this log off");
        let mut state = self.state();
        if let Some(log) = state.logs.get_mut(owner) {
            log.ring.clear();
            log.cache.clear();
        }
        for (tenant, t) in state.tenants.iter_mut() {
            let follows = match owner {
                Owner::Tenant(o) => o == tenant,
                Owner::Tier(tier) => matches!(&t.tier, Some(Some(x)) if x == tier),
                Owner::Shared => true,
            };
            if follows {
                t.subscribers.cut(reason);
            }
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

    /// The changes of `owner` in `(since, head]`, from the ring or the store's log; `None`
    /// when neither holds all of them.
    async fn changes_between(&self, owner: &Owner, since: Revision, head: Revision) -> Result<Option<Vec<Change>>> {
        if since >= head {
            return Ok(Some(Vec::new()));
        }
        {
            let state = self.state();
            if let Some(ring) = state.logs.get(owner).map(|l| &l.ring) {
                let covers = ring.front().is_some_and(|f| f.revision.0 <= since.0 + 1)
                    && ring.back().is_some_and(|b| b.revision == head);
                if covers {
                    return Ok(Some(
                        ring.iter()
                            .filter(|c| c.revision > since)
                            .map(|c| (**c).clone())
                            .collect(),
                    ));
                }
            }
        }
        let wanted = head.0 - since.0;
        let changes = self.read_log(owner, since, wanted).await?;
        Ok(is_contiguous(&changes, since, wanted).then_some(changes))
    }

    /// Registers a watcher of `tenant` for keys under `prefixes`, resuming after `since`;
    /// `connection`, the client's address when known, groups the deliveries by connection.
    pub async fn subscribe(
        &self,
        tenant: &TenantId,
        prefixes: Vec<String>,
        since: Option<Cursor>,
        connection: Option<SocketAddr>,
    ) -> Result<Subscription> {
        let _order = self.order.lock().await;
        let stack = self.stack(tenant).await?;
        let cursor = self.cursor_of(&stack).await?;
        let (tx, live) = mailbox::mailbox(self.config.subscriber_buffer);
        let cut = Arc::new(OnceLock::new());
        let (replay, resync) = match since {
            None => (Vec::new(), None),
            Some(since) => match self.replay(&stack, &cursor, &since, &prefixes).await? {
                Ok(replay) => (replay, None),
                Err(reason) => (Vec::new(), Some(reason)),
            },
        };
        if resync.is_none() {
            let mut state = self.state();
            state.tenants.entry(tenant.clone()).or_default().subscribers.add(
                connection,
                Subscriber {
                    prefixes,
                    tx,
                    cut: cut.clone(),
                },
            );
        }
        Ok(Subscription {
            replay,
            resync,
            cursor,
            live,
            cut,
        })
    }

    /// What a subscriber at `since` missed: the current value of every key under `prefixes`
    /// that any followed log changed after it. `Err(reason)` when it cannot be told.
    async fn replay(
        &self,
        stack: &LayerStack,
        now: &Cursor,
        since: &Cursor,
        prefixes: &[String],
    ) -> Result<std::result::Result<Vec<Update>, String>> {
        let ahead = since.tenant > now.tenant
            || since.shared > now.shared
            || matches!((&since.tier, &now.tier), (Some((a, r)), Some((b, h))) if a == b && r > h);
        if ahead {
            return Ok(Err("the cursor is ahead of this server's logs".to_owned()));
        }
        let mut moved: BTreeSet<Key> = BTreeSet::new();
        let mut last: Option<Change> = None;
        let mut tiers_to_list: Vec<TierName> = Vec::new();
        let tenant_owner = Owner::Tenant(stack.tenant().clone());
        let mut logs = vec![
            (tenant_owner, since.tenant, now.tenant),
            (Owner::Shared, since.shared, now.shared),
        ];
        match (&since.tier, &now.tier) {
            (Some((a, r)), Some((b, h))) if a == b => logs.push((Owner::Tier(b.clone()), *r, *h)),
            (old, new) => {
                tiers_to_list.extend(old.iter().chain(new.iter()).map(|(t, _)| t.clone()));
            }
        }
        for (owner, from, to) in logs {
            let Some(changes) = self.changes_between(&owner, from, to).await? else {
                return Ok(Err(format!(
                    "the change log of {owner} no longer holds revision {}",
                    from.0 + 1
                )));
            };
            for change in changes {
                if change.op == ChangeOp::Tier {
                    if let Some(Some(t)) = change.assigned_tier() {
                        tiers_to_list.push(t);
                    }
                } else if matches(prefixes, &change.key) {
                    moved.insert(self.routes.parse_key(&change.key)?);
                }
                last = Some(change);
            }
        }
        for tier in tiers_to_list {
            match self.layer_keys(&Owner::Tier(tier), prefixes).await {
                Ok(keys) => moved.extend(keys.into_iter().filter(|k| matches(prefixes, k.as_str()))),
                Err(e) => {
                    return Ok(Err(format!(
                        "the tenant's tier changed and its keys could not be listed: {e}"
                    )))
                }
            }
        }
        let Some(cause) = last else {
            return Ok(Ok(Vec::new()));
        };
        self.updates_for(stack, moved, &cause).await.map(Ok)
    }

    /// Effective values of `keys` for `tenant`: cached layers without a backend read, the
    /// rest from the store (and cached). Returns found items, missing keys and the cursor.
    pub async fn get(&self, tenant: &TenantId, keys: &[Key]) -> Result<(Vec<ConfigItem>, Vec<String>, Cursor)> {
        let stack = self.stack(tenant).await?;
        let cursor = self.cursor_of(&stack).await?;
        let found = resolve_in(&CachedView(self), &stack, keys).await?;
        let missing = keys
            .iter()
            .filter(|k| !found.iter().any(|i| i.key == k.as_str()))
            .map(|k| k.as_str().to_owned())
            .collect();
        Ok((found, missing, cursor))
    }
}

/// Sends `updates` (with the tenant's new cursor) to each subscriber of `tenant`.
/// The position of every log `tenant` reads through, as the state knows them, and whether
/// every head is known (an unknown one reads as 0: a resume from there replays more, never
/// less). `None` when the hub has no state for the tenant.
fn cursor_in(state: &State, tenant: &TenantId) -> Option<(Cursor, bool)> {
    let tier = state.tenants.get(tenant)?.tier.clone().flatten();
    let mut complete = true;
    let mut head = |owner: Owner| {
        let h = state.logs.get(&owner).and_then(|l| l.head);
        complete &= h.is_some();
        h.unwrap_or_default()
    };
    let cursor = Cursor {
        tenant: head(Owner::Tenant(tenant.clone())),
        tier: tier.map(|t| (t.clone(), head(Owner::Tier(t)))),
        shared: head(Owner::Shared),
    };
    Some((cursor, complete))
}

/// One batch per tenant, in the order the updates were made.
fn merge_by_tenant(deliveries: Vec<(TenantId, Vec<Update>)>) -> Vec<(TenantId, Vec<Update>)> {
    let mut merged: Vec<(TenantId, Vec<Update>)> = Vec::new();
    for (tenant, updates) in deliveries {
        match merged.iter_mut().find(|(t, _)| *t == tenant) {
            Some((_, all)) => all.extend(updates),
            None => merged.push((tenant, updates)),
        }
    }
    merged
}

fn deliver(state: &mut State, tenant: &TenantId, updates: Vec<Update>) {
    let Some((cursor, _)) = cursor_in(state, tenant) else {
        return;
    };
    let delivery = Arc::new(Delivery {
        updates,
        cursor,
        encoded: OnceLock::new(),
    });
    let Some(t) = state.tenants.get_mut(tenant) else { return };
    t.subscribers.retain(|s| match s.tx.try_send(delivery.clone()) {
        Ok(()) => true,
        Err(mailbox::TrySendError::Full(_)) => {
            let _ = s.cut.set(SLOW_CONSUMER.to_owned());
            false
        }
        Err(mailbox::TrySendError::Closed(_)) => false,
    });
}

fn is_contiguous(changes: &[Change], after: Revision, count: u64) -> bool {
    changes.len() as u64 == count
        && changes
            .iter()
            .enumerate()
            .all(|(i, c)| c.revision.0 == after.0 + 1 + i as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_are_delivered_to_one_connection_after_the_other() {
        let mut subscribers = Subscribers::default();
        let (a, b): (SocketAddr, SocketAddr) = ("127.0.0.1:4000".parse().unwrap(), "127.0.0.1:3000".parse().unwrap());
        let mut receivers = Vec::new();
        // Streams of two connections (and one in-process) opened interleaved.
        for (i, connection) in [Some(a), Some(b), Some(a), None, Some(b), Some(a)]
            .into_iter()
            .enumerate()
        {
            let (tx, rx) = mailbox::mailbox(1);
            receivers.push(rx);
            subscribers.add(
                connection,
                Subscriber {
                    prefixes: vec![format!("stream{i}")],
                    tx,
                    cut: Arc::default(),
                },
            );
        }
        let order = |s: &Subscribers| s.iter().map(|s| s.prefixes[0].clone()).collect::<Vec<_>>();
        assert_eq!(
            order(&subscribers),
            ["stream3", "stream1", "stream4", "stream0", "stream2", "stream5"]
        );
        assert_eq!(subscribers.len(), 6);

        subscribers.retain(|s| s.prefixes[0] != "stream3");
        assert_eq!(subscribers.len(), 5);
        assert_eq!(subscribers.0.len(), 2, "an emptied connection's group is removed");
        subscribers.cut("gone");
        assert!(subscribers.is_empty());
        drop(receivers);
    }
}
