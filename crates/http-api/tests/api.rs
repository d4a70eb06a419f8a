//! The router against the in-memory store, request by request (no network).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tagged_routing::memory::MemoryStore;
use tagged_routing::{RoutingTable, StoreLimits, TaggedStore, TenantId};
use tenant_auth::{dev, Scope};
use tower::ServiceExt;

const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

fn app() -> Router {
    let routes = RoutingTable::default();
    let store = TaggedStore::single(routes.clone(), Arc::new(MemoryStore::new()), StoreLimits::default());
    let verifier = testkit::auth::dev_verifier(SECRET);
    http_api::router(http_api::AppState::new(Arc::new(store), routes, Arc::new(verifier)))
}

fn token(tenant: &str, scopes: &[Scope]) -> String {
    dev::mint(
        SECRET,
        &TenantId::parse(tenant).unwrap(),
        &format!("{tenant}-user"),
        scopes,
        600,
    )
    .unwrap()
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
    raw: String,
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = app.clone().oneshot(req.body(Body::from(body)).unwrap()).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    Reply {
        status,
        headers,
        body,
        raw: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn assert_problem(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{:?}", r.body);
    assert_eq!(r.headers["content-type"], "application/problem+json");
    assert_eq!(r.body["code"], code, "{:?}", r.body);
    assert_eq!(r.body["status"], status);
    assert!(r.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
}

#[tokio::test]
async fn put_then_get_round_trips_with_etag_and_304() {
    let app = app();
    let w = token("acme", &[Scope::Write]);
    let value = r#"{"enabled":true,"percent":12.50,"id":123456789012345678901234}"#;
    let r = call(
        &app,
        "PUT",
        "/v1/config/tenant_config_flags/checkout",
        Some(&w),
        &[],
        value.into(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        (r.body["version"].clone(), r.body["revision"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(r.headers["etag"], "\"1\"");

    let r = call(
        &app,
        "GET",
        "/v1/config/tenant_config_flags/checkout",
        Some(&w),
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["layer"], "tenant");
    assert_eq!(r.body["updated_by"], "acme-user");
    // The exact text survives (the big integer and 12.50 included).
    assert!(r.raw.contains(&format!("\"value\":{value}")), "{}", r.raw);
    let r = call(
        &app,
        "GET",
        "/v1/config/tenant_config_flags/checkout",
        Some(&w),
        &[("if-none-match", "\"1\"")],
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);

    let r = call(
        &app,
        "PUT",
        "/v1/config/tenant_config_flags/checkout",
        Some(&w),
        &[("if-match", "\"1\"")],
        b"false".to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["version"], 2);
    assert_eq!(r.body["revision"], 2);
}

#[tokio::test]
async fn preconditions_give_412() {
    let app = app();
    let w = token("acme", &[Scope::Write]);
    call(&app, "PUT", "/v1/config/tenant_config_x", Some(&w), &[], b"1".to_vec()).await;
    call(&app, "PUT", "/v1/config/tenant_config_x", Some(&w), &[], b"2".to_vec()).await;
    let r = call(
        &app,
        "PUT",
        "/v1/config/tenant_config_x",
        Some(&w),
        &[("if-match", "\"1\"")],
        b"3".to_vec(),
    )
    .await;
    assert_problem(&r, 412, "version_mismatch");
    let r = call(
        &app,
        "PUT",
        "/v1/config/tenant_config_x",
        Some(&w),
        &[("if-none-match", "*")],
        b"3".to_vec(),
    )
    .await;
    assert_problem(&r, 412, "already_exists");
    let r = call(
        &app,
        "DELETE",
        "/v1/config/tenant_config_x",
        Some(&w),
        &[("if-match", "\"1\"")],
        vec![],
    )
    .await;
    assert_problem(&r, 412, "version_mismatch");
    let r = call(
        &app,
        "PUT",
        "/v1/config/tenant_config_x",
        Some(&w),
        &[("if-match", "soon")],
        b"3".to_vec(),
    )
    .await;
    assert_problem(&r, 400, "bad_header");
    let r = call(&app, "GET", "/v1/config/tenant_config_x", Some(&w), &[], vec![]).await;
    assert_eq!(r.body["value"], 2, "failed writes changed nothing");
    let r = call(
        &app,
        "DELETE",
        "/v1/config/tenant_config_x",
        Some(&w),
        &[("if-match", "\"2\"")],
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = call(&app, "GET", "/v1/config/tenant_config_x", Some(&w), &[], vec![]).await;
    assert_problem(&r, 404, "not_found");
}

#[tokio::test]
async fn tenants_are_isolated_with_404_not_403() {
    let app = app();
    call(
        &app,
        "PUT",
        "/v1/config/tenant_config_plan",
        Some(&token("acme", &[Scope::Write])),
        &[],
        b"\"gold\"".to_vec(),
    )
    .await;
    let globex = token("globex", &[Scope::Admin]);
    let r = call(&app, "GET", "/v1/config/tenant_config_plan", Some(&globex), &[], vec![]).await;
    assert_problem(&r, 404, "not_found");
    let r = call(&app, "GET", "/v1/config", Some(&globex), &[], vec![]).await;
    assert_eq!(r.body["items"], json!([]));
    let r = call(&app, "GET", "/v1/changes", Some(&globex), &[], vec![]).await;
    assert_eq!(r.body["changes"], json!([]));
}

#[tokio::test]
async fn auth_and_scopes() {
    let app = app();
    let r = call(&app, "GET", "/v1/config/tenant_config_a", None, &[], vec![]).await;
    assert_problem(&r, 401, "missing_token");
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    let r = call(&app, "GET", "/v1/config/tenant_config_a", Some("garbage"), &[], vec![]).await;
    assert_problem(&r, 401, "malformed_token");
    let read_only = token("acme", &[]);
    let r = call(
        &app,
        "PUT",
        "/v1/config/tenant_config_a",
        Some(&read_only),
        &[],
        b"1".to_vec(),
    )
    .await;
    assert_problem(&r, 403, "forbidden");
    let r = call(
        &app,
        "DELETE",
        "/v1/config/tenant_config_a",
        Some(&read_only),
        &[],
        vec![],
    )
    .await;
    assert_problem(&r, 403, "forbidden");
    // The shared and tier layers belong to operators: a tenant admin gets 403 on every
    // method, an operator 2xx.
    let admin = token("acme", &[Scope::Admin]);
    let operator = dev::mint_operator(SECRET, "ops", 600).unwrap();
    for layer in ["shared", "tier:pro"] {
        for (method, body) in [("PUT", b"\"eu\"".to_vec()), ("GET", vec![]), ("DELETE", vec![])] {
            let uri = format!("/v1/config/param_config_region?layer={layer}");
            let r = call(&app, method, &uri, Some(&admin), &[], body.clone()).await;
            assert_problem(&r, 403, "forbidden");
            let r = call(&app, method, &uri, Some(&operator), &[], body).await;
            assert!(r.status.is_success(), "{method} {layer}: {}", r.raw);
        }
        for uri in ["/v1/config?layer=LAYER", "/v1/changes?layer=LAYER"] {
            let uri = uri.replace("LAYER", layer);
            assert_problem(
                &call(&app, "GET", &uri, Some(&admin), &[], vec![]).await,
                403,
                "forbidden",
            );
            assert_eq!(
                call(&app, "GET", &uri, Some(&operator), &[], vec![]).await.status,
                StatusCode::OK
            );
        }
    }
    let r = call(
        &app,
        "PUT",
        "/v1/config/param_config_region?layer=shared",
        Some(&operator),
        &[],
        b"\"eu\"".to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
    assert_eq!(r.body["layer"], "shared");
    // An operator has no tenant layer: the tenant's own configuration stays the tenant's.
    for (method, uri) in [
        ("GET", "/v1/config/param_config_region"),
        ("PUT", "/v1/config/param_config_region?layer=tenant"),
        ("GET", "/v1/config?prefix=param"),
        ("GET", "/v1/changes"),
    ] {
        let r = call(&app, method, uri, Some(&operator), &[], b"1".to_vec()).await;
        assert_problem(&r, 403, "forbidden");
    }
    // Every tenant reads the shared value through the fallback.
    let r = call(
        &app,
        "GET",
        "/v1/config/param_config_region",
        Some(&token("globex", &[])),
        &[],
        vec![],
    )
    .await;
    assert_eq!(
        (r.body["layer"].clone(), r.body["value"].clone()),
        (json!("shared"), json!("eu"))
    );
    assert_eq!(r.headers["etag"], "\"shared-1\"");
    // An ETag of the shared layer never matches a write of the tenant's own layer.
    let r = call(
        &app,
        "PUT",
        "/v1/config/param_config_region",
        Some(&admin),
        &[("if-match", "\"shared-1\"")],
        b"1".to_vec(),
    )
    .await;
    assert_problem(&r, 412, "version_mismatch");
    // Tier assignment is the operator's.
    let r = call(
        &app,
        "PUT",
        "/v1/tenants/acme",
        Some(&admin),
        &[],
        br#"{"tier":"pro"}"#.to_vec(),
    )
    .await;
    assert_problem(&r, 403, "forbidden");
    let r = call(&app, "GET", "/v1/tenants/acme", Some(&admin), &[], vec![]).await;
    assert_problem(&r, 403, "forbidden");
}

#[tokio::test]
async fn tenants_read_through_their_tier() {
    let app = app();
    let operator = dev::mint_operator(SECRET, "ops", 600).unwrap();
    let acme = token("acme", &[Scope::Write]);
    let put = |uri: &'static str, tok: String, body: &'static str| {
        let app = app.clone();
        async move { call(&app, "PUT", uri, Some(&tok), &[], body.as_bytes().to_vec()).await }
    };
    assert_eq!(
        put(
            "/v1/config/tenant_config_limits/rps?layer=shared",
            operator.clone(),
            "10"
        )
        .await
        .status,
        StatusCode::CREATED
    );
    assert_eq!(
        put(
            "/v1/config/tenant_config_limits/rps?layer=tier:pro",
            operator.clone(),
            "100"
        )
        .await
        .status,
        StatusCode::CREATED
    );
    let get = || async {
        call(
            &app,
            "GET",
            "/v1/config/tenant_config_limits/rps",
            Some(&acme),
            &[],
            vec![],
        )
        .await
    };
    assert_eq!(
        (get().await.body["layer"].clone(), get().await.body["value"].clone()),
        (json!("shared"), json!(10))
    );
    // Assign the tier: the answer names the tier layer.
    let r = put("/v1/tenants/acme", operator.clone(), r#"{"tier":"pro"}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(
        (r.body["tier"].clone(), r.body["revision"].clone()),
        (json!("pro"), json!(1))
    );
    let r = call(&app, "GET", "/v1/tenants/acme", Some(&operator), &[], vec![]).await;
    assert_eq!(r.body, json!({"tenant": "acme", "tier": "pro"}));
    let r = get().await;
    assert_eq!(
        (r.body["layer"].clone(), r.body["value"].clone()),
        (json!("tier:pro"), json!(100))
    );
    assert_eq!(r.headers["etag"], "\"tier-pro-1\"");
    // The assignment is a change of the tenant, visible in its log.
    let r = call(&app, "GET", "/v1/changes", Some(&acme), &[], vec![]).await;
    assert_eq!(
        (
            r.body["changes"][0]["op"].clone(),
            r.body["changes"][0]["value"].clone()
        ),
        (json!("tier"), json!("pro"))
    );
    // The tenant's own value wins; deleting it shows the tier again.
    assert_eq!(
        put("/v1/config/tenant_config_limits/rps", acme.clone(), "5")
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(get().await.body["layer"], "tenant");
    let r = call(
        &app,
        "POST",
        "/v1/config:batchGet",
        Some(&acme),
        &[],
        br#"{"keys":["tenant_config_limits/rps","tenant_config_x"]}"#.to_vec(),
    )
    .await;
    assert_eq!(
        (r.body["items"][0]["layer"].clone(), r.body["missing"].clone()),
        (json!("tenant"), json!(["tenant_config_x"]))
    );
    call(
        &app,
        "DELETE",
        "/v1/config/tenant_config_limits/rps",
        Some(&acme),
        &[],
        vec![],
    )
    .await;
    assert_eq!(get().await.body["layer"], "tier:pro");
    // Out of the tier: shared again. Bad tier names are 400 and change nothing.
    assert_eq!(
        put("/v1/tenants/acme", operator.clone(), r#"{"tier":"Pro!"}"#)
            .await
            .body["code"],
        "invalid_tier"
    );
    assert_eq!(
        put("/v1/tenants/acme", operator.clone(), r#"{"tier":null}"#)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(get().await.body["layer"], "shared");
    assert_eq!(
        put("/v1/tenants/_shared", operator.clone(), r#"{"tier":"pro"}"#)
            .await
            .body["code"],
        "invalid_tenant"
    );
}

#[tokio::test]
async fn bad_input_is_400_or_413_never_5xx() {
    let app = app();
    let w = token("acme", &[Scope::Write]);
    for (uri, code) in [
        ("/v1/config/tenant_config_../x", "invalid_key"),
        ("/v1/config/tenant_config_", "invalid_key"),
        ("/v1/config/tenant_config_a//b", "invalid_key"),
        ("/v1/config/nope_x", "unknown_tag"),
    ] {
        let r = call(&app, "PUT", uri, Some(&w), &[], b"1".to_vec()).await;
        assert_problem(&r, 400, code);
        let r = call(&app, "GET", uri, Some(&w), &[], vec![]).await;
        assert_problem(&r, 400, code);
    }
    let r = call(
        &app,
        "PUT",
        "/v1/config/tenant_config_a",
        Some(&w),
        &[],
        b"{not json".to_vec(),
    )
    .await;
    assert_problem(&r, 400, "invalid_value");
    let r = call(
        &app,
        "PUT",
        "/v1/config/tenant_config_a",
        Some(&w),
        &[],
        vec![0xff, 0xfe],
    )
    .await;
    assert_problem(&r, 400, "invalid_value");
    let r = call(&app, "PUT", "/v1/config/tenant_config_a", Some(&w), &[], vec![]).await;
    assert_problem(&r, 400, "invalid_value");
    // Nesting: 64 levels are a value, 65 are refused and nothing is written; 100,000 (a
    // 200 KB body) are refused without being walked.
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes();
    // (Another tenant's write: this test ends by checking acme's log stayed empty.)
    let globex = token("globex", &[Scope::Write]);
    let r = call(
        &app,
        "PUT",
        "/v1/config/tenant_config_deep",
        Some(&globex),
        &[],
        nested(64),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    for depth in [65, 100_000] {
        let r = call(
            &app,
            "PUT",
            "/v1/config/tenant_config_deeper",
            Some(&w),
            &[],
            nested(depth),
        )
        .await;
        assert_problem(&r, 400, "value_too_deep");
    }
    let r = call(&app, "GET", "/v1/config/tenant_config_deeper", Some(&w), &[], vec![]).await;
    assert_problem(&r, 404, "not_found");
    // A key whose percent escapes are not UTF-8: a problem, like every other refusal.
    for uri in [
        "/v1/config/tenant_config_%FF",
        "/v1/config/tenant_config_%C3",
        "/v1/tenants/%FF",
    ] {
        let r = call(&app, "GET", uri, Some(&w), &[], vec![]).await;
        assert_problem(&r, 400, "invalid_path");
    }
    let huge = format!("\"{}\"", "x".repeat(2 * 1024 * 1024));
    let r = call(
        &app,
        "PUT",
        "/v1/config/tenant_config_a",
        Some(&w),
        &[],
        huge.into_bytes(),
    )
    .await;
    assert_problem(&r, 413, "payload_too_large");
    let five_kb = format!("\"{}\"", "x".repeat(5000));
    let r = call(
        &app,
        "PUT",
        "/v1/config/param_config_a",
        Some(&w),
        &[],
        five_kb.into_bytes(),
    )
    .await;
    assert_problem(&r, 413, "value_too_large");
    assert!(
        r.body["detail"].as_str().unwrap().contains("4096"),
        "the message names the limit"
    );
    let r = call(&app, "GET", "/v1/config?limit=0", Some(&w), &[], vec![]).await;
    assert_problem(&r, 400, "bad_query");
    let r = call(&app, "GET", "/v1/config?limit=abc", Some(&w), &[], vec![]).await;
    assert_problem(&r, 400, "bad_query");
    let r = call(
        &app,
        "GET",
        "/v1/config/tenant_config_a?tenant=globex",
        Some(&w),
        &[],
        vec![],
    )
    .await;
    assert_problem(&r, 400, "bad_query");
    let r = call(
        &app,
        "POST",
        "/v1/config:batchGet",
        Some(&w),
        &[],
        b"{\"keys\": 3}".to_vec(),
    )
    .await;
    assert_problem(&r, 400, "bad_body");
    let r = call(
        &app,
        "POST",
        "/v1/config:batchGet",
        Some(&w),
        &[],
        b"{\"keys\": []}".to_vec(),
    )
    .await;
    assert_problem(&r, 400, "bad_body");
    let r = call(&app, "GET", "/v1/nothing", Some(&w), &[], vec![]).await;
    assert_problem(&r, 404, "no_route");
    let r = call(&app, "PATCH", "/v1/config/tenant_config_a", Some(&w), &[], vec![]).await;
    assert_problem(&r, 405, "method_not_allowed");
    // Nothing was written by any of these.
    let r = call(&app, "GET", "/v1/changes", Some(&w), &[], vec![]).await;
    assert_eq!(r.body["changes"], json!([]));
}

#[tokio::test]
async fn list_batch_changes_history_and_min_revision() {
    let app = app();
    let w = token("acme", &[Scope::Write]);
    for (k, v) in [
        ("tenant_config_a/1", "1"),
        ("tenant_config_a/2", "2"),
        ("tenant_config_b", "3"),
        ("param_config_p", "4"),
    ] {
        call(&app, "PUT", &format!("/v1/config/{k}"), Some(&w), &[], v.into()).await;
    }
    call(&app, "PUT", "/v1/config/tenant_config_b", Some(&w), &[], b"5".to_vec()).await;

    let r = call(
        &app,
        "GET",
        "/v1/config?prefix=tenant_config_&limit=2",
        Some(&w),
        &[],
        vec![],
    )
    .await;
    let keys: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["tenant_config_a/1", "tenant_config_a/2"]);
    let cursor = r.body["next_cursor"].as_str().unwrap().to_owned();
    let r = call(
        &app,
        "GET",
        &format!("/v1/config?prefix=tenant_config_&limit=2&cursor={cursor}"),
        Some(&w),
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.body["items"][0]["key"], "tenant_config_b");
    assert_eq!(r.body["next_cursor"], Value::Null);

    let body = json!({"keys": ["param_config_p", "tenant_config_zz", "tenant_config_b"]}).to_string();
    let r = call(&app, "POST", "/v1/config:batchGet", Some(&w), &[], body.into()).await;
    assert_eq!(r.body["items"][0]["key"], "param_config_p");
    assert_eq!(r.body["items"][1]["value"], 5);
    assert_eq!(r.body["missing"], json!(["tenant_config_zz"]));

    let r = call(&app, "GET", "/v1/changes?since=3", Some(&w), &[], vec![]).await;
    let revs: Vec<u64> = r.body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(revs, [4, 5]);
    assert_eq!(r.body["head"], 5);

    let r = call(&app, "GET", "/v1/config/tenant_config_b/history", Some(&w), &[], vec![]).await;
    let versions: Vec<u64> = r.body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [2, 1]);

    let r = call(
        &app,
        "GET",
        "/v1/config/tenant_config_b?min_revision=5",
        Some(&w),
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(
        &app,
        "GET",
        "/v1/config/tenant_config_b?min_revision=6",
        Some(&w),
        &[],
        vec![],
    )
    .await;
    assert_problem(&r, 409, "revision_not_reached");
}

#[tokio::test]
async fn health_and_openapi_need_no_token() {
    let app = app();
    let r = call(&app, "GET", "/healthz", None, &[], vec![]).await;
    assert_eq!(r.body, json!({"status": "ok"}));
    let r = call(&app, "GET", "/openapi.json", None, &[], vec![]).await;
    assert_eq!(r.body["openapi"], "3.0.3");
    for path in [
        "/v1/config/{key}",
        "/v1/config/{key}/history",
        "/v1/config",
        "/v1/config:batchGet",
        "/v1/changes",
        "/healthz",
    ] {
        assert!(r.body["paths"].get(path).is_some(), "{path} documented");
    }
}

#[tokio::test]
async fn every_response_keeps_values_exact() {
    let app = app();
    let w = token("acme", &[Scope::Write]);
    let value = "[123456789012345678901234567890,0.10,1e400]";
    call(
        &app,
        "PUT",
        "/v1/config/tenant_config_exact",
        Some(&w),
        &[],
        value.into(),
    )
    .await;
    let batch = json!({"keys": ["tenant_config_exact"]}).to_string();
    for (method, uri, body) in [
        ("GET", "/v1/config/tenant_config_exact", vec![]),
        ("GET", "/v1/config/tenant_config_exact/history", vec![]),
        ("GET", "/v1/config?prefix=tenant_config_exact", vec![]),
        ("POST", "/v1/config:batchGet", batch.into_bytes()),
        ("GET", "/v1/changes", vec![]),
    ] {
        let r = call(&app, method, uri, Some(&w), &[], body).await;
        assert!(r.raw.contains(&format!("\"value\":{value}")), "{uri}: {}", r.raw);
    }
}

#[tokio::test]
async fn a_tenant_past_its_rate_limit_gets_429_and_other_tenants_do_not() {
    let verifier = testkit::auth::dev_verifier(SECRET);
    let app = http_api::router(
        http_api::AppState::new(
            Arc::new(TaggedStore::single(
                RoutingTable::default(),
                Arc::new(MemoryStore::new()),
                StoreLimits::default(),
            )),
            RoutingTable::default(),
            Arc::new(verifier),
        )
        .with_tenant_limits(http_api::TenantLimits {
            reads_per_sec: 1,
            read_burst: 3,
            writes_per_sec: 1,
            write_burst: 1,
        }),
    );
    let acme = token("acme", &[Scope::Write]);
    for _ in 0..3 {
        let r = call(&app, "GET", "/v1/config?prefix=", Some(&acme), &[], vec![]).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = call(&app, "GET", "/v1/config?prefix=", Some(&acme), &[], vec![]).await;
    assert_problem(&r, 429, "throttled");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "retry after {retry} s");
    // Writes have their own bucket; another tenant has its own buckets.
    let r = call(
        &app,
        "PUT",
        "/v1/config/tenant_config_a",
        Some(&acme),
        &[],
        b"1".to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = call(
        &app,
        "PUT",
        "/v1/config/tenant_config_a",
        Some(&acme),
        &[],
        b"2".to_vec(),
    )
    .await;
    assert_problem(&r, 429, "throttled");
    let globex = token("globex", &[Scope::Write]);
    let r = call(&app, "GET", "/v1/config?prefix=", Some(&globex), &[], vec![]).await;
    assert_eq!(r.status, StatusCode::OK, "another tenant is not slowed");
}

#[tokio::test]
async fn a_request_past_its_deadline_gets_503_and_retry_after() {
    let routes = RoutingTable::default();
    let hanging =
        testkit::stores::Observed::new(Arc::new(MemoryStore::new())).with_get_delay(std::time::Duration::from_secs(30));
    let store = TaggedStore::single(routes.clone(), Arc::new(hanging), StoreLimits::default());
    let app = http_api::router(
        http_api::AppState::new(Arc::new(store), routes, Arc::new(testkit::auth::dev_verifier(SECRET)))
            .with_request_timeout(std::time::Duration::from_millis(200)),
    );
    let acme = token("acme", &[Scope::Read]);
    let r = call(&app, "GET", "/v1/config/tenant_config_a", Some(&acme), &[], vec![]).await;
    assert_problem(&r, 503, "request_timeout");
    assert_eq!(r.headers["retry-after"], "1");
    // Calls that do not reach the store are not held up.
    let r = call(&app, "GET", "/healthz", None, &[], vec![]).await;
    assert_eq!(r.status, StatusCode::OK);
}
