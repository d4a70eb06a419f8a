//! The SSM Parameter Store store: `/<root>/<owner>/<tag without trailing _>/<name>`, the
//! shared layer under `/<root>/_shared/...`.
//!
//! SSM keeps the value and its version; every write also appends a change through the
//! [`ChangeLog`] port (the DynamoDB table on AWS), which records the key's version with
//! the change's revision, so both backends share one feed and one revision sequence and
//! reads can report the revision.
//!
//! SSM has no conditional write on a version: `If-Match` is checked against the version
//! read just before `PutParameter` (a small window in which a concurrent writer can slip
//! in), create-only uses `Overwrite=false`, which SSM enforces atomically.

use async_trait::async_trait;
use aws_sdk_ssm::operation::delete_parameter::DeleteParameterError;
use aws_sdk_ssm::operation::get_parameter::GetParameterError;
use aws_sdk_ssm::operation::put_parameter::PutParameterError;
use aws_sdk_ssm::primitives::DateTimeFormat;
use aws_sdk_ssm::types::{Parameter, ParameterTier, ParameterType};
use aws_sdk_ssm::Client;
use std::sync::Arc;
use tagged_routing::rules::{version_after_put, version_removed_by_delete};

use tagged_routing::{
    now_rfc3339, AppendGuard, Author, Change, ChangeLog, ChangeOp, ConfigItem, ConfigStore, Error, HistoryEntry,
    JsonText, Key, Owner, Page, Precondition, Recorded, Result, Revision, RoutingTable, ValueOmitted, Version,
};

use super::error::{corrupt, from_sdk};

const SERVICE: &str = "SSM";
/// SSM's deepest hierarchy.
const MAX_PATH_LEVELS: usize = 15;
/// GetParameters takes at most 10 names.
const GET_PARAMETERS_LIMIT: usize = 10;

/// How SSM parameters are written.
#[derive(Debug, Clone)]
pub struct SsmSettings {
    /// First path segment, default `tagcfg`.
    pub root: String,
    /// KMS key for SecureString parameters (`None` = the account's `alias/aws/ssm`).
    pub kms_key_id: Option<String>,
    /// Advanced-tier parameters (8 KB values, and a cost).
    pub advanced_tier: bool,
}

impl Default for SsmSettings {
    fn default() -> Self {
        SsmSettings {
            root: "tagcfg".into(),
            kms_key_id: None,
            advanced_tier: false,
        }
    }
}

#[derive(Clone)]
pub struct SsmStore {
    client: Client,
    log: Arc<dyn ChangeLog>,
    routes: RoutingTable,
    settings: SsmSettings,
}

fn format_date(p: Option<&aws_sdk_ssm::primitives::DateTime>) -> String {
    p.and_then(|d| d.fmt(DateTimeFormat::DateTime).ok()).unwrap_or_default()
}

impl SsmStore {
    pub fn new(client: Client, log: Arc<dyn ChangeLog>, routes: RoutingTable, settings: SsmSettings) -> Self {
        SsmStore {
            client,
            log,
            routes,
            settings,
        }
    }

    fn owner_path(&self, owner: &Owner) -> String {
        format!("/{}/{}/", self.settings.root, owner.as_str())
    }

    /// The parameter name of `key`, checked against SSM's depth limit.
    pub fn parameter_name(&self, owner: &Owner, key: &Key) -> Result<String> {
        let name = format!("{}{}/{}", self.owner_path(owner), key.tag().trimmed(), key.name());
        let levels = name.matches('/').count();
        if levels > MAX_PATH_LEVELS {
            return Err(Error::InvalidKey(format!(
                "SSM allows at most {MAX_PATH_LEVELS} path levels; '{}' would need {levels}",
                key.as_str()
            )));
        }
        Ok(name)
    }

    /// The key a parameter name under `owner` stands for, if a route still maps it.
    fn key_of(&self, owner: &Owner, name: &str) -> Option<Key> {
        let rest = name.strip_prefix(&self.owner_path(owner))?;
        let (segment, key_name) = rest.split_once('/')?;
        let (tag, _) = self
            .routes
            .routes()
            .find(|(tag, kind)| kind.is_hierarchical() && tag.trimmed() == segment)?;
        self.routes.parse_key(&format!("{tag}{key_name}")).ok()
    }

    async fn get_parameter(&self, name: &str) -> Result<Option<Parameter>> {
        match self
            .client
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
        {
            Ok(out) => Ok(out.parameter),
            Err(e) if matches!(e.as_service_error(), Some(GetParameterError::ParameterNotFound(_))) => Ok(None),
            Err(e) => Err(from_sdk(SERVICE, "GetParameter", e)),
        }
    }

    async fn record_of(&self, owner: &Owner, key: &Key) -> Result<Option<Recorded>> {
        Ok(self.log.recorded(owner, std::slice::from_ref(key)).await?.pop())
    }

    /// Joins a parameter with the change log's record of it. A version written outside the
    /// API (console, CLI) has no matching record until the change feed ingests it: its
    /// revision reads as 0 and its author as `ssm`.
    fn item(&self, owner: &Owner, key: &Key, p: &Parameter, record: Option<&Recorded>) -> Result<ConfigItem> {
        let version = Version(u64::try_from(p.version()).map_err(corrupt)?);
        let value = JsonText::parse(p.value().unwrap_or_default())
            .map_err(|_| corrupt(format!("parameter of {} is not JSON", key.as_str())))?;
        let (revision, updated_by) = match record {
            Some(r) if r.version == version => (r.revision, r.actor.clone()),
            _ => (Revision(0), "ssm".to_owned()),
        };
        Ok(ConfigItem {
            key: key.as_str().to_owned(),
            value,
            version,
            revision,
            updated_at: format_date(p.last_modified_date()),
            updated_by,
            layer: owner.layer(),
        })
    }

    /// The parameters that exist among `keys` (GetParameters, 10 names a call).
    async fn parameters(&self, owner: &Owner, keys: &[Key]) -> Result<Vec<(Key, Parameter)>> {
        let mut found = Vec::new();
        for chunk in keys.chunks(GET_PARAMETERS_LIMIT) {
            let names = chunk
                .iter()
                .map(|k| self.parameter_name(owner, k))
                .collect::<Result<Vec<_>>>()?;
            let out = self
                .client
                .get_parameters()
                .set_names(Some(names.clone()))
                .with_decryption(true)
                .send()
                .await
                .map_err(|e| from_sdk(SERVICE, "GetParameters", e))?;
            for p in out.parameters.unwrap_or_default() {
                if let Some(i) = names.iter().position(|n| Some(n.as_str()) == p.name()) {
                    found.push((chunk[i].clone(), p));
                }
            }
        }
        Ok(found)
    }

    /// Records an API write in the change log — the second step of a put or delete, once
    /// SSM holds the write (public so the race below can be tested).
    ///
    /// The Parameter Store Change event of the same write can reach the cache-refresher
    /// first and record `version` already. Guarded (a put unless exactly this version is
    /// recorded, a delete only of the version recorded), the second recording adds nothing:
    /// one SSM version is one revision. The answer is then the change that recorded it (its
    /// author reads `ssm` in the log: the event carried none).
    pub async fn record(
        &self,
        owner: &Owner,
        key: &Key,
        op: ChangeOp,
        version: Version,
        value: Option<&JsonText>,
        author: &Author,
    ) -> Result<Change> {
        let at = now_rfc3339();
        let make = |revision| Change::new(owner, revision, key, op, version, author, at.clone(), value);
        let guard = match op {
            ChangeOp::Delete => AppendGuard::RecordedIs(version),
            _ => AppendGuard::NotRecordedAs(version),
        };
        if let Some(change) = self.log.append(owner, &make, guard).await? {
            return Ok(change);
        }
        // Recorded already: answer with that record's revision; a delete that ingestion
        // recorded first took the owner's latest one.
        let revision = match (op, self.record_of(owner, key).await?) {
            (ChangeOp::Delete, _) | (_, None) => self.log.head(owner).await?,
            (_, Some(recorded)) => recorded.revision,
        };
        Ok(Change::new(
            owner,
            revision,
            key,
            op,
            version,
            &Author::new("ssm"),
            at,
            value,
        ))
    }
}

impl SsmStore {
    /// The owner and key a parameter name stands for, when it lies under this store's root
    /// and a route maps its tag segment to an SSM backend.
    pub fn locate(&self, name: &str) -> Option<(Owner, Key)> {
        let rest = name.strip_prefix(&format!("/{}/", self.settings.root))?;
        let (owner, _) = rest.split_once('/')?;
        let owner = Owner::parse(owner).ok()?;
        let key = self.key_of(&owner, name)?;
        Some((owner, key))
    }

    /// Enters a change made outside the API (console, CLI; announced by a "Parameter Store
    /// Change" event) into the owner's feed, exactly once: the pointer item records the SSM
    /// version each change stands for, and the append is conditioned on it, so our own
    /// API writes and repeated events add nothing (`None`).
    ///
    /// A value that is not JSON (typed in a console) enters as a JSON string.
    pub async fn ingest_external(&self, owner: &Owner, key: &Key) -> Result<Option<Change>> {
        let name = self.parameter_name(owner, key)?;
        let (parameter, record) = tokio::try_join!(self.get_parameter(&name), self.record_of(owner, key))?;
        let at = now_rfc3339();
        match parameter {
            Some(p) => {
                let version = Version(u64::try_from(p.version()).map_err(corrupt)?);
                if record.as_ref().is_some_and(|r| r.version >= version) {
                    return Ok(None);
                }
                let raw = p.value().unwrap_or_default();
                let value = JsonText::parse(raw).or_else(|_| JsonText::from_serialize(&raw))?;
                let make = |revision| {
                    Change::new(
                        owner,
                        revision,
                        key,
                        ChangeOp::Put,
                        version,
                        &Author::new("ssm"),
                        at.clone(),
                        Some(&value),
                    )
                };
                self.log.append(owner, &make, AppendGuard::NewerThanRecorded).await
            }
            None => {
                // Deleted outside the API. Our own deletes removed the record already.
                let Some(record) = record else { return Ok(None) };
                let version = record.version;
                let make = |revision| {
                    Change::new(
                        owner,
                        revision,
                        key,
                        ChangeOp::Delete,
                        version,
                        &Author::new("ssm"),
                        at.clone(),
                        None,
                    )
                };
                self.log.append(owner, &make, AppendGuard::RecordedIs(version)).await
            }
        }
    }
}

#[async_trait]
impl ConfigStore for SsmStore {
    async fn get(&self, owner: &Owner, key: &Key) -> Result<Option<ConfigItem>> {
        let name = self.parameter_name(owner, key)?;
        let (parameter, record) = tokio::try_join!(self.get_parameter(&name), self.record_of(owner, key))?;
        parameter
            .map(|p| self.item(owner, key, &p, record.as_ref()))
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
        let name = self.parameter_name(owner, key)?;
        if precondition != Precondition::CreateOnly {
            let current = self.get_parameter(&name).await?.map(|p| Version(p.version() as u64));
            version_after_put(current, precondition)?;
        }
        let secure = key.backend().is_secret();
        let request = self
            .client
            .put_parameter()
            .name(&name)
            .value(value.as_str())
            .r#type(if secure {
                ParameterType::SecureString
            } else {
                ParameterType::String
            })
            .set_key_id(if secure { self.settings.kms_key_id.clone() } else { None })
            .tier(if self.settings.advanced_tier {
                ParameterTier::Advanced
            } else {
                ParameterTier::Standard
            })
            // The reason travels with the version: SSM's history keeps each version's description.
            .description(author.reason.clone().unwrap_or_default())
            .overwrite(precondition != Precondition::CreateOnly);
        let version = match request.send().await {
            Ok(out) => Version(u64::try_from(out.version).map_err(corrupt)?),
            Err(e) if matches!(e.as_service_error(), Some(PutParameterError::ParameterAlreadyExists(_))) => {
                let current = self.get_parameter(&name).await?.map_or(1, |p| p.version() as u64);
                return Err(Error::AlreadyExists(Version(current)));
            }
            Err(e) => return Err(from_sdk(SERVICE, "PutParameter", e)),
        };
        // The value is stored; should the append fail, the Parameter Store Change event of
        // this write heals the feed (see docs/ARCHITECTURE.md).
        let change = self
            .record(owner, key, ChangeOp::Put, version, Some(value), author)
            .await?;
        Ok(ConfigItem::written(owner, &change, value))
    }

    async fn delete_by(&self, owner: &Owner, key: &Key, precondition: Precondition, author: &Author) -> Result<Change> {
        let name = self.parameter_name(owner, key)?;
        let current = self.get_parameter(&name).await?.map(|p| Version(p.version() as u64));
        let version = version_removed_by_delete(current, precondition)?;
        match self.client.delete_parameter().name(&name).send().await {
            Ok(_) => {}
            Err(e) if matches!(e.as_service_error(), Some(DeleteParameterError::ParameterNotFound(_))) => {
                return Err(Error::NotFound)
            }
            Err(e) => return Err(from_sdk(SERVICE, "DeleteParameter", e)),
        }
        self.record(owner, key, ChangeOp::Delete, version, None, author).await
    }

    /// One page of the change log's records (key order, paged by the log's backend), then
    /// the values of that page's keys: `limit / 10` GetParameters calls, however many
    /// parameters the owner has. A parameter created outside the API is listed once its
    /// Parameter Store event has entered the feed (the cache-refresher records it).
    async fn list(&self, owner: &Owner, prefix: &str, after: Option<&str>, limit: usize) -> Result<Page<ConfigItem>> {
        if limit == 0 {
            return Err(Error::InvalidValue("limit must be at least 1".into()));
        }
        let page = self.log.recorded_page(owner, prefix, after, limit).await?;
        let keys: Vec<Key> = page
            .items
            .iter()
            .filter_map(|r| self.routes.parse_key(&r.key).ok())
            .filter(|k| k.backend().is_hierarchical())
            .collect();
        let mut items = self
            .parameters(owner, &keys)
            .await?
            .iter()
            .map(|(k, p)| self.item(owner, k, p, page.items.iter().find(|r| r.key == k.as_str())))
            .collect::<Result<Vec<_>>>()?;
        items.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Page { items, next: page.next })
    }

    async fn batch_get(&self, owner: &Owner, keys: &[Key]) -> Result<Vec<ConfigItem>> {
        let found = self.parameters(owner, keys).await?;
        let keys: Vec<Key> = found.iter().map(|(k, _)| k.clone()).collect();
        let records = self.log.recorded(owner, &keys).await?;
        found
            .iter()
            .map(|(k, p)| self.item(owner, k, p, records.iter().find(|r| r.key == k.as_str())))
            .collect()
    }

    async fn history(&self, owner: &Owner, key: &Key, limit: usize) -> Result<Vec<HistoryEntry>> {
        let name = self.parameter_name(owner, key)?;
        let mut versions = Vec::new();
        let mut token = None;
        loop {
            let result = self
                .client
                .get_parameter_history()
                .name(&name)
                .with_decryption(!key.backend().is_secret())
                .set_next_token(token.take())
                .send()
                .await;
            let out = match result {
                Ok(out) => out,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_parameter_not_found()) => return Ok(Vec::new()),
                Err(e) => return Err(from_sdk(SERVICE, "GetParameterHistory", e)),
            };
            versions.extend(out.parameters.unwrap_or_default());
            match out.next_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        // SSM lists oldest first and keeps versions of earlier lives of a deleted name only
        // until it is recreated; newest first here.
        let secret = key.backend().is_secret();
        versions
            .into_iter()
            .rev()
            .take(limit)
            .map(|h| {
                let value = if secret {
                    None
                } else {
                    Some(
                        JsonText::parse(h.value().unwrap_or_default())
                            .map_err(|_| corrupt("a parameter version is not JSON"))?,
                    )
                };
                Ok(HistoryEntry {
                    version: Version(h.version as u64),
                    revision: None,
                    op: ChangeOp::Put,
                    actor: h.last_modified_user().unwrap_or("ssm").to_owned(),
                    reason: h.description().filter(|d| !d.is_empty()).map(str::to_owned),
                    at: format_date(h.last_modified_date()),
                    value,
                    value_omitted: secret.then_some(ValueOmitted::Secret),
                })
            })
            .collect()
    }

    async fn changes_since(&self, owner: &Owner, since: Revision, limit: usize) -> Result<Vec<Change>> {
        self.log.changes_since(owner, since, limit).await
    }

    /// SSM keeps every version (up to 100 per parameter), secrets decrypted here only to be
    /// written back.
    async fn value_at(&self, owner: &Owner, key: &Key, version: Version) -> Result<Option<JsonText>> {
        let name = self.parameter_name(owner, key)?;
        let mut token = None;
        loop {
            let result = self
                .client
                .get_parameter_history()
                .name(&name)
                .with_decryption(true)
                .set_next_token(token.take())
                .send()
                .await;
            let out = match result {
                Ok(out) => out,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_parameter_not_found()) => return Ok(None),
                Err(e) => return Err(from_sdk(SERVICE, "GetParameterHistory", e)),
            };
            if let Some(found) = out.parameters().iter().find(|p| p.version as u64 == version.0) {
                let raw = found.value().unwrap_or_default();
                return JsonText::parse(raw)
                    .map(Some)
                    .map_err(|_| corrupt("a parameter version is not JSON"));
            }
            match out.next_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(None),
            }
        }
    }

    async fn head_revision(&self, owner: &Owner) -> Result<Revision> {
        self.log.head(owner).await
    }
}
