//! The change log in the table: the head item, change items, the per-key `history`
//! index, and the [`ChangeLog`] port (the records of SSM-held keys beside the log).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};
use tagged_routing::{
    AppendGuard, Change, ChangeLog, ChangeOp, Error, HistoryEntry, Key, Owner, Page, Recorded, Result, Revision,
    Version,
};

use super::schema::{
    build_err, change_sk, encode, history_prefix, key_of, n, pk, pointer_sk, ChangeItem, HeadItem, PointerItem,
    CHANGE_SK_PREFIX, HEAD_SK, HISTORY_INDEX, MAX_WRITE_ATTEMPTS,
};
use super::{Commit, DynamoStore, Range};
use crate::aws::retry::backoff;

impl DynamoStore {
    pub(super) async fn head(&self, owner: &Owner) -> Result<Revision> {
        Ok(Revision(
            self.get_item::<HeadItem>(pk(owner), HEAD_SK.into())
                .await?
                .map_or(0, |h| h.revision),
        ))
    }

    /// The head update of a write: `revision` moves from `read` to `read + 1`, and only
    /// from there, so two writers of one tenant can never take the same revision.
    pub(super) fn head_update(&self, owner: &Owner, read: Revision) -> Result<TransactWriteItem> {
        self.head_update_to(owner, read, 1)
    }

    /// Moves the head from `read` (the condition) forward by `by` revisions.
    pub(super) fn head_update_to(&self, owner: &Owner, read: Revision, by: u64) -> Result<TransactWriteItem> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(pk(owner), HEAD_SK.into())))
            .update_expression("SET revision = :new")
            .expression_attribute_values(":new", n(read.0 + by));
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

    pub(super) fn change_put(&self, owner: &Owner, change: &Change) -> Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(encode(&ChangeItem::new(owner, change, self.expires_at()))?))
            .condition_expression("attribute_not_exists(sk)")
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Appends a change to the owner's log: head increment + change item (+ `extra` items
    /// built for the revision taken) in one transaction. With `guarded`, the first `extra`
    /// item carries a condition that decides whether the change goes ahead at all: when it
    /// fails, nothing is written and the answer is `None`.
    pub(super) async fn append_change_guarded(
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

    /// Changes after `since`, oldest first: one query of the change items' sort-key range.
    pub(super) async fn changes_after(&self, owner: &Owner, since: Revision, limit: usize) -> Result<Vec<Change>> {
        let range = Range::sort_key(CHANGE_SK_PREFIX);
        let (items, _) = self
            .query_range::<ChangeItem>(pk(owner), range, Some(change_sk(since)), true, limit)
            .await?;
        items.into_iter().map(ChangeItem::into_change).collect()
    }

    /// `key`'s changes, newest first, as long as the log keeps them: one keyed query of the
    /// `history` index, reading `limit + 1` items at most, however many other keys changed.
    pub(super) async fn key_history(&self, owner: &Owner, key: &Key, limit: usize) -> Result<Vec<HistoryEntry>> {
        let prefix = history_prefix(key.as_str());
        let range = Range {
            index: Some(HISTORY_INDEX),
            attribute: "hk",
            prefix: &prefix,
        };
        let (items, _) = self
            .query_range::<ChangeItem>(pk(owner), range, None, false, limit)
            .await?;
        items
            .into_iter()
            .map(|c| c.into_change().map(HistoryEntry::from))
            .collect()
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
        self.changes_after(owner, since, limit).await
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
                    let put = match guard_condition(guard, change.version) {
                        None => put,
                        Some((condition, v)) => put
                            .condition_expression(condition)
                            .expression_attribute_values(":v", n(v)),
                    };
                    TransactWriteItem::builder()
                        .put(put.build().map_err(build_err)?)
                        .build()
                }
                _ => {
                    let delete = Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(key_of(pk(owner), pointer_sk(&change.key))));
                    let delete = match guard_condition(guard, change.version) {
                        None => delete,
                        Some((condition, v)) => delete
                            .condition_expression(condition)
                            .expression_attribute_values(":v", n(v)),
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

    /// One query of the records' sort-key range (`P#<prefix>`), `limit + 1` items at most.
    async fn recorded_page(
        &self,
        owner: &Owner,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Recorded>> {
        let records_prefix = pointer_sk(prefix);
        let range = Range::sort_key(&records_prefix);
        let (items, more) = self
            .query_range::<PointerItem>(pk(owner), range, after.map(pointer_sk), true, limit)
            .await?;
        let records: Vec<Recorded> = items.into_iter().map(PointerItem::into_recorded).collect();
        Ok(Page::after(records, more, |r| &r.key))
    }
}

/// The condition on the key's record item that `guard` stands for, with its `:v`.
fn guard_condition(guard: AppendGuard, version: Version) -> Option<(&'static str, u64)> {
    match guard {
        AppendGuard::Always => None,
        AppendGuard::NewerThanRecorded => Some(("attribute_not_exists(sk) OR version < :v", version.0)),
        AppendGuard::RecordedIs(v) => Some(("version = :v", v.0)),
        AppendGuard::NotRecordedAs(v) => Some(("attribute_not_exists(sk) OR version <> :v", v.0)),
    }
}
