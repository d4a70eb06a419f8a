//! Change sets: several writes of one layer, all or nothing (`POST /v1/config:batchWrite`).
//! The store writes them with consecutive revisions in one transaction; the push server
//! shows them to watchers in one batch.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tagged_routing::{governance, Author, Error, JsonText, Precondition, Revision, SetWrite, Version, MAX_SET_WRITES};
use tenant_auth::Scope;

use crate::handlers::{author, body, query, LayerQuery};
use crate::{ApiError, AppState, Caller};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetBody {
    writes: Vec<WriteBody>,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteBody {
    key: String,
    /// The new value; JSON `null` deletes the key.
    value: Box<RawValue>,
    if_match: Option<u64>,
}

/// One write as answered by the routes that make several: key, op, version, revision.
#[derive(Serialize)]
pub(crate) struct Written {
    pub key: String,
    pub op: tagged_routing::ChangeOp,
    pub version: Version,
    pub revision: Revision,
}

impl From<tagged_routing::Change> for Written {
    fn from(c: tagged_routing::Change) -> Self {
        Written {
            key: c.key,
            op: c.op,
            version: c.version,
            revision: c.revision,
        }
    }
}

/// `POST /v1/config:batchWrite` `{"writes": [{"key", "value" | null, "if_match"?}],
/// "reason"?}` (optional `?layer=` for operators). Every write is validated (key, value,
/// schema) before any is made; then all are written or none (400 `not_atomic` for keys
/// that cannot share a transaction: SSM-routed ones).
pub async fn batch_write(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<LayerQuery>, QueryRejection>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let owner = caller.access(q.layer.as_deref(), Scope::Write)?.owner();
    let bytes = body(bytes, state.max_body_bytes)?;
    let set: SetBody = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(
            "invalid_change_set",
            format!("expected {{\"writes\": [{{\"key\", \"value\" | null, \"if_match\"?}}], \"reason\"?}}: {e}"),
        )
    })?;
    if set.writes.is_empty() || set.writes.len() > MAX_SET_WRITES {
        return Err(ApiError::bad_request(
            "invalid_change_set",
            format!("a change set holds 1 to {MAX_SET_WRITES} writes"),
        ));
    }
    let author = match &set.reason {
        Some(reason) => Author::with_reason(caller.subject(), reason)?,
        None => author(&caller, &headers)?,
    };
    let mut writes = Vec::with_capacity(set.writes.len());
    for w in &set.writes {
        let key = state.routes.parse_key(&w.key)?;
        let raw = w.value.get();
        let value = if raw == "null" {
            None
        } else {
            let value = JsonText::parse(raw)?;
            governance::check_write(&*state.store, &owner, &key, &value).await?;
            Some(value)
        };
        let precondition = w
            .if_match
            .map_or(Precondition::None, |v| Precondition::IfVersion(Version(v)));
        writes.push(SetWrite {
            key,
            value,
            precondition,
        });
    }
    let changes = state.store.write_set(&owner, &writes, &author).await?;
    let revision = changes
        .last()
        .map(|c| c.revision)
        .ok_or_else(|| Error::Backend("an empty change set".into()))?;
    let written: Vec<Written> = changes.into_iter().map(Written::from).collect();
    Ok(Json(serde_json::json!({ "revision": revision, "changes": written })).into_response())
}
