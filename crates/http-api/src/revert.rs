//! Reverts: a key back to one of its versions (`POST /v1/config/{key}:revert`), a whole
//! layer back to a revision (`POST /v1/revert`). Each writes old values as new versions —
//! validated, attributed and pushed like any write. Old values come from the store
//! (`ConfigStore::value_at`): a secret's never reaches the caller.

use std::collections::{BTreeSet, HashMap};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use tagged_routing::{
    governance, BackendKind, ChangeOp, ConfigStore, Owner, Precondition, Revision, SetWrite, Version,
};
use tenant_auth::Scope;

use crate::change_sets::Written;
use crate::handlers::{author, body, path, query, LayerQuery};
use crate::{ApiError, AppState, Caller};

const REVERT_SUFFIX: &str = ":revert";

/// How many changes a layer revert reads from the log at a time.
const LOG_PAGE: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRevert {
    to_version: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LayerRevert {
    to_revision: u64,
}

fn parse_body<T: serde::de::DeserializeOwned>(bytes: &[u8], shape: &str) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request("invalid_revert", format!("expected {shape}: {e}")))
}

fn not_kept(key: &str, version: Version) -> ApiError {
    ApiError::NotKept(format!(
        "version {version} of '{key}' is not kept (history holds values up to the inline limit; secrets keep theirs)"
    ))
}

/// The precondition that writes over exactly what was read.
fn over(current: Option<Version>) -> Precondition {
    current.map_or(Precondition::CreateOnly, Precondition::IfVersion)
}

/// `POST /v1/config/{key}:revert` `{"to_version": N}`: writes version N's value as the next.
pub async fn revert_key(
    State(state): State<AppState>,
    caller: Caller,
    raw: Result<Path<String>, PathRejection>,
    q: Result<Query<LayerQuery>, QueryRejection>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let raw = path(raw)?;
    let raw = raw.strip_suffix(REVERT_SUFFIX).ok_or(ApiError::MethodNotAllowed)?;
    let q = query(q)?;
    let owner = caller.access(q.layer.as_deref(), Scope::Write)?.owner();
    let key = state.routes.parse_key(raw)?;
    let request: KeyRevert = parse_body(&body(bytes, state.max_body_bytes)?, "{\"to_version\": N}")?;
    let author = author(&caller, &headers)?;
    let version = Version(request.to_version);
    let value = state
        .store
        .value_at(&owner, &key, version)
        .await?
        .ok_or_else(|| not_kept(key.as_str(), version))?;
    governance::check_write(&*state.store, &owner, &key, &value).await?;
    let current = state.store.get(&owner, &key).await?.map(|i| i.version);
    let item = state.store.put_by(&owner, &key, &value, over(current), &author).await?;
    Ok(Json(serde_json::json!({
        "key": item.key,
        "version": item.version,
        "revision": item.revision,
        "reverted_to": version,
        "layer": item.layer,
    }))
    .into_response())
}

/// `POST /v1/revert` `{"to_revision": N}` (`?layer=` for operators): every key of the layer
/// that changed after revision N gets its value at N back (a key created after N is
/// deleted). DynamoDB-routed keys are written as one change set; SSM-routed keys, which
/// cannot join it, one by one after it.
pub async fn revert_layer(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<LayerQuery>, QueryRejection>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let owner = caller.access(q.layer.as_deref(), Scope::Write)?.owner();
    let request: LayerRevert = parse_body(&body(bytes, state.max_body_bytes)?, "{\"to_revision\": N}")?;
    let author = author(&caller, &headers)?;
    let target = Revision(request.to_revision);
    let (at_target, moved) = states_at(&*state.store, &owner, target).await?;
    let mut set = Vec::new();
    let mut one_by_one = Vec::new();
    for raw in &moved {
        let Ok(key) = state.routes.parse_key(raw) else {
            continue;
        };
        let current = state.store.get(&owner, &key).await?.map(|i| i.version);
        let value = match at_target.get(raw) {
            Some((ChangeOp::Put, version)) => Some(
                state
                    .store
                    .value_at(&owner, &key, *version)
                    .await?
                    .ok_or_else(|| not_kept(raw, *version))?,
            ),
            _ if current.is_none() => continue,
            _ => None,
        };
        if let Some(value) = &value {
            governance::check_write(&*state.store, &owner, &key, value).await?;
        }
        let write = SetWrite {
            key,
            value,
            precondition: over(current),
        };
        if write.key.backend() == BackendKind::Dynamodb {
            set.push(write);
        } else {
            one_by_one.push(write);
        }
    }
    let mut changes = Vec::new();
    for chunk in set.chunks(tagged_routing::MAX_SET_WRITES) {
        changes.extend(
            state
                .store
                .write_set(&owner, chunk, &author)
                .await?
                .into_iter()
                .map(Written::from),
        );
    }
    for w in one_by_one {
        changes.push(match &w.value {
            Some(value) => {
                let item = state
                    .store
                    .put_by(&owner, &w.key, value, w.precondition, &author)
                    .await?;
                Written {
                    key: item.key,
                    op: ChangeOp::Put,
                    version: item.version,
                    revision: item.revision,
                }
            }
            None => Written::from(state.store.delete_by(&owner, &w.key, w.precondition, &author).await?),
        });
    }
    Ok(Json(serde_json::json!({ "reverted_to": target, "changes": changes })).into_response())
}

/// From the owner's log: each key's last change at or before `target` (op and version),
/// and the keys that changed after it. Refused when the log no longer reaches back to the
/// owner's first revision (DynamoDB expires old changes).
async fn states_at(
    store: &dyn ConfigStore,
    owner: &Owner,
    target: Revision,
) -> Result<(HashMap<String, (ChangeOp, Version)>, BTreeSet<String>), ApiError> {
    let mut at_target = HashMap::new();
    let mut moved = BTreeSet::new();
    let mut since = Revision(0);
    loop {
        let page = store.changes_since(owner, since, LOG_PAGE).await?;
        if since.0 == 0 && page.first().is_some_and(|c| c.revision.0 > 1) {
            return Err(ApiError::bad_request(
                "revision_expired",
                "the change log no longer reaches back to this layer's first revision; revert keys one by one",
            ));
        }
        for change in &page {
            if change.op == ChangeOp::Tier || governance::is_record_key(&change.key) {
                continue;
            }
            if change.revision <= target {
                at_target.insert(change.key.clone(), (change.op, change.version));
            } else {
                moved.insert(change.key.clone());
            }
        }
        match page.last() {
            Some(last) if page.len() == LOG_PAGE => since = last.revision,
            _ => return Ok((at_target, moved)),
        }
    }
}
