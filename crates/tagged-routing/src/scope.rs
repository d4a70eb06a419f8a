//! The tenant a request acts for, and a fence that holds every store call to it.
//!
//! The HTTP API runs each tenant principal's request inside [`as_tenant`]; stores below
//! can ask [`request_tenant`] whose request they serve without it being threaded through
//! every signature. [`Fenced`] is a store decorator that refuses any call of that request
//! (or of a fixed tenant, [`Fence::Pinned`]) that touches another tenant's layer, writes a
//! platform layer or lists every owner: the second wall behind the token check, in the
//! code, and in front of tenant-scoped AWS credentials where they are used
//! (`adapters::aws::scoped`).

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;

use crate::{
    Author, Change, ConfigItem, ConfigStore, Error, HistoryEntry, JsonText, Key, Owner, Page, Precondition, Result,
    Revision, SetWrite, TenantId, TierName, Version,
};

tokio::task_local! {
    static REQUEST_TENANT: TenantId;
}

/// Runs `work` as a request of `tenant`: [`request_tenant`] answers `tenant` inside it.
pub async fn as_tenant<F: Future>(tenant: TenantId, work: F) -> F::Output {
    REQUEST_TENANT.scope(tenant, work).await
}

/// The tenant whose request the current task serves; `None` outside any tenant request
/// (operators, the feed, start-up).
pub fn request_tenant() -> Option<TenantId> {
    REQUEST_TENANT.try_with(TenantId::clone).ok()
}

/// Which tenant a [`Fenced`] store holds its calls to.
#[derive(Debug, Clone)]
pub enum Fence {
    /// The tenant of the current request ([`request_tenant`]); calls outside any tenant
    /// request pass.
    RequestTenant,
    /// Always this tenant: a store built from one tenant's credentials.
    Pinned(TenantId),
}

/// A store whose calls may only touch one tenant's own layer (read and write) and read
/// the platform layers (tier and shared) its values resolve through.
pub struct Fenced {
    inner: Arc<dyn ConfigStore>,
    fence: Fence,
}

#[derive(Clone, Copy, PartialEq)]
enum Intent {
    Read,
    Write,
}

impl Fenced {
    pub fn new(inner: Arc<dyn ConfigStore>, fence: Fence) -> Self {
        Fenced { inner, fence }
    }

    fn tenant(&self) -> Option<TenantId> {
        match &self.fence {
            Fence::RequestTenant => request_tenant(),
            Fence::Pinned(t) => Some(t.clone()),
        }
    }

    fn allow(&self, owner: &Owner, intent: Intent) -> Result<()> {
        let Some(tenant) = self.tenant() else { return Ok(()) };
        match owner {
            Owner::Tenant(t) if *t == tenant => Ok(()),
            Owner::Tenant(_) => Err(Error::Forbidden(format!(
                "a store call for tenant '{tenant}' addressed another tenant's layer"
            ))),
            _ if intent == Intent::Read => Ok(()),
            _ => Err(Error::Forbidden(format!(
                "a store call for tenant '{tenant}' tried to write the {} layer",
                owner.layer()
            ))),
        }
    }

    fn allow_tenant(&self, of: &TenantId, intent: Intent) -> Result<()> {
        self.allow(&Owner::Tenant(of.clone()), intent)
    }
}

#[async_trait]
impl ConfigStore for Fenced {
    async fn get(&self, owner: &Owner, key: &Key) -> Result<Option<ConfigItem>> {
        self.allow(owner, Intent::Read)?;
        self.inner.get(owner, key).await
    }

    async fn put_by(
        &self,
        owner: &Owner,
        key: &Key,
        value: &JsonText,
        precondition: Precondition,
        author: &Author,
    ) -> Result<ConfigItem> {
        self.allow(owner, Intent::Write)?;
        self.inner.put_by(owner, key, value, precondition, author).await
    }

    async fn delete_by(&self, owner: &Owner, key: &Key, precondition: Precondition, author: &Author) -> Result<Change> {
        self.allow(owner, Intent::Write)?;
        self.inner.delete_by(owner, key, precondition, author).await
    }

    async fn write_set(&self, owner: &Owner, writes: &[SetWrite], author: &Author) -> Result<Vec<Change>> {
        self.allow(owner, Intent::Write)?;
        self.inner.write_set(owner, writes, author).await
    }

    async fn value_at(&self, owner: &Owner, key: &Key, version: Version) -> Result<Option<JsonText>> {
        self.allow(owner, Intent::Read)?;
        self.inner.value_at(owner, key, version).await
    }

    async fn list(&self, owner: &Owner, prefix: &str, after: Option<&str>, limit: usize) -> Result<Page<ConfigItem>> {
        self.allow(owner, Intent::Read)?;
        self.inner.list(owner, prefix, after, limit).await
    }

    async fn batch_get(&self, owner: &Owner, keys: &[Key]) -> Result<Vec<ConfigItem>> {
        self.allow(owner, Intent::Read)?;
        self.inner.batch_get(owner, keys).await
    }

    async fn history(&self, owner: &Owner, key: &Key, limit: usize) -> Result<Vec<HistoryEntry>> {
        self.allow(owner, Intent::Read)?;
        self.inner.history(owner, key, limit).await
    }

    async fn changes_since(&self, owner: &Owner, since: Revision, limit: usize) -> Result<Vec<Change>> {
        self.allow(owner, Intent::Read)?;
        self.inner.changes_since(owner, since, limit).await
    }

    async fn head_revision(&self, owner: &Owner) -> Result<Revision> {
        self.allow(owner, Intent::Read)?;
        self.inner.head_revision(owner).await
    }

    async fn owners(&self) -> Result<Vec<Owner>> {
        if let Some(tenant) = self.tenant() {
            return Err(Error::Forbidden(format!(
                "a store call for tenant '{tenant}' tried to list every owner"
            )));
        }
        self.inner.owners().await
    }

    async fn tier_of(&self, tenant: &TenantId) -> Result<Option<TierName>> {
        self.allow_tenant(tenant, Intent::Read)?;
        self.inner.tier_of(tenant).await
    }

    async fn assign_tier(&self, tenant: &TenantId, tier: Option<&TierName>, author: &Author) -> Result<Option<Change>> {
        // Tier assignments are the platform's, never a tenant request's.
        if let Some(requester) = self.tenant() {
            return Err(Error::Forbidden(format!(
                "a store call for tenant '{requester}' tried to assign a tier"
            )));
        }
        self.inner.assign_tier(tenant, tier, author).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use crate::RoutingTable;

    fn tenant(id: &str) -> TenantId {
        TenantId::parse(id).unwrap()
    }

    #[tokio::test]
    async fn a_request_of_one_tenant_cannot_touch_another_or_write_the_platform_layers() {
        let store = Fenced::new(Arc::new(MemoryStore::new()), Fence::RequestTenant);
        let key = RoutingTable::default().parse_key("tenant_config_a").unwrap();
        let value = JsonText::parse("1").unwrap();
        let (acme, globex) = (Owner::Tenant(tenant("acme")), Owner::Tenant(tenant("globex")));
        // Outside any request (an operator, the feed): everything passes.
        store.put(&globex, &key, &value, Precondition::None, "t").await.unwrap();
        store
            .put(&Owner::Shared, &key, &value, Precondition::None, "ops")
            .await
            .unwrap();

        as_tenant(tenant("acme"), async {
            assert_eq!(request_tenant(), Some(tenant("acme")));
            store.put(&acme, &key, &value, Precondition::None, "a").await.unwrap();
            assert!(
                store.get(&Owner::Shared, &key).await.unwrap().is_some(),
                "platform layers are readable"
            );
            for refused in [
                store.get(&globex, &key).await.map(|_| ()),
                store
                    .put(&globex, &key, &value, Precondition::None, "a")
                    .await
                    .map(|_| ()),
                store.delete(&globex, &key, Precondition::None, "a").await.map(|_| ()),
                store
                    .put(&Owner::Shared, &key, &value, Precondition::None, "a")
                    .await
                    .map(|_| ()),
                store.changes_since(&globex, Revision(0), 10).await.map(|_| ()),
                store.owners().await.map(|_| ()),
                store.tier_of(&tenant("globex")).await.map(|_| ()),
                store
                    .assign_tier(&tenant("acme"), None, &Author::new("a"))
                    .await
                    .map(|_| ()),
            ] {
                assert!(matches!(refused, Err(Error::Forbidden(_))), "{refused:?}");
            }
        })
        .await;
        assert_eq!(request_tenant(), None);
    }

    #[tokio::test]
    async fn a_pinned_store_refuses_other_tenants_even_outside_a_request() {
        let store = Fenced::new(Arc::new(MemoryStore::new()), Fence::Pinned(tenant("acme")));
        let key = RoutingTable::default().parse_key("tenant_config_a").unwrap();
        let globex = Owner::Tenant(tenant("globex"));
        let refused = store.get(&globex, &key).await;
        assert!(matches!(refused, Err(Error::Forbidden(_))), "{refused:?}");
        let in_other_request = as_tenant(tenant("globex"), store.get(&globex, &key)).await;
        assert!(
            matches!(in_other_request, Err(Error::Forbidden(_))),
            "{in_other_request:?}"
        );
        assert!(store.get(&Owner::Tenant(tenant("acme")), &key).await.unwrap().is_none());
    }
}
