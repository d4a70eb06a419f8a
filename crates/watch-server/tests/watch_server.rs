//! `tagcfg watch-server` over DynamoDB Local + moto: Refresh in, Watch out, Get misses
//! read from the AWS store. `make test` starts the emulators; without them this test says
//! it was skipped.

use std::collections::HashMap;
use std::time::Duration;

use adapters::aws::Clients;
use push::pb::{self, config_watch_client::ConfigWatchClient, watch_event::Event};
use tagged_routing::{ConfigStore, JsonText, Owner, Precondition, Revision, TenantId};
use tenant_auth::{dev, service, Scope};
use testkit::emulators;
use watch_server::{start, Config};

const DEV_SECRET: &str = "watch-server-test-secret-0123456789ab";
const SERVICE_SECRET: &str = "watch-server-service-secret-0123456789";

use testkit::auth::authed;

#[tokio::test]
async fn refresh_in_watch_out_get_from_the_aws_store() {
    let Some(sdk) =
        testkit::emulators::sdk_config_or_skip("refresh_in_watch_out_get_from_the_aws_store", &["DYNAMODB", "STS"])
            .await
    else {
        return;
    };
    let name = emulators::fresh_table(&sdk, "ws").await;
    let vars: HashMap<&str, String> = HashMap::from([
        ("TAGCFG_TABLE", name.clone()),
        ("TAGCFG_SSM_ROOT", name.clone()),
        ("TAGCFG_WATCH_ADDR", "127.0.0.1:0".into()),
        ("TAGCFG_SERVICE_SECRET", SERVICE_SECRET.into()),
        ("TAGCFG_DEV_SECRET", DEV_SECRET.into()),
        ("TAGCFG_ISSUER", dev::DEV_ISSUER.into()),
        ("TAGCFG_AUDIENCES", dev::DEV_AUDIENCE.into()),
    ]);
    // A dev secret is refused unless the run says it is local, and then only with an
    // issuer and an audience.
    let refused = Config::from_lookup(&|k: &str| vars.get(k).cloned()).unwrap_err();
    assert!(refused.to_string().starts_with("TAGCFG_DEV_SECRET:"), "{refused}");
    let mut vars = vars;
    vars.insert("TAGCFG_DEV", "1".into());
    let no_audience =
        Config::from_lookup(&|k: &str| (k != "TAGCFG_AUDIENCES").then(|| vars.get(k).cloned()).flatten()).unwrap_err();
    assert!(no_audience.to_string().contains("TAGCFG_AUDIENCES"), "{no_audience}");
    let clients = Clients::from_sdk(&sdk);
    // Tenant reads on credentials of the tenant-access role, assumed from moto's STS.
    vars.insert(
        "TAGCFG_TENANT_ROLE_ARN",
        "arn:aws:iam::123456789012:role/tagcfg-tenant-access".into(),
    );
    let config = Config::from_lookup(&|k: &str| vars.get(k).cloned()).unwrap();
    assert!(config.tenant_role.is_some());
    let server = start(config.clone(), &clients, &sdk).await.unwrap();
    let url = format!("http://{}", server.addr);

    // A write straight to the AWS store (what config-api does), then its change.
    let store = adapters::aws::tagged_store(&clients, config.routes.clone(), &config.aws).unwrap();
    let acme = Owner::Tenant(TenantId::parse("acme").unwrap());
    let key = config.routes.parse_key("param_config_endpoint").unwrap();
    store
        .put(
            &acme,
            &key,
            &JsonText::parse("\"v1\"").unwrap(),
            Precondition::None,
            "alice",
        )
        .await
        .unwrap();
    let token = dev::mint(
        DEV_SECRET.as_bytes(),
        &TenantId::parse("acme").unwrap(),
        "svc",
        &[Scope::Read],
        600,
    )
    .unwrap();

    // Get: a miss read from SSM through the store.
    let mut grpc = ConfigWatchClient::connect(url.clone()).await.unwrap();
    let got = grpc
        .get(authed(
            pb::GetRequest {
                keys: vec!["param_config_endpoint".into()],
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.items[0].value_json, "\"v1\"");
    assert_eq!(got.cursor.unwrap().tenant, 1);

    // A watcher, then the cache-refresher's Refresh with the next change.
    let mut stream = grpc
        .watch(authed(
            pb::WatchRequest {
                prefixes: vec![],
                since: None,
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(
        stream.message().await.unwrap().unwrap().event,
        Some(Event::Heartbeat(_))
    ));
    store
        .put(
            &acme,
            &key,
            &JsonText::parse("\"v2\"").unwrap(),
            Precondition::None,
            "bob",
        )
        .await
        .unwrap();
    let change = store.changes_since(&acme, Revision(1), 1).await.unwrap().remove(0);
    let credential = service::mint(SERVICE_SECRET.as_bytes(), "cache-refresher", 60).unwrap();
    let refresh = pb::RefreshRequest {
        changes: vec![push::change_to_pb(&change)],
    };
    let mut refresher = pb::config_refresh_client::ConfigRefreshClient::connect(url.clone())
        .await
        .unwrap();
    let answer = refresher
        .refresh(authed(refresh.clone(), &credential))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((answer.accepted, answer.duplicates), (1, 0));
    let again = refresher
        .refresh(authed(refresh, &credential))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (again.accepted, again.duplicates),
        (0, 1),
        "a retried Refresh is harmless"
    );
    let event = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match event.event {
        Some(Event::Updates(batch)) => {
            assert_eq!(batch.updates[0].key, "param_config_endpoint");
            assert_eq!(batch.updates[0].revision, 2);
            assert_eq!(batch.updates[0].value_json.as_deref(), Some("\"v2\""));
            assert_eq!(batch.cursor.unwrap().tenant, 2);
        }
        other => panic!("expected the change, got {other:?}"),
    }
    // The pushed value now answers Get from the cache.
    let got = grpc
        .get(authed(
            pb::GetRequest {
                keys: vec!["param_config_endpoint".into()],
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.items[0].value_json, "\"v2\"");
    drop(stream);
    server.shutdown().await.unwrap();
}

#[test]
fn watch_server_configuration_names_the_missing_variable() {
    let vars: HashMap<&str, &str> = HashMap::from([
        ("TAGCFG_TABLE", "t"),
        ("TAGCFG_JWKS_URL", "https://x"),
        ("TAGCFG_ISSUER", "i"),
    ]);
    let err = Config::from_lookup(&|k: &str| vars.get(k).map(|v| v.to_string())).unwrap_err();
    assert_eq!(err.to_string(), "TAGCFG_SERVICE_SECRET is required but not set");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_watch-server"))
        .env_remove("TAGCFG_TABLE")
        .env("TAGCFG_SERVICE_SECRET", SERVICE_SECRET)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("TAGCFG_TABLE is required"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
