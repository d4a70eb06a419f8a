//! A revision-validated read cache: the answer to "stale or melted" inside Lambda, where
//! nothing can push a change into an execution environment.
//!
//! [`CachedStore`] wraps any [`ConfigStore`]. It remembers, per owner, the head revision it
//! last confirmed and when. A cached value is served while that confirmation is younger
//! than the freshness window; after it, one cheap head read decides: the head did not
//! move → every cached value of the owner is still current; it moved → the change log
//! since the confirmed head names exactly the keys to drop. So N reads of an unchanged key
//! cost one backend read plus one head read per window — SSM, which allows ~40 TPS per
//! account, is read once.
//!
//! It caches each owner's *own* layer, validated against that owner's own change log only;
//! a tenant's effective value is resolved above it by [`tagged_routing::layers::resolve`]
//! (tenant, then tier, then shared, each read through this cache), so no cache entry ever
//! depends on a revision of another log. A tenant's tier is cached beside its values and
//! dropped when its log shows a tier change.
//!
//! `head_revision` always asks the backend (and re-validates), so a read with
//! `min_revision` (the handler calls `head_revision` first) sees a write made in another
//! environment at once. Writes made through this cache update it immediately.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tagged_routing::{
    Author, Change, ChangeOp, ConfigItem, ConfigStore, HistoryEntry, JsonText, Key, Owner, Page, Precondition, Result,
    Revision, SetWrite, TenantId, TierName,
};

/// How many changes one re-validation reads; more than this and the owner's cache is dropped.
const MAX_CHANGES_PER_VALIDATION: usize = 500;

/// Counters, read and reset by the metrics emitter.
#[derive(Debug, Default)]
pub struct CacheMetrics {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub head_checks: AtomicU64,
    pub backend_reads: AtomicU64,
}

/// A snapshot of [`CacheMetrics`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheCounts {
    pub hits: u64,
    pub misses: u64,
    pub head_checks: u64,
    pub backend_reads: u64,
}

impl CacheMetrics {
    /// Returns the counts since the last call and resets them.
    pub fn take(&self) -> CacheCounts {
        CacheCounts {
            hits: self.hits.swap(0, Ordering::Relaxed),
            misses: self.misses.swap(0, Ordering::Relaxed),
            head_checks: self.head_checks.swap(0, Ordering::Relaxed),
            backend_reads: self.backend_reads.swap(0, Ordering::Relaxed),
        }
    }
}

#[derive(Default)]
struct OwnerCache {
    head: Revision,
    confirmed_at: Option<Instant>,
    /// key → the item, or `None` for a key known to be absent from this owner's layer.
    entries: HashMap<String, Option<ConfigItem>>,
    /// A tenant's tier, once read (`Some(None)`: no tier).
    tier: Option<Option<TierName>>,
}

/// The read cache decorator. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct CachedStore {
    inner: Arc<dyn ConfigStore>,
    freshness: Duration,
    owners: Arc<Mutex<HashMap<Owner, OwnerCache>>>,
    metrics: Arc<CacheMetrics>,
}

impl CachedStore {
    pub fn new(inner: Arc<dyn ConfigStore>, freshness: Duration) -> Self {
        CachedStore {
            inner,
            freshness,
            owners: Arc::default(),
            metrics: Arc::default(),
        }
    }

    pub fn metrics(&self) -> Arc<CacheMetrics> {
        self.metrics.clone()
    }

    fn with_owner<T>(&self, owner: &Owner, f: impl FnOnce(&mut OwnerCache) -> T) -> T {
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        f(owners.entry(owner.clone()).or_default())
    }

    fn is_fresh(&self, owner: &Owner) -> bool {
        self.with_owner(owner, |c| c.confirmed_at.is_some_and(|t| t.elapsed() < self.freshness))
    }

    /// Reads the owner's head and drops what changed since the last confirmation.
    async fn validate(&self, owner: &Owner) -> Result<Revision> {
        self.metrics.head_checks.fetch_add(1, Ordering::Relaxed);
        let head = self.inner.head_revision(owner).await?;
        let known = self.with_owner(owner, |c| c.head);
        let changed = if head > known && self.with_owner(owner, |c| !c.entries.is_empty() || c.tier.is_some()) {
            let changes = self
                .inner
                .changes_since(owner, known, MAX_CHANGES_PER_VALIDATION)
                .await?;
            let complete =
                changes.len() < MAX_CHANGES_PER_VALIDATION && changes.last().is_some_and(|c| c.revision >= head);
            Some((changes, complete))
        } else {
            None
        };
        self.with_owner(owner, |c| {
            match changed {
                Some((changes, true)) => {
                    for change in changes {
                        if change.op == ChangeOp::Tier {
                            c.tier = None;
                        }
                        c.entries.remove(&change.key);
                    }
                }
                // The log could not account for every revision (retention, a huge burst,
                // or a change still on its way): drop everything this owner cached.
                Some((_, false)) => {
                    c.entries.clear();
                    c.tier = None;
                }
                None => {}
            }
            c.head = c.head.max(head);
            c.confirmed_at = Some(Instant::now());
        });
        Ok(head)
    }

    /// Keeps a value just written (or removed) here, and advances the confirmed head when
    /// this write is the very next revision (nothing else can have happened in between).
    fn remember_write(&self, owner: &Owner, key: &Key, item: Option<ConfigItem>, revision: Revision) {
        self.with_owner(owner, |c| {
            if revision.0 == c.head.0 + 1 {
                c.head = revision;
                c.entries.insert(key.as_str().to_owned(), item);
            } else {
                c.entries.remove(key.as_str());
            }
        });
    }
}

#[async_trait]
impl ConfigStore for CachedStore {
    async fn get(&self, owner: &Owner, key: &Key) -> Result<Option<ConfigItem>> {
        if !self.is_fresh(owner) {
            self.validate(owner).await?;
        }
        if let Some(hit) = self.with_owner(owner, |c| c.entries.get(key.as_str()).cloned()) {
            self.metrics.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit);
        }
        self.metrics.misses.fetch_add(1, Ordering::Relaxed);
        self.metrics.backend_reads.fetch_add(1, Ordering::Relaxed);
        let head_before = self.with_owner(owner, |c| c.head);
        let item = self.inner.get(owner, key).await?;
        // Cache only if no validation moved the head meanwhile.
        self.with_owner(owner, |c| {
            if c.head == head_before {
                c.entries.insert(key.as_str().to_owned(), item.clone());
            }
        });
        Ok(item)
    }

    async fn put_by(
        &self,
        owner: &Owner,
        key: &Key,
        value: &JsonText,
        precondition: Precondition,
        author: &Author,
    ) -> Result<ConfigItem> {
        let item = self.inner.put_by(owner, key, value, precondition, author).await?;
        self.remember_write(owner, key, Some(item.clone()), item.revision);
        Ok(item)
    }

    async fn delete_by(&self, owner: &Owner, key: &Key, precondition: Precondition, author: &Author) -> Result<Change> {
        let change = self.inner.delete_by(owner, key, precondition, author).await?;
        self.remember_write(owner, key, None, change.revision);
        Ok(change)
    }

    async fn list(&self, owner: &Owner, prefix: &str, after: Option<&str>, limit: usize) -> Result<Page<ConfigItem>> {
        self.metrics.backend_reads.fetch_add(1, Ordering::Relaxed);
        self.inner.list(owner, prefix, after, limit).await
    }

    async fn batch_get(&self, owner: &Owner, keys: &[Key]) -> Result<Vec<ConfigItem>> {
        self.metrics.backend_reads.fetch_add(1, Ordering::Relaxed);
        self.inner.batch_get(owner, keys).await
    }

    async fn history(&self, owner: &Owner, key: &Key, limit: usize) -> Result<Vec<HistoryEntry>> {
        self.metrics.backend_reads.fetch_add(1, Ordering::Relaxed);
        self.inner.history(owner, key, limit).await
    }

    async fn changes_since(&self, owner: &Owner, since: Revision, limit: usize) -> Result<Vec<Change>> {
        self.inner.changes_since(owner, since, limit).await
    }

    async fn head_revision(&self, owner: &Owner) -> Result<Revision> {
        self.validate(owner).await
    }

    async fn owners(&self) -> Result<Vec<Owner>> {
        self.inner.owners().await
    }

    async fn value_at(&self, owner: &Owner, key: &Key, version: tagged_routing::Version) -> Result<Option<JsonText>> {
        self.inner.value_at(owner, key, version).await
    }

    async fn write_set(&self, owner: &Owner, writes: &[SetWrite], author: &Author) -> Result<Vec<Change>> {
        let changes = self.inner.write_set(owner, writes, author).await?;
        for (w, change) in writes.iter().zip(&changes) {
            let item = w.value.as_ref().map(|v| ConfigItem::written(owner, change, v));
            self.remember_write(owner, &w.key, item, change.revision);
        }
        Ok(changes)
    }

    async fn tier_of(&self, tenant: &TenantId) -> Result<Option<TierName>> {
        let owner = Owner::Tenant(tenant.clone());
        if !self.is_fresh(&owner) {
            self.validate(&owner).await?;
        }
        if let Some(tier) = self.with_owner(&owner, |c| c.tier.clone()) {
            return Ok(tier);
        }
        self.metrics.backend_reads.fetch_add(1, Ordering::Relaxed);
        let head_before = self.with_owner(&owner, |c| c.head);
        let tier = self.inner.tier_of(tenant).await?;
        self.with_owner(&owner, |c| {
            if c.head == head_before {
                c.tier = Some(tier.clone());
            }
        });
        Ok(tier)
    }

    async fn assign_tier(&self, tenant: &TenantId, tier: Option<&TierName>, author: &Author) -> Result<Option<Change>> {
        let change = self.inner.assign_tier(tenant, tier, author).await?;
        self.with_owner(&Owner::Tenant(tenant.clone()), |c| c.tier = None);
        Ok(change)
    }
}
