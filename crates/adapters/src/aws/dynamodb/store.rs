//! [`ConfigStore`] on the table: value writes (value + head + change in one transaction),
//! reads, listing, tier assignments.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
use tagged_routing::rules::{version_after_put, version_removed_by_delete};
use tagged_routing::{
    now_rfc3339, Author, Change, ChangeOp, ConfigItem, ConfigStore, Error, HistoryEntry, JsonText, Key, Owner, Page,
    Precondition, Result, Revision, SetWrite, TenantId, TierName, Version,
};

use super::schema::{build_err, encode, key_of, n, pk, value_sk, TierItem, ValueItem, MAX_WRITE_ATTEMPTS, TIER_SK};
use super::{Commit, DynamoStore, Range};
use crate::aws::error::corrupt;
use crate::aws::retry::backoff;

impl DynamoStore {
    /// A put or delete of a DynamoDB-routed key: read, apply the rules, commit value + head
    /// + change in one transaction; retry while other writers win.
    async fn write(
        &self,
        owner: &Owner,
        key: &Key,
        op: ChangeOp,
        value: Option<&JsonText>,
        precondition: Precondition,
        author: &Author,
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
            let change = Change::new(owner, revision, key, op, version, author, at.clone(), value);
            let items = vec![
                self.value_write(owner, &change, value, current_version)?,
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

    /// The value item's side of a change: put (conditioned on the version read, or on
    /// absence) or delete (conditioned on the version removed).
    fn value_write(
        &self,
        owner: &Owner,
        change: &Change,
        value: Option<&JsonText>,
        current_version: Option<Version>,
    ) -> Result<TransactWriteItem> {
        Ok(match value {
            Some(value) => {
                let item = ValueItem {
                    pk: pk(owner),
                    sk: value_sk(&change.key),
                    key: change.key.clone(),
                    value: value.as_str().to_owned(),
                    version: change.version.0,
                    revision: change.revision.0,
                    updated_at: change.at.clone(),
                    updated_by: change.actor.clone(),
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
                    .set_key(Some(key_of(pk(owner), value_sk(&change.key))))
                    .condition_expression("version = :read")
                    .expression_attribute_values(":read", n(change.version.0))
                    .build()
                    .map_err(build_err)?;
                TransactWriteItem::builder().delete(delete).build()
            }
        })
    }

    /// A change set in one `TransactWriteItems`: every value item, every change item and the
    /// head (conditioned on the head read), retried from a fresh read while other writers
    /// of the owner win.
    async fn write_all(&self, owner: &Owner, writes: &[SetWrite], author: &Author) -> Result<Vec<Change>> {
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            // Distinct ids (BatchGetItem refuses duplicates; the plan reports a repeated key).
            let mut ids: Vec<(String, String)> = writes.iter().map(|w| (pk(owner), value_sk(w.key.as_str()))).collect();
            ids.sort();
            ids.dedup();
            let (current, head) = tokio::try_join!(self.batch_get_items::<ValueItem>(ids), self.head(owner))?;
            let version_of = |k: &Key| current.iter().find(|i| i.key == k.as_str()).map(|i| Version(i.version));
            let versions = tagged_routing::rules::plan_set(writes, version_of)?;
            let changes = tagged_routing::rules::set_changes(owner, head, writes, &versions, author, &now_rfc3339());
            let mut items = Vec::with_capacity(writes.len() * 2 + 1);
            for (w, change) in writes.iter().zip(&changes) {
                items.push(self.value_write(owner, change, w.value.as_ref(), version_of(&w.key))?);
                items.push(self.change_put(owner, change)?);
            }
            items.push(self.head_update_to(owner, head, changes.len() as u64)?);
            match self.transact(items, None).await? {
                Commit::Done => return Ok(changes),
                // A value or the head moved: read again; the plan reports a precondition
                // that no longer holds.
                Commit::ValueChanged | Commit::Contended => backoff(attempt).await,
            }
        }
        Err(Error::Conflict(format!(
            "gave up after {MAX_WRITE_ATTEMPTS} attempts: other writers of this tenant kept winning"
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
        let value_prefix = value_sk(prefix);
        let range = Range::sort_key(&value_prefix);
        let (items, more) = self
            .query_range::<ValueItem>(pk(owner), range, after.map(value_sk), true, limit)
            .await?;
        let items = items
            .into_iter()
            .map(|i| i.into_config_item(owner))
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::after(items, more, |i| &i.key))
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
        self.key_history(owner, key, limit).await
    }

    async fn changes_since(&self, owner: &Owner, since: Revision, limit: usize) -> Result<Vec<Change>> {
        self.changes_after(owner, since, limit).await
    }

    async fn head_revision(&self, owner: &Owner) -> Result<Revision> {
        self.head(owner).await
    }

    async fn write_set(&self, owner: &Owner, writes: &[SetWrite], author: &Author) -> Result<Vec<Change>> {
        self.write_all(owner, writes, author).await
    }

    async fn owners(&self) -> Result<Vec<Owner>> {
        self.owners_with_heads().await
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
    async fn assign_tier(&self, tenant: &TenantId, tier: Option<&TierName>, author: &Author) -> Result<Option<Change>> {
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
                    |revision| Change::tier_assigned(tenant, revision, tier, version, author, at.clone()),
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
