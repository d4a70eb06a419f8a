//! Layers and the one resolution rule.
//!
//! A tenant reads through a stack of owners: its own layer, then the tier it is assigned to
//! (if any), then the platform's shared defaults. The first layer that holds a key answers,
//! and the answer says which layer it came from. [`LayerStack`] is the only place that knows
//! this order; [`resolve`] applies it to any [`LayerSource`] (a store, a read cache, the
//! watch hub's cache), and [`is_visible`] decides whether a change of one layer is a change
//! of what a tenant reads.
//!
//! Each layer keeps its own revision sequence: revisions of different layers are never
//! compared with each other.

use async_trait::async_trait;

use crate::{ChangeOp, ConfigItem, ConfigStore, Key, Layer, Owner, Result, TenantId, TierName};

/// The owners a tenant reads through, highest priority first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerStack {
    tenant: TenantId,
    tier: Option<TierName>,
}

impl LayerStack {
    pub fn new(tenant: TenantId, tier: Option<TierName>) -> Self {
        LayerStack { tenant, tier }
    }

    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    pub fn tier(&self) -> Option<&TierName> {
        self.tier.as_ref()
    }

    /// Tenant → tier (if assigned) → shared.
    pub fn owners(&self) -> Vec<Owner> {
        let mut owners = vec![Owner::Tenant(self.tenant.clone())];
        owners.extend(self.tier.clone().map(Owner::Tier));
        owners.push(Owner::Shared);
        owners
    }

    /// The position of `owner` in the stack (0 = highest), or `None` when this tenant does
    /// not read through it (another tenant, another tier).
    pub fn rank(&self, owner: &Owner) -> Option<usize> {
        self.owners().iter().position(|o| o == owner)
    }

    /// The rank of the layer an item answered from.
    pub fn rank_of_layer(&self, layer: &Layer) -> Option<usize> {
        self.rank(&layer.owner(&self.tenant))
    }

    /// The effective item among what each owner of [`LayerStack::owners`] holds for one key,
    /// given in that order: the first one present.
    pub fn pick(&self, held: impl IntoIterator<Item = Option<ConfigItem>>) -> Option<ConfigItem> {
        held.into_iter().flatten().next()
    }
}

/// Whether a change of `changed` (an owner's own layer) to a key changed what a tenant with
/// `stack` reads, given the tenant's `effective` item after the change:
/// - a put is visible when nothing above its layer holds the key (the effective item answers
///   from that layer);
/// - a delete is visible when nothing above its layer holds the key either: what shows now is
///   a lower layer's value, or nothing.
pub fn is_visible(stack: &LayerStack, changed: &Owner, op: ChangeOp, effective: Option<&ConfigItem>) -> bool {
    let Some(rank) = stack.rank(changed) else {
        return false;
    };
    let effective_rank = effective.and_then(|item| stack.rank_of_layer(&item.layer));
    match op {
        ChangeOp::Put => effective_rank == Some(rank),
        ChangeOp::Delete => effective_rank.is_none_or(|r| r > rank),
        ChangeOp::Tier => matches!(changed, Owner::Tenant(_)),
    }
}

/// What resolution reads: each owner's own layer, and a tenant's tier.
#[async_trait]
pub trait LayerSource: Send + Sync {
    async fn tier_of(&self, tenant: &TenantId) -> Result<Option<TierName>>;
    /// The items `owner`'s own layer holds among `keys`, in any order.
    async fn own_items(&self, owner: &Owner, keys: &[Key]) -> Result<Vec<ConfigItem>>;
}

#[async_trait]
impl<S: ConfigStore + ?Sized> LayerSource for S {
    async fn tier_of(&self, tenant: &TenantId) -> Result<Option<TierName>> {
        ConfigStore::tier_of(self, tenant).await
    }

    async fn own_items(&self, owner: &Owner, keys: &[Key]) -> Result<Vec<ConfigItem>> {
        match keys {
            [] => Ok(Vec::new()),
            [key] => Ok(self.get(owner, key).await?.into_iter().collect()),
            keys => self.batch_get(owner, keys).await,
        }
    }
}

/// The effective items of `keys` for `tenant` (absent keys are left out), read through
/// `source` layer by layer: each lower layer is asked only for the keys no higher layer
/// held. Also returns the stack used.
pub async fn resolve<S: LayerSource + ?Sized>(
    source: &S,
    tenant: &TenantId,
    keys: &[Key],
) -> Result<(Vec<ConfigItem>, LayerStack)> {
    let stack = LayerStack::new(tenant.clone(), source.tier_of(tenant).await?);
    let items = resolve_in(source, &stack, keys).await?;
    Ok((items, stack))
}

/// [`resolve`] with a known stack.
pub async fn resolve_in<S: LayerSource + ?Sized>(
    source: &S,
    stack: &LayerStack,
    keys: &[Key],
) -> Result<Vec<ConfigItem>> {
    let mut remaining: Vec<Key> = keys.to_vec();
    let mut found = Vec::new();
    for owner in stack.owners() {
        if remaining.is_empty() {
            break;
        }
        let items = source.own_items(&owner, &remaining).await?;
        remaining.retain(|k| !items.iter().any(|i| i.key == k.as_str()));
        found.extend(items);
    }
    Ok(found)
}

/// The effective item of one key.
pub async fn resolve_one<S: LayerSource + ?Sized>(
    source: &S,
    stack: &LayerStack,
    key: &Key,
) -> Result<Option<ConfigItem>> {
    Ok(resolve_in(source, stack, std::slice::from_ref(key)).await?.pop())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Revision, Version};

    fn item(layer: Layer) -> ConfigItem {
        ConfigItem {
            key: "k".into(),
            value: crate::JsonText::parse("1").unwrap(),
            version: Version(1),
            revision: Revision(1),
            updated_at: String::new(),
            updated_by: String::new(),
            layer,
        }
    }

    #[test]
    fn order_is_tenant_tier_shared() {
        let acme = TenantId::parse("acme").unwrap();
        let pro = TierName::parse("pro").unwrap();
        let stack = LayerStack::new(acme.clone(), Some(pro.clone()));
        assert_eq!(
            stack.owners(),
            [Owner::Tenant(acme.clone()), Owner::Tier(pro.clone()), Owner::Shared]
        );
        assert_eq!(
            LayerStack::new(acme.clone(), None).owners(),
            [Owner::Tenant(acme), Owner::Shared]
        );
        let picked = stack.pick([None, Some(item(Layer::Tier(pro.clone()))), Some(item(Layer::Shared))]);
        assert_eq!(picked.unwrap().layer, Layer::Tier(pro));
    }

    #[test]
    fn visibility() {
        let acme = TenantId::parse("acme").unwrap();
        let pro = TierName::parse("pro").unwrap();
        let free = TierName::parse("free").unwrap();
        let stack = LayerStack::new(acme.clone(), Some(pro.clone()));
        let tenant = Owner::Tenant(acme);
        let tier = Owner::Tier(pro.clone());
        let tenant_item = item(Layer::Tenant);
        let tier_item = item(Layer::Tier(pro));
        let shared_item = item(Layer::Shared);
        // A shared put under a tenant override is hidden; over nothing it shows.
        assert!(!is_visible(&stack, &Owner::Shared, ChangeOp::Put, Some(&tenant_item)));
        assert!(is_visible(&stack, &Owner::Shared, ChangeOp::Put, Some(&shared_item)));
        // Deleting the override uncovers the tier value: visible.
        assert!(is_visible(&stack, &tenant, ChangeOp::Delete, Some(&tier_item)));
        assert!(is_visible(&stack, &tenant, ChangeOp::Delete, None));
        // Deleting a tier value under a tenant override: hidden.
        assert!(!is_visible(&stack, &tier, ChangeOp::Delete, Some(&tenant_item)));
        // Another tier's change never shows.
        assert!(!is_visible(
            &stack,
            &Owner::Tier(free),
            ChangeOp::Put,
            Some(&shared_item)
        ));
    }
}
