//! Every `events/api/*.json` through the Lambda handler (lambda_http's adapter in front of
//! the router, exactly what `lambda_http::run` drives) against DynamoDB Local + moto.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use adapters::aws::Clients;
use aws_sdk_ssm::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_ssm::config::{ConfigBag, Intercept};
use config_api::{build, ApiConfig, App};
use lambda_http::request::LambdaRequest;
use lambda_http::{Context, LambdaEvent, Service};
use serde_json::{json, Value};
use testkit::emulators;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn emulators(test: &str) -> Option<aws_config::SdkConfig> {
    testkit::emulators::sdk_config_or_skip(test, &["DYNAMODB", "SSM"]).await
}

/// Counts the SSM operations a client starts.
#[derive(Debug, Clone, Default)]
struct CountCalls(Arc<AtomicU64>);

impl Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "CountCalls"
    }
    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A config-api execution environment over a fresh table and SSM root; SSM calls counted.
async fn environment(
    sdk: &aws_config::SdkConfig,
    table_name: &str,
    ssm_root: &str,
    freshness_ms: u64,
) -> (App, Arc<AtomicU64>) {
    let jwks = root().join("crates/tenant-auth/tests/fixtures/jwks.json");
    let vars: HashMap<&str, String> = HashMap::from([
        ("TAGCFG_TABLE", table_name.to_owned()),
        ("TAGCFG_SSM_ROOT", ssm_root.to_owned()),
        ("TAGCFG_JWKS_FILE", jwks.display().to_string()),
        (
            "TAGCFG_ISSUER",
            "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_tagcfgEvents".into(),
        ),
        ("TAGCFG_AUDIENCES", "tagcfg-events-client".into()),
        ("TAGCFG_FRESHNESS_MS", freshness_ms.to_string()),
    ]);
    let config = ApiConfig::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let counter = CountCalls::default();
    let clients = Clients {
        dynamodb: aws_sdk_dynamodb::Client::new(sdk),
        ssm: aws_sdk_ssm::Client::from_conf(
            aws_sdk_ssm::config::Builder::from(sdk)
                .interceptor(counter.clone())
                .build(),
        ),
    };
    (build(config, &clients, sdk).unwrap(), counter.0)
}

async fn fresh_names(sdk: &aws_config::SdkConfig, label: &str) -> (String, String) {
    let name = emulators::fresh_table(sdk, label).await;
    (name.clone(), name)
}

/// Sends one API Gateway event through the Lambda adapter; returns the API Gateway response.
async fn invoke(app: &App, event: Value) -> Value {
    let request: LambdaRequest = serde_json::from_value(event).expect("a valid API Gateway HTTP API event");
    let mut handler = lambda_http::Adapter::from(app.router.clone());
    let response = handler
        .call(LambdaEvent::new(request, Context::default()))
        .await
        .unwrap();
    serde_json::to_value(response).unwrap()
}

fn load(name: &str) -> Value {
    let path = root().join("events/api").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn body(response: &Value) -> Value {
    response["body"]
        .as_str()
        .map(|b| serde_json::from_str(b).unwrap_or(Value::String(b.into())))
        .unwrap_or(Value::Null)
}

/// (event, status, [(JSON pointer into the body, expected value)]), replayed in order.
type Expectation = (&'static str, u16, Vec<(&'static str, Value)>);

fn expectations() -> Vec<Expectation> {
    vec![
        (
            "put-flag",
            201,
            vec![
                ("/version", json!(1)),
                ("/revision", json!(1)),
                ("/layer", json!("tenant")),
            ],
        ),
        (
            "get-flag",
            200,
            vec![
                ("/value/enabled", json!(true)),
                ("/version", json!(1)),
                ("/updated_by", json!("acme-events-user")),
            ],
        ),
        ("get-flag-not-modified", 304, vec![]),
        (
            "put-flag-if-match",
            200,
            vec![("/version", json!(2)), ("/revision", json!(2))],
        ),
        ("put-param", 201, vec![("/version", json!(1)), ("/revision", json!(3))]),
        (
            "get-param",
            200,
            vec![
                ("/value", json!("https://payments.acme.example/v2")),
                ("/revision", json!(3)),
            ],
        ),
        ("get-param-min-revision", 200, vec![("/revision", json!(3))]),
        ("put-shared-region", 201, vec![("/layer", json!("shared"))]),
        (
            "put-tenant-tier",
            200,
            vec![("/tenant", json!("globex")), ("/tier", json!("pro"))],
        ),
        (
            "get-shared-fallback-globex",
            200,
            vec![("/layer", json!("shared")), ("/value", json!("eu-west-1"))],
        ),
        ("get-flag-other-tenant", 404, vec![("/code", json!("not_found"))]),
        (
            "list",
            200,
            vec![
                ("/items/0/key", json!("tenant_config_flags/checkout")),
                ("/next_cursor", Value::Null),
            ],
        ),
        (
            "batch-get",
            200,
            vec![
                ("/missing", json!(["tenant_config_missing"])),
                ("/items/1/key", json!("param_config_payments/endpoint")),
            ],
        ),
        (
            "changes",
            200,
            vec![
                ("/head", json!(3)),
                ("/changes/2/key", json!("param_config_payments/endpoint")),
            ],
        ),
        (
            "history",
            200,
            vec![("/versions/0/version", json!(2)), ("/versions/1/version", json!(1))],
        ),
        ("delete-flag", 204, vec![]),
        ("healthz", 200, vec![("/status", json!("ok"))]),
        ("openapi", 200, vec![("/openapi", json!("3.0.3"))]),
        ("error-no-token", 401, vec![("/code", json!("missing_token"))]),
        ("error-bad-token", 401, vec![("/code", json!("malformed_token"))]),
        ("error-expired-token", 401, vec![("/code", json!("token_expired"))]),
        ("error-admin-writes-shared", 403, vec![("/code", json!("forbidden"))]),
        ("error-read-only-write", 403, vec![("/code", json!("forbidden"))]),
        ("error-bad-key", 400, vec![("/code", json!("invalid_key"))]),
        ("error-unknown-tag", 400, vec![("/code", json!("unknown_tag"))]),
        ("error-stale-if-match", 412, vec![("/code", json!("version_mismatch"))]),
        ("error-oversize-value", 413, vec![("/code", json!("value_too_large"))]),
        ("error-malformed-json", 400, vec![("/code", json!("invalid_value"))]),
        ("error-tenant-in-query", 400, vec![("/code", json!("bad_query"))]),
    ]
}

#[tokio::test]
async fn every_sample_event_through_the_lambda_handler() {
    let Some(sdk) = emulators("every_sample_event_through_the_lambda_handler").await else {
        return;
    };
    let (table, root_name) = fresh_names(&sdk, "events").await;
    let (app, _) = environment(&sdk, &table, &root_name, 250).await;

    let expected = expectations();
    let mut files: Vec<String> = std::fs::read_dir(root().join("events/api"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".json").map(str::to_owned))
        .collect();
    files.sort();
    let mut covered: Vec<String> = expected.iter().map(|(n, _, _)| n.to_string()).collect();
    covered.sort();
    assert_eq!(
        files, covered,
        "every event in events/api has an expectation here, and only those"
    );

    for (name, status, checks) in expected {
        let response = invoke(&app, load(name)).await;
        assert_eq!(response["statusCode"], status, "{name}: {response}");
        let body = body(&response);
        for (pointer, value) in checks {
            assert_eq!(body.pointer(pointer), Some(&value), "{name}: {pointer} in {body}");
        }
        let content_type = response["headers"]["content-type"].as_str().unwrap_or_default();
        if status >= 400 {
            assert_eq!(content_type, "application/problem+json", "{name}");
        }
        if name == "get-flag" {
            assert_eq!(response["headers"]["etag"], "\"1\"", "{name}");
        }
    }
}

#[tokio::test]
async fn unchanged_ssm_key_is_read_from_ssm_once_and_changes_show_up() {
    let Some(sdk) = emulators("unchanged_ssm_key_is_read_from_ssm_once").await else {
        return;
    };
    let (table, root_name) = fresh_names(&sdk, "cache").await;
    // Environment A keeps its confirmations for an hour: only min_revision or its own
    // writes can refresh it; environment B writes.
    let (a, a_ssm_calls) = environment(&sdk, &table, &root_name, 3_600_000).await;
    let (b, _) = environment(&sdk, &table, &root_name, 250).await;
    assert_eq!(invoke(&b, load("put-param")).await["statusCode"], 201);

    for _ in 0..1000 {
        let r = invoke(&a, load("get-param")).await;
        assert_eq!(r["statusCode"], 200);
    }
    assert_eq!(
        a_ssm_calls.load(Ordering::SeqCst),
        1,
        "1,000 reads of an unchanged SSM key: one SSM call"
    );

    // B writes a new value; A sees it at once when it asks for B's revision.
    let mut write = load("put-param");
    write["body"] = json!("\"https://payments.acme.example/v3\"");
    let written = invoke(&b, write).await;
    let revision = body(&written)["revision"].as_u64().unwrap();
    let mut read = load("get-param-min-revision");
    read["rawQueryString"] = json!(format!("min_revision={revision}"));
    read["queryStringParameters"] = json!({"min_revision": revision.to_string()});
    let seen = body(&invoke(&a, read).await);
    assert_eq!(seen["value"], "https://payments.acme.example/v3");
    assert_eq!(seen["revision"], revision);
}

#[tokio::test]
async fn a_write_elsewhere_is_seen_within_the_freshness_window() {
    let Some(sdk) = emulators("a_write_elsewhere_is_seen_within_the_freshness_window").await else {
        return;
    };
    let (table, root_name) = fresh_names(&sdk, "fresh").await;
    let (a, _) = environment(&sdk, &table, &root_name, 200).await;
    let (b, _) = environment(&sdk, &table, &root_name, 200).await;
    invoke(&b, load("put-param")).await;
    assert_eq!(
        body(&invoke(&a, load("get-param")).await)["value"],
        "https://payments.acme.example/v2"
    );
    let mut write = load("put-param");
    write["body"] = json!("\"https://payments.acme.example/v4\"");
    invoke(&b, write).await;
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    assert_eq!(
        body(&invoke(&a, load("get-param")).await)["value"],
        "https://payments.acme.example/v4"
    );
}

#[test]
fn configuration_errors_name_the_variable() {
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[], "TAGCFG_TABLE"),
        (&[("TAGCFG_TABLE", "t")], "TAGCFG_COGNITO_USER_POOL_ID"),
        (
            &[("TAGCFG_TABLE", "t"), ("TAGCFG_COGNITO_USER_POOL_ID", "nounderscore")],
            "TAGCFG_COGNITO_USER_POOL_ID",
        ),
        (
            &[
                ("TAGCFG_TABLE", "t"),
                ("TAGCFG_JWKS_URL", "https://x"),
                ("TAGCFG_ISSUER", "i"),
                ("TAGCFG_FRESHNESS_MS", "soon"),
            ],
            "TAGCFG_FRESHNESS_MS",
        ),
        (
            &[
                ("TAGCFG_TABLE", "t"),
                ("TAGCFG_JWKS_URL", "https://x"),
                ("TAGCFG_ISSUER", "i"),
                ("TAGCFG_ROUTES", "a=b"),
            ],
            "TAGCFG_ROUTES",
        ),
    ];
    for (vars, named) in cases {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        let err = ApiConfig::from_lookup(|k| map.get(k).map(|v| v.to_string())).unwrap_err();
        assert!(err.to_string().contains(named), "{err} should name {named}");
    }
    // A Cognito pool id derives the issuer and the JWKS URL.
    let map = HashMap::from([
        ("TAGCFG_TABLE", "t"),
        ("TAGCFG_COGNITO_USER_POOL_ID", "eu-west-1_AbC123"),
    ]);
    let config = ApiConfig::from_lookup(|k| map.get(k).map(|v| v.to_string())).unwrap();
    assert_eq!(
        config.auth.issuer.as_deref(),
        Some("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123")
    );
    assert!(
        matches!(config.auth.jwks, Some(tenant_auth::KeySource::Url(ref u)) if u == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123/.well-known/jwks.json")
    );
    assert_eq!(config.freshness, std::time::Duration::from_millis(250));
}
