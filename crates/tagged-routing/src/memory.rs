//! [`MemoryStore`]: the whole store port in a mutex-guarded map. The reference the other
//! stores are compared with, and the store of unit tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::rules::{version_after_put, version_removed_by_delete};
use crate::{
    guard_allows, now_rfc3339, AppendGuard, Author, Change, ChangeLog, ChangeOp, ChangeSink, ConfigItem, ConfigStore,
    Error, HistoryEntry, JsonText, Key, Owner, Page, Precondition, Recorded, Result, Revision, SetWrite, TenantId,
    TierName, Version,
};

#[derive(Default)]
struct State {
    /// (owner, key) → item
    values: BTreeMap<(String, String), ConfigItem>,
    heads: HashMap<String, Revision>,
    /// (owner, revision) → change
    changes: BTreeMap<(String, u64), Change>,
    /// tenant → (tier, assignment version)
    tiers: HashMap<String, (Option<TierName>, Version)>,
    /// (owner, key) → the change log's record of the key
    records: HashMap<(String, String), Recorded>,
    /// (owner, key, version) → a value its change record does not carry (secret, large)
    kept: HashMap<(String, String, u64), JsonText>,
}

/// An in-memory [`ConfigStore`]; every write is atomic under one lock.
#[derive(Default, Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    sink: Option<Arc<dyn ChangeSink>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Announces every committed change to `sink`, in revision order.
    pub fn with_sink(mut self, sink: Arc<dyn ChangeSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied write (each write
        // mutates only after every check passed), so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn commit(&self, state: &mut State, owner: &Owner, key: &Key, item: Option<ConfigItem>, change: Change) {
        let id = (owner.as_str().to_owned(), key.as_str().to_owned());
        if let (Some(item), None) = (&item, &change.value) {
            state
                .kept
                .insert((id.0.clone(), id.1.clone(), item.version.0), item.value.clone());
        }
        match item {
            Some(item) => state.values.insert(id, item),
            None => state.values.remove(&id),
        };
        self.log_change(state, owner, change);
    }

    fn log_change(&self, state: &mut State, owner: &Owner, change: Change) {
        state.heads.insert(owner.as_str().to_owned(), change.revision);
        state
            .changes
            .insert((owner.as_str().to_owned(), change.revision.0), change.clone());
        if let Some(sink) = &self.sink {
            sink.publish(&change);
        }
    }
}

#[async_trait]
impl ConfigStore for MemoryStore {
    async fn get(&self, owner: &Owner, key: &Key) -> Result<Option<ConfigItem>> {
        let state = self.lock();
        Ok(state
            .values
            .get(&(owner.as_str().to_owned(), key.as_str().to_owned()))
            .cloned())
    }

    async fn put_by(
        &self,
        owner: &Owner,
        key: &Key,
        value: &JsonText,
        precondition: Precondition,
        author: &Author,
    ) -> Result<ConfigItem> {
        let mut state = self.lock();
        let current = state
            .values
            .get(&(owner.as_str().to_owned(), key.as_str().to_owned()))
            .map(|i| i.version);
        let version = version_after_put(current, precondition)?;
        let revision = Revision(state.heads.get(owner.as_str()).map_or(0, |r| r.0) + 1);
        let change = Change::new(
            owner,
            revision,
            key,
            ChangeOp::Put,
            version,
            author,
            now_rfc3339(),
            Some(value),
        );
        let item = ConfigItem::written(owner, &change, value);
        self.commit(&mut state, owner, key, Some(item.clone()), change);
        Ok(item)
    }

    async fn delete_by(&self, owner: &Owner, key: &Key, precondition: Precondition, author: &Author) -> Result<Change> {
        let mut state = self.lock();
        let current = state
            .values
            .get(&(owner.as_str().to_owned(), key.as_str().to_owned()))
            .map(|i| i.version);
        let version = version_removed_by_delete(current, precondition)?;
        let revision = Revision(state.heads.get(owner.as_str()).map_or(0, |r| r.0) + 1);
        let change = Change::new(
            owner,
            revision,
            key,
            ChangeOp::Delete,
            version,
            author,
            now_rfc3339(),
            None,
        );
        self.commit(&mut state, owner, key, None, change.clone());
        Ok(change)
    }

    async fn list(&self, owner: &Owner, prefix: &str, after: Option<&str>, limit: usize) -> Result<Page<ConfigItem>> {
        if limit == 0 {
            return Err(Error::InvalidValue("limit must be at least 1".into()));
        }
        let state = self.lock();
        let owner = owner.as_str().to_owned();
        let start = (owner.clone(), after.unwrap_or("").to_owned());
        let items: Vec<ConfigItem> = state
            .values
            .range(start..)
            .take_while(|((o, _), _)| *o == owner)
            .filter(|((_, k), _)| k.starts_with(prefix) && after.is_none_or(|a| k.as_str() > a))
            .map(|(_, item)| item.clone())
            .take(limit.saturating_add(1))
            .collect();
        Ok(Page::cut(items, limit, |i| &i.key))
    }

    async fn batch_get(&self, owner: &Owner, keys: &[Key]) -> Result<Vec<ConfigItem>> {
        let state = self.lock();
        Ok(keys
            .iter()
            .filter_map(|k| {
                state
                    .values
                    .get(&(owner.as_str().to_owned(), k.as_str().to_owned()))
                    .cloned()
            })
            .collect())
    }

    async fn history(&self, owner: &Owner, key: &Key, limit: usize) -> Result<Vec<HistoryEntry>> {
        let state = self.lock();
        let owner = owner.as_str().to_owned();
        Ok(state
            .changes
            .range((owner.clone(), 0)..=(owner, u64::MAX))
            .rev()
            .filter(|(_, c)| c.key == key.as_str())
            .take(limit)
            .map(|(_, c)| HistoryEntry::from(c.clone()))
            .collect())
    }

    async fn changes_since(&self, owner: &Owner, since: Revision, limit: usize) -> Result<Vec<Change>> {
        let state = self.lock();
        let owner = owner.as_str().to_owned();
        Ok(state
            .changes
            .range((owner.clone(), since.0.saturating_add(1))..=(owner, u64::MAX))
            .take(limit)
            .map(|(_, c)| c.clone())
            .collect())
    }

    async fn head_revision(&self, owner: &Owner) -> Result<Revision> {
        Ok(self.lock().heads.get(owner.as_str()).copied().unwrap_or_default())
    }

    async fn write_set(&self, owner: &Owner, writes: &[SetWrite], author: &Author) -> Result<Vec<Change>> {
        let mut state = self.lock();
        let versions = crate::rules::plan_set(writes, |k| {
            state
                .values
                .get(&(owner.as_str().to_owned(), k.as_str().to_owned()))
                .map(|i| i.version)
        })?;
        let head = state.heads.get(owner.as_str()).copied().unwrap_or_default();
        let changes = crate::rules::set_changes(owner, head, writes, &versions, author, &now_rfc3339());
        for (w, change) in writes.iter().zip(&changes) {
            let item = w.value.as_ref().map(|v| ConfigItem::written(owner, change, v));
            self.commit(&mut state, owner, &w.key, item, change.clone());
        }
        Ok(changes)
    }

    async fn value_at(&self, owner: &Owner, key: &Key, version: Version) -> Result<Option<JsonText>> {
        let id = (owner.as_str().to_owned(), key.as_str().to_owned(), version.0);
        if let Some(kept) = self.lock().kept.get(&id) {
            return Ok(Some(kept.clone()));
        }
        crate::value_in_history(self, owner, key, version).await
    }

    async fn owners(&self) -> Result<Vec<Owner>> {
        self.lock().heads.keys().map(|o| Owner::parse(o)).collect()
    }

    async fn tier_of(&self, tenant: &TenantId) -> Result<Option<TierName>> {
        Ok(self.lock().tiers.get(tenant.as_str()).and_then(|(t, _)| t.clone()))
    }

    async fn assign_tier(&self, tenant: &TenantId, tier: Option<&TierName>, author: &Author) -> Result<Option<Change>> {
        let mut state = self.lock();
        let (current, version) = state.tiers.get(tenant.as_str()).cloned().unwrap_or((None, Version(0)));
        if current.as_ref() == tier {
            return Ok(None);
        }
        let owner = Owner::Tenant(tenant.clone());
        let revision = Revision(state.heads.get(owner.as_str()).map_or(0, |r| r.0) + 1);
        let version = Version(version.0 + 1);
        let change = Change::tier_assigned(tenant, revision, tier, version, author, now_rfc3339());
        state.tiers.insert(tenant.as_str().to_owned(), (tier.cloned(), version));
        self.log_change(&mut state, &owner, change.clone());
        Ok(Some(change))
    }
}

#[async_trait]
impl ChangeLog for MemoryStore {
    async fn head(&self, owner: &Owner) -> Result<Revision> {
        ConfigStore::head_revision(self, owner).await
    }

    async fn changes_since(&self, owner: &Owner, since: Revision, limit: usize) -> Result<Vec<Change>> {
        ConfigStore::changes_since(self, owner, since, limit).await
    }

    async fn append(
        &self,
        owner: &Owner,
        make: &(dyn Fn(Revision) -> Change + Send + Sync),
        guard: AppendGuard,
    ) -> Result<Option<Change>> {
        let mut state = self.lock();
        let revision = Revision(state.heads.get(owner.as_str()).map_or(0, |r| r.0) + 1);
        let change = make(revision);
        let id = (owner.as_str().to_owned(), change.key.clone());
        if !guard_allows(guard, state.records.get(&id).map(|r| r.version), change.version) {
            return Ok(None);
        }
        match change.op {
            ChangeOp::Put => {
                state.records.insert(id, Recorded::of(&change));
            }
            _ => {
                state.records.remove(&id);
            }
        }
        self.log_change(&mut state, owner, change.clone());
        Ok(Some(change))
    }

    async fn recorded(&self, owner: &Owner, keys: &[Key]) -> Result<Vec<Recorded>> {
        let state = self.lock();
        Ok(keys
            .iter()
            .filter_map(|k| {
                state
                    .records
                    .get(&(owner.as_str().to_owned(), k.as_str().to_owned()))
                    .cloned()
            })
            .collect())
    }

    async fn recorded_page(
        &self,
        owner: &Owner,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Recorded>> {
        let state = self.lock();
        let mut found: Vec<Recorded> = state
            .records
            .iter()
            .filter(|((o, k), _)| o == owner.as_str() && k.starts_with(prefix) && after.is_none_or(|a| k.as_str() > a))
            .map(|(_, r)| r.clone())
            .collect();
        found.sort_by(|a, b| a.key.cmp(&b.key));
        found.truncate(limit.saturating_add(1));
        Ok(Page::cut(found, limit, |r| &r.key))
    }
}
