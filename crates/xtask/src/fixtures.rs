//! The sample events in `events/`, as code: what `cargo lambda invoke`, `make lambda-invoke`
//! and the Lambdas' tests feed the handlers. `cargo xtask events` writes them; the test
//! `tests/fixtures.rs` fails when the committed files differ from what this code makes.
//!
//! - `events/api`: API Gateway HTTP API (payload 2.0) events for config-api. The tokens are
//!   RS256 JWTs signed with the *test* key of `crates/tenant-auth/tests/fixtures` (public,
//!   for tests only), valid until 2100, shaped like Cognito access tokens (signing is
//!   deterministic: the same claims give the same token).
//! - `events/eventbridge`: the events cache-refresher receives.
//! - `events/stream`: DynamoDB stream batches for stream-publisher, in the shape Lambda
//!   delivers them (DynamoDB JSON images).

use std::path::{Path, PathBuf};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Map, Value};

const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_tagcfgEvents";
const CLIENT: &str = "tagcfg-events-client";
/// 2100-01-01.
const FAR_FUTURE: u64 = 4_102_444_800;
const STREAM_ARN: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/tagcfg-config/stream/2026-11-27T00:00:00.000";

/// Every fixture: its path under the repository root and its text.
pub fn all(root: &Path) -> Result<Vec<(PathBuf, String)>, String> {
    let mut files = Vec::new();
    let mut add = |dir: &str, name: &str, value: Value| {
        let text = serde_json::to_string_pretty(&value).unwrap_or_default() + "\n";
        files.push((PathBuf::from(format!("events/{dir}/{name}.json")), text));
    };
    for (name, event) in api_events(root)? {
        add("api", name, event);
    }
    for (name, event) in eventbridge_events() {
        add("eventbridge", name, event);
    }
    for (name, batch) in stream_batches() {
        add("stream", name, batch);
    }
    Ok(files)
}

struct Tokens {
    key: EncodingKey,
}

impl Tokens {
    /// A tenant's token, or an operator's with `tenant = None` (no tenant claim).
    fn token(&self, tenant: Option<&str>, scope: &str, exp: u64) -> Result<String, String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("test-rsa".into());
        let mut claims = json!({
            "iss": ISSUER,
            "client_id": CLIENT,
            "sub": format!("{}-events-user", tenant.unwrap_or("operator")),
            "token_use": "access",
            "iat": 1_767_225_600u64,
            "exp": exp,
            "scope": scope,
        });
        if let Some(tenant) = tenant {
            claims["custom:tenantId"] = json!(tenant);
        }
        encode(&header, &claims, &self.key).map_err(|e| format!("signing a fixture token: {e}"))
    }
}

/// One API Gateway event.
#[derive(Default)]
struct Request<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    token: Option<&'a str>,
    body: Option<String>,
    headers: &'a [(&'a str, &'a str)],
    route: Option<&'a str>,
}

fn api_event(name: &str, r: Request<'_>) -> Value {
    let mut headers = Map::new();
    for (k, v) in [
        ("host", "api.tagcfg.example"),
        ("user-agent", "curl/8.5.0"),
        ("accept", "*/*"),
    ] {
        headers.insert(k.into(), json!(v));
    }
    if let Some(token) = r.token {
        headers.insert("authorization".into(), json!(format!("Bearer {token}")));
    }
    if r.body.is_some() {
        headers.insert("content-type".into(), json!("application/json"));
    }
    for (k, v) in r.headers {
        headers.insert((*k).into(), json!(v));
    }
    // As template.yaml routes them: greedy keys, custom methods (`config:batchGet`) through
    // one path variable (API Gateway refuses a `:` in a route's path).
    let custom_method = r.path.strip_prefix("/v1/").filter(|op| op.contains(':'));
    let route_key = match r.route {
        Some(route) => route.to_owned(),
        None if r.path.starts_with("/v1/config/") => format!("{} /v1/config/{{key+}}", r.method),
        None if custom_method.is_some() => format!("{} /v1/{{operation}}", r.method),
        None => format!("{} {}", r.method, r.path),
    };
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": r.path,
        "rawQueryString": r.query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "tagcfgapi",
            "domainName": "api.tagcfg.example",
            "domainPrefix": "api",
            "http": {"method": r.method, "path": r.path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.10", "userAgent": "curl/8.5.0"},
            "requestId": format!("evt-{name}"),
            "routeKey": route_key,
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 1_767_225_600_000u64,
        },
        "isBase64Encoded": false,
    });
    if !r.query.is_empty() {
        let params: Map<String, Value> = r
            .query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_owned(), json!(v)))
            .collect();
        event["queryStringParameters"] = Value::Object(params);
    }
    if let Some(key) = r.path.strip_prefix("/v1/config/") {
        event["pathParameters"] = json!({ "key": key });
    }
    if let Some(tenant) = r.path.strip_prefix("/v1/tenants/") {
        event["pathParameters"] = json!({ "tenant": tenant });
    }
    if let Some(operation) = custom_method {
        event["pathParameters"] = json!({ "operation": operation });
    }
    if let Some(body) = r.body {
        event["body"] = json!(body);
    }
    event
}

fn api_events(root: &Path) -> Result<Vec<(&'static str, Value)>, String> {
    let pem_path = root.join("crates/tenant-auth/tests/fixtures/rsa-private.pem");
    let pem = std::fs::read(&pem_path).map_err(|e| format!("{}: {e}", pem_path.display()))?;
    let tokens = Tokens {
        key: EncodingKey::from_rsa_pem(&pem).map_err(|e| format!("{}: {e}", pem_path.display()))?,
    };
    let acme_write = tokens.token(Some("acme"), "tagcfg/config:write", FAR_FUTURE)?;
    let acme_admin = tokens.token(Some("acme"), "tagcfg/config:admin", FAR_FUTURE)?;
    let acme_read = tokens.token(Some("acme"), "openid", FAR_FUTURE)?;
    let globex_read = tokens.token(Some("globex"), "tagcfg/config:read", FAR_FUTURE)?;
    let expired = tokens.token(Some("acme"), "tagcfg/config:write", 1_700_000_000)?;
    let operator = tokens.token(None, "tagcfg/config:operator", FAR_FUTURE)?;
    let (write, admin, read, globex, op) = (
        Some(acme_write.as_str()),
        Some(acme_admin.as_str()),
        Some(acme_read.as_str()),
        Some(globex_read.as_str()),
        Some(operator.as_str()),
    );
    let body = |b: &str| Some(b.to_owned());
    let flag = "/v1/config/tenant_config_flags/checkout";
    let param = "/v1/config/param_config_payments/endpoint";
    let region = "/v1/config/param_config_region/default";
    let get = |path, token| Request {
        method: "GET",
        path,
        token,
        ..Request::default()
    };
    let put = |path, token, b: &str| Request {
        method: "PUT",
        path,
        token,
        body: body(b),
        ..Request::default()
    };
    let events: Vec<(&'static str, Request<'_>)> = vec![
        // The happy paths, in the order the test replays them.
        ("put-flag", put(flag, write, r#"{"enabled":true,"rollout_percent":25}"#)),
        ("get-flag", get(flag, read)),
        (
            "get-flag-not-modified",
            Request {
                headers: &[("if-none-match", "\"1\"")],
                ..get(flag, read)
            },
        ),
        (
            "put-flag-if-match",
            Request {
                headers: &[("if-match", "\"1\"")],
                ..put(flag, write, r#"{"enabled":false,"rollout_percent":0}"#)
            },
        ),
        ("put-param", put(param, write, r#""https://payments.acme.example/v2""#)),
        ("get-param", get(param, read)),
        (
            "get-param-min-revision",
            Request {
                query: "min_revision=3",
                ..get(param, read)
            },
        ),
        (
            "put-shared-region",
            Request {
                query: "layer=shared",
                ..put(region, op, r#""eu-west-1""#)
            },
        ),
        (
            "put-tenant-tier",
            Request {
                route: Some("PUT /v1/tenants/{tenant}"),
                ..put("/v1/tenants/globex", op, r#"{"tier":"pro"}"#)
            },
        ),
        ("get-shared-fallback-globex", get(region, globex)),
        ("get-flag-other-tenant", get(flag, globex)),
        (
            "list",
            Request {
                query: "prefix=tenant_config_&limit=10",
                ..get("/v1/config", read)
            },
        ),
        (
            "batch-get",
            Request {
                method: "POST",
                body: body(
                    r#"{"keys":["tenant_config_flags/checkout","param_config_payments/endpoint","tenant_config_missing"]}"#,
                ),
                ..get("/v1/config:batchGet", read)
            },
        ),
        (
            "changes",
            Request {
                query: "since=0",
                ..get("/v1/changes", read)
            },
        ),
        ("history", get("/v1/config/tenant_config_flags/checkout/history", read)),
        (
            "delete-flag",
            Request {
                method: "DELETE",
                headers: &[("if-match", "\"2\"")],
                ..get(flag, write)
            },
        ),
        ("healthz", get("/healthz", None)),
        ("openapi", get("/openapi.json", None)),
        // The error cases.
        ("error-no-token", get(flag, None)),
        ("error-bad-token", get(flag, Some("not.a.jwt"))),
        ("error-expired-token", get(flag, Some(expired.as_str()))),
        (
            "error-admin-writes-shared",
            Request {
                query: "layer=shared",
                ..put(region, admin, r#""us-east-1""#)
            },
        ),
        ("error-read-only-write", put(flag, read, "true")),
        ("error-bad-key", put("/v1/config/tenant_config_../etc", write, "true")),
        ("error-unknown-tag", get("/v1/config/billing_plan", read)),
        (
            "error-stale-if-match",
            Request {
                headers: &[("if-match", "\"7\"")],
                ..put(param, write, r#""x""#)
            },
        ),
        (
            "error-oversize-value",
            put(
                "/v1/config/param_config_big",
                write,
                &format!("\"{}\"", "x".repeat(5000)),
            ),
        ),
        ("error-malformed-json", put(flag, write, r#"{"enabled": tru"#)),
        (
            "error-tenant-in-query",
            Request {
                query: "tenant=globex",
                ..get(flag, read)
            },
        ),
    ];
    Ok(events.into_iter().map(|(name, r)| (name, api_event(name, r))).collect())
}

fn envelope(source: &str, detail_type: &str, detail: Value, n: u32) -> Value {
    json!({
        "version": "0",
        "id": format!("6a7e8feb-b491-4cf7-a9f1-bf3703467{n:03}"),
        "detail-type": detail_type,
        "source": source,
        "account": "123456789012",
        "time": "2026-11-27T09:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    })
}

fn ssm_event(operation: &str, name: &str, n: u32) -> Value {
    envelope(
        "aws.ssm",
        "Parameter Store Change",
        json!({"operation": operation, "name": name, "type": "String", "description": ""}),
        n,
    )
}

fn eventbridge_events() -> Vec<(&'static str, Value)> {
    let parameter = "/tagcfg/acme/param_config/payments/endpoint";
    vec![
        (
            "config-changed",
            envelope(
                "tagcfg",
                "ConfigChanged",
                json!({
                    "tenant": "acme", "revision": 7, "key": "tenant_config_flags/checkout", "tag": "tenant_config_",
                    "backend": "dynamodb", "op": "put", "version": 2, "actor": "acme-user", "at": "2026-11-27T09:00:00Z",
                    "value": {"enabled": true},
                }),
                1,
            ),
        ),
        (
            "config-changed-secret",
            envelope(
                "tagcfg",
                "ConfigChanged",
                json!({
                    "tenant": "acme", "revision": 8, "key": "secret_config_payments/api-key", "tag": "secret_config_",
                    "backend": "ssm-secure", "op": "put", "version": 1, "actor": "acme-user", "at": "2026-11-27T09:00:01Z",
                    "value_omitted": "secret",
                }),
                2,
            ),
        ),
        (
            "config-changed-malformed",
            envelope(
                "tagcfg",
                "ConfigChanged",
                json!({"tenant": "acme", "revision": "seven"}),
                3,
            ),
        ),
        ("ssm-create", ssm_event("Create", parameter, 4)),
        ("ssm-update", ssm_event("Update", parameter, 5)),
        ("ssm-delete", ssm_event("Delete", parameter, 6)),
        ("ssm-outside-root", ssm_event("Update", "/other-app/database/url", 7)),
    ]
}

/// A change-log item's image, as the table holds it (see `adapters::aws` for the layout).
struct ChangeImage<'a> {
    tenant: &'a str,
    revision: u64,
    key: &'a str,
    value: Option<&'a str>,
    op: &'a str,
    backend: &'a str,
    omitted: Option<&'a str>,
    version: u64,
    reason: Option<&'a str>,
}

impl ChangeImage<'_> {
    fn image(&self) -> Value {
        let tag = format!("{}_config_", self.key.split("_config_").next().unwrap_or_default());
        let mut item = json!({
            "pk": {"S": format!("T#{}", self.tenant)},
            "sk": {"S": format!("C#{:020}", self.revision)},
            "hk": {"S": format!("{}#{:020}", self.key, self.revision)},
            "tenant": {"S": self.tenant},
            "revision": {"N": self.revision.to_string()},
            "key": {"S": self.key},
            "tag": {"S": tag},
            "backend": {"S": self.backend},
            "op": {"S": self.op},
            "version": {"N": self.version.to_string()},
            "actor": {"S": format!("{}-user", self.tenant)},
            "at": {"S": "2026-11-27T09:00:00Z"},
            "expires_at": {"N": "1795000000"},
        });
        if let Some(value) = self.value {
            item["value"] = json!({"S": value});
        }
        if let Some(omitted) = self.omitted {
            item["value_omitted"] = json!({"S": omitted});
        }
        if let Some(reason) = self.reason {
            item["reason"] = json!({"S": reason});
        }
        item
    }
}

fn put_change<'a>(tenant: &'a str, revision: u64, key: &'a str, value: &'a str) -> ChangeImage<'a> {
    ChangeImage {
        tenant,
        revision,
        key,
        value: Some(value),
        op: "put",
        backend: "dynamodb",
        omitted: None,
        version: 1,
        reason: None,
    }
}

fn record(seq: u64, name: &str, item: &Value, with_image: bool) -> Value {
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": 1_795_000_000u64,
        "Keys": {"pk": item["pk"], "sk": item["sk"]},
        "SequenceNumber": (100 + seq).to_string(),
        "SizeBytes": 200,
        "StreamViewType": "NEW_IMAGE",
    });
    if with_image {
        dynamodb["NewImage"] = item.clone();
    }
    json!({
        "eventID": format!("evt-{seq}"),
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "eventSourceARN": STREAM_ARN,
        "dynamodb": dynamodb,
    })
}

fn stream_batches() -> Vec<(&'static str, Value)> {
    let put = ChangeImage {
        version: 2,
        reason: Some("enable checkout for the launch"),
        ..put_change("acme", 7, "tenant_config_flags/checkout", r#"{"enabled":true}"#)
    }
    .image();
    let secret = ChangeImage {
        value: None,
        backend: "ssm-secure",
        omitted: Some("secret"),
        ..put_change("acme", 8, "secret_config_payments/api-key", "")
    }
    .image();
    let delete = ChangeImage {
        value: None,
        op: "delete",
        version: 3,
        ..put_change("acme", 9, "tenant_config_old", "")
    }
    .image();
    let value_item = json!({
        "pk": {"S": "T#acme"}, "sk": {"S": "K#tenant_config_flags/checkout"}, "key": {"S": "tenant_config_flags/checkout"},
        "value": {"S": r#"{"enabled":true}"#}, "version": {"N": "2"}, "revision": {"N": "7"},
        "updated_at": {"S": "2026-11-27T09:00:00Z"}, "updated_by": {"S": "acme-user"},
    });
    let head_item = json!({"pk": {"S": "T#acme"}, "sk": {"S": "REV"}, "revision": {"N": "9"}});
    let mut malformed = put_change("acme", 10, "tenant_config_broken", r#"{"x":1}"#).image();
    malformed["op"] = json!({"S": "upsert"});
    let after = ChangeImage {
        backend: "ssm",
        ..put_change("globex", 3, "param_config_region", r#""eu-west-1""#)
    }
    .image();
    let batch = |records: Vec<Value>| json!({ "Records": records });
    vec![
        (
            "changes",
            batch(vec![
                record(1, "INSERT", &put, true),
                record(2, "INSERT", &secret, true),
                record(3, "INSERT", &delete, true),
            ]),
        ),
        (
            "ignored-items",
            batch(vec![
                record(1, "INSERT", &value_item, true),
                record(2, "MODIFY", &head_item, true),
                record(3, "REMOVE", &put, false),
            ]),
        ),
        (
            "malformed",
            batch(vec![
                record(1, "INSERT", &put, true),
                record(2, "INSERT", &malformed, true),
                record(3, "INSERT", &after, true),
            ]),
        ),
    ]
}
