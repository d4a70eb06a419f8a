//! The access log, alone in its test binary: a thread-local tracing subscriber is only
//! reliable when no other test registers callsites at the same time.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tagged_routing::memory::MemoryStore;
use tagged_routing::{RoutingTable, StoreLimits, TaggedStore, TenantId};
use tenant_auth::{dev, Scope};
use tower::ServiceExt;

const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_access_log_names_the_tenant_and_never_a_value_or_token() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let routes = RoutingTable::default();
    let store = TaggedStore::single(routes.clone(), Arc::new(MemoryStore::new()), StoreLimits::default());
    let verifier = testkit::auth::dev_verifier(SECRET);
    let app = http_api::router(http_api::AppState::new(Arc::new(store), routes, Arc::new(verifier)));
    let w = dev::mint(
        SECRET,
        &TenantId::parse("acme").unwrap(),
        "acme-user",
        &[Scope::Write],
        600,
    )
    .unwrap();
    let send = |method: &str, uri: &str, body: &str| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {w}"))
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let secret = "\"sk_live_do_not_log_me\"";
    let r = app
        .clone()
        .oneshot(send("PUT", "/v1/config/secret_config_payments/key", secret))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    app.clone()
        .oneshot(send("GET", "/v1/config/secret_config_payments/key", ""))
        .await
        .unwrap();
    app.clone()
        .oneshot(send("PUT", "/v1/config/tenant_config_x", "{broken"))
        .await
        .unwrap();
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("tenant=\"acme\"") || logs.contains("tenant=acme"),
        "{logs}"
    );
    assert!(logs.contains("status=201"), "{logs}");
    assert!(
        !logs.contains("sk_live_do_not_log_me"),
        "a secret value reached the log"
    );
    assert!(!logs.contains(&w), "a token reached the log");
}
