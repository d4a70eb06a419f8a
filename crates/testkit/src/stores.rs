//! Store wrappers for tests: one [`ConfigStore`] decorator that counts what reaches the
//! backend and can make the change log "forget" old revisions, as DynamoDB's TTL does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tagged_routing::{
    Author, Change, ConfigItem, ConfigStore, HistoryEntry, JsonText, Key, Owner, Page, Precondition, Result, Revision,
    TenantId, TierName,
};

/// Passes every call to `inner`, counting `get`s, hiding changes below `log_floor` and
/// delaying each `get` by `get_delay`.
pub struct Observed {
    inner: Arc<dyn ConfigStore>,
    gets: AtomicU64,
    log_floor: AtomicU64,
    get_delay: std::time::Duration,
}

impl Observed {
    pub fn new(inner: Arc<dyn ConfigStore>) -> Self {
        Observed {
            inner,
            gets: AtomicU64::new(0),
            log_floor: AtomicU64::new(0),
            get_delay: std::time::Duration::ZERO,
        }
    }

    /// A store whose every `get` takes `delay` (a backend that hangs).
    pub fn with_get_delay(mut self, delay: std::time::Duration) -> Self {
        self.get_delay = delay;
        self
    }

    /// A log that no longer holds revisions below `oldest` (of any owner).
    pub fn with_log_from(self, oldest: u64) -> Self {
        self.log_floor.store(oldest, Ordering::SeqCst);
        self
    }

    /// How many `get` calls reached the store.
    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl ConfigStore for Observed {
    async fn get(&self, o: &Owner, k: &Key) -> Result<Option<ConfigItem>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.get_delay).await;
        self.inner.get(o, k).await
    }
    async fn put_by(&self, o: &Owner, k: &Key, v: &JsonText, p: Precondition, a: &Author) -> Result<ConfigItem> {
        self.inner.put_by(o, k, v, p, a).await
    }
    async fn delete_by(&self, o: &Owner, k: &Key, p: Precondition, a: &Author) -> Result<Change> {
        self.inner.delete_by(o, k, p, a).await
    }
    async fn list(&self, o: &Owner, p: &str, a: Option<&str>, l: usize) -> Result<Page<ConfigItem>> {
        self.inner.list(o, p, a, l).await
    }
    async fn batch_get(&self, o: &Owner, k: &[Key]) -> Result<Vec<ConfigItem>> {
        self.inner.batch_get(o, k).await
    }
    async fn history(&self, o: &Owner, k: &Key, l: usize) -> Result<Vec<HistoryEntry>> {
        self.inner.history(o, k, l).await
    }
    async fn changes_since(&self, o: &Owner, s: Revision, l: usize) -> Result<Vec<Change>> {
        let floor = self.log_floor.load(Ordering::SeqCst);
        let all = self.inner.changes_since(o, s, l).await?;
        Ok(all.into_iter().filter(|c| c.revision.0 >= floor).collect())
    }
    async fn head_revision(&self, o: &Owner) -> Result<Revision> {
        self.inner.head_revision(o).await
    }
    async fn owners(&self) -> Result<Vec<Owner>> {
        self.inner.owners().await
    }
    async fn value_at(&self, o: &Owner, k: &Key, v: tagged_routing::Version) -> Result<Option<JsonText>> {
        self.inner.value_at(o, k, v).await
    }
    async fn write_set(&self, o: &Owner, w: &[tagged_routing::SetWrite], a: &Author) -> Result<Vec<Change>> {
        self.inner.write_set(o, w, a).await
    }
    async fn tier_of(&self, t: &TenantId) -> Result<Option<TierName>> {
        self.inner.tier_of(t).await
    }
    async fn assign_tier(&self, t: &TenantId, tier: Option<&TierName>, a: &Author) -> Result<Option<Change>> {
        self.inner.assign_tier(t, tier, a).await
    }
}
