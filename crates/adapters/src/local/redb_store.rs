use std::path::Path;
use std::sync::{Arc, Mutex};

use super::Keyring;
use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tagged_routing::rules::{version_after_put, version_removed_by_delete};
use tagged_routing::{
    guard_allows, now_rfc3339, AppendGuard, Author, Change, ChangeLog, ChangeOp, ChangeSink, ConfigItem, ConfigStore,
    Error, HistoryEntry, JsonText, Key, Owner, Page, Precondition, Recorded, Result, Revision, SetWrite, TenantId,
    TierName, Version,
};

/// (owner, key) → ConfigItem as JSON
const VALUES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("values");
/// owner → head revision
const HEADS: TableDefinition<&str, u64> = TableDefinition::new("heads");
/// (owner, revision) → Change as JSON
const CHANGES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("changes");
/// tenant → TierRecord as JSON
const TIERS: TableDefinition<&str, &[u8]> = TableDefinition::new("tiers");
/// (owner, key) → KeyRecord as JSON: the change log's record of a key (see `ChangeLog`)
const RECORDS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("records");
/// (owner, key, version) → ConfigItem as stored in VALUES (sealed for a secret): the
/// versions whose change record does not carry the value (secrets, large values), so a
/// revert can write them back without the value leaving the store
const KEPT: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("kept");

#[derive(serde::Serialize, serde::Deserialize)]
struct KeyRecord {
    version: u64,
    revision: u64,
    at: String,
    actor: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct TierRecord {
    tier: Option<String>,
    version: u64,
}

/// The embedded store of `tagcfg serve`: one redb file holds values, head revisions and the
/// change log. A write commits all three in one redb transaction, so a crash never leaves a
/// value without its change record or a gap in the revisions.
///
/// With a [`Keyring`], the rows of secret keys (`ssm-secure` backend) are sealed
/// (`super::sealing`); the change log never holds a secret's value.
#[derive(Clone)]
pub struct RedbStore {
    db: Arc<Database>,
    /// Held across commit + publish so subscribers see changes in revision order.
    write_lock: Arc<Mutex<()>>,
    /// Single-key writes waiting for the next group commit.
    queue: Arc<Mutex<WriteQueue>>,
    /// Transactions single-key writes were committed in (fewer than the writes when grouped).
    group_commits: Arc<std::sync::atomic::AtomicU64>,
    /// The scheduler slice the committer asks for while it commits (`None`: the default).
    commit_slice: Option<std::time::Duration>,
    sink: Option<Arc<dyn ChangeSink>>,
    keyring: Option<Arc<Keyring>>,
}

/// The associated data of a sealed row: its slot.
fn row_context(owner: &str, key: &str) -> Vec<u8> {
    [owner.as_bytes(), b"\0", key.as_bytes()].concat()
}

fn storage<E: std::fmt::Display>(e: E) -> Error {
    Error::Backend(format!("embedded store: {e}"))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Backend(format!("embedded store holds a corrupt record: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(storage)
}

/// Single-key writes waiting for a group commit, and whether a committer is running.
#[derive(Default)]
struct WriteQueue {
    pending: Vec<PendingWrite>,
    committing: bool,
}

/// The answer a queued writer awaits: its item (none for a delete) and its change.
type WriteAnswer = Result<(Option<ConfigItem>, Change)>;

/// A committed (or failed) write's answer, with where to send it.
type Answered = (tokio::sync::oneshot::Sender<WriteAnswer>, WriteAnswer);

struct PendingWrite {
    owner: Owner,
    key: Key,
    op: ChangeOp,
    value: Option<JsonText>,
    precondition: Precondition,
    author: Author,
    reply: tokio::sync::oneshot::Sender<WriteAnswer>,
}

/// The blocking task that commits the queued writes, group after group, until the queue is
/// empty. However it ends (the queue drained, a panic in redb, or a runtime that drops it
/// unrun), it leaves the queue with no committer and answers nobody twice: the writes it
/// still holds are dropped, and their writers hear that the commit ended without an answer.
struct Committer {
    /// Its handle on the store until it leaves the queue empty; released before the last
    /// answers go out, so a writer that drops the store after its answer closes the file.
    store: Option<RedbStore>,
}

impl Committer {
    fn run(mut self) {
        // Woken for the queue and after each fsync, the committer would otherwise wait for
        // the busy workers' slices to end each time (`super::commit_slice`).
        let _slice = self
            .store
            .as_ref()
            .and_then(|store| store.commit_slice)
            .and_then(super::commit_slice::shorten);
        while let Some(store) = &self.store {
            let group = std::mem::take(&mut store.queue.lock().unwrap_or_else(|p| p.into_inner()).pending);
            let answers = store.commit_group(group);
            let drained = {
                let mut queue = store.queue.lock().unwrap_or_else(|p| p.into_inner());
                let drained = queue.pending.is_empty();
                if drained {
                    queue.committing = false;
                }
                drained
            };
            if drained {
                self.store = None;
            }
            for (reply, answer) in answers {
                let _ = reply.send(answer);
            }
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        if let Some(store) = &self.store {
            let mut queue = store.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.pending.clear();
            queue.committing = false;
        }
    }
}

impl RedbStore {
    /// The page cache redb keeps in memory by default (`TAGCFG_STORE_CACHE_MB`). redb's own
    /// default is 1 GiB, which a server holding 1,000 tenants' keys grew into (108 MiB RSS in
    /// docs/BENCHMARKS.md's mixed workload); pages beyond it are read again from the file,
    /// which the OS caches anyway.
    pub const DEFAULT_CACHE_MIB: usize = 32;

    /// Opens (or creates) the store file at `path` with [`Self::DEFAULT_CACHE_MIB`].
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with_cache(path, Self::DEFAULT_CACHE_MIB)
    }

    /// Opens (or creates) the store file at `path`, caching at most `cache_mib` MiB of pages.
    pub fn open_with_cache(path: &Path, cache_mib: usize) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| storage(format!("cannot create {}: {e}", dir.display())))?;
        }
        let db = Database::builder()
            .set_cache_size(cache_mib.saturating_mul(1024 * 1024))
            .create(path)
            .map_err(|e| storage(format!("cannot open {}: {e}", path.display())))?;
        Self::init(db)
    }

    /// A store that lives in memory only (tests).
    pub fn in_memory() -> Result<Self> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(storage)?;
        Self::init(db)
    }

    fn init(db: Database) -> Result<Self> {
        let txn = db.begin_write().map_err(storage)?;
        txn.open_table(VALUES).map_err(storage)?;
        txn.open_table(HEADS).map_err(storage)?;
        txn.open_table(CHANGES).map_err(storage)?;
        txn.open_table(TIERS).map_err(storage)?;
        txn.open_table(RECORDS).map_err(storage)?;
        txn.open_table(KEPT).map_err(storage)?;
        txn.commit().map_err(storage)?;
        Ok(RedbStore {
            db: Arc::new(db),
            write_lock: Arc::new(Mutex::new(())),
            queue: Arc::default(),
            group_commits: Arc::default(),
            commit_slice: Some(super::commit_slice::DEFAULT_COMMIT_SLICE),
            sink: None,
            keyring: None,
        })
    }

    /// The scheduler slice the committer asks for while it commits (default
    /// [`super::commit_slice::DEFAULT_COMMIT_SLICE`]; `None` leaves the scheduler's own).
    pub fn with_commit_slice(mut self, slice: Option<std::time::Duration>) -> Self {
        self.commit_slice = slice;
        self
    }

    /// Seals secret values with `keyring` from now on, and opens rows sealed with any of
    /// its keys. Rows written before stay as they are until [`RedbStore::reseal`].
    pub fn with_keyring(mut self, keyring: Keyring) -> Self {
        self.keyring = Some(Arc::new(keyring));
        self
    }

    /// Seals, under the keyring's current key, every row of a secret key (as `routes`
    /// route it) that is clear or sealed with another key; one transaction. Returns how
    /// many rows it rewrote. What earlier versions of the store left in redb's free pages
    /// is not scrubbed.
    pub fn reseal(&self, routes: &tagged_routing::RoutingTable) -> Result<usize> {
        let keyring = self
            .keyring
            .as_ref()
            .ok_or_else(|| Error::Backend("reseal needs a keyring".into()))?;
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let txn = self.db.begin_write().map_err(storage)?;
        let count = {
            let mut values = txn.open_table(VALUES).map_err(storage)?;
            let mut stale = Vec::new();
            for entry in values.iter().map_err(storage)? {
                let (id, bytes) = entry.map_err(storage)?;
                let (owner, key) = id.value();
                let row = bytes.value();
                let reseal = match super::sealing::sealed_with(row) {
                    Some(kid) => kid != keyring.current_id(),
                    None => routes.parse_key(key).is_ok_and(|k| k.backend().is_secret()),
                };
                if reseal {
                    stale.push((owner.to_owned(), key.to_owned(), row.to_vec()));
                }
            }
            for (owner, key, row) in &stale {
                let context = row_context(owner, key);
                let plain = match super::sealing::sealed_with(row) {
                    Some(_) => keyring.open(&context, row)?,
                    None => row.clone(),
                };
                let sealed = keyring.seal(&context, &plain)?;
                values
                    .insert((owner.as_str(), key.as_str()), sealed.as_slice())
                    .map_err(storage)?;
            }
            // The kept versions of secrets, likewise.
            let mut kept = txn.open_table(KEPT).map_err(storage)?;
            let mut stale_kept = Vec::new();
            for entry in kept.iter().map_err(storage)? {
                let (id, bytes) = entry.map_err(storage)?;
                let (owner, key, version) = id.value();
                let row = bytes.value();
                let reseal = match super::sealing::sealed_with(row) {
                    Some(kid) => kid != keyring.current_id(),
                    None => routes.parse_key(key).is_ok_and(|k| k.backend().is_secret()),
                };
                if reseal {
                    stale_kept.push((owner.to_owned(), key.to_owned(), version, row.to_vec()));
                }
            }
            for (owner, key, version, row) in &stale_kept {
                let context = row_context(owner, key);
                let plain = match super::sealing::sealed_with(row) {
                    Some(_) => keyring.open(&context, row)?,
                    None => row.clone(),
                };
                kept.insert(
                    (owner.as_str(), key.as_str(), *version),
                    keyring.seal(&context, &plain)?.as_slice(),
                )
                .map_err(storage)?;
            }
            stale.len() + stale_kept.len()
        };
        txn.commit().map_err(storage)?;
        Ok(count)
    }

    /// A value row as stored: sealed for a secret key when there is a keyring.
    fn row_of(&self, owner: &Owner, key: &Key, item: &ConfigItem) -> Result<Vec<u8>> {
        let clear = encode(item)?;
        match &self.keyring {
            Some(keyring) if key.backend().is_secret() => {
                keyring.seal(&row_context(owner.as_str(), key.as_str()), &clear)
            }
            _ => Ok(clear),
        }
    }

    /// The item of a value row, opened when sealed.
    fn item_of(&self, owner: &str, key: &str, row: &[u8]) -> Result<ConfigItem> {
        if super::sealing::sealed_with(row).is_none() {
            return decode(row);
        }
        let keyring = self.keyring.as_ref().ok_or_else(|| {
            Error::Backend("the embedded store holds sealed secrets and no store key was given".into())
        })?;
        decode(&keyring.open(&row_context(owner, key), row)?)
    }

    /// Announces every committed change to `sink`.
    pub fn with_sink(mut self, sink: Arc<dyn ChangeSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// A point read, in place on the calling task: a redb read transaction over pages the
    /// OS already caches takes microseconds, while handing it to the blocking pool cost two
    /// thread wake-ups per read and most of a read request's CPU (docs/BENCHMARKS.md,
    /// "Profile of the read path"). Only reads of a bounded number of keys come here; scans
    /// and every write (a commit waits for fsync) go to [`RedbStore::blocking`].
    fn point_read<T>(&self, work: impl FnOnce(&RedbStore) -> Result<T>) -> Result<T> {
        work(self)
    }

    /// Runs blocking redb work off the async runtime.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(RedbStore) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || work(this))
            .await
            .map_err(|e| Error::Backend(format!("embedded store task failed: {e}")))?
    }

    /// How many transactions the single-key writes so far were committed in.
    pub fn group_commits(&self) -> u64 {
        self.group_commits.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// One single-key write, committed with whichever other single-key writes are waiting
    /// at the same time (group commit): one transaction and one fsync for all of them, each
    /// still checked against its own precondition and answered on its own. The writer that
    /// finds no committer running starts one on the blocking pool; it commits what is queued,
    /// then what queued meanwhile, until nothing is left, so nobody waits for more than the
    /// commit in progress and its own. A waiting writer holds no thread: with a blocking
    /// thread per waiting writer the mixed workload in docs/BENCHMARKS.md ran the server on
    /// 52 threads instead of 6, with 11 MiB more RSS ("Writes under the mixed workload").
    async fn write(
        &self,
        owner: &Owner,
        key: &Key,
        op: ChangeOp,
        value: Option<&JsonText>,
        precondition: Precondition,
        author: &Author,
    ) -> WriteAnswer {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let pending = PendingWrite {
            owner: owner.clone(),
            key: key.clone(),
            op,
            value: value.cloned(),
            precondition,
            author: author.clone(),
            reply,
        };
        let start = {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.pending.push(pending);
            !std::mem::replace(&mut queue.committing, true)
        };
        if start {
            let committer = Committer {
                store: Some(self.clone()),
            };
            // Detached: the writes are committed even if this writer stops waiting.
            drop(tokio::task::spawn_blocking(move || committer.run()));
        }
        answer
            .await
            .map_err(|_| Error::Backend("the group commit ended without an answer".into()))?
    }

    /// Commits `group` in one transaction and publishes its changes; returns each writer's
    /// answer, for the committer to send. A write refused by its precondition changes
    /// nothing and does not stop the others; a storage error fails them all (nothing of the
    /// group is committed).
    fn commit_group(&self, group: Vec<PendingWrite>) -> Vec<Answered> {
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let applied = self.db.begin_write().map_err(storage).and_then(|txn| {
            let results = group
                .iter()
                .map(|w| self.apply_write(&txn, w))
                .collect::<Result<Vec<_>>>()?;
            txn.commit().map_err(storage)?;
            self.group_commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(results)
        });
        match applied {
            Ok(results) => group
                .into_iter()
                .zip(results)
                .map(|(w, result)| {
                    if let (Some(sink), Ok((_, change))) = (&self.sink, &result) {
                        sink.publish(change);
                    }
                    (w.reply, result)
                })
                .collect(),
            Err(e) => group.into_iter().map(|w| (w.reply, Err(e.clone()))).collect(),
        }
    }

    /// One write inside `txn`: read the current version, apply the rules, then value + head +
    /// change. The outer error is the storage's (the transaction must not commit); the inner
    /// one is this write's refusal, decided before anything was changed.
    fn apply_write(&self, txn: &redb::WriteTransaction, w: &PendingWrite) -> Result<WriteAnswer> {
        let (owner, key) = (&w.owner, &w.key);
        let mut values = txn.open_table(VALUES).map_err(storage)?;
        let mut heads = txn.open_table(HEADS).map_err(storage)?;
        let mut changes = txn.open_table(CHANGES).map_err(storage)?;
        let id = (owner.as_str(), key.as_str());
        let current: Option<ConfigItem> = match values.get(id).map_err(storage)? {
            Some(bytes) => Some(self.item_of(id.0, id.1, bytes.value())?),
            None => None,
        };
        let current_version = current.as_ref().map(|i| i.version);
        let version = match w.op {
            ChangeOp::Put => version_after_put(current_version, w.precondition),
            ChangeOp::Delete => version_removed_by_delete(current_version, w.precondition),
            ChangeOp::Tier => Err(Error::Backend("a tier assignment is not a value write".into())),
        };
        let version = match version {
            Ok(version) => version,
            Err(refused) => return Ok(Err(refused)),
        };
        let revision = Revision(heads.get(owner.as_str()).map_err(storage)?.map_or(0, |r| r.value()) + 1);
        let value = w.value.as_ref();
        let change = Change::new(owner, revision, key, w.op, version, &w.author, now_rfc3339(), value);
        let item = value.map(|value| ConfigItem::written(owner, &change, value));
        match &item {
            Some(item) => {
                let row = self.row_of(owner, key, item)?;
                if change.value.is_none() {
                    let mut kept = txn.open_table(KEPT).map_err(storage)?;
                    kept.insert((id.0, id.1, item.version.0), row.as_slice())
                        .map_err(storage)?;
                }
                values.insert(id, row.as_slice()).map_err(storage)?
            }
            None => values.remove(id).map_err(storage)?,
        };
        heads.insert(owner.as_str(), revision.0).map_err(storage)?;
        changes
            .insert((owner.as_str(), revision.0), encode(&change)?.as_slice())
            .map_err(storage)?;
        Ok(Ok((item, change)))
    }

    /// A change set in one redb transaction: values, changes and the head, or nothing.
    fn write_all(&self, owner: &Owner, writes: &[SetWrite], author: &Author) -> Result<Vec<Change>> {
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let txn = self.db.begin_write().map_err(storage)?;
        let changes = {
            let mut values = txn.open_table(VALUES).map_err(storage)?;
            let mut heads = txn.open_table(HEADS).map_err(storage)?;
            let mut changes = txn.open_table(CHANGES).map_err(storage)?;
            let mut current = std::collections::HashMap::new();
            for w in writes {
                let row = values.get((owner.as_str(), w.key.as_str())).map_err(storage)?;
                if let Some(row) = row {
                    let item = self.item_of(owner.as_str(), w.key.as_str(), row.value())?;
                    current.insert(w.key.as_str().to_owned(), item.version);
                }
            }
            let versions = tagged_routing::rules::plan_set(writes, |k| current.get(k.as_str()).copied())?;
            let head = Revision(heads.get(owner.as_str()).map_err(storage)?.map_or(0, |r| r.value()));
            let set = tagged_routing::rules::set_changes(owner, head, writes, &versions, author, &now_rfc3339());
            for (w, change) in writes.iter().zip(&set) {
                let id = (owner.as_str(), w.key.as_str());
                match &w.value {
                    Some(value) => {
                        let item = ConfigItem::written(owner, change, value);
                        let row = self.row_of(owner, &w.key, &item)?;
                        if change.value.is_none() {
                            let mut kept = txn.open_table(KEPT).map_err(storage)?;
                            kept.insert((id.0, id.1, item.version.0), row.as_slice())
                                .map_err(storage)?;
                        }
                        values.insert(id, row.as_slice()).map_err(storage)?;
                    }
                    None => {
                        values.remove(id).map_err(storage)?;
                    }
                }
                changes
                    .insert((owner.as_str(), change.revision.0), encode(change)?.as_slice())
                    .map_err(storage)?;
            }
            if let Some(last) = set.last() {
                heads.insert(owner.as_str(), last.revision.0).map_err(storage)?;
            }
            set
        };
        txn.commit().map_err(storage)?;
        if let Some(sink) = &self.sink {
            for change in &changes {
                sink.publish(change);
            }
        }
        Ok(changes)
    }

    fn assign(&self, tenant: &TenantId, tier: Option<&TierName>, author: &Author) -> Result<Option<Change>> {
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let owner = Owner::Tenant(tenant.clone());
        let txn = self.db.begin_write().map_err(storage)?;
        let change = {
            let mut tiers = txn.open_table(TIERS).map_err(storage)?;
            let mut heads = txn.open_table(HEADS).map_err(storage)?;
            let mut changes = txn.open_table(CHANGES).map_err(storage)?;
            let current: Option<TierRecord> = match tiers.get(tenant.as_str()).map_err(storage)? {
                Some(bytes) => Some(decode(bytes.value())?),
                None => None,
            };
            let (current_tier, version) = current.map_or((None, 0), |r| (r.tier, r.version));
            if current_tier.as_deref() == tier.map(TierName::as_str) {
                return Ok(None);
            }
            let revision = Revision(heads.get(owner.as_str()).map_err(storage)?.map_or(0, |r| r.value()) + 1);
            let change = Change::tier_assigned(tenant, revision, tier, Version(version + 1), author, now_rfc3339());
            let record = TierRecord {
                tier: tier.map(|t| t.as_str().to_owned()),
                version: version + 1,
            };
            tiers
                .insert(tenant.as_str(), encode(&record)?.as_slice())
                .map_err(storage)?;
            heads.insert(owner.as_str(), revision.0).map_err(storage)?;
            changes
                .insert((owner.as_str(), revision.0), encode(&change)?.as_slice())
                .map_err(storage)?;
            change
        };
        txn.commit().map_err(storage)?;
        if let Some(sink) = &self.sink {
            sink.publish(&change);
        }
        Ok(Some(change))
    }

    fn append_guarded(
        &self,
        owner: &Owner,
        make: &(dyn Fn(Revision) -> Change + Send + Sync),
        guard: AppendGuard,
    ) -> Result<Option<Change>> {
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let txn = self.db.begin_write().map_err(storage)?;
        let change = {
            let mut records = txn.open_table(RECORDS).map_err(storage)?;
            let mut heads = txn.open_table(HEADS).map_err(storage)?;
            let mut changes = txn.open_table(CHANGES).map_err(storage)?;
            let revision = Revision(heads.get(owner.as_str()).map_err(storage)?.map_or(0, |r| r.value()) + 1);
            let change = make(revision);
            let id = (owner.as_str(), change.key.as_str());
            let recorded: Option<KeyRecord> = match records.get(id).map_err(storage)? {
                Some(bytes) => Some(decode(bytes.value())?),
                None => None,
            };
            if !guard_allows(guard, recorded.map(|r| Version(r.version)), change.version) {
                return Ok(None);
            }
            match change.op {
                ChangeOp::Put => {
                    let record = KeyRecord {
                        version: change.version.0,
                        revision: change.revision.0,
                        at: change.at.clone(),
                        actor: change.actor.clone(),
                    };
                    records.insert(id, encode(&record)?.as_slice()).map_err(storage)?;
                }
                _ => {
                    records.remove(id).map_err(storage)?;
                }
            }
            heads.insert(owner.as_str(), revision.0).map_err(storage)?;
            changes
                .insert((owner.as_str(), revision.0), encode(&change)?.as_slice())
                .map_err(storage)?;
            change
        };
        txn.commit().map_err(storage)?;
        if let Some(sink) = &self.sink {
            sink.publish(&change);
        }
        Ok(Some(change))
    }

    fn changes_between(&self, owner: &Owner, from: u64, to: u64) -> Result<Vec<Change>> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(CHANGES).map_err(storage)?;
        let mut out = Vec::new();
        for entry in table
            .range((owner.as_str(), from)..=(owner.as_str(), to))
            .map_err(storage)?
        {
            let (_, bytes) = entry.map_err(storage)?;
            out.push(decode(bytes.value())?);
        }
        Ok(out)
    }
}

#[async_trait]
impl ConfigStore for RedbStore {
    async fn get(&self, owner: &Owner, key: &Key) -> Result<Option<ConfigItem>> {
        self.point_read(|s| {
            let txn = s.db.begin_read().map_err(storage)?;
            let table = txn.open_table(VALUES).map_err(storage)?;
            let got = table.get((owner.as_str(), key.as_str())).map_err(storage)?;
            got.map(|bytes| s.item_of(owner.as_str(), key.as_str(), bytes.value()))
                .transpose()
        })
    }

    async fn put_by(
        &self,
        owner: &Owner,
        key: &Key,
        value: &JsonText,
        precondition: Precondition,
        author: &Author,
    ) -> Result<ConfigItem> {
        let (item, _) = self
            .write(owner, key, ChangeOp::Put, Some(value), precondition, author)
            .await?;
        item.ok_or_else(|| Error::Backend("a put stored no item".into()))
    }

    async fn delete_by(&self, owner: &Owner, key: &Key, precondition: Precondition, author: &Author) -> Result<Change> {
        Ok(self
            .write(owner, key, ChangeOp::Delete, None, precondition, author)
            .await?
            .1)
    }

    async fn list(&self, owner: &Owner, prefix: &str, after: Option<&str>, limit: usize) -> Result<Page<ConfigItem>> {
        if limit == 0 {
            return Err(Error::InvalidValue("limit must be at least 1".into()));
        }
        let (owner, prefix, after) = (owner.clone(), prefix.to_owned(), after.map(str::to_owned));
        self.blocking(move |s| {
            let txn = s.db.begin_read().map_err(storage)?;
            let table = txn.open_table(VALUES).map_err(storage)?;
            let start = match &after {
                Some(a) if a.as_str() >= prefix.as_str() => a.as_str(),
                _ => prefix.as_str(),
            };
            let mut items = Vec::new();
            for entry in table.range((owner.as_str(), start)..).map_err(storage)? {
                let (id, bytes) = entry.map_err(storage)?;
                let (o, k) = id.value();
                if o != owner.as_str() || !k.starts_with(prefix.as_str()) {
                    break;
                }
                if after.as_deref().is_some_and(|a| k <= a) {
                    continue;
                }
                items.push(s.item_of(o, k, bytes.value())?);
                if items.len() > limit {
                    break;
                }
            }
            Ok(Page::cut(items, limit, |i| &i.key))
        })
        .await
    }

    async fn batch_get(&self, owner: &Owner, keys: &[Key]) -> Result<Vec<ConfigItem>> {
        self.point_read(|s| {
            let txn = s.db.begin_read().map_err(storage)?;
            let table = txn.open_table(VALUES).map_err(storage)?;
            let mut items = Vec::new();
            for key in keys {
                if let Some(bytes) = table.get((owner.as_str(), key.as_str())).map_err(storage)? {
                    items.push(s.item_of(owner.as_str(), key.as_str(), bytes.value())?);
                }
            }
            Ok(items)
        })
    }

    async fn history(&self, owner: &Owner, key: &Key, limit: usize) -> Result<Vec<HistoryEntry>> {
        let (owner, key) = (owner.clone(), key.clone());
        self.blocking(move |s| {
            let txn = s.db.begin_read().map_err(storage)?;
            let table = txn.open_table(CHANGES).map_err(storage)?;
            let mut out = Vec::new();
            // Newest first; stops as soon as `limit` versions of the key were found.
            for entry in table
                .range((owner.as_str(), 0)..=(owner.as_str(), u64::MAX))
                .map_err(storage)?
                .rev()
            {
                let (_, bytes) = entry.map_err(storage)?;
                let change: Change = decode(bytes.value())?;
                if change.key == key.as_str() {
                    out.push(HistoryEntry::from(change));
                    if out.len() == limit {
                        break;
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    async fn changes_since(&self, owner: &Owner, since: Revision, limit: usize) -> Result<Vec<Change>> {
        let owner = owner.clone();
        self.blocking(move |s| {
            let from = since.0.saturating_add(1);
            let to = from.saturating_add(limit as u64).saturating_sub(1);
            s.changes_between(&owner, from, to)
        })
        .await
    }

    async fn head_revision(&self, owner: &Owner) -> Result<Revision> {
        self.point_read(|s| {
            let txn = s.db.begin_read().map_err(storage)?;
            let table = txn.open_table(HEADS).map_err(storage)?;
            Ok(Revision(
                table.get(owner.as_str()).map_err(storage)?.map_or(0, |r| r.value()),
            ))
        })
    }

    async fn write_set(&self, owner: &Owner, writes: &[SetWrite], author: &Author) -> Result<Vec<Change>> {
        let (owner, writes, author) = (owner.clone(), writes.to_vec(), author.clone());
        self.blocking(move |s| s.write_all(&owner, &writes, &author)).await
    }

    async fn value_at(&self, owner: &Owner, key: &Key, version: Version) -> Result<Option<JsonText>> {
        let (o, k) = (owner.clone(), key.clone());
        let kept = self
            .blocking(move |s| {
                let txn = s.db.begin_read().map_err(storage)?;
                let table = txn.open_table(KEPT).map_err(storage)?;
                let row = table.get((o.as_str(), k.as_str(), version.0)).map_err(storage)?;
                row.map(|row| s.item_of(o.as_str(), k.as_str(), row.value()))
                    .transpose()
            })
            .await?;
        if let Some(item) = kept {
            return Ok(Some(item.value));
        }
        tagged_routing::value_in_history(self, owner, key, version).await
    }

    async fn owners(&self) -> Result<Vec<Owner>> {
        self.blocking(move |s| {
            let txn = s.db.begin_read().map_err(storage)?;
            let table = txn.open_table(HEADS).map_err(storage)?;
            let mut owners = Vec::new();
            for entry in table.iter().map_err(storage)? {
                let (owner, _) = entry.map_err(storage)?;
                owners.push(Owner::parse(owner.value())?);
            }
            Ok(owners)
        })
        .await
    }

    async fn tier_of(&self, tenant: &TenantId) -> Result<Option<TierName>> {
        self.point_read(|s| {
            let txn = s.db.begin_read().map_err(storage)?;
            let table = txn.open_table(TIERS).map_err(storage)?;
            let record: Option<TierRecord> = match table.get(tenant.as_str()).map_err(storage)? {
                Some(bytes) => Some(decode(bytes.value())?),
                None => None,
            };
            record.and_then(|r| r.tier).map(|t| TierName::parse(&t)).transpose()
        })
    }

    async fn assign_tier(&self, tenant: &TenantId, tier: Option<&TierName>, author: &Author) -> Result<Option<Change>> {
        let (tenant, tier, author) = (tenant.clone(), tier.cloned(), author.clone());
        self.blocking(move |s| s.assign(&tenant, tier.as_ref(), &author)).await
    }
}

#[async_trait]
impl ChangeLog for RedbStore {
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
        // `make` borrows from the caller, so this runs on the caller's thread (a short local
        // transaction) rather than on the blocking pool like the other calls.
        self.append_guarded(owner, make, guard)
    }

    async fn recorded(&self, owner: &Owner, keys: &[Key]) -> Result<Vec<Recorded>> {
        let (owner, keys) = (owner.clone(), keys.to_vec());
        self.blocking(move |s| {
            let txn = s.db.begin_read().map_err(storage)?;
            let table = txn.open_table(RECORDS).map_err(storage)?;
            let mut out = Vec::new();
            for key in keys {
                if let Some(bytes) = table.get((owner.as_str(), key.as_str())).map_err(storage)? {
                    let r: KeyRecord = decode(bytes.value())?;
                    out.push(Recorded {
                        key: key.as_str().to_owned(),
                        version: Version(r.version),
                        revision: Revision(r.revision),
                        at: r.at,
                        actor: r.actor,
                    });
                }
            }
            Ok(out)
        })
        .await
    }

    async fn recorded_page(
        &self,
        owner: &Owner,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Recorded>> {
        let (owner, prefix, after) = (owner.clone(), prefix.to_owned(), after.map(str::to_owned));
        self.blocking(move |s| {
            let txn = s.db.begin_read().map_err(storage)?;
            let table = txn.open_table(RECORDS).map_err(storage)?;
            // Keys under `prefix` are contiguous from `prefix`; `after` may start further on.
            let start = match after.as_deref() {
                Some(a) if a > prefix.as_str() => a,
                _ => prefix.as_str(),
            };
            let mut out = Vec::new();
            for entry in table.range((owner.as_str(), start)..).map_err(storage)? {
                let (id, bytes) = entry.map_err(storage)?;
                let (entry_owner, key) = id.value();
                if entry_owner != owner.as_str() || !key.starts_with(&prefix) {
                    break;
                }
                if after.as_deref() == Some(key) {
                    continue;
                }
                let r: KeyRecord = decode(bytes.value())?;
                out.push(Recorded {
                    key: key.to_owned(),
                    version: Version(r.version),
                    revision: Revision(r.revision),
                    at: r.at,
                    actor: r.actor,
                });
                if out.len() > limit {
                    break;
                }
            }
            Ok(Page::cut(out, limit, |r| &r.key))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::commit_slice;
    use super::*;

    fn slot() -> (Owner, Key) {
        let routes = tagged_routing::RoutingTable::default();
        let owner = Owner::Tenant(TenantId::parse("acme").expect("a valid tenant"));
        (owner, routes.parse_key("tenant_config_a").expect("a routed key"))
    }

    /// A committer that ends without draining the queue (a panic in redb, or a runtime that
    /// drops it unrun) answers its writers with an error and lets the next write start anew.
    #[tokio::test]
    async fn a_committer_that_ends_early_fails_its_writes_and_frees_the_queue() {
        let store = RedbStore::in_memory().expect("an in-memory store");
        let (owner, key) = slot();
        let (reply, answer) = tokio::sync::oneshot::channel();
        {
            let mut queue = store.queue.lock().expect("the queue's lock");
            queue.pending.push(PendingWrite {
                owner: owner.clone(),
                key: key.clone(),
                op: ChangeOp::Put,
                value: Some(JsonText::parse("1").expect("JSON")),
                precondition: Precondition::None,
                author: Author::new("test"),
                reply,
            });
            queue.committing = true;
        }
        drop(Committer {
            store: Some(store.clone()),
        });
        let answered = tokio::time::timeout(std::time::Duration::from_secs(10), answer)
            .await
            .expect("the dropped write's writer was left waiting forever");
        assert!(answered.is_err(), "the dropped write was answered as if committed");
        assert_eq!(store.head_revision(&owner).await.expect("head"), Revision(0));

        let value = JsonText::parse("2").expect("JSON");
        let put = store.put(&owner, &key, &value, Precondition::None, "test");
        let item = tokio::time::timeout(std::time::Duration::from_secs(10), put)
            .await
            .expect("the queue still had a committer that would never run")
            .expect("the next write");
        assert_eq!(item.version, Version(1));
    }

    /// Records the committing thread's scheduler slice at each publish (inside the commit).
    #[derive(Default)]
    struct SliceSeen(Mutex<Vec<Option<std::time::Duration>>>);

    impl ChangeSink for SliceSeen {
        fn publish(&self, _change: &Change) {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(commit_slice::current());
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_committer_commits_with_the_configured_slice_and_gives_it_back() {
        use std::time::Duration;
        let default = commit_slice::current().expect("the scheduler's slice");
        let (owner, key) = slot();
        let value = JsonText::parse("1").expect("JSON");
        for (configured, expected) in [
            (Some(Duration::from_micros(300)), Duration::from_micros(300)),
            (None, default),
        ] {
            let seen = Arc::new(SliceSeen::default());
            let store = RedbStore::in_memory()
                .expect("an in-memory store")
                .with_commit_slice(configured)
                .with_sink(seen.clone());
            store
                .put(&owner, &key, &value, Precondition::None, "test")
                .await
                .expect("a write");
            let during = seen.0.lock().unwrap_or_else(|p| p.into_inner())[0];
            // A kernel before 6.12 has no per-thread slice and reports 0 for it.
            if default > Duration::ZERO {
                assert_eq!(during, Some(expected), "configured {configured:?}");
            }
        }
        // The blocking pool's threads, the committer's included, run with their own slice
        // once it is done.
        let after = tokio::task::spawn_blocking(commit_slice::current)
            .await
            .expect("a blocking task");
        assert_eq!(after, Some(default));
    }

    /// By the time a write is answered, the committer has let go of the store, so the
    /// caller that drops its handle closes the file and can open it again at once.
    #[tokio::test]
    async fn an_answered_write_leaves_no_other_handle_on_the_database() {
        let store = RedbStore::in_memory().expect("an in-memory store");
        let (owner, key) = slot();
        for n in 0..20 {
            let value = JsonText::parse(&n.to_string()).expect("JSON");
            store
                .put(&owner, &key, &value, Precondition::None, "test")
                .await
                .expect("a write");
            assert_eq!(
                Arc::strong_count(&store.db),
                1,
                "write {n}: the committer still holds the database"
            );
        }
    }

    /// A writer that stops waiting (its client went away) does not take its write back:
    /// the write is committed, as it would have been a moment later.
    #[tokio::test]
    async fn a_write_whose_writer_stops_waiting_is_still_committed() {
        let store = RedbStore::in_memory().expect("an in-memory store");
        let (owner, key) = slot();
        let value = JsonText::parse("1").expect("JSON");
        // Polled once (a zero timeout polls before it looks at the clock), which queues the
        // write and starts a committer, then dropped; whether it was answered does not matter.
        let put = store.put(&owner, &key, &value, Precondition::None, "test");
        let _ = tokio::time::timeout(std::time::Duration::ZERO, put).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while store.head_revision(&owner).await.expect("head") == Revision(0) {
            assert!(
                std::time::Instant::now() < deadline,
                "the abandoned write was never committed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let item = store.get(&owner, &key).await.expect("get").expect("the written item");
        assert_eq!(item.value.as_str(), "1");
    }
}
