//! The conformance suite against the in-memory store and the embedded redb store.

mod common;

use std::sync::Arc;

use adapters::local::{InProcessFeed, RedbStore};
use adapters::memory::MemoryStore;
use tagged_routing::{
    ConfigStore, JsonText, Owner, Precondition, Revision, RoutingTable, StoreLimits, TaggedStore, TenantId,
};

fn tagged(store: Arc<dyn ConfigStore>) -> TaggedStore {
    TaggedStore::single(RoutingTable::default(), store, StoreLimits::default())
}

#[tokio::test]
async fn memory_store_conforms() {
    common::conformance::run_all(&tagged(Arc::new(MemoryStore::new()))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_log_port_conforms_on_memory_and_redb() {
    common::change_log::run_all(Arc::new(MemoryStore::new())).await;
    common::change_log::run_all(Arc::new(RedbStore::in_memory().unwrap())).await;
}

#[tokio::test]
async fn redb_store_conforms() {
    common::conformance::run_all(&tagged(Arc::new(RedbStore::in_memory().unwrap()))).await;
}

#[tokio::test]
async fn redb_store_keeps_data_across_reopen() {
    let dir = std::env::temp_dir().join(format!("tagcfg-redb-{}", std::process::id()));
    let path = dir.join("store.redb");
    let _ = std::fs::remove_file(&path);
    let acme = Owner::Tenant(TenantId::parse("acme").unwrap());
    let routes = RoutingTable::default();
    let k = routes.parse_key("tenant_config_persist").unwrap();
    {
        let store = RedbStore::open(&path).unwrap();
        store
            .put(&acme, &k, &JsonText::parse("[1,2]").unwrap(), Precondition::None, "a")
            .await
            .unwrap();
    }
    let store = RedbStore::open(&path).unwrap();
    let got = store.get(&acme, &k).await.unwrap().unwrap();
    assert_eq!(got.value.as_str(), "[1,2]");
    assert_eq!(store.head_revision(&acme).await.unwrap(), Revision(1));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn concurrent_writers_see_no_lost_update_and_the_feed_is_in_revision_order() {
    let feed = InProcessFeed::new(4096);
    let mut rx = feed.subscribe();
    let store = Arc::new(RedbStore::in_memory().unwrap().with_sink(Arc::new(feed)));
    let acme = Owner::Tenant(TenantId::parse("acme").unwrap());
    let k = RoutingTable::default().parse_key("tenant_config_counter").unwrap();
    store
        .put(&acme, &k, &JsonText::parse("0").unwrap(), Precondition::None, "init")
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for w in 0..8 {
        let (store, acme, k) = (store.clone(), acme.clone(), k.clone());
        tasks.push(tokio::spawn(async move {
            let mut ok = 0u64;
            for _ in 0..25 {
                let current = store.get(&acme, &k).await.unwrap().unwrap();
                let n: u64 = current.value.as_str().parse().unwrap();
                let next = JsonText::parse(&(n + 1).to_string()).unwrap();
                if store
                    .put(
                        &acme,
                        &k,
                        &next,
                        Precondition::IfVersion(current.version),
                        &format!("w{w}"),
                    )
                    .await
                    .is_ok()
                {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut successes = 0;
    for t in tasks {
        successes += t.await.unwrap();
    }
    let last = store.get(&acme, &k).await.unwrap().unwrap();
    assert_eq!(last.version.0, 1 + successes, "one version per successful write");
    assert_eq!(last.value.as_str(), successes.to_string(), "no lost update");
    let mut expected = 1;
    while let Ok(change) = rx.try_recv() {
        assert_eq!(
            change.revision.0, expected,
            "the feed delivers in revision order without gaps"
        );
        expected += 1;
    }
    assert_eq!(expected - 1, 1 + successes);
}

/// Writes that arrive together share one commit (one fsync), and each is still checked and
/// answered on its own: of 32 writers racing with `If-Match` on one key exactly one wins,
/// 32 unconditional writes of other keys all land, revisions stay contiguous and the feed
/// carries every change once, in revision order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_commits_and_each_keeps_its_own_answer() {
    let dir = tempfile::tempdir().unwrap();
    let feed = InProcessFeed::new(4096);
    let mut rx = feed.subscribe();
    let store = Arc::new(
        RedbStore::open(&dir.path().join("store.redb"))
            .unwrap()
            .with_sink(Arc::new(feed)),
    );
    let acme = Owner::Tenant(TenantId::parse("acme").unwrap());
    let routes = RoutingTable::default();
    let contested = routes.parse_key("tenant_config_contested").unwrap();
    let first = store
        .put(
            &acme,
            &contested,
            &JsonText::parse("0").unwrap(),
            Precondition::None,
            "init",
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..32 {
        let (store, acme, contested) = (store.clone(), acme.clone(), contested.clone());
        let own = routes.parse_key(&format!("tenant_config_own/{w}")).unwrap();
        tasks.push(tokio::spawn(async move {
            let value = JsonText::parse(&w.to_string()).unwrap();
            let raced = store
                .put(
                    &acme,
                    &contested,
                    &value,
                    Precondition::IfVersion(first.version),
                    "racer",
                )
                .await;
            let own = store.put(&acme, &own, &value, Precondition::None, "writer").await;
            (raced.is_ok(), own.is_ok())
        }));
    }
    let (mut won, mut landed) = (0, 0);
    for task in tasks {
        let (raced, own) = task.await.unwrap();
        won += usize::from(raced);
        landed += usize::from(own);
    }
    assert_eq!((won, landed), (1, 32), "one If-Match winner, every plain write");
    let head = store.head_revision(&acme).await.unwrap();
    assert_eq!(head, Revision(1 + 1 + 32));
    let mut revisions = Vec::new();
    while let Ok(change) = rx.try_recv() {
        revisions.push(change.revision.0);
    }
    assert_eq!(
        revisions,
        (1..=head.0).collect::<Vec<_>>(),
        "every change once, in order"
    );
    assert!(
        store.group_commits() < head.0,
        "{} writes took {} commits: none was grouped",
        head.0,
        store.group_commits()
    );
}
