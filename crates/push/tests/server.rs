//! The watch server on a random port, over the in-memory store, through real gRPC.

use std::sync::Arc;
use std::time::Duration;

use push::pb::{
    self, config_refresh_client::ConfigRefreshClient, config_watch_client::ConfigWatchClient, watch_event::Event,
};
use push::{Hub, HubConfig, PushServer, PushService};
use tagged_routing::memory::MemoryStore;
use tagged_routing::{
    Author, ConfigStore, JsonText, Owner, Precondition, Revision, RoutingTable, SetWrite, StoreLimits, TaggedStore,
    TenantId,
};
use tenant_auth::service::ServiceVerifier;
use tenant_auth::{dev, Scope};
use testkit::auth::authed;
use testkit::stores::Observed;
use tonic::transport::Channel;

const SECRET: &[u8] = b"watch-test-secret-watch-test-secret!";
const SERVICE_SECRET: &[u8] = b"service-secret-service-secret-service!";

struct Setup {
    server: PushServer,
    hub: Arc<Hub>,
    store: TaggedStore,
}

/// Streams' heartbeat unless a test needs them.
const RARE_HEARTBEAT: Duration = Duration::from_secs(3600);

async fn setup(config: HubConfig, oldest_log_revision: u64) -> Setup {
    setup_tuned(config, oldest_log_revision, RARE_HEARTBEAT, |service| service).await
}

/// [`setup`] with this heartbeat and the service's limits changed by `tune`.
async fn setup_tuned(
    config: HubConfig,
    oldest_log_revision: u64,
    heartbeat: Duration,
    tune: impl FnOnce(PushService) -> PushService,
) -> Setup {
    let routes = RoutingTable::default();
    let store = TaggedStore::single(routes.clone(), Arc::new(MemoryStore::new()), StoreLimits::default());
    // A change log that "expired" below `oldest_log_revision`, as DynamoDB's TTL does.
    let backing: Arc<dyn ConfigStore> =
        Arc::new(Observed::new(Arc::new(store.clone())).with_log_from(oldest_log_revision));
    let hub = Arc::new(Hub::new(backing, Arc::new(routes.clone()), config));
    let verifier = testkit::auth::dev_verifier(SECRET);
    let service = PushService::new(
        hub.clone(),
        Arc::new(routes),
        Arc::new(verifier),
        Some(Arc::new(ServiceVerifier::new(SERVICE_SECRET).unwrap())),
        heartbeat,
    );
    let server = PushServer::start("127.0.0.1:0".parse().unwrap(), tune(service), Default::default())
        .await
        .unwrap();
    Setup { server, hub, store }
}

fn token(tenant: &str) -> String {
    dev::mint(SECRET, &TenantId::parse(tenant).unwrap(), "u", &[Scope::Read], 600).unwrap()
}

async fn refresher(setup: &Setup) -> ConfigRefreshClient<Channel> {
    ConfigRefreshClient::connect(format!("http://{}", setup.server.addr))
        .await
        .unwrap()
}

/// A cursor of a tenant in no tier.
fn at(tenant: u64, shared: u64) -> Option<pb::Cursor> {
    Some(pb::Cursor {
        tenant,
        shared,
        ..Default::default()
    })
}

async fn grpc(setup: &Setup) -> ConfigWatchClient<Channel> {
    ConfigWatchClient::connect(format!("http://{}", setup.server.addr))
        .await
        .unwrap()
}

/// Writes through the store, and pushes the change into the hub (what a feed does).
async fn write(setup: &Setup, tenant: &str, key: &str, value: &str) -> Revision {
    let change = write_unpublished(setup, tenant, key, value).await;
    let revision = change.revision;
    setup.hub.publish(change).await.unwrap();
    revision
}

type Events = tonic::Streaming<pb::WatchEvent>;

async fn watch(setup: &Setup, tenant: &str, prefixes: &[&str], since: Option<pb::Cursor>) -> Events {
    let mut stream = watch_with(setup, &token(tenant), prefixes, since).await;
    // The first event says from which revision the stream is live.
    match next(&mut stream).await {
        Event::Heartbeat(_) | Event::Updates(_) => {}
        Event::Resync(r) => panic!("unexpected resync: {}", r.reason),
    }
    stream
}

async fn next(stream: &mut Events) -> Event {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an event in time")
        .unwrap()
        .unwrap()
        .event
        .unwrap()
}

/// The next `n` updates (skipping heartbeats), as (revision, key).
async fn changes(stream: &mut Events, n: usize) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        out.extend(batch(stream).await);
    }
    out
}

#[tokio::test]
async fn watchers_get_exactly_their_prefixes_in_order_and_never_another_tenant() {
    let s = setup(HubConfig::default(), 0).await;
    let mut flags = watch(&s, "acme", &["tenant_config_flags/"], None).await;
    let mut limits = watch(&s, "acme", &["tenant_config_limits/"], None).await;
    let mut all = watch(&s, "acme", &[], None).await;
    let mut globex = watch(&s, "globex", &[], None).await;
    write(&s, "acme", "tenant_config_flags/a", "1").await;
    write(&s, "acme", "tenant_config_limits/x", "2").await;
    write(&s, "acme", "tenant_config_flags/b", "3").await;
    write(&s, "globex", "tenant_config_flags/a", "4").await;
    write(&s, "acme", "param_config_other", "5").await;
    assert_eq!(
        changes(&mut flags, 2).await,
        [(1, "tenant_config_flags/a".into()), (3, "tenant_config_flags/b".into())]
    );
    assert_eq!(changes(&mut limits, 1).await, [(2, "tenant_config_limits/x".into())]);
    let got = changes(&mut all, 4).await;
    assert_eq!(got.iter().map(|(r, _)| *r).collect::<Vec<_>>(), [1, 2, 3, 4]);
    // globex's stream carries globex's change only (its own revision 1).
    assert_eq!(changes(&mut globex, 1).await, [(1, "tenant_config_flags/a".into())]);
    write(&s, "acme", "tenant_config_flags/c", "6").await;
    assert_eq!(changes(&mut flags, 1).await, [(5, "tenant_config_flags/c".into())]);
    // Nothing else arrived on globex's stream: the next event is not an acme change.
    let pending = tokio::time::timeout(Duration::from_millis(200), globex.message()).await;
    assert!(pending.is_err(), "globex received something: {pending:?}");
}

/// The next batch of updates (skipping heartbeats), as (revision, key).
async fn batch(stream: &mut Events) -> Vec<(u64, String)> {
    loop {
        match next(stream).await {
            Event::Updates(batch) => return batch.updates.into_iter().map(|c| (c.revision, c.key)).collect(),
            Event::Heartbeat(_) => {}
            Event::Resync(r) => panic!("unexpected resync: {}", r.reason),
        }
    }
}

#[tokio::test]
async fn a_change_set_reaches_each_stream_as_one_batch_of_what_it_watches() {
    let s = setup(HubConfig::default(), 0).await;
    let mut flags = watch(&s, "acme", &["tenant_config_flags/"], None).await;
    let mut all = watch(&s, "acme", &[], None).await;
    let mut also_all = watch(&s, "acme", &[], None).await;
    let routes = s.store.routes().clone();
    let set_write = |key: &str, value: &str| SetWrite {
        key: routes.parse_key(key).unwrap(),
        value: Some(JsonText::parse(value).unwrap()),
        precondition: Precondition::None,
    };
    let owner = Owner::Tenant(TenantId::parse("acme").unwrap());
    let set = s
        .store
        .write_set(
            &owner,
            &[
                set_write("tenant_config_flags/a", "1"),
                set_write("tenant_config_limits/x", "2"),
            ],
            &Author::new("w"),
        )
        .await
        .unwrap();
    for change in set {
        s.hub.publish(change).await.unwrap();
    }
    let whole = vec![
        (1, "tenant_config_flags/a".to_owned()),
        (2, "tenant_config_limits/x".to_owned()),
    ];
    // Streams that take every update get the same batch (encoded once, sent twice).
    assert_eq!(batch(&mut all).await, whole);
    assert_eq!(batch(&mut also_all).await, whole);
    // A stream that takes some gets those, in the same one batch.
    assert_eq!(batch(&mut flags).await, [(1, "tenant_config_flags/a".to_owned())]);
    write(&s, "acme", "tenant_config_flags/b", "3").await;
    let next = vec![(3, "tenant_config_flags/b".to_owned())];
    assert_eq!(batch(&mut flags).await, next);
    assert_eq!(batch(&mut all).await, next);
    assert_eq!(batch(&mut also_all).await, next);
}

#[tokio::test]
async fn a_reconnecting_watcher_gets_every_missed_change_exactly_once() {
    let s = setup(
        HubConfig {
            ring_capacity: 4,
            ..HubConfig::default()
        },
        0,
    )
    .await;
    let mut first = watch(&s, "acme", &[], None).await;
    for i in 1..=3 {
        write(&s, "acme", &format!("tenant_config_k{i}"), "1").await;
    }
    let seen = changes(&mut first, 2).await;
    assert_eq!(seen.last().unwrap().0, 2);
    drop(first); // the connection drops mid-stream, revision 3 unread
    for i in 4..=10 {
        write(&s, "acme", &format!("tenant_config_k{i}"), "1").await;
    }
    // 8 missed changes; the ring holds only 4: the rest comes from the store's log. The
    // replay is the current value of every key that moved, in key order.
    let mut again = grpc(&s)
        .await
        .watch(authed(
            pb::WatchRequest {
                prefixes: vec![],
                since: at(2, 0),
            },
            &token("acme"),
        ))
        .await
        .unwrap()
        .into_inner();
    let mut replayed: Vec<u64> = changes(&mut again, 8).await.iter().map(|(r, _)| *r).collect();
    replayed.sort();
    assert_eq!(replayed, (3..=10).collect::<Vec<_>>());
    write(&s, "acme", "tenant_config_k11", "1").await;
    let live = changes(&mut again, 1).await;
    assert_eq!(
        live,
        [(11, "tenant_config_k11".into())],
        "no duplicate of a replayed change"
    );
}

#[tokio::test]
async fn a_since_older_than_the_log_gets_an_explicit_resync() {
    // The log kept revisions 5 and up only; the ring is too small to help.
    let s = setup(
        HubConfig {
            ring_capacity: 2,
            ..HubConfig::default()
        },
        5,
    )
    .await;
    for i in 1..=8 {
        write(&s, "acme", &format!("tenant_config_k{i}"), "1").await;
    }
    let request = pb::WatchRequest {
        prefixes: vec![],
        since: at(1, 0),
    };
    let mut stream = grpc(&s)
        .await
        .watch(authed(request, &token("acme")))
        .await
        .unwrap()
        .into_inner();
    match next(&mut stream).await {
        Event::Resync(r) => assert!(r.reason.contains("no longer holds revision 2"), "{}", r.reason),
        other => panic!("expected a resync, got {other:?}"),
    }
    // Resuming from inside the log works.
    let request = pb::WatchRequest {
        prefixes: vec![],
        since: at(4, 0),
    };
    let mut stream = grpc(&s)
        .await
        .watch(authed(request, &token("acme")))
        .await
        .unwrap()
        .into_inner();
    let mut replayed: Vec<u64> = changes(&mut stream, 4).await.iter().map(|(r, _)| *r).collect();
    replayed.sort();
    assert_eq!(replayed, [5, 6, 7, 8]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_subscriber_is_cut_off_without_affecting_the_others() {
    let s = setup(
        HubConfig {
            subscriber_buffer: 64,
            ..HubConfig::default()
        },
        0,
    )
    .await;
    let mut stuck = watch(&s, "acme", &[], None).await;
    let mut healthy = watch(&s, "acme", &[], None).await;
    let total: u64 = 3000;
    let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let progress = seen.clone();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while (got.len() as u64) < total {
            let batch = changes(&mut healthy, 1).await;
            progress.store(batch.last().unwrap().0, std::sync::atomic::Ordering::SeqCst);
            got.extend(batch);
        }
        got
    });
    // 8 KiB values: the stuck client's HTTP/2 windows (a few MiB) fill long before the end.
    let big = format!("\"{}\"", "x".repeat(8 * 1024));
    for i in 1..=total {
        // Keep the healthy watcher within 32 changes: it is slow-ish but keeps up. The
        // stuck one never reads, so its buffers fill and the hub must cut it off.
        while i > seen.load(std::sync::atomic::Ordering::SeqCst) + 32 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        write(&s, "acme", &format!("tenant_config_k{}", i % 50), &big).await;
    }
    let got = reader.await.unwrap();
    assert_eq!(got.len() as u64, total);
    assert!(
        got.windows(2).all(|w| w[1].0 == w[0].0 + 1),
        "the healthy watcher got every change in order"
    );
    // The stuck one now reads: some changes, then the resync that says why it was cut.
    let mut last = 0;
    let reason = loop {
        match next(&mut stuck).await {
            Event::Updates(batch) => {
                for c in batch.updates {
                    assert!(c.revision > last);
                    last = c.revision;
                }
            }
            Event::Heartbeat(_) => {}
            Event::Resync(r) => break r.reason,
        }
    };
    assert!(reason.contains("slow consumer"), "{reason}");
    assert!(last < total, "the stuck watcher was cut off before the end");
    assert_eq!(
        s.hub.subscribers(&TenantId::parse("acme").unwrap()),
        1,
        "only the healthy one is left"
    );
}

#[tokio::test]
async fn refresh_needs_the_service_credential_and_is_idempotent() {
    let s = setup(HubConfig::default(), 0).await;
    let mut watcher = watch(&s, "acme", &[], None).await;
    // The change as the store committed it (a Refresh beyond the store's head is refused).
    let written = write_unpublished(&s, "acme", "tenant_config_pushed", "{\"on\":true}").await;
    let change = push::change_to_pb(&written);
    let refresh = pb::RefreshRequest {
        changes: vec![change.clone()],
    };
    // A tenant token — even an admin's — is refused.
    let admin = dev::mint(SECRET, &TenantId::parse("acme").unwrap(), "u", &[Scope::Admin], 600).unwrap();
    let err = refresher(&s)
        .await
        .refresh(authed(refresh.clone(), &admin))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    let err = refresher(&s)
        .await
        .refresh(tonic::Request::new(refresh.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);

    let service = tenant_auth::service::mint(SERVICE_SECRET, "cache-refresher", 60).unwrap();
    let first = refresher(&s)
        .await
        .refresh(authed(refresh.clone(), &service))
        .await
        .unwrap()
        .into_inner();
    let again = refresher(&s)
        .await
        .refresh(authed(refresh.clone(), &service))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (first.accepted, first.duplicates, again.accepted, again.duplicates),
        (1, 0, 0, 1)
    );
    assert_eq!(changes(&mut watcher, 1).await, [(1, "tenant_config_pushed".into())]);
    // Get answers the pushed value from the hub's cache.
    let got = grpc(&s)
        .await
        .get(authed(
            pb::GetRequest {
                keys: vec!["tenant_config_pushed".into()],
            },
            &token("acme"),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.items[0].value_json, "{\"on\":true}");
    // A malformed change is refused whole.
    for bad in [
        pb::Change {
            op: 42,
            revision: 2,
            ..change.clone()
        },
        pb::Change {
            key: "nope_x".into(),
            revision: 2,
            ..change.clone()
        },
        pb::Change {
            owner: "Acme".into(),
            revision: 2,
            ..change.clone()
        },
    ] {
        let bad = pb::RefreshRequest { changes: vec![bad] };
        let err = refresher(&s).await.refresh(authed(bad, &service)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    }
}

#[tokio::test]
async fn get_reads_the_store_once_then_serves_from_the_cache() {
    let s = setup(HubConfig::default(), 0).await;
    write(&s, "acme", "tenant_config_a", "\"one\"").await;
    let mut client = grpc(&s).await;
    let ask = |keys: Vec<&str>| {
        authed(
            pb::GetRequest {
                keys: keys.into_iter().map(String::from).collect(),
            },
            &token("acme"),
        )
    };
    let got = client
        .get(ask(vec!["tenant_config_a", "tenant_config_none"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.items.len(), 1);
    assert_eq!(got.missing, ["tenant_config_none"]);
    assert_eq!(got.cursor.unwrap().tenant, 1);
    // Bad keys and bad tokens are refused.
    let err = client.get(ask(vec!["nope_x"])).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let err = client
        .get(authed(
            pb::GetRequest {
                keys: vec!["tenant_config_a".into()],
            },
            "garbage",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    // globex's Get never sees acme's key.
    let other = client
        .get(authed(
            pb::GetRequest {
                keys: vec!["tenant_config_a".into()],
            },
            &token("globex"),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(other.items.is_empty());
}

#[tokio::test]
async fn health_and_reflection_are_served() {
    let s = setup(HubConfig::default(), 0).await;
    let channel = Channel::from_shared(format!("http://{}", s.server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "tagcfg.v2.ConfigWatch".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

/// Both reflection versions list both tagcfg services: many tools (grpcurl, Python's
/// grpcio-reflection) still speak only v1alpha.
#[tokio::test]
async fn reflection_v1_and_v1alpha_list_the_services() {
    use tokio_stream::StreamExt;
    let s = setup(HubConfig::default(), 0).await;
    let channel = Channel::from_shared(format!("http://{}", s.server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut listed = Vec::new();
    {
        use tonic_reflection::pb::v1alpha::{
            server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest,
            server_reflection_response::MessageResponse, ServerReflectionRequest,
        };
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers = ServerReflectionClient::new(channel.clone())
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        if let Some(Ok(answer)) = answers.next().await {
            if let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response {
                listed.push(list.service.into_iter().map(|s| s.name).collect::<Vec<_>>());
            }
        }
    }
    {
        use tonic_reflection::pb::v1::{
            server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest,
            server_reflection_response::MessageResponse, ServerReflectionRequest,
        };
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers = ServerReflectionClient::new(channel)
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        if let Some(Ok(answer)) = answers.next().await {
            if let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response {
                listed.push(list.service.into_iter().map(|s| s.name).collect::<Vec<_>>());
            }
        }
    }
    assert_eq!(listed.len(), 2, "both versions answered: {listed:?}");
    for services in listed {
        for wanted in ["tagcfg.v2.ConfigWatch", "tagcfg.v2.ConfigRefresh"] {
            assert!(
                services.iter().any(|s| s == wanted),
                "{wanted} missing from {services:?}"
            );
        }
    }
}

/// Writes through the store only (the feed has not delivered it yet); returns the change.
async fn write_unpublished(setup: &Setup, tenant: &str, key: &str, value: &str) -> tagged_routing::Change {
    let owner = Owner::Tenant(TenantId::parse(tenant).unwrap());
    let key = setup.store.routes().parse_key(key).unwrap();
    let item = setup
        .store
        .put(&owner, &key, &JsonText::parse(value).unwrap(), Precondition::None, "w")
        .await
        .unwrap();
    setup
        .store
        .changes_since(&owner, Revision(item.revision.0 - 1), 1)
        .await
        .unwrap()
        .remove(0)
}

#[tokio::test]
async fn a_gap_the_log_cannot_fill_ends_streams_with_a_resync_that_says_so() {
    // The log kept revisions 5 and up only.
    let s = setup(HubConfig::default(), 5).await;
    let mut stream = watch(&s, "acme", &[], None).await;
    let mut last = None;
    for i in 1..=8 {
        last = Some(write_unpublished(&s, "acme", &format!("tenant_config_k{i}"), "1").await);
    }
    // The feed lost 1..7; the log cannot give back 1..4.
    s.hub.publish(last.unwrap()).await.unwrap();
    loop {
        match next(&mut stream).await {
            Event::Resync(r) => {
                assert!(r.reason.contains("skipped revisions"), "{}", r.reason);
                break;
            }
            Event::Heartbeat(_) | Event::Updates(_) => {}
        }
    }
}

#[tokio::test]
async fn a_change_beyond_the_stores_head_cannot_poison_a_tenant() {
    let s = setup(HubConfig::default(), 0).await;
    let mut stream = watch(&s, "acme", &[], None).await;
    let service = tenant_auth::service::mint(SERVICE_SECRET, "cache-refresher", 60).unwrap();
    // A change far beyond anything the store holds: refused for a tenant the hub follows;
    // for one it never saw, nothing is recorded (its head comes from the store when needed).
    for (tenant, refused) in [("acme", true), ("initech", false)] {
        let bogus = tagged_routing::Change::new(
            &Owner::Tenant(TenantId::parse(tenant).unwrap()),
            Revision(1_000_000),
            &s.store.routes().parse_key("tenant_config_x").unwrap(),
            tagged_routing::ChangeOp::Put,
            tagged_routing::Version(1),
            &"attacker".into(),
            "2026-11-27T00:00:00Z".into(),
            Some(&JsonText::parse("\"owned\"").unwrap()),
        );
        let request = pb::RefreshRequest {
            changes: vec![push::change_to_pb(&bogus)],
        };
        let answer = refresher(&s).await.refresh(authed(request, &service)).await;
        match answer {
            Err(err) if refused => {
                assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
                assert!(err.message().contains("beyond the store's head"), "{}", err.message());
            }
            Ok(_) if !refused => {}
            other => panic!("{tenant}: {other:?}"),
        }
    }
    let mut initech = watch(&s, "initech", &[], None).await;
    write(&s, "initech", "tenant_config_x", "2").await;
    assert_eq!(changes(&mut initech, 1).await, [(1, "tenant_config_x".into())]);
    // Real changes still flow, from revision 1.
    write(&s, "acme", "tenant_config_real", "1").await;
    assert_eq!(changes(&mut stream, 1).await, [(1, "tenant_config_real".into())]);
    let got = grpc(&s)
        .await
        .get(authed(
            pb::GetRequest {
                keys: vec!["tenant_config_x".into()],
            },
            &token("acme"),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(got.items.is_empty(), "the bogus value never reached the cache");
}

/// Owners nobody follows are forgotten past `max_idle_owners`; followed ones never are, and
/// answers stay right either way.
#[tokio::test]
async fn idle_owners_are_evicted_and_followed_ones_kept() {
    let s = setup(
        HubConfig {
            max_idle_owners: 2,
            ..HubConfig::default()
        },
        0,
    )
    .await;
    let mut acme = watch(&s, "acme", &[], None).await;
    let mut client = grpc(&s).await;
    let get = |tenant: &str| {
        authed(
            pb::GetRequest {
                keys: vec!["tenant_config_k".into()],
            },
            &token(tenant),
        )
    };
    for i in 0..10 {
        let tenant = format!("t{i}");
        write(&s, &tenant, "tenant_config_k", &i.to_string()).await;
        let got = client.get(get(&tenant)).await.unwrap().into_inner();
        assert_eq!(got.items[0].value_json, i.to_string());
    }
    // acme and the shared layer it reads through are followed; of the rest, 2 remain.
    assert!(s.hub.cached_owners() <= 2 + 2, "{} owners kept", s.hub.cached_owners());
    // A forgotten tenant's write, not seen by the hub, is read right from the store.
    write(&s, "t0", "tenant_config_k", "\"again\"").await;
    let got = client.get(get("t0")).await.unwrap().into_inner();
    assert_eq!(got.items[0].value_json, "\"again\"");
    // The followed tenant still gets every change.
    write(&s, "acme", "tenant_config_k", "1").await;
    assert_eq!(changes(&mut acme, 1).await, [(1, "tenant_config_k".into())]);
}

#[tokio::test]
async fn a_tenant_at_its_stream_limit_is_refused_while_others_are_served() {
    let setup = setup_tuned(HubConfig::default(), 0, RARE_HEARTBEAT, |s| {
        s.with_max_streams_per_tenant(2)
    })
    .await;
    let first = watch(&setup, "acme", &[], None).await;
    let _second = watch(&setup, "acme", &[], None).await;
    let request = pb::WatchRequest {
        prefixes: vec![],
        since: None,
    };
    let refused = grpc(&setup)
        .await
        .watch(authed(request.clone(), &token("acme")))
        .await
        .expect_err("a third stream of acme is refused");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(
        refused.message().starts_with("too_many_streams"),
        "{}",
        refused.message()
    );
    // Another tenant is not affected.
    let _globex = watch(&setup, "globex", &[], None).await;
    // A closed stream gives its slot back.
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match grpc(&setup).await.watch(authed(request.clone(), &token("acme"))).await {
            Ok(_) => break,
            Err(status) if status.code() == tonic::Code::ResourceExhausted && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(status) => panic!("the freed slot was not given back: {status}"),
        }
    }
}

#[tokio::test]
async fn a_tenant_past_its_read_rate_gets_resource_exhausted_on_get_and_watch() {
    let limits = push::TenantLimits {
        reads_per_sec: 1,
        read_burst: 2,
        ..Default::default()
    };
    let setup = setup_tuned(HubConfig::default(), 0, RARE_HEARTBEAT, |s| {
        s.with_tenant_limiter(Arc::new(push::TenantLimiter::new(limits)))
    })
    .await;
    let get = |tenant: &str| {
        authed(
            pb::GetRequest {
                keys: vec!["tenant_config_k".into()],
            },
            &token(tenant),
        )
    };
    let mut client = grpc(&setup).await;
    client.get(get("acme")).await.unwrap();
    client.get(get("acme")).await.unwrap();
    let refused = client
        .get(get("acme"))
        .await
        .expect_err("a third Get within the burst of two");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused}");
    let request = pb::WatchRequest {
        prefixes: vec![],
        since: None,
    };
    let refused = client
        .watch(authed(request, &token("acme")))
        .await
        .expect_err("opening a Watch takes a read too");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused}");
    // Another tenant's bucket is full.
    client.get(get("globex")).await.unwrap();
}

/// A token of `tenant` the verifier accepts for 2 s more (it allows 60 s past `exp`).
fn token_expiring_soon(tenant: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    dev::mint_until(
        SECRET,
        &TenantId::parse(tenant).unwrap(),
        "u",
        &[Scope::Read],
        now + 2 - 60,
    )
    .unwrap()
}

/// A `Watch` opened with `token`, as the server answered it (nothing read yet).
async fn watch_with(setup: &Setup, token: &str, prefixes: &[&str], since: Option<pb::Cursor>) -> Events {
    let request = pb::WatchRequest {
        prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
        since,
    };
    grpc(setup)
        .await
        .watch(authed(request, token))
        .await
        .unwrap()
        .into_inner()
}

/// The status a stream ends with, within 8 s; the number of update batches before it.
async fn end_of(stream: &mut Events) -> (tonic::Status, usize) {
    let mut updates = 0;
    let ended = tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            match stream.message().await {
                Ok(Some(event)) => {
                    if matches!(event.event, Some(Event::Updates(_))) {
                        updates += 1;
                    }
                }
                Ok(None) => panic!("the stream ended without saying why"),
                Err(status) => return status,
            }
        }
    })
    .await
    .expect("the stream outlived its token by seconds");
    (ended, updates)
}

#[tokio::test]
async fn an_idle_stream_ends_when_its_token_expires_long_before_its_heartbeat() {
    let setup = setup(HubConfig::default(), 0).await;
    let mut stream = watch_with(&setup, &token_expiring_soon("acme"), &["tenant_config_idle/"], None).await;
    let (ended, _) = end_of(&mut stream).await;
    assert_eq!(ended.code(), tonic::Code::Unauthenticated, "{ended:?}");
    assert!(ended.message().starts_with("token_expired"), "{ended:?}");
}

#[tokio::test]
async fn heartbeats_recur_and_move_the_cursor_past_changes_the_stream_did_not_need() {
    let beat = Duration::from_millis(150);
    let setup = setup_tuned(HubConfig::default(), 0, beat, |service| service).await;
    let mut stream = watch(&setup, "acme", &["tenant_config_mine/"], None).await;
    let other = write(&setup, "acme", "tenant_config_other/k", "1").await;
    let mut beats = Vec::new();
    while beats.len() < 3 {
        match next(&mut stream).await {
            Event::Heartbeat(hb) => beats.push(hb.cursor.expect("a heartbeat's cursor")),
            other => panic!("expected only heartbeats, got {other:?}"),
        }
    }
    assert_eq!(beats[2].tenant, other.0, "{beats:?}");
    // One heartbeat per period, not a stream of them: count a second's worth.
    let mut in_a_second = 0;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            next(&mut stream).await;
            in_a_second += 1;
        }
    })
    .await;
    assert!(
        in_a_second <= 1000 / beat.as_millis() + 1,
        "{in_a_second} heartbeats in 1 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_busy_with_changes_still_ends_when_its_token_expires() {
    let setup = Arc::new(setup(HubConfig::default(), 0).await);
    let mut stream = watch_with(&setup, &token_expiring_soon("acme"), &["tenant_config_busy/"], None).await;
    // Changes every few milliseconds, past the token's expiry.
    let writer = {
        let setup = setup.clone();
        tokio::spawn(async move {
            for i in 0..5_000 {
                write(&setup, "acme", "tenant_config_busy/k", &i.to_string()).await;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let (ended, updates) = end_of(&mut stream).await;
    writer.abort();
    assert_eq!(ended.code(), tonic::Code::Unauthenticated, "{ended:?}");
    assert!(ended.message().starts_with("token_expired"), "{ended:?}");
    assert!(updates > 100, "the stream was not busy: {updates} updates");
}
