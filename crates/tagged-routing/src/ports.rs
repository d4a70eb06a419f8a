use async_trait::async_trait;

use crate::{
    Author, Change, ConfigItem, Error, HistoryEntry, JsonText, Key, Owner, Page, Precondition, Result, Revision,
    SetWrite, TenantId, TierName, Version,
};

/// The store port: everything the API needs from a backend. Implemented by each adapter
/// (DynamoDB, SSM, redb, memory) and by [`crate::TaggedStore`], which dispatches to them.
///
/// Contract (checked by the conformance suite in `adapters/tests`):
/// - a successful `put`/`delete` increments the owner's revision by exactly one and appends
///   exactly one [`Change`] with that revision to the owner's change log, atomically with
///   the value when the backend allows it;
/// - a failed precondition changes nothing;
/// - listings are in key order; `after` is the last key of the previous page.
#[async_trait]
pub trait ConfigStore: Send + Sync {
    /// The value of `key` in `owner`'s own layer: no fallback to other layers here.
    /// A tenant's effective value comes from [`crate::layers::resolve`].
    async fn get(&self, owner: &Owner, key: &Key) -> Result<Option<ConfigItem>>;

    /// Writes `value` under `precondition` by `author` (the change records the actor and
    /// the reason); returns the item as now stored.
    async fn put_by(
        &self,
        owner: &Owner,
        key: &Key,
        value: &JsonText,
        precondition: Precondition,
        author: &Author,
    ) -> Result<ConfigItem>;

    /// Removes `key` (`NotFound` when absent) by `author`; returns the change recorded.
    async fn delete_by(&self, owner: &Owner, key: &Key, precondition: Precondition, author: &Author) -> Result<Change>;

    /// Writes every one of `writes` in `owner`'s layer, or none: consecutive revisions, each
    /// change marked with the set's last revision (`Change::set_last`). Any precondition
    /// that fails fails the whole set. Keys are distinct.
    async fn write_set(&self, owner: &Owner, writes: &[SetWrite], author: &Author) -> Result<Vec<Change>> {
        let _ = (owner, writes, author);
        Err(Error::NotAtomic(
            "this store cannot write a change set atomically".into(),
        ))
    }

    /// The value `key` had at `version` in `owner`'s layer, to write it back (revert). It
    /// stays inside the server: secrets included, it is never answered to a caller. `None`
    /// when the store no longer has it (or the version was a delete). By default, from the
    /// key's history, which holds values a change record carries inline.
    async fn value_at(&self, owner: &Owner, key: &Key, version: Version) -> Result<Option<JsonText>> {
        value_in_history(self, owner, key, version).await
    }

    /// [`ConfigStore::put_by`] an actor who gave no reason.
    async fn put(
        &self,
        owner: &Owner,
        key: &Key,
        value: &JsonText,
        precondition: Precondition,
        actor: &str,
    ) -> Result<ConfigItem> {
        self.put_by(owner, key, value, precondition, &Author::new(actor)).await
    }

    /// [`ConfigStore::delete_by`] an actor who gave no reason.
    async fn delete(&self, owner: &Owner, key: &Key, precondition: Precondition, actor: &str) -> Result<Change> {
        self.delete_by(owner, key, precondition, &Author::new(actor)).await
    }

    /// Up to `limit` items whose key starts with `prefix`, after the key `after`.
    async fn list(&self, owner: &Owner, prefix: &str, after: Option<&str>, limit: usize) -> Result<Page<ConfigItem>>;

    /// The items that exist among `keys`, in no particular order.
    async fn batch_get(&self, owner: &Owner, keys: &[Key]) -> Result<Vec<ConfigItem>>;

    /// Up to `limit` versions of `key`, newest first.
    async fn history(&self, owner: &Owner, key: &Key, limit: usize) -> Result<Vec<HistoryEntry>>;

    /// Up to `limit` changes with a revision greater than `since`, oldest first.
    async fn changes_since(&self, owner: &Owner, since: Revision, limit: usize) -> Result<Vec<Change>>;

    /// The owner's latest revision (0 when it never changed).
    async fn head_revision(&self, owner: &Owner) -> Result<Revision>;

    /// Every owner whose change log has a change. Governance re-checks stored values with
    /// it when a schema is registered; on DynamoDB it is a scan of the table.
    async fn owners(&self) -> Result<Vec<Owner>> {
        Err(Error::Backend("this store cannot list its owners".into()))
    }

    /// The tier `tenant` is assigned to, if any.
    async fn tier_of(&self, tenant: &TenantId) -> Result<Option<TierName>> {
        let _ = tenant;
        Err(Error::Backend("this store keeps no tier assignments".into()))
    }

    /// Assigns `tenant` to `tier` (`None`: to no tier). The assignment is a change of the
    /// tenant: it gets the next revision and one [`crate::ChangeOp::Tier`] change, atomically
    /// with the assignment. Assigning the current tier again changes nothing and returns
    /// `None`.
    async fn assign_tier(&self, tenant: &TenantId, tier: Option<&TierName>, author: &Author) -> Result<Option<Change>> {
        let _ = (tenant, tier, author);
        Err(Error::Backend("this store keeps no tier assignments".into()))
    }
}

/// How far back [`value_in_history`] looks: the newest versions of a key.
pub const REVERTIBLE_VERSIONS: usize = 1000;

/// The value of `key` at `version` as its history holds it (values a change record carries
/// inline), among its newest [`REVERTIBLE_VERSIONS`]: what [`ConfigStore::value_at`] answers
/// unless a store keeps more.
pub async fn value_in_history<S: ConfigStore + ?Sized>(
    store: &S,
    owner: &Owner,
    key: &Key,
    version: Version,
) -> Result<Option<JsonText>> {
    let history = store.history(owner, key, REVERTIBLE_VERSIONS).await?;
    Ok(history
        .into_iter()
        .find(|h| h.version == version && h.op == crate::ChangeOp::Put)
        .and_then(|h| h.value))
}

/// Where a store announces committed changes, in revision order per owner (the in-process
/// change feed locally; on AWS the DynamoDB stream plays this role and no sink is wired).
pub trait ChangeSink: Send + Sync {
    fn publish(&self, change: &Change);
}

/// What a change log remembers of a key whose values live in another backend (SSM keeps a
/// version per parameter, but no revision or author): the version it last recorded, and the
/// revision, time and author of that change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub key: String,
    pub version: Version,
    pub revision: Revision,
    pub at: String,
    pub actor: String,
}

/// When [`ChangeLog::append`] goes ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendGuard {
    /// Always: the API already applied the write to its backend.
    Always,
    /// Only if the key's recorded version is absent or older than the change's: a put seen
    /// from outside the API (a console edit), so a repeated event adds nothing.
    NewerThanRecorded,
    /// Only if the key's recorded version is this one: a delete seen from outside the API.
    RecordedIs(Version),
    /// Unless the key's record holds exactly this version: an API put whose own event may
    /// have been ingested first (a parameter re-created after an outside delete starts
    /// again at version 1, so "newer than recorded" would wrongly refuse it).
    NotRecordedAs(Version),
}

/// The change-log port: each owner's gap-free, ordered changes and head revision, and, for
/// backends that keep values elsewhere, a record of each key's latest change. The SSM store
/// appends through it; the stores that hold their values themselves (DynamoDB, redb,
/// memory) implement it beside [`ConfigStore`].
///
/// Contract (checked by the conformance suite in `adapters/tests`): an append takes exactly
/// the owner's next revision, atomically with the key's record (a put records its version,
/// a delete forgets it), or changes nothing when its guard refuses (`None`); concurrent
/// appends never share or skip a revision.
#[async_trait]
pub trait ChangeLog: Send + Sync {
    /// The owner's latest revision (0 when it never changed).
    async fn head(&self, owner: &Owner) -> Result<Revision>;

    /// Up to `limit` changes with a revision greater than `since`, oldest first.
    async fn changes_since(&self, owner: &Owner, since: Revision, limit: usize) -> Result<Vec<Change>>;

    /// Appends the change `make` builds for the owner's next revision, if `guard` lets it.
    async fn append(
        &self,
        owner: &Owner,
        make: &(dyn Fn(Revision) -> Change + Send + Sync),
        guard: AppendGuard,
    ) -> Result<Option<Change>>;

    /// The records of those of `keys` that have one, in any order.
    async fn recorded(&self, owner: &Owner, keys: &[Key]) -> Result<Vec<Recorded>>;

    /// Up to `limit` records whose key starts with `prefix`, after the key `after`, in key
    /// order; `next` is the last key when more follow. A store that keeps only versions
    /// (SSM) lists through it, one page read per page asked.
    async fn recorded_page(
        &self,
        owner: &Owner,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Recorded>>;
}

/// Whether `guard` lets a change of `version` go ahead, given the key's record.
pub fn guard_allows(guard: AppendGuard, recorded: Option<Version>, version: Version) -> bool {
    match guard {
        AppendGuard::Always => true,
        AppendGuard::NewerThanRecorded => recorded.is_none_or(|r| r < version),
        AppendGuard::RecordedIs(v) => recorded == Some(v),
        AppendGuard::NotRecordedAs(v) => recorded != Some(v),
    }
}

impl Recorded {
    /// The record a change leaves (a put's).
    pub fn of(change: &Change) -> Self {
        Recorded {
            key: change.key.clone(),
            version: change.version,
            revision: change.revision,
            at: change.at.clone(),
            actor: change.actor.clone(),
        }
    }
}
