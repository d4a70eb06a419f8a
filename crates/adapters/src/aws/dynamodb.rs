//! The DynamoDB store: one table, items keyed by `pk`/`sk` strings.
//!
//! | item | `pk` | `sk` | attributes |
//! | --- | --- | --- | --- |
//! | value | `T#<owner>` | `K#<key>` | `key`, `value` (JSON text), `version`, `revision`, `updated_at`, `updated_by` |
//! | head | `T#<owner>` | `REV` | `revision`: the owner's change counter |
//! | change | `T#<owner>` | `C#<revision, 20 digits>` | the [`Change`] fields, `expires_at` (TTL) |
//! | record (pointer) | `T#<owner>` | `P#<key>` | `version` (SSM's), `revision`, `updated_at`, `updated_by`: the [`ChangeLog`] record of a key whose value lives in SSM |
//! | tier assignment | `T#<tenant>` | `TIER` | `tier` (absent: none), `version` |
//!
//! A write is one `TransactWriteItems`: the value (conditioned on the version read), the
//! head (conditioned on the revision read) and the change item. Both conditions failing
//! only ever means "someone else wrote first": the write re-reads and either reports the
//! precise precondition error or tries again with backoff.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, KeysAndAttributes, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};
use tagged_routing::rules::{version_after_put, version_removed_by_delete};
use tagged_routing::{
    now_rfc3339, BackendKind, Change, ChangeOp, ConfigItem, ConfigStore, Error, HistoryEntry, JsonText, Key, Owner,
    Page, Precondition, Recorded, Result, Revision, TenantId, TierName, ValueOmitted, Version,
};
use tagged_routing::{AppendGuard, ChangeLog};

use super::error::{corrupt, from_sdk};
use super::retry::backoff;

const SERVICE: &str = "DynamoDB";
const HEAD_SK: &str = "REV";
const TIER_SK: &str = "TIER";
/// How often a write is retried when other writers of the same tenant keep winning.
const MAX_WRITE_ATTEMPTS: u32 = 12;
/// DynamoDB's BatchGetItem limit.
const BATCH_GET_LIMIT: usize = 100;

fn pk(owner: &Owner) -> String {
    format!("T#{}", owner.as_str())
}
fn value_sk(key: &str) -> String {
    format!("K#{key}")
}
fn change_sk(revision: Revision) -> String {
    format!("C#{:020}", revision.0)
}
fn pointer_sk(key: &str) -> String {
    format!("P#{key}")
}

#[derive(Debug, Serialize, Deserialize)]
struct ValueItem {
    pk: String,
    sk: String,
    key: String,
    value: String,
    version: u64,
    revision: u64,
    updated_at: String,
    updated_by: String,
}

impl ValueItem {
    fn into_config_item(self, owner: &Owner) -> Result<ConfigItem> {
        Ok(ConfigItem {
            value: JsonText::parse(&self.value).map_err(|e| corrupt(format!("value of {}: {e}", self.key)))?,
            key: self.key,
            version: Version(self.version),
            revision: Revision(self.revision),
            updated_at: self.updated_at,
            updated_by: self.updated_by,
            layer: owner.layer(),
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct HeadItem {
    revision: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct TierItem {
    pk: String,
    sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tier: Option<String>,
    version: u64,
}

/// The sort-key prefix of change-log items (what the stream filter keeps).
pub const CHANGE_SK_PREFIX: &str = "C#";

/// A change-log item: a [`Change`] with its table keys and its expiry. The stream
/// publisher decodes stream records' `NewImage` into it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChangeItem {
    pk: String,
    sk: String,
    tenant: String,
    revision: u64,
    key: String,
    tag: String,
    backend: BackendKind,
    op: ChangeOp,
    version: u64,
    actor: String,
    at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value_omitted: Option<ValueOmitted>,
    expires_at: u64,
}

impl ChangeItem {
    fn new(owner: &Owner, change: &Change, expires_at: u64) -> Self {
        ChangeItem {
            pk: pk(owner),
            sk: change_sk(change.revision),
            tenant: change.tenant.clone(),
            revision: change.revision.0,
            key: change.key.clone(),
            tag: change.tag.clone(),
            backend: change.backend,
            op: change.op,
            version: change.version.0,
            actor: change.actor.clone(),
            at: change.at.clone(),
            value: change.value.as_ref().map(|v| v.as_str().to_owned()),
            value_omitted: change.value_omitted,
            expires_at,
        }
    }

    pub fn into_change(self) -> Result<Change> {
        Ok(Change {
            value: self
                .value
                .map(|v| JsonText::parse(&v))
                .transpose()
                .map_err(|e| corrupt(format!("change {} value: {e}", self.revision)))?,
            tenant: self.tenant,
            revision: Revision(self.revision),
            key: self.key,
            tag: self.tag,
            backend: self.backend,
            op: self.op,
            version: Version(self.version),
            actor: self.actor,
            at: self.at,
            value_omitted: self.value_omitted,
        })
    }
}

/// The change log's record of a key whose value lives in SSM (which keeps no custom
/// attributes on a parameter): the version last recorded and the revision of that change.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PointerItem {
    pk: String,
    sk: String,
    key: String,
    version: u64,
    revision: u64,
    updated_at: String,
    updated_by: String,
}

impl PointerItem {
    fn of(owner: &Owner, change: &Change) -> Self {
        PointerItem {
            pk: pk(owner),
            sk: pointer_sk(&change.key),
            key: change.key.clone(),
            version: change.version.0,
            revision: change.revision.0,
            updated_at: change.at.clone(),
            updated_by: change.actor.clone(),
        }
    }

    fn into_recorded(self) -> Recorded {
        Recorded {
            key: self.key,
            version: Version(self.version),
            revision: Revision(self.revision),
            at: self.updated_at,
            actor: self.updated_by,
        }
    }
}

/// How a transaction ended.
enum Commit {
    Done,
    /// The value item's condition failed: someone changed the key since it was read.
    ValueChanged,
    /// The head moved or DynamoDB reported a transaction conflict: retry.
    Contended,
}

/// The DynamoDB store; also the change log of the SSM store.
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    retention: Duration,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
fn key_of(pk: String, sk: String) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}
fn build_err(e: impl std::fmt::Display) -> Error {
    Error::Backend(format!("cannot build a DynamoDB request: {e}"))
}
fn encode<T: Serialize>(item: &T) -> Result<HashMap<String, AttributeValue>> {
    to_item(item).map_err(|e| Error::Backend(format!("cannot encode an item: {e}")))
}
fn decode<T: DeserializeOwned>(item: HashMap<String, AttributeValue>) -> Result<T> {
    from_item(item).map_err(|e| corrupt(format!("item does not decode: {e}")))
}

impl DynamoStore {
    /// `retention`: how long change items live before DynamoDB's TTL removes them.
    pub fn new(client: Client, table: impl Into<String>, retention: Duration) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            retention,
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn expires_at(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default()
            + self.retention.as_secs()
    }

    async fn get_item<T: DeserializeOwned>(&self, pk: String, sk: String) -> Result<Option<T>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, "GetItem", e))?;
        out.item.map(decode).transpose()
    }

    /// Items of one partition whose sort key starts with `prefix` and comes after
    /// `after_sk`, in sort-key order, until `limit` items pass `keep`.
    async fn query_prefix<T: DeserializeOwned>(
        &self,
        pk: String,
        prefix: &str,
        after_sk: Option<String>,
        forward: bool,
        limit: usize,
        keep: impl Fn(&T) -> bool,
    ) -> Result<(Vec<T>, bool)> {
        let mut out = Vec::new();
        let mut start = after_sk.map(|sk| key_of(pk.clone(), sk));
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(pk.clone()))
                .expression_attribute_values(":prefix", s(prefix))
                .set_exclusive_start_key(start.take())
                .scan_index_forward(forward)
                .consistent_read(true)
                .limit((limit + 1).clamp(10, 1000) as i32)
                .send()
                .await
                .map_err(|e| from_sdk(SERVICE, "Query", e))?;
            for item in page.items.unwrap_or_default() {
                let item: T = decode(item)?;
                if keep(&item) {
                    out.push(item);
                    if out.len() > limit {
                        out.truncate(limit);
                        return Ok((out, true));
                    }
                }
            }
            match page.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return Ok((out, false)),
            }
        }
    }

    /// Reads items by key with BatchGetItem, retrying unprocessed keys with backoff.
    async fn batch_get_items<T: DeserializeOwned>(&self, keys: Vec<(String, String)>) -> Result<Vec<T>> {
        let mut found = Vec::new();
        for chunk in keys.chunks(BATCH_GET_LIMIT) {
            let mut pending: Vec<HashMap<String, AttributeValue>> =
                chunk.iter().map(|(pk, sk)| key_of(pk.clone(), sk.clone())).collect();
            let mut attempt = 0;
            while !pending.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .build()
                    .map_err(build_err)?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| from_sdk(SERVICE, "BatchGetItem", e))?;
                for item in out
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    found.push(decode(item)?);
                }
                if let Some(unprocessed) = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                    pending = unprocessed.keys;
                    if !pending.is_empty() {
                        attempt += 1;
                        if attempt > MAX_WRITE_ATTEMPTS {
                            return Err(Error::Throttled {
                                backend: SERVICE.into(),
                                retry_after_secs: 1,
                            });
                        }
                        backoff(attempt).await;
                    }
                }
            }
        }
        Ok(found)
    }

    async fn head(&self, owner: &Owner) -> Result<Revision> {
        Ok(Revision(
            self.get_item::<HeadItem>(pk(owner), HEAD_SK.into())
                .await?
                .map_or(0, |h| h.revision),
        ))
    }

    /// The head update of a write: `revision` moves from `read` to `read + 1`, and only
    /// from there, so two writers of one tenant can never take the same revision.
    fn head_update(&self, owner: &Owner, read: Revision) -> Result<TransactWriteItem> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(pk(owner), HEAD_SK.into())))
            .update_expression("SET revision = :new")
            .expression_attribute_values(":new", n(read.0 + 1));
        update = if read.0 == 0 {
            update.condition_expression("attribute_not_exists(revision)")
        } else {
            update
                .condition_expression("revision = :old")
                .expression_attribute_values(":old", n(read.0))
        };
        Ok(TransactWriteItem::builder()
            .update(update.build().map_err(build_err)?)
            .build())
    }

    fn change_put(&self, owner: &Owner, change: &Change) -> Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(encode(&ChangeItem::new(owner, change, self.expires_at()))?))
            .condition_expression("attribute_not_exists(sk)")
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Runs one transaction. `value_index` is the position of the value item, whose
    /// failed condition means the key changed since it was read.
    async fn transact(&self, items: Vec<TransactWriteItem>, value_index: Option<usize>) -> Result<Commit> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(Commit::Done),
            Err(e) => e,
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = err.as_service_error() {
            let reasons: Vec<&str> = cancelled
                .cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or("None"))
                .collect();
            if value_index.is_some_and(|i| reasons.get(i) == Some(&"ConditionalCheckFailed")) {
                return Ok(Commit::ValueChanged);
            }
            if reasons
                .iter()
                .any(|r| *r == "ConditionalCheckFailed" || *r == "TransactionConflict")
            {
                return Ok(Commit::Contended);
            }
            if reasons
                .iter()
                .any(|r| r.contains("Throughput") || r.contains("Throttl"))
            {
                return Err(Error::Throttled {
                    backend: SERVICE.into(),
                    retry_after_secs: 1,
                });
            }
            return Err(Error::Backend(format!("transaction cancelled: {}", reasons.join(", "))));
        }
        if matches!(
            err.as_service_error(),
            Some(TransactWriteItemsError::TransactionInProgressException(_))
        ) {
            return Ok(Commit::Contended);
        }
        Err(from_sdk(SERVICE, "TransactWriteItems", err))
    }

    /// A put or delete of a DynamoDB-routed key: read, apply the rules, commit value + head
    /// + change in one transaction; retry while other writers win.
    async fn write(
        &self,
        owner: &Owner,
        key: &Key,
        op: ChangeOp,
        value: Option<&JsonText>,
        precondition: Precondition,
        actor: &str,
    ) -> Result<(Option<ConfigItem>, Change)> {
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            let (current, head) = tokio::try_join!(
                self.get_item::<ValueItem>(pk(owner), value_sk(key.as_str())),
                self.head(owner)
            )?;
            let current_version = current.as_ref().map(|c| Version(c.version));
            let version = match op {
                ChangeOp::Put => version_after_put(current_version, precondition)?,
                ChangeOp::Delete => version_removed_by_delete(current_version, precondition)?,
                ChangeOp::Tier => return Err(Error::Backend("a tier assignment is not a value write".into())),
            };
            let revision = Revision(head.0 + 1);
            let at = now_rfc3339();
            let change = Change::new(owner, revision, key, op, version, actor, at.clone(), value);
            let value_write = match value {
                Some(value) => {
                    let item = ValueItem {
                        pk: pk(owner),
                        sk: value_sk(key.as_str()),
                        key: key.as_str().to_owned(),
                        value: value.as_str().to_owned(),
                        version: version.0,
                        revision: revision.0,
                        updated_at: at.clone(),
                        updated_by: actor.to_owned(),
                    };
                    let put = Put::builder().table_name(&self.table).set_item(Some(encode(&item)?));
                    let put = match current_version {
                        None => put.condition_expression("attribute_not_exists(pk)"),
                        Some(v) => put
                            .condition_expression("version = :read")
                            .expression_attribute_values(":read", n(v.0)),
                    };
                    TransactWriteItem::builder()
                        .put(put.build().map_err(build_err)?)
                        .build()
                }
                None => {
                    let delete = Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(key_of(pk(owner), value_sk(key.as_str()))))
                        .condition_expression("version = :read")
                        .expression_attribute_values(":read", n(version.0))
                        .build()
                        .map_err(build_err)?;
                    TransactWriteItem::builder().delete(delete).build()
                }
            };
            let items = vec![
                value_write,
                self.head_update(owner, head)?,
                self.change_put(owner, &change)?,
            ];
            match self.transact(items, Some(0)).await? {
                Commit::Done => {
                    let item = value.map(|value| ConfigItem::written(owner, &change, value));
                    return Ok((item, change));
                }
                // Re-read: the rules then report the precise precondition error, or the
                // unconditional write goes through on top of the newer version.
                Commit::ValueChanged => continue,
                Commit::Contended => backoff(attempt).await,
            }
        }
        Err(Error::Conflict(format!(
            "gave up after {MAX_WRITE_ATTEMPTS} attempts: other writers of this tenant kept winning"
        )))
    }

    /// Appends a change to the owner's log: head increment + change item (+ `extra` items
    /// built for the revision taken) in one transaction. With `guarded`, the first `extra`
    /// item carries a condition that decides whether the change goes ahead at all: when it
    /// fails, nothing is written and the answer is `None`.
    async fn append_change_guarded(
        &self,
        owner: &Owner,
        make_change: impl Fn(Revision) -> Change,
        extra: impl Fn(&Change) -> Result<Vec<TransactWriteItem>>,
        guarded: bool,
    ) -> Result<Option<Change>> {
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            let head = self.head(owner).await?;
            let change = make_change(Revision(head.0 + 1));
            let mut items = vec![self.head_update(owner, head)?, self.change_put(owner, &change)?];
            items.extend(extra(&change)?);
            match self.transact(items, guarded.then_some(2)).await? {
                Commit::Done => return Ok(Some(change)),
                Commit::ValueChanged => return Ok(None),
                Commit::Contended => backoff(attempt).await,
            }
        }
        Err(Error::Conflict(format!(
            "could not append to the change log after {MAX_WRITE_ATTEMPTS} attempts"
        )))
    }
}

#[async_trait]
impl ConfigStore for DynamoStore {
    async fn get(&self, owner: &Owner, key: &Key) -> Result<Option<ConfigItem>> {
        self.get_item::<ValueItem>(pk(owner), value_sk(key.as_str()))
            .await?
            .map(|i| i.into_config_item(owner))
            .transpose()
    }

    async fn put(
        &self,
        owner: &Owner,
        key: &Key,
        value: &JsonText,
        precondition: Precondition,
        actor: &str,
    ) -> Result<ConfigItem> {
        let (item, _) = self
            .write(owner, key, ChangeOp::Put, Some(value), precondition, actor)
            .await?;
        item.ok_or_else(|| Error::Backend("a put stored no item".into()))
    }

    async fn delete(&self, owner: &Owner, key: &Key, precondition: Precondition, actor: &str) -> Result<Change> {
        Ok(self
            .write(owner, key, ChangeOp::Delete, None, precondition, actor)
            .await?
            .1)
    }

    async fn list(&self, owner: &Owner, prefix: &str, after: Option<&str>, limit: usize) -> Result<Page<ConfigItem>> {
        if limit == 0 {
            return Err(Error::InvalidValue("limit must be at least 1".into()));
        }
        let (items, more) = self
            .query_prefix::<ValueItem>(pk(owner), &value_sk(prefix), after.map(value_sk), true, limit, |_| true)
            .await?;
        let items = items
            .into_iter()
            .map(|i| i.into_config_item(owner))
            .collect::<Result<Vec<_>>>()?;
        let next = if more {
            items.last().map(|i| i.key.clone())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn batch_get(&self, owner: &Owner, keys: &[Key]) -> Result<Vec<ConfigItem>> {
        let ids = keys.iter().map(|k| (pk(owner), value_sk(k.as_str()))).collect();
        self.batch_get_items::<ValueItem>(ids)
            .await?
            .into_iter()
            .map(|i| i.into_config_item(owner))
            .collect()
    }

    async fn history(&self, owner: &Owner, key: &Key, limit: usize) -> Result<Vec<HistoryEntry>> {
        // The change log (newest first, filtered to the key): as long as its retention.
        let (items, _) = self
            .query_prefix::<ChangeItem>(pk(owner), "C#", None, false, limit, |c| c.key == key.as_str())
            .await?;
        items
            .into_iter()
            .map(|c| c.into_change().map(HistoryEntry::from))
            .collect()
    }

    async fn changes_since(&self, owner: &Owner, since: Revision, limit: usize) -> Result<Vec<Change>> {
        let (items, _) = self
            .query_prefix::<ChangeItem>(pk(owner), "C#", Some(change_sk(since)), true, limit, |_| true)
            .await?;
        items.into_iter().map(ChangeItem::into_change).collect()
    }

    async fn head_revision(&self, owner: &Owner) -> Result<Revision> {
        self.head(owner).await
    }

    async fn tier_of(&self, tenant: &TenantId) -> Result<Option<TierName>> {
        let owner = Owner::Tenant(tenant.clone());
        self.get_item::<TierItem>(pk(&owner), TIER_SK.into())
            .await?
            .and_then(|i| i.tier)
            .map(|t| TierName::parse(&t).map_err(corrupt))
            .transpose()
    }

    /// The assignment item is written in the same transaction as the head and the change,
    /// conditioned on the assignment version read: two operators assigning at once both
    /// land in order, each with its own revision.
    async fn assign_tier(&self, tenant: &TenantId, tier: Option<&TierName>, actor: &str) -> Result<Option<Change>> {
        let owner = Owner::Tenant(tenant.clone());
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            let current = self.get_item::<TierItem>(pk(&owner), TIER_SK.into()).await?;
            let read_version = current.as_ref().map(|c| c.version);
            if current.as_ref().and_then(|c| c.tier.as_deref()) == tier.map(TierName::as_str) {
                return Ok(None);
            }
            let version = Version(read_version.unwrap_or(0) + 1);
            let at = now_rfc3339();
            let record = TierItem {
                pk: pk(&owner),
                sk: TIER_SK.into(),
                tier: tier.map(|t| t.as_str().to_owned()),
                version: version.0,
            };
            let appended = self
                .append_change_guarded(
                    &owner,
                    |revision| Change::tier_assigned(tenant, revision, tier, version, actor, at.clone()),
                    |_| {
                        let put = Put::builder().table_name(&self.table).set_item(Some(encode(&record)?));
                        let put = match read_version {
                            None => put.condition_expression("attribute_not_exists(pk)"),
                            Some(v) => put
                                .condition_expression("version = :read")
                                .expression_attribute_values(":read", n(v)),
                        };
                        Ok(vec![TransactWriteItem::builder()
                            .put(put.build().map_err(build_err)?)
                            .build()])
                    },
                    true,
                )
                .await?;
            match appended {
                Some(change) => return Ok(Some(change)),
                // Another assignment landed first: read it and decide again.
                None => backoff(attempt).await,
            }
        }
        Err(Error::Conflict(format!(
            "gave up assigning a tier after {MAX_WRITE_ATTEMPTS} attempts"
        )))
    }
}

/// The change log of every owner, with the records of SSM-held keys beside it: an append is
/// one transaction of head, change item and record (`P#<key>`), the guard a condition on
/// the record.
#[async_trait]
impl ChangeLog for DynamoStore {
    async fn head(&self, owner: &Owner) -> Result<Revision> {
        DynamoStore::head(self, owner).await
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
        let record = |change: &Change| -> Result<Vec<TransactWriteItem>> {
            let item = match change.op {
                ChangeOp::Put => {
                    let put = Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(encode(&PointerItem::of(owner, change))?));
                    let put = match guard {
                        AppendGuard::Always => put,
                        AppendGuard::NewerThanRecorded => put
                            .condition_expression("attribute_not_exists(sk) OR version < :v")
                            .expression_attribute_values(":v", n(change.version.0)),
                        AppendGuard::RecordedIs(v) => put
                            .condition_expression("version = :v")
                            .expression_attribute_values(":v", n(v.0)),
                    };
                    TransactWriteItem::builder()
                        .put(put.build().map_err(build_err)?)
                        .build()
                }
                _ => {
                    let delete = Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(key_of(pk(owner), pointer_sk(&change.key))));
                    let delete = match guard {
                        AppendGuard::Always => delete,
                        AppendGuard::NewerThanRecorded => delete
                            .condition_expression("attribute_not_exists(sk) OR version < :v")
                            .expression_attribute_values(":v", n(change.version.0)),
                        AppendGuard::RecordedIs(v) => delete
                            .condition_expression("version = :v")
                            .expression_attribute_values(":v", n(v.0)),
                    };
                    TransactWriteItem::builder()
                        .delete(delete.build().map_err(build_err)?)
                        .build()
                }
            };
            Ok(vec![item])
        };
        self.append_change_guarded(owner, make, record, guard != AppendGuard::Always)
            .await
    }

    async fn recorded(&self, owner: &Owner, keys: &[Key]) -> Result<Vec<Recorded>> {
        let items: Vec<PointerItem> = match keys {
            [] => Vec::new(),
            [key] => self
                .get_item(pk(owner), pointer_sk(key.as_str()))
                .await?
                .into_iter()
                .collect(),
            keys => {
                self.batch_get_items(keys.iter().map(|k| (pk(owner), pointer_sk(k.as_str()))).collect())
                    .await?
            }
        };
        Ok(items.into_iter().map(PointerItem::into_recorded).collect())
    }
}
