use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::Version;
use crate::{
    Author, BackendKind, Change, ConfigItem, ConfigStore, Error, HistoryEntry, JsonText, Key, Owner, Page,
    Precondition, Result, Revision, RoutingTable, SetWrite, TenantId, TierName,
};

/// Size limits that depend on how the backends are provisioned.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreLimits {
    /// SSM advanced-tier parameters hold 8 KB instead of 4 KB.
    pub ssm_advanced_tier: bool,
}

impl StoreLimits {
    /// The largest value (in bytes of JSON text) a backend kind accepts. Every store
    /// implementation of a kind gets the same limit, so the local store refuses what AWS
    /// would refuse.
    pub fn max_value_bytes(&self, kind: BackendKind) -> usize {
        match kind {
            // A DynamoDB item holds 400 KB; keep room for the key and the other attributes.
            BackendKind::Dynamodb => 350 * 1024,
            BackendKind::Ssm | BackendKind::SsmSecure if self.ssm_advanced_tier => 8 * 1024,
            BackendKind::Ssm | BackendKind::SsmSecure => 4 * 1024,
        }
    }
}

/// The Strategy dispatcher: each call goes to the store of the backend its key's tag routes
/// to; the change log and the head revision come from one store for all backends, so a
/// tenant has one revision sequence whatever backend a key lives in.
///
/// It adds what no single backend knows: value limits per backend kind and listings merged
/// across backends. Tier assignments live beside the change log. It reads each owner's own
/// layer; resolution through the layers is [`crate::layers::resolve`] over it.
#[derive(Clone)]
pub struct TaggedStore {
    routes: Arc<RoutingTable>,
    backends: HashMap<BackendKind, Arc<dyn ConfigStore>>,
    change_log: Arc<dyn ConfigStore>,
    limits: StoreLimits,
}

impl TaggedStore {
    /// One store instance may serve several kinds: pass the same `Arc` for each, so that
    /// listings ask it once.
    ///
    /// Fails when a route names a backend kind that has no store: a start-up error, not a
    /// first-request one.
    pub fn new(
        routes: RoutingTable,
        change_log: Arc<dyn ConfigStore>,
        backends: impl IntoIterator<Item = (BackendKind, Arc<dyn ConfigStore>)>,
        limits: StoreLimits,
    ) -> Result<Self> {
        let backends: HashMap<_, _> = backends.into_iter().collect();
        if let Some((tag, kind)) = routes.routes().find(|(_, kind)| !backends.contains_key(kind)) {
            return Err(Error::InvalidRoutingTable(format!(
                "tag '{tag}' routes to '{kind}', but no {kind} store is configured"
            )));
        }
        Ok(TaggedStore {
            routes: Arc::new(routes),
            backends,
            change_log,
            limits,
        })
    }

    /// One store serves every backend kind and the change log (the local embedded store,
    /// the in-memory store).
    pub fn single(routes: RoutingTable, store: Arc<dyn ConfigStore>, limits: StoreLimits) -> Self {
        let backends = BackendKind::ALL.map(|k| (k, store.clone()));
        Self::new(routes, store, backends, limits).expect("every backend kind has a store")
    }

    pub fn routes(&self) -> &RoutingTable {
        &self.routes
    }

    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    fn store_for(&self, key: &Key) -> Result<&Arc<dyn ConfigStore>> {
        self.backends
            .get(&key.backend())
            .ok_or_else(|| Error::Backend(format!("no store for backend {}", key.backend())))
    }

    /// The distinct stores that may hold keys starting with `prefix`.
    fn stores_for_prefix(&self, prefix: &str) -> Vec<Arc<dyn ConfigStore>> {
        let mut stores: Vec<Arc<dyn ConfigStore>> = Vec::new();
        let kinds = if crate::governance::is_record_key(prefix) {
            vec![BackendKind::Dynamodb]
        } else {
            self.routes.backends_for_prefix(prefix)
        };
        for kind in kinds {
            if let Some(store) = self.backends.get(&kind) {
                // Compare data pointers: one store instance may serve several kinds.
                if !stores
                    .iter()
                    .any(|s| std::ptr::addr_eq(Arc::as_ptr(s), Arc::as_ptr(store)))
                {
                    stores.push(store.clone());
                }
            }
        }
        stores
    }
}

#[async_trait]
impl ConfigStore for TaggedStore {
    async fn get(&self, owner: &Owner, key: &Key) -> Result<Option<ConfigItem>> {
        self.store_for(key)?.get(owner, key).await
    }

    async fn put_by(
        &self,
        owner: &Owner,
        key: &Key,
        value: &JsonText,
        precondition: Precondition,
        author: &Author,
    ) -> Result<ConfigItem> {
        let limit = self.limits.max_value_bytes(key.backend());
        if value.len() > limit {
            return Err(Error::ValueTooLarge {
                size: value.len(),
                limit,
                backend: key.backend().to_string(),
            });
        }
        self.store_for(key)?
            .put_by(owner, key, value, precondition, author)
            .await
    }

    async fn delete_by(&self, owner: &Owner, key: &Key, precondition: Precondition, author: &Author) -> Result<Change> {
        self.store_for(key)?.delete_by(owner, key, precondition, author).await
    }

    async fn list(&self, owner: &Owner, prefix: &str, after: Option<&str>, limit: usize) -> Result<Page<ConfigItem>> {
        if limit == 0 {
            return Err(Error::InvalidValue("limit must be at least 1".into()));
        }
        let mut items = Vec::new();
        let mut more = false;
        for store in self.stores_for_prefix(prefix) {
            let page = store.list(owner, prefix, after, limit).await?;
            more |= page.next.is_some();
            items.extend(page.items);
        }
        // Each store returned its first `limit` keys after the cursor, so the first `limit`
        // of the merge are the first `limit` overall.
        items.sort_by(|a, b| a.key.cmp(&b.key));
        more |= items.len() > limit;
        items.truncate(limit);
        Ok(Page::after(items, more, |i| &i.key))
    }

    async fn batch_get(&self, owner: &Owner, keys: &[Key]) -> Result<Vec<ConfigItem>> {
        let mut by_kind: HashMap<BackendKind, Vec<Key>> = HashMap::new();
        for key in keys {
            by_kind.entry(key.backend()).or_default().push(key.clone());
        }
        let mut found = Vec::new();
        for (kind, keys) in by_kind {
            let store = self
                .backends
                .get(&kind)
                .ok_or_else(|| Error::Backend(format!("no store for backend {kind}")))?;
            found.extend(store.batch_get(owner, &keys).await?);
        }
        Ok(found)
    }

    async fn history(&self, owner: &Owner, key: &Key, limit: usize) -> Result<Vec<HistoryEntry>> {
        self.store_for(key)?.history(owner, key, limit).await
    }

    async fn value_at(&self, owner: &Owner, key: &Key, version: Version) -> Result<Option<JsonText>> {
        self.store_for(key)?.value_at(owner, key, version).await
    }

    async fn changes_since(&self, owner: &Owner, since: Revision, limit: usize) -> Result<Vec<Change>> {
        self.change_log.changes_since(owner, since, limit).await
    }

    async fn head_revision(&self, owner: &Owner) -> Result<Revision> {
        self.change_log.head_revision(owner).await
    }

    async fn owners(&self) -> Result<Vec<Owner>> {
        self.change_log.owners().await
    }

    /// A set is atomic within one backend that writes values and the change log together:
    /// DynamoDB-routed keys only (SSM writes a parameter, then the log: two calls). The
    /// local store refuses the same sets, so what works locally works on AWS.
    async fn write_set(&self, owner: &Owner, writes: &[SetWrite], author: &Author) -> Result<Vec<Change>> {
        if let Some(w) = writes.iter().find(|w| w.key.backend() != BackendKind::Dynamodb) {
            return Err(Error::NotAtomic(format!(
                "'{}' routes to {}; a change set is atomic within DynamoDB-routed keys only",
                w.key.as_str(),
                w.key.backend()
            )));
        }
        for w in writes {
            let limit = self.limits.max_value_bytes(w.key.backend());
            if let Some(value) = w.value.as_ref().filter(|v| v.len() > limit) {
                return Err(Error::ValueTooLarge {
                    size: value.len(),
                    limit,
                    backend: w.key.backend().to_string(),
                });
            }
        }
        let store = self
            .backends
            .get(&BackendKind::Dynamodb)
            .ok_or_else(|| Error::Backend("no store for backend dynamodb".into()))?;
        store.write_set(owner, writes, author).await
    }

    async fn tier_of(&self, tenant: &TenantId) -> Result<Option<TierName>> {
        self.change_log.tier_of(tenant).await
    }

    async fn assign_tier(&self, tenant: &TenantId, tier: Option<&TierName>, author: &Author) -> Result<Option<Change>> {
        self.change_log.assign_tier(tenant, tier, author).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use crate::{Layer, Version};

    fn acme() -> Owner {
        Owner::Tenant(TenantId::parse("acme").unwrap())
    }
    fn json(s: &str) -> JsonText {
        JsonText::parse(s).unwrap()
    }

    /// Two separate memory stores stand for two backends; one more holds the change log.
    fn split_store() -> (TaggedStore, MemoryStore, MemoryStore) {
        let dynamo = MemoryStore::new();
        let ssm = MemoryStore::new();
        let ssm_arc: Arc<dyn ConfigStore> = Arc::new(ssm.clone());
        let routes = RoutingTable::default();
        let store = TaggedStore::new(
            routes,
            Arc::new(dynamo.clone()),
            [
                (BackendKind::Dynamodb, Arc::new(dynamo.clone()) as Arc<dyn ConfigStore>),
                (BackendKind::Ssm, ssm_arc.clone()),
                (BackendKind::SsmSecure, ssm_arc),
            ],
            StoreLimits::default(),
        )
        .unwrap();
        (store, dynamo, ssm)
    }

    #[tokio::test]
    async fn dispatches_by_tag() {
        let (store, dynamo, ssm) = split_store();
        let routes = store.routes().clone();
        let hot = routes.parse_key("tenant_config_flags").unwrap();
        let param = routes.parse_key("param_config_db/url").unwrap();
        store
            .put(&acme(), &hot, &json("true"), Precondition::None, "u")
            .await
            .unwrap();
        store
            .put(&acme(), &param, &json("\"x\""), Precondition::None, "u")
            .await
            .unwrap();
        assert!(dynamo.get(&acme(), &hot).await.unwrap().is_some());
        assert!(dynamo.get(&acme(), &param).await.unwrap().is_none());
        assert!(ssm.get(&acme(), &param).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn tenant_reads_resolve_tenant_then_tier_then_shared_on_every_backend() {
        let (store, _, _) = split_store();
        let routes = store.routes().clone();
        let pro = TierName::parse("pro").unwrap();
        let acme_id = TenantId::parse("acme").unwrap();
        for raw in ["param_config_region", "tenant_config_region"] {
            let key = routes.parse_key(raw).unwrap();
            let read = || async { crate::layers::resolve(&store, &acme_id, std::slice::from_ref(&key)).await };
            store
                .put(&Owner::Shared, &key, &json("\"eu\""), Precondition::None, "op")
                .await
                .unwrap();
            assert_eq!(read().await.unwrap().0[0].layer, Layer::Shared, "{raw}");
            store
                .put(
                    &Owner::Tier(pro.clone()),
                    &key,
                    &json("\"us\""),
                    Precondition::None,
                    "op",
                )
                .await
                .unwrap();
            if store.tier_of(&acme_id).await.unwrap().is_none() {
                // Not assigned to the tier yet: the tier layer is not consulted.
                assert_eq!(read().await.unwrap().0[0].layer, Layer::Shared, "{raw}");
                let change = store
                    .assign_tier(&acme_id, Some(&pro), &"op".into())
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(change.assigned_tier(), Some(Some(pro.clone())));
                assert!(store
                    .assign_tier(&acme_id, Some(&pro), &"op".into())
                    .await
                    .unwrap()
                    .is_none());
            }
            let (items, stack) = read().await.unwrap();
            assert_eq!(stack.tier(), Some(&pro));
            assert_eq!(items[0].layer, Layer::Tier(pro.clone()), "{raw}");
            store
                .put(&acme(), &key, &json("\"ap\""), Precondition::None, "u")
                .await
                .unwrap();
            let got = &read().await.unwrap().0[0];
            assert_eq!((&got.layer, got.value.as_str()), (&Layer::Tenant, "\"ap\""));
            // The own-layer read never falls back.
            assert!(store
                .get(&Owner::Tenant(TenantId::parse("globex").unwrap()), &key)
                .await
                .unwrap()
                .is_none());
        }
    }

    #[tokio::test]
    async fn value_limits_follow_the_backend_kind() {
        let (store, _, _) = split_store();
        let param = store.routes().parse_key("param_config_big").unwrap();
        let big = json(&format!("\"{}\"", "x".repeat(5000)));
        let err = store
            .put(&acme(), &param, &big, Precondition::None, "u")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::ValueTooLarge { limit: 4096, .. }), "{err:?}");
        let hot = store.routes().parse_key("tenant_config_big").unwrap();
        assert_eq!(
            store
                .put(&acme(), &hot, &big, Precondition::None, "u")
                .await
                .unwrap()
                .version,
            Version(1)
        );
    }

    #[tokio::test]
    async fn listing_merges_backends_in_key_order_with_a_cursor() {
        let store = TaggedStore::single(
            RoutingTable::default(),
            Arc::new(MemoryStore::new()),
            StoreLimits::default(),
        );
        let (store2, _, _) = split_store();
        for s in [store, store2] {
            for k in [
                "tenant_config_b",
                "param_config_a",
                "tenant_config_a",
                "secret_config_z",
                "param_config_c",
            ] {
                let key = s.routes().parse_key(k).unwrap();
                s.put(&acme(), &key, &json("1"), Precondition::None, "u").await.unwrap();
            }
            let mut seen = Vec::new();
            let mut after = None;
            loop {
                let page = s.list(&acme(), "", after.as_deref(), 2).await.unwrap();
                seen.extend(page.items.iter().map(|i| i.key.clone()));
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            assert_eq!(
                seen,
                [
                    "param_config_a",
                    "param_config_c",
                    "secret_config_z",
                    "tenant_config_a",
                    "tenant_config_b"
                ]
            );
        }
    }

    #[test]
    fn a_route_without_a_store_fails_at_start_up() {
        let err = TaggedStore::new(
            RoutingTable::default(),
            Arc::new(MemoryStore::new()),
            [(
                BackendKind::Dynamodb,
                Arc::new(MemoryStore::new()) as Arc<dyn ConfigStore>,
            )],
            StoreLimits::default(),
        )
        .err()
        .unwrap();
        assert!(matches!(err, Error::InvalidRoutingTable(_)));
    }
}
