use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tagged_routing::{
    layers, Author, Change, ConfigItem, Error, HistoryEntry, JsonText, Key, Owner, Revision, TenantId, TierName,
};
use tenant_auth::Scope;

use crate::auth::{Access, RequestTenant};
use crate::conditional::{etag_header, not_modified, write_precondition};
use crate::{ApiError, AppState, Caller, MAX_BATCH_KEYS, MAX_PAGE};

type ApiResult<T = Response> = Result<T, ApiError>;

const OPENAPI: &str = include_str!("../openapi.json");
const HISTORY_SUFFIX: &str = "/history";

// `layer` (`tenant`, `shared`, `tier:<name>`) selects the layer a call addresses; who may
// address which is `Caller::access`.

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    min_revision: Option<u64>,
    layer: Option<String>,
    limit: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LayerQuery {
    pub(crate) layer: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    prefix: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
    layer: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    since: Option<u64>,
    limit: Option<usize>,
    layer: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantBody {
    tier: Option<String>,
}

#[derive(Serialize)]
struct TenantRecord {
    tenant: String,
    tier: Option<String>,
    /// The tenant's revision after the assignment (absent on reads).
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<Revision>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchGetBody {
    keys: Vec<String>,
}

// Response bodies are typed structs, serialised directly: going through `serde_json::Value`
// (as `json!` does) would reparse every value through f64 and lose its exact text.

#[derive(Serialize)]
struct HistoryPage<'a> {
    key: &'a str,
    versions: Vec<HistoryEntry>,
}

#[derive(Serialize)]
struct WriteResult<'a> {
    key: &'a str,
    version: tagged_routing::Version,
    revision: Revision,
    updated_at: &'a str,
    layer: &'a tagged_routing::Layer,
}

#[derive(Serialize)]
struct ListPage {
    items: Vec<ConfigItem>,
    next_cursor: Option<String>,
}

#[derive(Serialize)]
struct BatchGetResult {
    items: Vec<ConfigItem>,
    missing: Vec<String>,
}

#[derive(Serialize)]
struct ChangesPage {
    changes: Vec<Change>,
    head: Revision,
}

/// The path parameter, or a problem+json 400 (a key with invalid UTF-8 in its percent
/// escapes, say) instead of axum's plain-text rejection.
pub(crate) fn path(p: Result<Path<String>, PathRejection>) -> ApiResult<String> {
    p.map(|Path(raw)| raw)
        .map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))
}

pub(crate) fn query<T>(q: Result<Query<T>, QueryRejection>) -> ApiResult<T> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request("bad_query", e.body_text()))
}

pub(crate) fn body(b: Result<Bytes, BytesRejection>, limit: usize) -> ApiResult<Bytes> {
    b.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge { limit }
        } else {
            ApiError::bad_request("bad_body", e.body_text())
        }
    })
}

pub(crate) fn page_limit(limit: Option<usize>, default: usize) -> ApiResult<usize> {
    match limit.unwrap_or(default) {
        n @ 1..=MAX_PAGE => Ok(n),
        n => Err(ApiError::bad_request(
            "bad_query",
            format!("limit {n} is outside 1..={MAX_PAGE}"),
        )),
    }
}

/// Reads `keys` as the caller sees them: a tenant's through its layers, an operator's in
/// the one platform layer addressed.
async fn read_items(state: &AppState, access: &Access, keys: &[Key]) -> ApiResult<Vec<ConfigItem>> {
    Ok(match access {
        Access::Tenant(tenant) => layers::resolve(&*state.store, tenant, keys).await?.0,
        Access::Platform(owner) => layers::LayerSource::own_items(&*state.store, owner, keys).await?,
    })
}

/// The author of a write: the verified caller, and the `X-Change-Reason` they gave (at most
/// 256 characters, UTF-8, no control characters).
pub(crate) fn author(caller: &Caller, headers: &HeaderMap) -> ApiResult<Author> {
    let Some(raw) = headers.get(CHANGE_REASON) else {
        return Ok(Author::new(caller.subject()));
    };
    let reason =
        std::str::from_utf8(raw.as_bytes()).map_err(|_| ApiError::bad_header(CHANGE_REASON, "is not UTF-8"))?;
    Author::with_reason(caller.subject(), reason).map_err(|e| ApiError::bad_header(CHANGE_REASON, &e.to_string()))
}

/// The header a writer states the reason of a change in.
pub(crate) const CHANGE_REASON: &str = "x-change-reason";

fn parse_key(state: &AppState, raw: &str) -> ApiResult<Key> {
    Ok(state.routes.parse_key(raw)?)
}

/// Serialises `body` directly (never through `serde_json::Value`, which would round values
/// through f64 and lose the exact text).
fn item_response(status: StatusCode, item: &ConfigItem, body: impl Serialize) -> Response {
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(header::ETAG, etag_header(item));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    response
}

pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub async fn not_found() -> ApiError {
    ApiError::NoRoute
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// `GET /v1/config/{key}`, or `GET /v1/config/{key}/history`.
pub async fn get_or_history(
    State(state): State<AppState>,
    caller: Caller,
    raw: Result<Path<String>, PathRejection>,
    q: Result<Query<ReadQuery>, QueryRejection>,
    headers: HeaderMap,
) -> ApiResult {
    let raw = path(raw)?;
    let q = query(q)?;
    let access = caller.access(q.layer.as_deref(), Scope::Read)?;
    let owner = access.owner();
    if let Some(raw) = raw.strip_suffix(HISTORY_SUFFIX) {
        let key = parse_key(&state, raw)?;
        let limit = page_limit(q.limit, 50)?;
        let versions = state.store.history(&owner, &key, limit).await?;
        return Ok(Json(HistoryPage {
            key: key.as_str(),
            versions,
        })
        .into_response());
    }
    let key = parse_key(&state, &raw)?;
    if let Some(min) = q.min_revision {
        let head = state.store.head_revision(&owner).await?;
        if head < Revision(min) {
            return Err(Error::RevisionNotReached {
                requested: Revision(min),
                head,
            }
            .into());
        }
    }
    let item = read_items(&state, &access, std::slice::from_ref(&key))
        .await?
        .pop()
        .ok_or(Error::NotFound)?;
    if not_modified(&headers, &item) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        response.headers_mut().insert(header::ETAG, etag_header(&item));
        return Ok(response);
    }
    Ok(item_response(StatusCode::OK, &item, &item))
}

/// `PUT /v1/config/{key}`: the body is the JSON value.
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    raw: Result<Path<String>, PathRejection>,
    q: Result<Query<LayerQuery>, QueryRejection>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let raw = path(raw)?;
    let q = query(q)?;
    let owner = caller.access(q.layer.as_deref(), Scope::Write)?.owner();
    let key = parse_key(&state, &raw)?;
    let precondition = write_precondition(&headers, &owner.layer(), true)?;
    let bytes = body(bytes, state.max_body_bytes)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| Error::InvalidValue("the body is not UTF-8".into()))?;
    let value = JsonText::parse(text)?;
    let author = author(&caller, &headers)?;
    tagged_routing::governance::check_write(&*state.store, &owner, &key, &value).await?;
    let item = state.store.put_by(&owner, &key, &value, precondition, &author).await?;
    let status = if item.version.0 == 1 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = WriteResult {
        key: &item.key,
        version: item.version,
        revision: item.revision,
        updated_at: &item.updated_at,
        layer: &item.layer,
    };
    Ok(item_response(status, &item, body))
}

/// `DELETE /v1/config/{key}` (optional `If-Match`).
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    raw: Result<Path<String>, PathRejection>,
    q: Result<Query<LayerQuery>, QueryRejection>,
    headers: HeaderMap,
) -> ApiResult {
    let raw = path(raw)?;
    let q = query(q)?;
    let owner = caller.access(q.layer.as_deref(), Scope::Write)?.owner();
    let key = parse_key(&state, &raw)?;
    let precondition = write_precondition(&headers, &owner.layer(), false)?;
    let author = author(&caller, &headers)?;
    let change = state.store.delete_by(&owner, &key, precondition, &author).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&change.revision.to_string()) {
        response.headers_mut().insert("x-tagcfg-revision", v);
    }
    Ok(response)
}

/// `GET /v1/config?prefix=&limit=&cursor=`
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult {
    let q = query(q)?;
    let owner = caller.access(q.layer.as_deref(), Scope::Read)?.owner();
    let limit = page_limit(q.limit, 100)?;
    let prefix = q.prefix.unwrap_or_default();
    if prefix.len() > 300 {
        return Err(ApiError::bad_request(
            "bad_query",
            "prefix is longer than 300 characters",
        ));
    }
    let mut page = state.store.list(&owner, &prefix, q.cursor.as_deref(), limit).await?;
    // Schema registrations live in the shared owner; they are listed at /v1/schemas.
    page.items
        .retain(|i| !tagged_routing::governance::is_record_key(&i.key));
    Ok(Json(ListPage {
        items: page.items,
        next_cursor: page.next,
    })
    .into_response())
}

/// `POST /v1/config:batchGet` with `{"keys": [...]}` → `{"items": [...], "missing": [...]}`.
pub async fn batch_get(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<LayerQuery>, QueryRejection>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let access = caller.access(query(q)?.layer.as_deref(), Scope::Read)?;
    let bytes = body(bytes, state.max_body_bytes)?;
    let request: BatchGetBody = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request("bad_body", format!("expected {{\"keys\": [\"...\"]}}: {e}")))?;
    if request.keys.is_empty() || request.keys.len() > MAX_BATCH_KEYS {
        return Err(ApiError::bad_request(
            "bad_body",
            format!("keys must hold 1 to {MAX_BATCH_KEYS} keys, not {}", request.keys.len()),
        ));
    }
    let mut keys: Vec<Key> = Vec::with_capacity(request.keys.len());
    for raw in &request.keys {
        let key = parse_key(&state, raw)?;
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let mut found = read_items(&state, &access, &keys).await?;
    // Answer in request order.
    let mut items = Vec::with_capacity(found.len());
    let mut missing = Vec::new();
    for key in &keys {
        match found.iter().position(|i| i.key == key.as_str()) {
            Some(i) => items.push(found.swap_remove(i)),
            None => missing.push(key.as_str().to_owned()),
        }
    }
    Ok(Json(BatchGetResult { items, missing }).into_response())
}

/// `GET /v1/changes?since=&limit=`: the caller's change log, oldest first.
pub async fn changes(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ChangesQuery>, QueryRejection>,
) -> ApiResult {
    let q = query(q)?;
    let owner = caller.access(q.layer.as_deref(), Scope::Read)?.owner();
    let limit = page_limit(q.limit, 100)?;
    let since = Revision(q.since.unwrap_or(0));
    let changes = state.store.changes_since(&owner, since, limit).await?;
    let head = state.store.head_revision(&owner).await?;
    Ok(Json(ChangesPage { changes, head }).into_response())
}

fn tenant_param(raw: &str) -> ApiResult<TenantId> {
    Ok(TenantId::parse(raw)?)
}

/// `GET /v1/tenants/{tenant}` (operator): the tenant's tier.
pub async fn get_tenant(
    State(state): State<AppState>,
    caller: Caller,
    raw: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let raw = path(raw)?;
    caller.require_operator()?;
    let tenant = tenant_param(&raw)?;
    let tier = state.store.tier_of(&tenant).await?;
    Ok(Json(TenantRecord {
        tenant: tenant.to_string(),
        tier: tier.map(|t| t.to_string()),
        revision: None,
    })
    .into_response())
}

/// `PUT /v1/tenants/{tenant}` `{"tier": "pro" | null}` (operator): assigns the tenant to at
/// most one tier. The assignment is a change of the tenant (its watchers learn which
/// effective values moved).
pub async fn put_tenant(
    State(state): State<AppState>,
    caller: Caller,
    raw: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let raw = path(raw)?;
    caller.require_operator()?;
    let author = author(&caller, &headers)?;
    let tenant = tenant_param(&raw)?;
    let bytes = body(bytes, state.max_body_bytes)?;
    let request: TenantBody = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request("bad_body", format!("expected {{\"tier\": \"<name>\" | null}}: {e}")))?;
    let tier = request.tier.as_deref().map(TierName::parse).transpose()?;
    let change = state.store.assign_tier(&tenant, tier.as_ref(), &author).await?;
    let revision = match change {
        Some(change) => change.revision,
        None => state.store.head_revision(&Owner::Tenant(tenant.clone())).await?,
    };
    Ok(Json(TenantRecord {
        tenant: tenant.to_string(),
        tier: tier.map(|t| t.to_string()),
        revision: Some(revision),
    })
    .into_response())
}

/// Answers 503 `request_timeout` when the rest of the stack has not answered within the
/// state's `request_timeout`; the handler's future is dropped (a write already sent to the
/// store may still commit: the client sees it in history or with a GET).
pub async fn deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(state.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout {
            after: state.request_timeout,
        }
        .into_response(),
    }
}

/// One line per request: method, path (the key), tenant, status, latency. Never bodies
/// (values, secrets included), never tokens. Its target is [`crate::ACCESS_LOG`]; which
/// requests get a line is [`crate::AccessLog`]'s choice (`sampled` says 1 in how many).
pub async fn access_log(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let tenant = RequestTenant::default();
    request.extensions_mut().insert(tenant.clone());
    let response = next.run(request).await;
    let status = response.status();
    if let Some(sampled) = state.access_log.should_log(&method, status) {
        tracing::info!(
            target: crate::ACCESS_LOG,
            %method,
            path,
            tenant = tenant.get().unwrap_or("-"),
            status = status.as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            sampled,
            "request"
        );
    }
    response
}
