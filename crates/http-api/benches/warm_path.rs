//! The warm in-process path of the config-api Lambda: RS256 token verification + routing +
//! a read-cache hit (no network: the store behind the cache is in memory and the head
//! confirmation is fresh). `make bench` runs it; results go to docs/BENCHMARKS.md.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use criterion::{criterion_group, criterion_main, Criterion};
use http_api::{AppState, CachedStore};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use tagged_routing::memory::MemoryStore;
use tagged_routing::{ConfigStore, JsonText, Owner, Precondition, RoutingTable, StoreLimits, TaggedStore, TenantId};
use tenant_auth::{KeySource, Verifier, VerifierConfig};
use tower::ServiceExt;

const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_bench";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tenant-auth/tests/fixtures")
}

fn warm_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let routes = RoutingTable::default();
    let backend = TaggedStore::single(routes.clone(), Arc::new(MemoryStore::new()), StoreLimits::default());
    let acme = Owner::Tenant(TenantId::parse("acme").unwrap());
    let key = routes.parse_key("param_config_payments/endpoint").unwrap();
    rt.block_on(backend.put(
        &acme,
        &key,
        &JsonText::parse("\"https://pay.example/v2\"").unwrap(),
        Precondition::None,
        "b",
    ))
    .unwrap();
    let cache = CachedStore::new(Arc::new(backend), Duration::from_secs(3600));
    let verifier = Verifier::new(VerifierConfig {
        issuer: Some(ISSUER.into()),
        jwks: Some(KeySource::File(fixtures().join("jwks.json"))),
        ..VerifierConfig::default()
    })
    .unwrap();
    // The limiter is on the warm path too; its limits are out of reach here.
    let unlimited = http_api::TenantLimits {
        reads_per_sec: u32::MAX,
        read_burst: u32::MAX,
        writes_per_sec: u32::MAX,
        write_burst: u32::MAX,
    };
    let app =
        http_api::router(AppState::new(Arc::new(cache), routes, Arc::new(verifier)).with_tenant_limits(unlimited));
    let claims =
        json!({"iss": ISSUER, "sub": "bench", "exp": 4102444800u64, "custom:tenantId": "acme", "token_use": "access"});
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("test-rsa".into());
    let pem = std::fs::read(fixtures().join("rsa-private.pem")).unwrap();
    let token = encode(&header, &claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap();
    let request = || {
        Request::get("/v1/config/param_config_payments/endpoint")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    // Warm the cache once.
    assert_eq!(rt.block_on(app.clone().oneshot(request())).unwrap().status(), 200);

    c.bench_function("warm GET: RS256 verify + route + cache hit", |b| {
        b.to_async(&rt).iter(|| async {
            let response = app.clone().oneshot(request()).await.unwrap();
            assert_eq!(response.status(), 200);
        })
    });
}

criterion_group!(benches, warm_path);
criterion_main!(benches);
