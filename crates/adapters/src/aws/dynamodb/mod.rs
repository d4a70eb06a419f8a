//! The DynamoDB store: one table, items keyed by `pk`/`sk` strings.
//!
//! - `schema`: the items and their keys (the table below);
//! - this module: [`DynamoStore`] and its requests (get, query, batch get, transaction);
//! - `log`: the change log — head, change items, per-key history, [`ChangeLog`] for SSM keys;
//! - `store`: [`ConfigStore`] — value writes and tier assignments on top of the log.
//!
//! | item | `pk` | `sk` | attributes |
//! | --- | --- | --- | --- |
//! | value | `T#<owner>` | `K#<key>` | `key`, `value` (JSON text), `version`, `revision`, `updated_at`, `updated_by` |
//! | head | `T#<owner>` | `REV` | `revision`: the owner's change counter |
//! | change | `T#<owner>` | `C#<revision, 20 digits>` | the [`Change`] fields, `hk` (`<key>#<revision>`, the sort key of the `history` index), `expires_at` (TTL) |
//! | record (pointer) | `T#<owner>` | `P#<key>` | `version` (SSM's), `revision`, `updated_at`, `updated_by`: the [`ChangeLog`] record of a key whose value lives in SSM |
//! | tier assignment | `T#<tenant>` | `TIER` | `tier` (absent: none), `version` |
//!
//! A write is one `TransactWriteItems`: the value (conditioned on the version read), the
//! head (conditioned on the revision read) and the change item. Both conditions failing
//! only ever means "someone else wrote first": the write re-reads and either reports the
//! precise precondition error or tries again with backoff.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use serde::de::DeserializeOwned;
#[cfg(doc)]
use tagged_routing::{Change, ChangeLog, ConfigStore};
use tagged_routing::{Error, Result};

use super::error::from_sdk;
use super::retry::backoff;
use crate::aws::error::corrupt;
use schema::{build_err, decode, key_of, s, BATCH_GET_LIMIT, HEAD_SK, MAX_WRITE_ATTEMPTS, SERVICE};
use tagged_routing::Owner;

mod log;
mod schema;
mod store;

pub use schema::{ChangeItem, CHANGE_SK_PREFIX, HISTORY_INDEX};

/// How a transaction ended.
pub(crate) enum Commit {
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

/// Which items a query reads: a sort-key prefix of the table, or of the `history` index.
struct Range<'a> {
    index: Option<&'static str>,
    /// The attribute the prefix applies to (`sk`, or the index's sort key).
    attribute: &'static str,
    prefix: &'a str,
}

impl<'a> Range<'a> {
    /// Table items whose sort key starts with `prefix`.
    fn sort_key(prefix: &'a str) -> Self {
        Range {
            index: None,
            attribute: "sk",
            prefix,
        }
    }
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

    /// Items of one partition in `range`, after `after_sk` (table queries only), in sort-key
    /// order (or reversed), until `limit` items: at most `limit + 1` are read, in pages.
    /// The second answer says whether more follow.
    async fn query_range<T: DeserializeOwned>(
        &self,
        pk: String,
        range: Range<'_>,
        after_sk: Option<String>,
        forward: bool,
        limit: usize,
    ) -> Result<(Vec<T>, bool)> {
        let mut out = Vec::new();
        let mut start = after_sk.map(|sk| key_of(pk.clone(), sk));
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(range.index.map(str::to_owned))
                .key_condition_expression(format!("pk = :pk AND begins_with({}, :prefix)", range.attribute))
                .expression_attribute_values(":pk", s(pk.clone()))
                .expression_attribute_values(":prefix", s(range.prefix))
                .set_exclusive_start_key(start.take())
                .scan_index_forward(forward)
                .consistent_read(true)
                .limit(limit.saturating_add(1).clamp(10, 1000) as i32)
                .send()
                .await
                .map_err(|e| from_sdk(SERVICE, "Query", e))?;
            for item in page.items.unwrap_or_default() {
                out.push(decode(item)?);
                if out.len() > limit {
                    out.truncate(limit);
                    return Ok((out, true));
                }
            }
            match page.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return Ok((out, false)),
            }
        }
    }

    /// Every owner with a head item: a Scan of the whole table (read units for every item),
    /// which only a schema registration asks for.
    async fn owners_with_heads(&self) -> Result<Vec<Owner>> {
        let mut owners = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :head")
                .expression_attribute_values(":head", s(HEAD_SK.to_owned()))
                .projection_expression("pk")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| from_sdk(SERVICE, "Scan", e))?;
            for item in page.items.unwrap_or_default() {
                let pk = item
                    .get("pk")
                    .and_then(|v| v.as_s().ok())
                    .ok_or_else(|| corrupt("a head item without pk"))?;
                let owner = pk
                    .strip_prefix("T#")
                    .ok_or_else(|| corrupt(format!("head item pk '{pk}'")))?;
                owners.push(Owner::parse(owner).map_err(corrupt)?);
            }
            match page.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return Ok(owners),
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
}
