//! The table's items and their keys (the layout is in the parent module's doc).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};
use tagged_routing::{
    BackendKind, Change, ChangeOp, ConfigItem, Error, JsonText, Owner, Recorded, Result, Revision, ValueOmitted,
    Version,
};

use crate::aws::error::corrupt;

pub(super) const SERVICE: &str = "DynamoDB";
pub(super) const HEAD_SK: &str = "REV";
pub(super) const TIER_SK: &str = "TIER";
/// How often a write is retried when other writers of the same tenant keep winning.
pub(super) const MAX_WRITE_ATTEMPTS: u32 = 12;
/// DynamoDB's BatchGetItem limit.
pub(super) const BATCH_GET_LIMIT: usize = 100;

pub(super) fn pk(owner: &Owner) -> String {
    format!("T#{}", owner.as_str())
}
pub(super) fn value_sk(key: &str) -> String {
    format!("K#{key}")
}
pub(super) fn change_sk(revision: Revision) -> String {
    format!("C#{:020}", revision.0)
}
pub(super) fn pointer_sk(key: &str) -> String {
    format!("P#{key}")
}

/// The local secondary index over change items by key: sort key `hk` = `<key>#<revision,
/// 20 digits>`, so one key's history is one keyed query, newest first. Keys never contain
/// `#`, so the prefix `<key>#` matches that key only.
pub const HISTORY_INDEX: &str = "history";

/// The `history` index's sort key of `key`'s change at `revision`.
pub(super) fn history_key(key: &str, revision: Revision) -> String {
    format!("{key}#{:020}", revision.0)
}

/// The `history` index's prefix of every change of `key`.
pub(super) fn history_prefix(key: &str) -> String {
    format!("{key}#")
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ValueItem {
    pub pk: String,
    pub sk: String,
    pub key: String,
    pub value: String,
    pub version: u64,
    pub revision: u64,
    pub updated_at: String,
    pub updated_by: String,
}

impl ValueItem {
    pub fn into_config_item(self, owner: &Owner) -> Result<ConfigItem> {
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
pub(super) struct HeadItem {
    pub revision: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct TierItem {
    pub pk: String,
    pub sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    pub version: u64,
}

/// The sort-key prefix of change-log items (what the stream filter keeps).
pub const CHANGE_SK_PREFIX: &str = "C#";

/// A change-log item: a [`Change`] with its table keys and its expiry. The stream
/// publisher decodes stream records' `NewImage` into it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChangeItem {
    pk: String,
    sk: String,
    /// The `history` index's sort key (absent on items written before the index existed).
    #[serde(default)]
    hk: String,
    tenant: String,
    revision: u64,
    key: String,
    tag: String,
    backend: BackendKind,
    op: ChangeOp,
    version: u64,
    actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    set_last: Option<u64>,
    at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value_omitted: Option<ValueOmitted>,
    expires_at: u64,
}

impl ChangeItem {
    pub(super) fn new(owner: &Owner, change: &Change, expires_at: u64) -> Self {
        ChangeItem {
            pk: pk(owner),
            sk: change_sk(change.revision),
            hk: history_key(&change.key, change.revision),
            tenant: change.tenant.clone(),
            revision: change.revision.0,
            key: change.key.clone(),
            tag: change.tag.clone(),
            backend: change.backend,
            op: change.op,
            version: change.version.0,
            actor: change.actor.clone(),
            reason: change.reason.clone(),
            set_last: change.set_last.map(|r| r.0),
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
            reason: self.reason,
            set_last: self.set_last.map(Revision),
            at: self.at,
            value_omitted: self.value_omitted,
        })
    }
}

/// The change log's record of a key whose value lives in SSM (which keeps no custom
/// attributes on a parameter): the version last recorded and the revision of that change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct PointerItem {
    pk: String,
    sk: String,
    key: String,
    version: u64,
    revision: u64,
    updated_at: String,
    updated_by: String,
}

impl PointerItem {
    pub fn of(owner: &Owner, change: &Change) -> Self {
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

    pub fn into_recorded(self) -> Recorded {
        Recorded {
            key: self.key,
            version: Version(self.version),
            revision: Revision(self.revision),
            at: self.updated_at,
            actor: self.updated_by,
        }
    }
}

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
pub(super) fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
pub(super) fn key_of(pk: String, sk: String) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}
pub(super) fn build_err(e: impl std::fmt::Display) -> Error {
    Error::Backend(format!("cannot build a DynamoDB request: {e}"))
}
pub(super) fn encode<T: Serialize>(item: &T) -> Result<HashMap<String, AttributeValue>> {
    to_item(item).map_err(|e| Error::Backend(format!("cannot encode an item: {e}")))
}
pub(super) fn decode<T: DeserializeOwned>(item: HashMap<String, AttributeValue>) -> Result<T> {
    from_item(item).map_err(|e| corrupt(format!("item does not decode: {e}")))
}
