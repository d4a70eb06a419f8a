//! Governance routes: schema registrations (`/v1/schemas`) and effective values with their
//! provenance (`/v1/effective`). The rules themselves are `tagged_routing::governance`.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use tagged_routing::governance::{
    self, Governing, Override, OverrideRule, SchemaPath, Violation, MAX_LISTED_VIOLATIONS,
};
use tagged_routing::{ConfigItem, Error, JsonText, Layer, LayerStack, Owner, Precondition, Revision, Version};
use tenant_auth::Scope;

use crate::auth::Access;
use crate::handlers::{author, body, page_limit, path, query};
use crate::{ApiError, AppState, Caller};

type ApiResult<T = Response> = Result<T, ApiError>;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RegisterQuery {
    dry_run: Option<bool>,
    force: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SchemaReadQuery {
    history: Option<bool>,
    limit: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SchemaListQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EffectiveQuery {
    prefix: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// A stored value that a registration would break: whose layer, which key, its first problem.
#[derive(Debug, Clone, Serialize)]
pub struct StoredViolation {
    /// `tenant`, `tier:<name>` or `shared`.
    pub layer: Layer,
    /// The tenant, for a tenant's layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub key: String,
    pub error: Violation,
}

#[derive(Serialize)]
struct SchemaRecord {
    path: String,
    #[serde(flatten)]
    registration: governance::Registration,
    version: Version,
    revision: Revision,
    updated_at: String,
    updated_by: String,
}

fn record(item: ConfigItem) -> ApiResult<SchemaRecord> {
    let path =
        SchemaPath::of_record(&item.key).ok_or_else(|| Error::Backend("a schema record without a path".into()))?;
    let registration = serde_json::from_str(item.value.as_str())
        .map_err(|e| Error::Backend(format!("stored registration of '{path}' is unreadable: {e}")))?;
    Ok(SchemaRecord {
        path: path.as_str().to_owned(),
        registration,
        version: item.version,
        revision: item.revision,
        updated_at: item.updated_at,
        updated_by: item.updated_by,
    })
}

fn schema_path(state: &AppState, raw: Result<Path<String>, PathRejection>) -> ApiResult<SchemaPath> {
    Ok(SchemaPath::parse(&path(raw)?, &state.routes)?)
}

/// `GET /v1/schemas/{path}` (`?history=true`: its versions): any caller.
pub async fn get_schema(
    State(state): State<AppState>,
    _caller: Caller,
    raw: Result<Path<String>, PathRejection>,
    q: Result<Query<SchemaReadQuery>, QueryRejection>,
) -> ApiResult {
    let q = query(q)?;
    let path = schema_path(&state, raw)?;
    if q.history.unwrap_or(false) {
        let limit = page_limit(q.limit, 50)?;
        let versions = state.store.history(&Owner::Shared, &path.record_key(), limit).await?;
        return Ok(Json(serde_json::json!({ "path": path.as_str(), "versions": versions })).into_response());
    }
    let item = state
        .store
        .get(&Owner::Shared, &path.record_key())
        .await?
        .ok_or(Error::NotFound)?;
    Ok(Json(record(item)?).into_response())
}

/// `GET /v1/schemas`: every registration, by path.
pub async fn list_schemas(
    State(state): State<AppState>,
    _caller: Caller,
    q: Result<Query<SchemaListQuery>, QueryRejection>,
) -> ApiResult {
    let q = query(q)?;
    let limit = page_limit(q.limit, 100)?;
    let after = q.cursor.map(|c| format!("{}{c}", governance::RECORD_PREFIX));
    let page = state
        .store
        .list(&Owner::Shared, governance::RECORD_PREFIX, after.as_deref(), limit)
        .await?;
    let schemas = page.items.into_iter().map(record).collect::<ApiResult<Vec<_>>>()?;
    let next = schemas.last().filter(|_| page.next.is_some()).map(|s| s.path.clone());
    Ok(Json(serde_json::json!({ "schemas": schemas, "next": next })).into_response())
}

/// `PUT /v1/schemas/{path}` (operators): registers after checking every stored value the
/// registration would govern; 409 with the list when some break it, unless `force`;
/// `dry_run` only answers the list.
pub async fn put_schema(
    State(state): State<AppState>,
    caller: Caller,
    raw: Result<Path<String>, PathRejection>,
    q: Result<Query<RegisterQuery>, QueryRejection>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult {
    caller.require_operator()?;
    let author = author(&caller, &headers)?;
    let q = query(q)?;
    let path = schema_path(&state, raw)?;
    let bytes = body(bytes, state.max_body_bytes)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| Error::InvalidValue("the body is not UTF-8".into()))?;
    let text = JsonText::parse(text)?;
    let governing = Governing::compile(path.clone(), &text)?;
    let dry_run = q.dry_run.unwrap_or(false);
    let denies = governing.registration.override_policy == Override::Rule(OverrideRule::Deny);
    // `force` registers over values a schema breaks, never a `deny` over overrides that
    // exist: tenants' reads must then resolve to tier or shared, and their data is not
    // deleted for them.
    if dry_run || denies || !q.force.unwrap_or(false) {
        let (violations, total, overrides) = stored_violations(&state, &governing).await?;
        if denies && overrides > 0 && !dry_run {
            return Err(ApiError::SchemaConflict { violations, total });
        }
        if dry_run {
            return Ok(Json(serde_json::json!({
                "path": path.as_str(),
                "registered": false,
                "violations": violations,
                "total": total,
            }))
            .into_response());
        }
        if total > 0 && !q.force.unwrap_or(false) {
            return Err(ApiError::SchemaConflict { violations, total });
        }
    }
    let item = state
        .store
        .put_by(&Owner::Shared, &path.record_key(), &text, Precondition::None, &author)
        .await?;
    let status = if item.version.0 == 1 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(record(item)?)).into_response())
}

/// `DELETE /v1/schemas/{path}` (operators).
pub async fn delete_schema(
    State(state): State<AppState>,
    caller: Caller,
    raw: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> ApiResult {
    caller.require_operator()?;
    let author = author(&caller, &headers)?;
    let path = schema_path(&state, raw)?;
    state
        .store
        .delete_by(&Owner::Shared, &path.record_key(), Precondition::None, &author)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Every stored value, in any owner's layer, that `governing` would govern and that breaks
/// it: at most [`MAX_LISTED_VIOLATIONS`] listed, all counted, and how many of them are
/// overrides a `deny` refuses. A key a longer registered path governs is not this
/// registration's.
async fn stored_violations(state: &AppState, governing: &Governing) -> ApiResult<(Vec<StoredViolation>, usize, usize)> {
    let registered = registered_paths(state).await?;
    let path = &governing.path;
    let (mut listed, mut total, mut overrides) = (Vec::new(), 0usize, 0usize);
    for owner in state.store.owners().await? {
        for item in governed_items(state, &owner, path).await? {
            let longer = registered
                .iter()
                .any(|p| p.as_str().len() > path.as_str().len() && p.covers(&item.key));
            let Ok(key) = state.routes.parse_key(&item.key) else {
                continue;
            };
            if longer {
                continue;
            }
            // The operator registering a schema never sees a tenant's value.
            let checked = match owner {
                Owner::Tenant(_) => governing.check_unquoted(&key, &owner.layer(), &item.value),
                _ => governing.check(&key, &owner.layer(), &item.value),
            };
            let first = match checked {
                Ok(found) => found.into_iter().next(),
                Err(Error::OverrideDenied(message)) => {
                    overrides += 1;
                    Some(Violation {
                        pointer: String::new(),
                        message,
                    })
                }
                Err(other) => return Err(other.into()),
            };
            if let Some(error) = first {
                total += 1;
                if listed.len() < MAX_LISTED_VIOLATIONS {
                    listed.push(StoredViolation {
                        layer: owner.layer(),
                        tenant: matches!(owner, Owner::Tenant(_)).then(|| owner.as_str().to_owned()),
                        key: item.key.clone(),
                        error,
                    });
                }
            }
        }
    }
    Ok((listed, total, overrides))
}

async fn registered_paths(state: &AppState) -> ApiResult<Vec<SchemaPath>> {
    let mut paths = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = state
            .store
            .list(
                &Owner::Shared,
                governance::RECORD_PREFIX,
                after.as_deref(),
                crate::MAX_PAGE,
            )
            .await?;
        paths.extend(page.items.iter().filter_map(|i| SchemaPath::of_record(&i.key)));
        match page.next {
            Some(_) => after = page.items.last().map(|i| i.key.clone()),
            None => return Ok(paths),
        }
    }
}

/// `owner`'s items that `path` covers.
async fn governed_items(state: &AppState, owner: &Owner, path: &SchemaPath) -> ApiResult<Vec<ConfigItem>> {
    if !path.is_prefix() {
        let key = state.routes.parse_key(path.as_str())?;
        return Ok(state.store.get(owner, &key).await?.into_iter().collect());
    }
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = state
            .store
            .list(owner, path.as_str(), after.as_deref(), crate::MAX_PAGE)
            .await?;
        let last = page.items.last().map(|i| i.key.clone());
        items.extend(page.items);
        match (page.next, last) {
            (Some(_), Some(last)) => after = Some(last),
            _ => return Ok(items),
        }
    }
}

#[derive(Serialize)]
struct Shadowed {
    layer: Layer,
    version: Version,
}

#[derive(Serialize)]
struct Effective {
    key: String,
    value: JsonText,
    layer: Layer,
    version: Version,
    /// What this value hides, nearest first: layer and version, never the value.
    shadows: Vec<Shadowed>,
}

/// `GET /v1/effective?prefix=&limit=&cursor=` (tenants): each key's effective value with its
/// layer, and the layers underneath that also hold it.
pub async fn effective(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<EffectiveQuery>, QueryRejection>,
) -> ApiResult {
    let q = query(q)?;
    // An operator is refused here (403): effective values are a tenant's view.
    let Access::Tenant(tenant) = caller.access(None, Scope::Read)? else {
        return Err(Error::Forbidden("effective values are a tenant's view".into()).into());
    };
    let limit = page_limit(q.limit, 100)?;
    let prefix = q.prefix.unwrap_or_default();
    let stack = LayerStack::new(tenant.clone(), state.store.tier_of(&tenant).await?);
    // Each layer's first `limit` keys after the cursor: their union's first `limit` are the
    // first `limit` overall.
    let mut by_key: std::collections::BTreeMap<String, Vec<ConfigItem>> = Default::default();
    let mut more = false;
    for owner in stack.owners() {
        let page = state.store.list(&owner, &prefix, q.cursor.as_deref(), limit).await?;
        more |= page.next.is_some();
        for item in page.items.into_iter().filter(|i| !governance::is_record_key(&i.key)) {
            by_key.entry(item.key.clone()).or_default().push(item);
        }
    }
    more |= by_key.len() > limit;
    let mut answers = Vec::new();
    for (key, mut held) in by_key.into_iter().take(limit) {
        held.sort_by_key(|i| stack.rank_of_layer(&i.layer).unwrap_or(usize::MAX));
        let mut layers = held.into_iter();
        let Some(top) = layers.next() else { continue };
        answers.push(Effective {
            key,
            value: top.value,
            layer: top.layer,
            version: top.version,
            shadows: layers
                .map(|i| Shadowed {
                    layer: i.layer,
                    version: i.version,
                })
                .collect(),
        });
    }
    let next = answers.last().filter(|_| more).map(|e| e.key.clone());
    Ok(Json(serde_json::json!({ "items": answers, "next": next })).into_response())
}
