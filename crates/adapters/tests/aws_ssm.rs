//! SSM round trip, shared layer and SecureString handling, with everything logged at
//! DEBUG captured — alone in its binary, because a thread-local tracing subscriber only
//! sees reliably what no concurrently running test races it for.
#![cfg(feature = "aws")]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use aws_sdk_ssm::types::ParameterType;
use common::aws::{emulators, store};
use tagged_routing::{ConfigStore, JsonText, Owner, Precondition, Revision};

/// A `MakeWriter` that keeps everything logged, to check what never reaches the logs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn ssm_round_trip_shared_layer_and_secure_strings() {
    let Some(sdk) = emulators("ssm_round_trip_shared_layer_and_secure_strings").await else {
        return;
    };
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (store, settings) = store(&sdk, "ssm").await;
    let acme = common::conformance::fresh_tenant("acme");
    let routes = store.routes().clone();

    // Round trip through SSM, stored under the documented path.
    let endpoint = routes.parse_key("param_config_payments/endpoint").unwrap();
    let put = store
        .put(
            &acme,
            &endpoint,
            &JsonText::parse("\"https://pay.example/v2\"").unwrap(),
            Precondition::None,
            "alice",
        )
        .await
        .unwrap();
    let got = store.get(&acme, &endpoint).await.unwrap().unwrap();
    assert_eq!(got.value.as_str(), "\"https://pay.example/v2\"");
    assert_eq!((got.version, got.revision), (put.version, put.revision));
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let path = format!(
        "/{}/{}/param_config/payments/endpoint",
        settings.ssm.root,
        acme.as_str()
    );
    let raw = ssm.get_parameter().name(&path).send().await.unwrap().parameter.unwrap();
    assert_eq!(raw.value(), Some("\"https://pay.example/v2\""));

    // A tenant without a value reads the shared layer (resolved through the layers), and is
    // told so; its own layer stays empty.
    let region = routes.parse_key("param_config_region").unwrap();
    store
        .put(
            &Owner::Shared,
            &region,
            &JsonText::parse("\"eu-west-1\"").unwrap(),
            Precondition::None,
            "ops",
        )
        .await
        .unwrap();
    assert!(store.get(&acme, &region).await.unwrap().is_none());
    let tagged_routing::Owner::Tenant(acme_id) = &acme else {
        unreachable!()
    };
    let shared = tagged_routing::resolve(&store, acme_id, std::slice::from_ref(&region))
        .await
        .unwrap()
        .0
        .pop()
        .unwrap();
    assert_eq!(
        (shared.value.as_str(), shared.layer),
        ("\"eu-west-1\"", tagged_routing::Layer::Shared)
    );

    // A SecureString: stored encrypted, read back in clear by its owner, never in the
    // change log and never in the logs.
    let secret = "sk_live_never_log_me_4242";
    let api_key = routes.parse_key("secret_config_payments/api-key").unwrap();
    store
        .put(
            &acme,
            &api_key,
            &JsonText::parse(&format!("\"{secret}\"")).unwrap(),
            Precondition::None,
            "alice",
        )
        .await
        .unwrap();
    let path = format!(
        "/{}/{}/secret_config/payments/api-key",
        settings.ssm.root,
        acme.as_str()
    );
    let raw = ssm.get_parameter().name(&path).send().await.unwrap().parameter.unwrap();
    assert_eq!(raw.r#type(), Some(&ParameterType::SecureString));
    assert_eq!(
        store.get(&acme, &api_key).await.unwrap().unwrap().value.as_str(),
        format!("\"{secret}\"")
    );
    let log = store.changes_since(&acme, Revision(0), 100).await.unwrap();
    assert_eq!(log.len(), 2, "both SSM writes entered the shared change log");
    assert!(!serde_json::to_string(&log).unwrap().contains(secret));
    let history = store.history(&acme, &api_key, 10).await.unwrap();
    assert!(!serde_json::to_string(&history).unwrap().contains(secret));

    // Value limits name the limit.
    let big = JsonText::parse(&format!("\"{}\"", "x".repeat(5000))).unwrap();
    let err = store
        .put(&acme, &endpoint, &big, Precondition::None, "a")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("4096"), "{err}");

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("GetParameter") || logs.contains("PutParameter"),
        "the SDK's debug logs were captured"
    );
    assert!(!logs.contains(secret), "a SecureString value reached the logs");
}
