//! The cache-refresher against real watch servers on random ports (Refresh) and against
//! DynamoDB Local + moto (Parameter Store changes made outside the API).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use adapters::aws::Clients;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use cache_refresher::{Outcome, RefreshError, Refresher, RefresherConfig};
use push::pb::watch_event::Event;
use push::{Hub, HubConfig, PushServer, PushService};
use serde_json::Value;
use tagged_routing::memory::MemoryStore;
use tagged_routing::{
    ChangeOp, ConfigStore, JsonText, Owner, Precondition, Revision, RoutingTable, StoreLimits, TaggedStore, TenantId,
};
use tenant_auth::service::ServiceVerifier;
use tenant_auth::{dev, Scope};
use testkit::emulators;

const SERVICE_SECRET: &str = "refresher-service-secret-0123456789ab";
const DEV_SECRET: &str = "refresher-dev-secret-0123456789abcdef";

fn event(name: &str) -> EventBridgeEvent<Value> {
    let path = format!("{}/../../events/eventbridge/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn watch_server() -> PushServer {
    let routes = RoutingTable::default();
    let store = TaggedStore::single(routes.clone(), Arc::new(MemoryStore::new()), StoreLimits::default());
    // The table already holds acme's first six changes; the sample event is revision 7.
    let acme = Owner::Tenant(TenantId::parse("acme").unwrap());
    for i in 1..=6 {
        let key = routes.parse_key(&format!("tenant_config_earlier/{i}")).unwrap();
        store
            .put(&acme, &key, &JsonText::parse("1").unwrap(), Precondition::None, "seed")
            .await
            .unwrap();
    }
    let hub = Arc::new(Hub::new(
        Arc::new(store),
        Arc::new(routes.clone()),
        HubConfig::default(),
    ));
    let verifier = testkit::auth::dev_verifier(DEV_SECRET.as_bytes());
    let service = PushService::new(
        hub,
        Arc::new(routes),
        Arc::new(verifier),
        Some(Arc::new(ServiceVerifier::new(SERVICE_SECRET.as_bytes()).unwrap())),
        Duration::from_secs(3600),
    );
    PushServer::start("127.0.0.1:0".parse().unwrap(), service, Default::default())
        .await
        .unwrap()
}

fn config(endpoints: &[String], extra: &[(&str, &str)]) -> RefresherConfig {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("TAGCFG_WATCH_ENDPOINTS".to_owned(), endpoints.join(",")),
        ("TAGCFG_SERVICE_SECRET".to_owned(), SERVICE_SECRET.to_owned()),
        ("TAGCFG_TABLE".to_owned(), "unused".to_owned()),
        ("TAGCFG_REFRESH_TIMEOUT_MS".to_owned(), "1500".to_owned()),
    ]);
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    RefresherConfig::from_lookup(&|k: &str| vars.get(k).cloned()).unwrap()
}

/// Clients that are never called (ConfigChanged needs no AWS).
fn offline_clients() -> Clients {
    Clients::from_sdk(&offline_sdk())
}

fn offline_sdk() -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .build()
}

/// A Cloud Map client that is never called (static endpoints).
fn offline_cloud_map() -> aws_sdk_servicediscovery::Client {
    aws_sdk_servicediscovery::Client::new(&offline_sdk())
}

async fn watcher(server: &PushServer) -> tonic::Streaming<push::pb::WatchEvent> {
    let token = dev::mint(
        DEV_SECRET.as_bytes(),
        &TenantId::parse("acme").unwrap(),
        "u",
        &[Scope::Read],
        600,
    )
    .unwrap();
    let mut stream = testkit::auth::watch::<&str>(&format!("http://{}", server.addr), &token, &[], None).await;
    stream.message().await.unwrap().unwrap(); // live
    stream
}

#[tokio::test]
async fn config_changed_reaches_every_instance_and_retries_are_harmless() {
    let (a, b) = (watch_server().await, watch_server().await);
    let endpoints = [format!("http://{}", a.addr), format!("http://{}", b.addr)];
    let refresher = Refresher::new(config(&endpoints, &[]), &offline_clients(), offline_cloud_map())
        .await
        .unwrap();
    let (mut on_a, mut on_b) = (watcher(&a).await, watcher(&b).await);

    let outcome = refresher.handle(&event("config-changed")).await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Refreshed {
            instances: 2,
            accepted: 2,
            duplicates: 0
        }
    );
    for stream in [&mut on_a, &mut on_b] {
        match tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .event
        {
            Some(Event::Updates(batch)) => {
                assert_eq!(
                    (batch.updates[0].key.as_str(), batch.updates[0].revision),
                    ("tenant_config_flags/checkout", 7)
                );
                assert_eq!(batch.updates[0].value_json.as_deref(), Some("{\"enabled\":true}"));
            }
            other => panic!("expected the change, got {other:?}"),
        }
    }
    // EventBridge retries the same event: nothing new anywhere.
    let again = refresher.handle(&event("config-changed")).await.unwrap();
    assert_eq!(
        again,
        Outcome::Refreshed {
            instances: 2,
            accepted: 0,
            duplicates: 2
        }
    );
    // A secret's change travels without its value.
    let secret = refresher.handle(&event("config-changed-secret")).await.unwrap();
    assert_eq!(
        secret,
        Outcome::Refreshed {
            instances: 2,
            accepted: 2,
            duplicates: 0
        }
    );
    // A malformed event fails (EventBridge retries, then the DLQ keeps it).
    assert!(matches!(
        refresher.handle(&event("config-changed-malformed")).await,
        Err(RefreshError::Malformed { .. })
    ));
}

#[tokio::test]
async fn an_unreachable_instance_fails_the_invocation_and_names_itself() {
    let a = watch_server().await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let endpoints = [format!("http://{}", a.addr), format!("http://{dead}")];
    let refresher = Refresher::new(config(&endpoints, &[]), &offline_clients(), offline_cloud_map())
        .await
        .unwrap();
    let err = refresher.handle(&event("config-changed")).await.unwrap_err();
    match err {
        RefreshError::Instances { failed, total, details } => {
            assert_eq!((failed, total), (1, 2));
            assert!(details.contains(&dead.to_string()), "{details}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn configuration_names_the_bad_variable() {
    let vars: HashMap<&str, &str> = HashMap::from([
        ("TAGCFG_WATCH_ENDPOINTS", "grpc://x:1"),
        ("TAGCFG_SERVICE_SECRET", SERVICE_SECRET),
        ("TAGCFG_TABLE", "t"),
    ]);
    let err = RefresherConfig::from_lookup(&|k: &str| vars.get(k).map(|v| v.to_string())).unwrap_err();
    assert!(err.to_string().starts_with("TAGCFG_WATCH_ENDPOINTS:"), "{err}");
    // The service secret: the key, or the name of the SecureString that holds it; not both.
    let secret_error = |extra: &[(&'static str, &'static str)]| {
        let mut vars: HashMap<&str, &str> =
            HashMap::from([("TAGCFG_WATCH_ENDPOINTS", "http://x:1"), ("TAGCFG_TABLE", "t")]);
        vars.extend(extra.iter().copied());
        RefresherConfig::from_lookup(&|k: &str| vars.get(k).map(|v| v.to_string()))
            .map(|c| format!("{:?}", c.service_secret))
            .unwrap_or_else(|e| e.to_string())
    };
    assert!(
        secret_error(&[]).contains("TAGCFG_SERVICE_SECRET"),
        "{}",
        secret_error(&[])
    );
    let both = secret_error(&[
        ("TAGCFG_SERVICE_SECRET", SERVICE_SECRET),
        ("TAGCFG_SERVICE_SECRET_PARAMETER", "/s"),
    ]);
    assert!(both.starts_with("TAGCFG_SERVICE_SECRET_PARAMETER:"), "{both}");
    let short = secret_error(&[("TAGCFG_SERVICE_SECRET", "short")]);
    assert!(short.starts_with("TAGCFG_SERVICE_SECRET:"), "{short}");
    let relative = secret_error(&[("TAGCFG_SERVICE_SECRET_PARAMETER", "service-secret")]);
    assert!(relative.starts_with("TAGCFG_SERVICE_SECRET_PARAMETER:"), "{relative}");
    let named = secret_error(&[("TAGCFG_SERVICE_SECRET_PARAMETER", "/tagcfg-internal/service-secret")]);
    assert_eq!(named, "SecretSource::Parameter(/tagcfg-internal/service-secret)");
    let value = secret_error(&[("TAGCFG_SERVICE_SECRET", SERVICE_SECRET)]);
    assert!(
        !value.contains(SERVICE_SECRET),
        "the secret never appears in Debug: {value}"
    );
}

#[tokio::test]
async fn parameter_store_changes_made_outside_the_api_enter_the_feed_exactly_once() {
    let Some(sdk) =
        testkit::emulators::sdk_config_or_skip("parameter_store_changes_made_outside_the_api", &["DYNAMODB"]).await
    else {
        return;
    };
    let table_name = emulators::fresh_table(&sdk, "refresher").await;
    let clients = Clients::from_sdk(&sdk);
    // The sample events name /tagcfg/acme/param_config/payments/endpoint.
    let config = config(
        &["http://127.0.0.1:9".to_owned()],
        &[("TAGCFG_TABLE", &table_name), ("TAGCFG_SSM_ROOT", "tagcfg")],
    );
    let refresher = Refresher::new(config.clone(), &clients, offline_cloud_map())
        .await
        .unwrap();
    let store = adapters::aws::tagged_store(&clients, config.routes.clone(), &config.aws).unwrap();
    let acme = Owner::Tenant(TenantId::parse("acme").unwrap());
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let name = "/tagcfg/acme/param_config/payments/endpoint";
    let _ = ssm.delete_parameter().name(name).send().await;

    // Someone edits the parameter in the console: one change, however often the event comes.
    ssm.put_parameter()
        .name(name)
        .value("\"https://console.example\"")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    let first = refresher.handle(&event("ssm-create")).await.unwrap();
    assert_eq!(
        first,
        Outcome::Ingested {
            tenant: "acme".into(),
            revision: 1,
            key: "param_config_payments/endpoint".into()
        }
    );
    assert_eq!(
        refresher.handle(&event("ssm-create")).await.unwrap(),
        Outcome::AlreadyRecorded {
            key: "param_config_payments/endpoint".into()
        }
    );

    // A write through the API also raises a Parameter Store Change event: not doubled.
    let key = config.routes.parse_key("param_config_payments/endpoint").unwrap();
    let written = store
        .put(
            &acme,
            &key,
            &JsonText::parse("\"https://api.example\"").unwrap(),
            Precondition::None,
            "alice",
        )
        .await
        .unwrap();
    assert_eq!(written.revision, Revision(2));
    assert!(matches!(
        refresher.handle(&event("ssm-update")).await.unwrap(),
        Outcome::AlreadyRecorded { .. }
    ));

    // A plain (non-JSON) console value enters as a JSON string; a console delete as a delete.
    ssm.put_parameter()
        .name(name)
        .value("plain text")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    assert!(matches!(
        refresher.handle(&event("ssm-update")).await.unwrap(),
        Outcome::Ingested { revision: 3, .. }
    ));
    ssm.delete_parameter().name(name).send().await.unwrap();
    assert!(matches!(
        refresher.handle(&event("ssm-delete")).await.unwrap(),
        Outcome::Ingested { revision: 4, .. }
    ));
    assert!(matches!(
        refresher.handle(&event("ssm-delete")).await.unwrap(),
        Outcome::AlreadyRecorded { .. }
    ));
    assert!(matches!(
        refresher.handle(&event("ssm-outside-root")).await.unwrap(),
        Outcome::Ignored { .. }
    ));

    let log = store.changes_since(&acme, Revision(0), 100).await.unwrap();
    let summary: Vec<(u64, ChangeOp, u64, &str)> = log
        .iter()
        .map(|c| (c.revision.0, c.op, c.version.0, c.actor.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (1, ChangeOp::Put, 1, "ssm"),
            (2, ChangeOp::Put, 2, "alice"),
            (3, ChangeOp::Put, 3, "ssm"),
            (4, ChangeOp::Delete, 3, "ssm")
        ]
    );
    assert_eq!(
        log[0].value.as_ref().map(JsonText::as_str),
        Some("\"https://console.example\"")
    );
    assert_eq!(log[2].value.as_ref().map(JsonText::as_str), Some("\"plain text\""));
}

/// DiscoverInstances goes to `data-<endpoint>` (a host prefix the SDK always adds); moto
/// listens on 127.0.0.1, so tests take the prefix off again before the request leaves.
#[derive(Debug)]
struct NoHostPrefix;

impl aws_sdk_servicediscovery::config::Intercept for NoHostPrefix {
    fn name(&self) -> &'static str {
        "NoHostPrefix"
    }
    fn modify_before_transmit(
        &self,
        context: &mut aws_sdk_servicediscovery::config::interceptors::BeforeTransmitInterceptorContextMut<'_>,
        _components: &aws_sdk_servicediscovery::config::RuntimeComponents,
        _cfg: &mut aws_sdk_servicediscovery::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let request = context.request_mut();
        let uri = request.uri().replace("://data-", "://");
        request.set_uri(uri)?;
        Ok(())
    }
}

#[tokio::test]
async fn cloud_map_names_the_instances_to_refresh() {
    let Some(sdk) =
        testkit::emulators::sdk_config_or_skip("cloud_map_names_the_instances_to_refresh", &["SERVICEDISCOVERY"]).await
    else {
        return;
    };
    let cloud_map = aws_sdk_servicediscovery::Client::from_conf(
        aws_sdk_servicediscovery::config::Builder::from(&sdk)
            .interceptor(NoHostPrefix)
            .build(),
    );
    let namespace = format!("{}.local", emulators::unique_name("discovery"));
    cloud_map.create_http_namespace().name(&namespace).send().await.unwrap();
    let namespaces = cloud_map.list_namespaces().send().await.unwrap();
    let namespace_id = namespaces
        .namespaces()
        .iter()
        .find(|n| n.name() == Some(namespace.as_str()))
        .unwrap()
        .id()
        .unwrap()
        .to_owned();
    let service = cloud_map
        .create_service()
        .name("watch")
        .namespace_id(&namespace_id)
        .send()
        .await
        .unwrap()
        .service
        .unwrap();
    let (a, b) = (watch_server().await, watch_server().await);
    for (i, server) in [&a, &b].into_iter().enumerate() {
        cloud_map
            .register_instance()
            .service_id(service.id().unwrap())
            .instance_id(format!("task-{i}"))
            .attributes("AWS_INSTANCE_IPV4", "127.0.0.1")
            .attributes("AWS_INSTANCE_PORT", server.addr.port().to_string())
            .send()
            .await
            .unwrap();
    }
    let vars: HashMap<&str, String> = HashMap::from([
        ("TAGCFG_CLOUDMAP_NAMESPACE", namespace.clone()),
        ("TAGCFG_CLOUDMAP_SERVICE", "watch".into()),
        ("TAGCFG_SERVICE_SECRET", SERVICE_SECRET.into()),
        ("TAGCFG_TABLE", "unused".into()),
    ]);
    let config = RefresherConfig::from_lookup(&|k: &str| vars.get(k).cloned()).unwrap();
    let refresher = Refresher::new(config, &offline_clients(), cloud_map).await.unwrap();
    let mut expected = vec![format!("http://{}", a.addr), format!("http://{}", b.addr)];
    expected.sort();
    assert_eq!(refresher.endpoints().await.unwrap(), expected);
    let mut on_b = watcher(&b).await;
    let outcome = refresher.handle(&event("config-changed")).await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Refreshed {
            instances: 2,
            accepted: 2,
            duplicates: 0
        }
    );
    assert!(matches!(
        tokio::time::timeout(Duration::from_secs(5), on_b.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .event,
        Some(Event::Updates(_))
    ));
}
