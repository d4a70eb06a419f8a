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
//! `head_revision` always asks the backend (and re-validates), so a read with
//! `min_revision` (the handler calls `head_revision` first) sees a write made in another
//! environment at once. Writes made through this cache update it immediately.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tagged_routing::{
    Change, ConfigItem, ConfigStore, HistoryEntry, JsonText, Key, Owner, Page, Precondition, Result, Revision,
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
    entries: HashMap<String, Entry>,
}

#[derive(Clone)]
struct Entry {
    /// The item, or `None` for a key known to be absent.
    item: Option<ConfigItem>,
    /// The key's backend has a shared layer, so a shared-layer write can change the answer.
    layered: bool,
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
        let changed = if head > known && self.with_owner(owner, |c| !c.entries.is_empty()) {
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
                        c.entries.remove(&change.key);
                    }
                }
                // The log could not account for every revision (retention, a huge burst,
                // or a change still on its way): drop everything this owner cached.
                Some((_, false)) => c.entries.clear(),
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
                let layered = key.backend().has_shared_layer();
                // A delete of a layered key may uncover the shared value: read it again.
                if item.is_some() || !layered {
                    c.entries.insert(key.as_str().to_owned(), Entry { item, layered });
                    return;
                }
            }
            c.entries.remove(key.as_str());
        });
    }

    /// Shared-layer changes live in the `_shared` log: a tenant's cached SSM-tagged keys
    /// (which may have answered from the shared layer) are validated against it too.
    async fn validate_with_shared(&self, owner: &Owner, key: &Key) -> Result<()> {
        if key.backend().has_shared_layer() && matches!(owner, Owner::Tenant(_)) && !self.is_fresh(&Owner::Shared) {
            let before = self.with_owner(&Owner::Shared, |c| c.head);
            let shared_head = self.validate(&Owner::Shared).await?;
            if shared_head > before {
                // Rare (admin writes): forget every tenant's layered keys.
                let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
                for (owner, cache) in owners.iter_mut() {
                    if *owner != Owner::Shared {
                        cache.entries.retain(|_, entry| !entry.layered);
                    }
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ConfigStore for CachedStore {
    async fn get(&self, owner: &Owner, key: &Key) -> Result<Option<ConfigItem>> {
        if !self.is_fresh(owner) {
            self.validate(owner).await?;
        }
        self.validate_with_shared(owner, key).await?;
        if let Some(hit) = self.with_owner(owner, |c| c.entries.get(key.as_str()).cloned()) {
            self.metrics.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit.item);
        }
        self.metrics.misses.fetch_add(1, Ordering::Relaxed);
        self.metrics.backend_reads.fetch_add(1, Ordering::Relaxed);
        let head_before = self.with_owner(owner, |c| c.head);
        let item = self.inner.get(owner, key).await?;
        // Cache only if no validation moved the head meanwhile.
        self.with_owner(owner, |c| {
            if c.head == head_before {
                let entry = Entry {
                    item: item.clone(),
                    layered: key.backend().has_shared_layer(),
                };
                c.entries.insert(key.as_str().to_owned(), entry);
            }
        });
        Ok(item)
    }

    async fn put(
        &self,
        owner: &Owner,
        key: &Key,
        value: &JsonText,
        precondition: Precondition,
        actor: &str,
    ) -> Result<ConfigItem> {
        let item = self.inner.put(owner, key, value, precondition, actor).await?;
        self.remember_write(owner, key, Some(item.clone()), item.revision);
        Ok(item)
    }

    async fn delete(&self, owner: &Owner, key: &Key, precondition: Precondition, actor: &str) -> Result<Change> {
        let change = self.inner.delete(owner, key, precondition, actor).await?;
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
}
