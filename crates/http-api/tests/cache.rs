//! The revision-validated read cache, counted (never timed) against the in-memory store.

use std::sync::Arc;
use std::time::Duration;

use http_api::CachedStore;
use tagged_routing::memory::MemoryStore;
use tagged_routing::{
    ConfigStore, JsonText, Key, Owner, Precondition, RoutingTable, StoreLimits, TaggedStore, TenantId, TierName,
};
use testkit::stores::Observed;

/// The backend: an in-memory `TaggedStore` whose `get` calls are counted.
fn backend() -> Arc<Observed> {
    let inner = TaggedStore::single(
        RoutingTable::default(),
        Arc::new(MemoryStore::new()),
        StoreLimits::default(),
    );
    Arc::new(Observed::new(Arc::new(inner)))
}

fn acme() -> Owner {
    Owner::Tenant(TenantId::parse("acme").unwrap())
}

fn key(raw: &str) -> Key {
    RoutingTable::default().parse_key(raw).unwrap()
}

fn json(s: &str) -> JsonText {
    JsonText::parse(s).unwrap()
}

const LONG: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn a_thousand_reads_of_an_unchanged_key_make_one_backend_read() {
    let backend = backend();
    let k = key("param_config_endpoint");
    backend
        .put(&acme(), &k, &json("\"v1\""), Precondition::None, "a")
        .await
        .unwrap();
    let cache = CachedStore::new(backend.clone(), LONG);
    for _ in 0..1000 {
        assert_eq!(cache.get(&acme(), &k).await.unwrap().unwrap().value.as_str(), "\"v1\"");
    }
    assert_eq!(backend.gets(), 1);
    let counts = cache.metrics().take();
    // One head check: acme's own log is all an own-layer entry depends on.
    assert_eq!(
        (counts.hits, counts.misses, counts.backend_reads, counts.head_checks),
        (999, 1, 1, 1)
    );
    // Absent keys are remembered too.
    let missing = key("tenant_config_nothing");
    for _ in 0..100 {
        assert!(cache.get(&acme(), &missing).await.unwrap().is_none());
    }
    assert_eq!(backend.gets(), 2);
}

#[tokio::test]
async fn another_environments_write_is_seen_after_the_freshness_window() {
    let backend = backend();
    let k = key("param_config_endpoint");
    let other = key("tenant_config_untouched");
    backend
        .put(&acme(), &k, &json("1"), Precondition::None, "a")
        .await
        .unwrap();
    backend
        .put(&acme(), &other, &json("\"same\""), Precondition::None, "a")
        .await
        .unwrap();
    let window = Duration::from_millis(100);
    let first = CachedStore::new(backend.clone(), window);
    let second = CachedStore::new(backend.clone(), window);
    assert_eq!(first.get(&acme(), &k).await.unwrap().unwrap().value.as_str(), "1");
    first.get(&acme(), &other).await.unwrap();
    let reads_before = backend.gets();

    second
        .put(&acme(), &k, &json("2"), Precondition::None, "b")
        .await
        .unwrap();
    tokio::time::sleep(window + Duration::from_millis(20)).await;
    assert_eq!(first.get(&acme(), &k).await.unwrap().unwrap().value.as_str(), "2");
    assert_eq!(
        first.get(&acme(), &other).await.unwrap().unwrap().value.as_str(),
        "\"same\""
    );
    assert_eq!(
        backend.gets() - reads_before,
        1,
        "only the changed key is read again; the change log named it"
    );
}

#[tokio::test]
async fn min_revision_reads_see_another_environments_write_at_once() {
    let backend = backend();
    let k = key("tenant_config_flag");
    backend
        .put(&acme(), &k, &json("false"), Precondition::None, "a")
        .await
        .unwrap();
    let first = CachedStore::new(backend.clone(), LONG);
    let second = CachedStore::new(backend.clone(), LONG);
    first.get(&acme(), &k).await.unwrap();
    let written = second
        .put(&acme(), &k, &json("true"), Precondition::None, "b")
        .await
        .unwrap();
    // Without min_revision the first environment may still answer from its window.
    assert_eq!(first.get(&acme(), &k).await.unwrap().unwrap().value.as_str(), "false");
    // With it, the handler asks for the head first: at or past the write, fresh at once.
    assert!(first.head_revision(&acme()).await.unwrap() >= written.revision);
    assert_eq!(first.get(&acme(), &k).await.unwrap().unwrap().value.as_str(), "true");
}

/// A tenant's effective value, resolved through the cache layer by layer.
async fn effective(cache: &CachedStore, k: &Key) -> Option<String> {
    let acme = TenantId::parse("acme").unwrap();
    let (mut items, _) = tagged_routing::resolve(cache, &acme, std::slice::from_ref(k))
        .await
        .unwrap();
    items.pop().map(|i| format!("{}@{}", i.value.as_str(), i.layer))
}

#[tokio::test]
async fn own_writes_are_visible_immediately_and_other_layers_are_validated_against_their_own_logs() {
    let backend = backend();
    let cache = CachedStore::new(backend.clone(), LONG);
    let k = key("param_config_region");
    backend
        .put(&Owner::Shared, &k, &json("\"eu\""), Precondition::None, "ops")
        .await
        .unwrap();
    assert_eq!(effective(&cache, &k).await.unwrap(), "\"eu\"@shared");
    cache
        .put(&acme(), &k, &json("\"us\""), Precondition::None, "a")
        .await
        .unwrap();
    assert_eq!(effective(&cache, &k).await.unwrap(), "\"us\"@tenant");
    cache.delete(&acme(), &k, Precondition::None, "a").await.unwrap();
    assert_eq!(
        effective(&cache, &k).await.unwrap(),
        "\"eu\"@shared",
        "the shared value shows again"
    );

    // An operator changes the shared layer and assigns a tier from another environment.
    let window = Duration::from_millis(50);
    let reader = CachedStore::new(backend.clone(), window);
    assert_eq!(effective(&reader, &k).await.unwrap(), "\"eu\"@shared");
    // The shared log is far ahead of acme's: never compared with it.
    for i in 0..40 {
        let filler = key(&format!("param_config_filler/{i}"));
        backend
            .put(&Owner::Shared, &filler, &json("0"), Precondition::None, "ops")
            .await
            .unwrap();
    }
    backend
        .put(&Owner::Shared, &k, &json("\"ap\""), Precondition::None, "ops")
        .await
        .unwrap();
    tokio::time::sleep(window + Duration::from_millis(20)).await;
    assert_eq!(effective(&reader, &k).await.unwrap(), "\"ap\"@shared");
    let pro = TierName::parse("pro").unwrap();
    backend
        .put(
            &Owner::Tier(pro.clone()),
            &k,
            &json("\"pro\""),
            Precondition::None,
            "ops",
        )
        .await
        .unwrap();
    backend
        .assign_tier(&TenantId::parse("acme").unwrap(), Some(&pro), &"ops".into())
        .await
        .unwrap();
    tokio::time::sleep(window + Duration::from_millis(20)).await;
    assert_eq!(effective(&reader, &k).await.unwrap(), "\"pro\"@tier:pro");
    // A tenant write at its revision 3, with shared past revision 40, wins at once.
    reader
        .put(&acme(), &k, &json("\"mine\""), Precondition::None, "a")
        .await
        .unwrap();
    assert_eq!(effective(&reader, &k).await.unwrap(), "\"mine\"@tenant");
}
