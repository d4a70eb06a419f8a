//! The conformance suite and the AWS-specific guarantees against DynamoDB Local and moto,
//! through the real AWS SDK. `make test` starts both emulators and sets
//! `TAGCFG_EMULATORS=1`; without it these tests say they were skipped.
#![cfg(feature = "aws")]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use adapters::aws::{table, AwsSettings, SsmSettings};
use aws_sdk_ssm::types::ParameterType;
use tagged_routing::{
    ConfigStore, Error, JsonText, Owner, Precondition, Revision, RoutingTable, TaggedStore, Version,
};

/// The SDK config pointed at the emulators, or `None` (with a note) when they are not running.
async fn emulators(test: &str) -> Option<aws_config::SdkConfig> {
    if std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB").is_none()
        || std::env::var_os("AWS_ENDPOINT_URL_SSM").is_none()
    {
        assert!(
            std::env::var_os("TAGCFG_EMULATORS").is_none(),
            "TAGCFG_EMULATORS is set but AWS_ENDPOINT_URL_DYNAMODB / _SSM are not"
        );
        // Straight to the stderr handle: libtest captures eprintln! of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: no emulators (AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL_SSM unset); run `make test`"
        );
        return None;
    }
    Some(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await,
    )
}

/// A fresh table (from infra/dynamodb/config-table.json) and SSM root for one test.
async fn store(sdk: &aws_config::SdkConfig, label: &str) -> (TaggedStore, AwsSettings) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut settings = AwsSettings::new(format!("tagcfg-{label}-{nanos}"));
    settings.ssm = SsmSettings {
        root: format!("tagcfg-{label}-{nanos}"),
        ..SsmSettings::default()
    };
    table::create_config_table(&aws_sdk_dynamodb::Client::new(sdk), &settings.table)
        .await
        .expect("create the config table in DynamoDB Local");
    (
        adapters::aws::tagged_store(
            &adapters::aws::Clients::from_sdk(sdk),
            RoutingTable::default(),
            &settings,
        )
        .unwrap(),
        settings,
    )
}

#[tokio::test]
async fn aws_stores_conform() {
    let Some(sdk) = emulators("aws_stores_conform").await else {
        return;
    };
    let (store, _) = store(&sdk, "conf").await;
    common::conformance::run_all(&store).await;
}

#[tokio::test]
async fn concurrent_if_match_writers_lose_no_update_and_revisions_are_gap_free() {
    let Some(sdk) = emulators("concurrent_if_match_writers").await else {
        return;
    };
    let (store, _) = store(&sdk, "race").await;
    let store = Arc::new(store);
    let acme = common::conformance::fresh_tenant("race");
    let key = store.routes().parse_key("tenant_config_counter").unwrap();
    store
        .put(
            &acme,
            &key,
            &JsonText::parse("0").unwrap(),
            Precondition::None,
            "init",
        )
        .await
        .unwrap();

    let mut writers = Vec::new();
    for w in 0..8 {
        let (store, acme, key) = (store.clone(), acme.clone(), key.clone());
        writers.push(tokio::spawn(async move {
            let mut successes = Vec::new();
            for _ in 0..50 {
                let current = store.get(&acme, &key).await.unwrap().unwrap();
                let n: u64 = current.value.as_str().parse().unwrap();
                let next = JsonText::parse(&(n + 1).to_string()).unwrap();
                match store
                    .put(
                        &acme,
                        &key,
                        &next,
                        Precondition::IfVersion(current.version),
                        &format!("w{w}"),
                    )
                    .await
                {
                    Ok(item) => successes.push(item.revision),
                    Err(Error::VersionMismatch { .. }) | Err(Error::Conflict(_)) => {}
                    Err(other) => panic!("unexpected error: {other:?}"),
                }
            }
            successes
        }));
    }
    let mut revisions = Vec::new();
    for w in writers {
        revisions.extend(w.await.unwrap());
    }
    let successes = revisions.len() as u64;
    assert!(successes > 0);
    let last = store.get(&acme, &key).await.unwrap().unwrap();
    assert_eq!(
        last.version,
        Version(1 + successes),
        "version = 1 + successful writes"
    );
    assert_eq!(last.value.as_str(), successes.to_string(), "no lost update");

    let log = store
        .changes_since(&acme, Revision(0), 10_000)
        .await
        .unwrap();
    let logged: Vec<u64> = log.iter().map(|c| c.revision.0).collect();
    assert_eq!(
        logged,
        (1..=1 + successes).collect::<Vec<_>>(),
        "gap-free revisions, one change per write"
    );
    revisions.sort();
    for r in &revisions {
        assert_eq!(
            log.iter().filter(|c| c.revision == *r).count(),
            1,
            "exactly one change item per successful write"
        );
    }
    assert_eq!(
        store.head_revision(&acme).await.unwrap(),
        Revision(1 + successes)
    );
    eprintln!("8 writers x 50 If-Match updates: {successes} succeeded");
}

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
    let raw = ssm
        .get_parameter()
        .name(&path)
        .send()
        .await
        .unwrap()
        .parameter
        .unwrap();
    assert_eq!(raw.value(), Some("\"https://pay.example/v2\""));

    // A tenant without a value reads the shared layer, and is told so.
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
    let shared = store.get(&acme, &region).await.unwrap().unwrap();
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
    let raw = ssm
        .get_parameter()
        .name(&path)
        .send()
        .await
        .unwrap()
        .parameter
        .unwrap();
    assert_eq!(raw.r#type(), Some(&ParameterType::SecureString));
    assert_eq!(
        store
            .get(&acme, &api_key)
            .await
            .unwrap()
            .unwrap()
            .value
            .as_str(),
        format!("\"{secret}\"")
    );
    let log = store.changes_since(&acme, Revision(0), 100).await.unwrap();
    assert_eq!(
        log.len(),
        2,
        "both SSM writes entered the shared change log"
    );
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
        !logs.contains(secret),
        "a SecureString value reached the logs"
    );
}

#[tokio::test]
async fn ssm_path_depth_is_checked_before_calling_aws() {
    let Some(sdk) = emulators("ssm_path_depth").await else {
        return;
    };
    let (store, _) = store(&sdk, "depth").await;
    let acme = common::conformance::fresh_tenant("acme");
    let deep = store
        .routes()
        .parse_key(&format!("param_config_{}", vec!["d"; 14].join("/")))
        .unwrap();
    let err = store
        .put(
            &acme,
            &deep,
            &JsonText::parse("1").unwrap(),
            Precondition::None,
            "a",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidKey(_)), "{err:?}");
}
